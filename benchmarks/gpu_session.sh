#!/usr/bin/env bash
# One GPU call, one repetition of Table 3 (docs/performance.md, "The GPU call"). From the
# repository root on the device, within SESSION_SECONDS (default 570, for a call of 600 s):
#  1. finds the CIFAR-10 zip (DATA, default .data/cifar10-jpeg.zip, an ignored folder the call
#     carries); without it, one line and exit 66 at once;
#  2. seeds a store outside the tree (WORK/store, WORK default /tmp/bench_suite_gpu; a warm
#     machine keeps it, checkpoints included) with the records that came back from earlier calls
#     (SEED_STORE, default reports/paper/store) and picks the first repetition of the `paper`
#     profile of cifar10_random that it has not finished;
#  3. runs `doctor` for information only (killed after DOCTOR_SECONDS, default 60; its verdict
#     never stops the grid). CUDA graphs stay off (GRAPHS=auto: on when the doctor's graph check,
#     on small shapes, passed);
#  4. runs that repetition with --time-budget: what is left of SESSION_SECONDS, less TAIL_SECONDS
#     (default 30) for the checkpoint write and the last tarball;
#  5. keeps $OUT at three files: store.tar.gz (the store without checkpoints/locks/rejected/runs:
#     records, curves, events), rewritten atomically every TAR_EVERY seconds (default 20) and at
#     exit; doctor.txt; session.log.
# Exit codes: 0 the repetition is finished (or every repetition was already); 75 stopped by the
# time budget, checkpointed in WORK (call again while the machine is warm); 66 no data; 1 error.
#
#   bash benchmarks/gpu_session.sh --print-call   # HERE: the call's command, with this commit
#
# The copy on the device has no .git: --print-call puts `git rev-parse HEAD` and whether tracked
# files differ from it into the command (BENCH_SUITE_GIT_COMMIT, BENCH_SUITE_GIT_DIRTY), which the
# records' provenance then carries. Other settings (environment): OUT (default $OUT, else
# results/gpu_session), DEVICE (cuda), PYTHON (python3), BUDGET (seconds for `run`, instead of the
# computed one), RUN_ARGS (extra arguments of `plan`/`run`, e.g. a tiny scale for the CPU tests).
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = --print-call ]; then
    cd "$ROOT" || exit 1
    head=$(git rev-parse HEAD 2> /dev/null) || { echo "gpu_session: --print-call runs in a git checkout"; exit 2; }
    dirty=0
    [ -z "$(git status --porcelain --untracked-files=no)" ] || dirty=1
    echo "BENCH_SUITE_GIT_COMMIT=$head BENCH_SUITE_GIT_DIRTY=$dirty bash benchmarks/gpu_session.sh"
    exit 0
fi
START=$SECONDS
OUT=${OUT:-$ROOT/results/gpu_session}
DATA=${DATA:-$ROOT/.data/cifar10-jpeg.zip}
WORK=${WORK:-/tmp/bench_suite_gpu}
SEED_STORE=${SEED_STORE:-$ROOT/reports/paper/store}
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
SESSION_SECONDS=${SESSION_SECONDS:-570}
TAIL_SECONDS=${TAIL_SECONDS:-30}
DOCTOR_SECONDS=${DOCTOR_SECONDS:-60}
TAR_EVERY=${TAR_EVERY:-20}
GRAPHS=${GRAPHS:-off}
read -r -a EXTRA <<< "${RUN_ARGS:-}"
STORE=$WORK/store
LOG=$OUT/session.log
TARBALL=$OUT/store.tar.gz
EXCLUDE=(--exclude=checkpoints --exclude=locks --exclude=rejected --exclude=runs --exclude='.*.tmp')
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$ROOT PYTHONUNBUFFERED=1

mkdir -p "$OUT"
say() { echo "gpu_session: $*" | tee -a "$LOG"; }
if [ ! -f "$DATA" ]; then
    say "no CIFAR-10 zip at $DATA: copy it into .data/ here (mkdir -p .data && cp ../shared/data/cifar10-jpeg.zip .data/) and carry .data with the call; exit 66"
    exit 66
fi
mkdir -p "$STORE" "$WORK/cache" || { say "cannot create $STORE; exit 1"; exit 1; }
# the tarball's temporary file: beside the store when that is on $OUT's file system (a rename
# there is atomic), else in $OUT under a dot name
PART=$WORK/store.tar.gz.part
[ "$(stat -c %d "$WORK")" = "$(stat -c %d "$OUT")" ] || PART=$OUT/.store.tar.gz.part

snapshot() {  # the store, without checkpoints, into $TARBALL: whole or not at all
    local tmp=$PART.$BASHPID
    tar -C "$STORE" "${EXCLUDE[@]}" --warning=no-file-changed --ignore-failed-read -czf "$tmp" . 2>> "$LOG"
    if [ $? -le 1 ]; then mv -f "$tmp" "$TARBALL"; else rm -f "$tmp"; fi
}
reps() {  # "<repetitions> <unfinished ones...>" of the paper profile in the store
    "$PYTHON" -m bench_suite plan "${COMMON[@]}" --json 2>> "$LOG" | "$PYTHON" -c '
import json, re, sys
reps = {}
for c in json.load(sys.stdin)["cells"]:
    rep = int(re.search(r"[[,]rep=(\d+)[],]", c["name"]).group(1))
    reps[rep] = reps.get(rep, False) or c["will_run"]
print(len(reps), *sorted(r for r, todo in reps.items() if todo))' 2>> "$LOG"
}
# shellcheck disable=SC2317  # run by the EXIT trap
finish() {
    local code=$?
    [ -n "${LOOP:-}" ] && kill -TERM "$LOOP" 2> /dev/null && wait "$LOOP"
    snapshot
    say "exit $code after $((SECONDS - START)) s; $OUT holds $(cd "$OUT" && echo *)"
}

[ -d "$SEED_STORE" ] && { tar -C "$SEED_STORE" "${EXCLUDE[@]}" -cf - . | tar -C "$STORE" --skip-old-files -xf -; }
snapshot
trap finish EXIT
# the loop finishes a snapshot it has begun before it stops: a TERM only sets the flag
( stop=; nap=; trap 'stop=1; kill "$nap" 2> /dev/null' TERM
  while [ -z "$stop" ]; do
      sleep "$TAR_EVERY" > /dev/null 2>&1 & nap=$!
      wait "$nap"
      [ -n "$stop" ] || snapshot
  done ) &
LOOP=$!

if [ -z "${BENCH_SUITE_GIT_COMMIT:-}" ] && [ ! -e "$ROOT/.git" ]; then
    say "no BENCH_SUITE_GIT_COMMIT and no .git: the records will carry no commit (compose the call with --print-call)"
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG"
COMMON=(--task cifar10_random --profile paper --store "$STORE" --data-root "$DATA" --cache-dir "$WORK/cache"
        --device "$DEVICE" "${EXTRA[@]}")
read -r -a LEFT <<< "$(reps)"
if [ "${#LEFT[@]}" -eq 0 ]; then say "plan failed (see above); exit 1"; exit 1; fi
if [ "${#LEFT[@]}" -eq 1 ]; then say "all ${LEFT[0]} repetitions are finished in the store; nothing to run"; exit 0; fi
REP=${LEFT[1]}
say "repetition $REP of 0..$((LEFT[0] - 1)) (unfinished: ${LEFT[*]:1}); store $STORE, seeded from $SEED_STORE"

say "doctor --device $DEVICE, for information only (at most $DOCTOR_SECONDS s) > doctor.txt"
timeout --foreground -k 5 "$DOCTOR_SECONDS" "$PYTHON" -m bench_suite doctor --device "$DEVICE" > "$OUT/doctor.txt" 2>&1
rc=$?
case $rc in
    0) say "doctor: no mismatch";;
    124|137) say "doctor: stopped after $DOCTOR_SECONDS s (information only)";;
    *) say "doctor: exit $rc, a check failed or could not run (information only; see doctor.txt)";;
esac
export BENCH_SUITE_CUDA_GRAPHS=0
if [ "$GRAPHS" = auto ] && grep -q '^\[ok\] CUDA graphs = eager' "$OUT/doctor.txt"; then
    export BENCH_SUITE_CUDA_GRAPHS=1
fi
say "CUDA graphs: $([ "$BENCH_SUITE_CUDA_GRAPHS" = 1 ] && echo on || echo off)"

BUDGET=${BUDGET:-$((SESSION_SECONDS - (SECONDS - START) - TAIL_SECONDS))}
[[ "$BUDGET" =~ ^[0-9]+$ ]] && [ "$BUDGET" -lt 1 ] && BUDGET=1
say "run repetition $REP with --time-budget $BUDGET"
"$PYTHON" -m bench_suite run "${COMMON[@]}" --repetition "$REP" --time-budget "$BUDGET" --quiet 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
read -r -a LEFT <<< "$(reps)"
if [ "${#LEFT[@]}" -ge 1 ] && [[ " ${LEFT[*]:1} " != *" $REP "* ]]; then
    say "repetition $REP is finished; unfinished now: ${LEFT[*]:1}"
    exit 0
elif [ "$rc" = 75 ]; then
    say "stopped by the time budget, checkpointed in $STORE: call again on this warm machine to resume"
    exit 75
fi
say "run ended with exit code $rc and repetition $REP is not finished (see above); exit 1"
exit 1
