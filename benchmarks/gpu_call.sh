#!/usr/bin/env bash
# One call on a lent GPU (docs/performance.md, "The device calls"): `doctor` first, stopping if
# it fails; then the `paper` grid of cifar10_random into a store that persists across calls,
# within a time budget (exit code 75 = checkpointed, call again); once the grid is complete,
# `check`, `report` and the speed against the two peers (engine numbers read from the store).
#
#   bash benchmarks/gpu_call.sh          # on the device, from the repository root
#
# Settings (environment variables): OUT (results that come back, default $OUT or results/gpu_call),
# DATA (CIFAR-10 zip, default .data/cifar10-jpeg.zip), STORE (default reports/paper/store),
# DEVICE (default cuda), BUDGET (seconds for the grid in this call, default 420), REPORTS (default
# reports), GRID_ARGS and PEER_ARGS (extra arguments, e.g. a tiny scale for a test on the CPU),
# PYTHON (default python3).
# Exit codes: 0 grid complete (and checked), 75 grid not complete yet (call again), 1 doctor or
# a step failed.
set -u -o pipefail
OUT=${OUT:-results/gpu_call}
DATA=${DATA:-.data/cifar10-jpeg.zip}
STORE=${STORE:-reports/paper/store}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-420}
GRID_ARGS=${GRID_ARGS:-}
PEER_ARGS=${PEER_ARGS:-"--peer-steps 100"}
PYTHON=${PYTHON:-python3}
REPORTS=${REPORTS:-reports}
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$(dirname "$HERE") PYTHONUNBUFFERED=1
mkdir -p "$OUT"

if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
fi
if ! $PYTHON -m bench_suite doctor --device "$DEVICE" 2>&1 | tee "$OUT/doctor.txt"; then
    echo "gpu_call: doctor found a mismatch on $DEVICE; not running the grid" | tee -a "$OUT/doctor.txt"
    exit 1
fi

# CUDA graphs for the grid only when the doctor found graphed epochs equal to eager ones
if grep -q '^\[ok\] CUDA graphs = eager' "$OUT/doctor.txt"; then
    export BENCH_SUITE_CUDA_GRAPHS=1
fi
# shellcheck disable=SC2086  # GRID_ARGS is a list of arguments
$PYTHON -m bench_suite run --profile paper --task cifar10_random --data-root "$DATA" --store "$STORE" \
    --device "$DEVICE" --time-budget "$BUDGET" --quiet $GRID_ARGS 2>&1 | tee "$OUT/grid.log"
code=${PIPESTATUS[0]}
mkdir -p "$OUT/store" && cp -r "$STORE/records" "$OUT/store/" 2> /dev/null
if [ "$code" = 75 ]; then
    echo "gpu_call: the grid is not complete yet (checkpointed); call again" | tee -a "$OUT/grid.log"
    exit 75
fi
if [ "$code" != 0 ]; then
    echo "gpu_call: the grid run failed (exit code $code)" | tee -a "$OUT/grid.log"
    exit 1
fi

# verdicts are results (a FAIL is a true finding), so their exit code does not stop the call
$PYTHON -m bench_suite check --profile paper --store "$STORE" 2>&1 | tee "$OUT/check.txt"
$PYTHON -m bench_suite report --profile paper --store "$STORE" --reports-dir "$REPORTS" 2>&1 | tee "$OUT/report.txt"
cp -r "$REPORTS/paper" "$OUT/report" 2> /dev/null
# shellcheck disable=SC2086
$PYTHON "$HERE/gpu_paper_grid.py" --data-root "$DATA" --device "$DEVICE" --engine-store "$STORE" \
    --out "$OUT/gpu_paper_grid.json" $PEER_ARGS 2>&1 | tee "$OUT/speed.log" || exit 1
