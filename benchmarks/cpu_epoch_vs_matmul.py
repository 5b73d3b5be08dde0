#!/usr/bin/env python
"""One training epoch of the fused engine against the time of its matrix products alone.

The matrix products of an epoch are the model's (what ``training.step_flops`` counts), at the
same shapes and the same count: per step, the hidden layer's forward ``x_b·Wᵀ`` (B x d by
d x M, M = the group's total width) and weight gradient ``dPreᵀ·x_b`` (M x B by B x d), and per
cell the output layer's forward and its two backward products. They are timed alone, on
preallocated random inputs, with ``torch.mm(..., out=...)``, right after each epoch (inside
``on_epoch``), so both see the same machine load; the epochs are timed between ``on_epoch``
calls (neither the set-up nor the final evaluation counts). The reported ratio is the median
over epochs of epoch / products: the engine's overhead (1.0 would be pure GEMM time). On a
shared machine the fastest epoch and the fastest products (``epoch_s_min``, ``matmul_s_min``)
are the least disturbed: compare variants of the engine by those.

    python benchmarks/cpu_epoch_vs_matmul.py                      # cifar-like: n 5000, d 3072, 4 x m 256
    python benchmarks/cpu_epoch_vs_matmul.py --problem synthetic  # the synthetic ablation's shapes
    python benchmarks/cpu_epoch_vs_matmul.py --engine-file /tmp/old_training.py   # another engine
    python benchmarks/cpu_epoch_vs_matmul.py --momentum 0.9 --gpu-cadence        # CUDA's fold decisions
    python benchmarks/cpu_epoch_vs_matmul.py --ab gpu-cadence     # A/B, alternating in one process

``--engine-file`` loads a ``training.py`` of another commit (``git show REV:bench_suite/train/__init__.py``)
in place of the installed one, for before/after numbers on the same machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# bench_suite is imported inside the functions: asv imports every module of benchmarks/ when it
# discovers the suite, also against older commits of the package

ALL_METHODS = ["mli_paired_pgd", "sgd", "constraint_only", "no_mirroring"]
PROBLEMS = {
    # the cifar10_random `ci` shapes on random tensors (no data needed)
    "cifar": dict(n=5000, d=3072, k=10, widths=[256], activation="relu", batch=128, loss="ce", lr=0.1, eps=1.0,
                  eps_mode="relative", epochs=5),
    # the synthetic_ablation defaults: full-batch gradient descent
    "synthetic": dict(n=1000, d=100, k=1, widths=[20], activation="tanh", batch=None, loss="mse", lr=1.0, eps=1.0,
                      eps_mode="absolute", epochs=60),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--problem", choices=sorted(PROBLEMS), default="cifar")
    p.add_argument("--n", type=int)
    p.add_argument("--d", type=int)
    p.add_argument("--widths", help="comma-separated widths (each with every method)")
    p.add_argument("--methods", default=",".join(ALL_METHODS))
    p.add_argument("--activation")
    p.add_argument("--batch", type=int, help="batch size (0: full batch)")
    p.add_argument("--epochs", type=int, help="epochs per run (>= 3; the first and the last are not timed)")
    p.add_argument("--repeat", type=int, default=2, help="runs; medians over all timed epochs are reported")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: a shared 2-core box)")
    p.add_argument("--unfused", action="store_true", help="train each cell alone (the unfused engine)")
    p.add_argument("--momentum", type=float, help="SGD momentum of every cell (default: the problem's, 0)")
    p.add_argument("--lr", type=float, help="learning rate of both layers (default: the problem's)")
    p.add_argument("--eps", type=float, help="projection radius (default: the problem's)")
    p.add_argument("--eps-mode", choices=["relative", "absolute"], help="radius mode (default: the problem's)")
    p.add_argument("--gpu-cadence", action="store_true",
                   help="decide folds on the device, as on CUDA (no host read of s inside an epoch)")
    p.add_argument("--engine-file", help="an engine module file to load instead of bench_suite.train (e.g. an "
                                         "older commit's training.py)")
    p.add_argument("--ab", default=None, metavar="B",
                   help="also time variant B, alternating with this one run by run in this process (the same "
                        "machine load for both): 'gpu-cadence' or 'engine-file:PATH'")
    p.add_argument("--op-costs", action="store_true",
                   help="instead: time one step and, alone, what the fold decisions add to it (a masked fold, "
                        "the two per-step trackers, a snapshot, the norm of U in float32 and float64)")
    p.add_argument("--json", help="also write the result here")
    return p.parse_args(argv)


def load_engine(path: str | None):
    if path is None:
        import bench_suite.train as engine

        return engine
    # a file of this package (e.g. bench_suite/train/__init__.py) under its own dotted name, so its
    # relative imports resolve; a single-file engine of an older commit as bench_suite's child
    here = Path(__file__).resolve().parent.parent
    rel = Path(path).resolve()
    if rel.is_relative_to(here / "bench_suite"):
        parts = rel.relative_to(here).with_suffix("").parts
        return importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    spec = importlib.util.spec_from_file_location("bench_suite._engine_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def set_gpu_cadence(engine, on: bool) -> None:
    """Fold decisions made on the device, as on CUDA (or back to the CPU's host checks). The
    switch sits in an old single-file engine itself, in bench_suite.train.engine.step (older
    commits) or in bench_suite.train.engine.state."""
    import importlib

    holder = engine
    for name in ("bench_suite.train.engine.state", "bench_suite.train.engine.step"):
        if hasattr(holder, "FOLD_CHECK_STEPS"):
            break
        try:
            holder = importlib.import_module(name)
        except ImportError:
            continue
    if not hasattr(holder, "_cpu_fold_checks"):
        holder._cpu_fold_checks = dict(holder.FOLD_CHECK_STEPS)
    holder.FOLD_CHECK_STEPS = {} if on else dict(holder._cpu_fold_checks)


def problem(args: argparse.Namespace) -> dict[str, Any]:
    cfg = dict(PROBLEMS[args.problem])
    cfg.setdefault("momentum", 0.0)
    for key in ("n", "d", "activation", "epochs", "momentum", "lr", "eps", "eps_mode"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.widths:
        cfg["widths"] = [int(w) for w in args.widths.split(",")]
    if args.batch is not None:
        cfg["batch"] = args.batch or None
    cfg["methods"] = [m for m in args.methods.split(",") if m]
    if cfg["epochs"] < 3:
        raise SystemExit("--epochs must be >= 3 (the first and last epochs are not timed)")
    return cfg


def make_data(cfg: dict[str, Any]):
    from bench_suite.tasks import TaskData

    g = torch.Generator().manual_seed(0)
    x = torch.randn(cfg["n"], cfg["d"], generator=g)
    if cfg["loss"] == "ce":
        return TaskData(x, torch.randint(0, cfg["k"], (cfg["n"],), generator=g), cfg["k"], True, "random")
    return TaskData(x, torch.randn(cfg["n"], cfg["k"], generator=g), cfg["k"], False, "random")


class MatmulEpoch:
    """The model's matrix products of one epoch of a group, alone (same shapes, same count), on
    preallocated random inputs."""

    def __init__(self, cfg: dict[str, Any], cells: list[tuple[str, int]]) -> None:
        from bench_suite.methods import METHODS

        n, d, k = cfg["n"], cfg["d"], cfg["k"]
        batch = n if cfg["batch"] is None else min(cfg["batch"], n)
        rows = [w // 2 if METHODS.get(m).output == "paired" else w for m, w in cells]
        m_total = sum(w for _, w in cells)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, d, generator=g)
        self.w = torch.randn(m_total, d, generator=g)
        self.gw = torch.empty(m_total, d)
        self.sizes = [batch] * (n // batch) + ([n % batch] if n % batch else [])
        self.bufs = {}
        for b in set(self.sizes):
            self.bufs[b] = dict(xb=x[:b].clone(), pre=torch.empty(b, m_total),
                                dpre=torch.randn(b, m_total, generator=g),
                                feats=[torch.randn(b, r, generator=g) for r in rows],
                                dout=torch.randn(b, k, generator=g), out=torch.empty(b, k),
                                dfeat=[torch.empty(b, r) for r in rows])
        self.vs = [torch.randn(r, k, generator=g) for r in rows]
        self.gvs = [torch.empty(r, k) for r in rows]

    def __call__(self) -> float:
        t0 = time.perf_counter()
        for b in self.sizes:
            z = self.bufs[b]
            torch.mm(z["xb"], self.w.T, out=z["pre"])  # hidden layer forward
            torch.mm(z["dpre"].T, z["xb"], out=self.gw)  # its weight gradient
            for f, v, gv, df in zip(z["feats"], self.vs, self.gvs, z["dfeat"]):
                torch.mm(f, v, out=z["out"])  # output layer forward
                torch.mm(f.T, z["dout"], out=gv)  # its weight gradient
                torch.mm(z["dout"], v.T, out=df)  # its input gradient
        return time.perf_counter() - t0


def measure(engine, data, cfg: dict[str, Any], unfused: bool) -> tuple[list[float], list[float]]:
    """Epoch times and matmul-only times, interleaved: after each epoch (in ``on_epoch``) the
    same group's matrix products run alone, and the next epoch is timed from their end. Epoch 1
    (after the set-up) and epoch E (it holds the evaluation) are not counted. For several groups
    (``unfused``) the groups' times are summed per epoch index."""
    from bench_suite.methods import METHODS

    tc = engine.TrainConfig(epochs=cfg["epochs"], batch_size=cfg["batch"], lr_w=cfg["lr"], lr_v=cfg["lr"],
                            loss=cfg["loss"], eps=cfg["eps"], eps_mode=cfg["eps_mode"], eval_every=cfg["epochs"],
                            momentum=cfg["momentum"])
    pairs = [(m, w) for m in cfg["methods"] for w in cfg["widths"]]
    groups = [[p] for p in pairs] if unfused else [pairs]
    epochs = [0.0] * (cfg["epochs"] - 2)
    mms = [0.0] * (cfg["epochs"] - 2)
    for group in groups:
        matmuls = MatmulEpoch(cfg, group)
        matmuls()  # warm-up: allocations, MKL's first calls
        marks: list[tuple[float, float, float]] = []  # (end of epoch e, its matmuls' time, their end)

        def on_epoch(e: int, total: int, marks=marks, matmuls=matmuls) -> None:
            t_end = time.perf_counter()
            mm = matmuls() if e < total else 0.0
            marks.append((t_end, mm, time.perf_counter()))

        cells = [engine.CellSpec(METHODS.get(m), w, cfg["activation"], tc, 1) for m, w in group]
        engine.train_group(data, cells, order_seed=0, on_epoch=on_epoch)
        for i in range(1, cfg["epochs"] - 1):  # epoch i + 1: from the end of the matmuls after epoch i
            epochs[i - 1] += marks[i][0] - marks[i - 1][2]
            mms[i - 1] += marks[i][1]
    return epochs, mms


def op_costs(cfg: dict[str, Any], data, rounds: int = 30) -> dict[str, float]:
    """Seconds (fastest of ``rounds``) of one engine step and of each piece the device-side
    fold decision adds, on this problem's fused group (the current engine only)."""
    from bench_suite.methods import METHODS
    from bench_suite.train import CellSpec, TrainConfig
    from bench_suite.train.engine.step import _FusedEngine

    tc = TrainConfig(epochs=1, batch_size=cfg["batch"], lr_w=cfg["lr"], lr_v=cfg["lr"], loss=cfg["loss"],
                     eps=cfg["eps"], eps_mode=cfg["eps_mode"], momentum=cfg["momentum"])
    cells = [CellSpec(METHODS.get(m), w, cfg["activation"], tc, 1) for m in cfg["methods"] for w in cfg["widths"]]
    batch = cfg["n"] if cfg["batch"] is None else min(cfg["batch"], cfg["n"])
    with torch.no_grad():
        eng = _FusedEngine(data, cells, batch=batch, device=torch.device("cpu"), norm_tracking="auto")
        idx = torch.arange(batch)
        eng.step(idx)

        def fastest(fn) -> float:
            best = math.inf
            for _ in range(rounds):
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
            return best

        def trackers():
            torch.minimum(eng.smin, eng.s, out=eng.smin)
            torch.minimum(eng.rho_min, eng.s, out=eng.rho_min)

        out = {"step": fastest(lambda: eng.step(idx)), "masked_fold": fastest(eng.fold_small),
               "trackers": fastest(trackers), "snapshot": fastest(eng.snapshot),
               "norm_fp32": fastest(lambda: torch.linalg.vector_norm(eng.U, dim=1)),
               "norm_fp64": fastest(lambda: torch.linalg.vector_norm(eng.U, dim=1, dtype=torch.float64))}
    out["tracking"] = eng.tracking
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = problem(args)
    if args.op_costs:
        costs = op_costs(cfg, make_data(cfg))
        step = costs["step"]
        print(f"{args.problem}: one step of the fused group ({costs['tracking']} tracking) {step * 1e3:.3f} ms; "
              f"alone (fastest of 30):")
        for key in ("masked_fold", "trackers", "snapshot", "norm_fp32", "norm_fp64"):
            print(f"  {key:12s} {costs[key] * 1e3:9.3f} ms  ({100 * costs[key] / step:.2f} % of a step)")
        result = {"problem": args.problem, "op_costs_s": costs, "threads": args.threads,
                  "cpu": platform.processor() or platform.machine(), "torch": torch.__version__}
        print(json.dumps(result))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        return result
    from bench_suite.methods import METHODS

    engine = load_engine(args.engine_file)
    if args.gpu_cadence:
        set_gpu_cadence(engine, True)
    data = make_data(cfg)
    epochs, mms = [], []
    ab = None
    if args.ab:
        b_engine = engine
        if args.ab.startswith("engine-file:"):
            b_engine = load_engine(args.ab.split(":", 1)[1])
        elif args.ab != "gpu-cadence":
            raise SystemExit(f"--ab: expected gpu-cadence or engine-file:PATH, got {args.ab!r}")
        ab = {"variant": args.ab, "a_epochs": [], "b_epochs": [], "a_matmuls": [], "b_matmuls": []}
    for _ in range(args.repeat):
        e, m = measure(engine, data, cfg, args.unfused)
        epochs += e
        mms += m
        if ab is not None:
            ab["a_epochs"] += e
            ab["a_matmuls"] += m
            if args.ab == "gpu-cadence":
                set_gpu_cadence(engine, True)
            e, m = measure(b_engine, data, cfg, args.unfused)
            if args.ab == "gpu-cadence":
                set_gpu_cadence(engine, args.gpu_cadence)
            ab["b_epochs"] += e
            ab["b_matmuls"] += m
    ratios = [e / m for e, m in zip(epochs, mms)]
    epoch_s, mm_s, ratio = statistics.median(epochs), statistics.median(mms), statistics.median(ratios)
    batch = cfg["n"] if cfg["batch"] is None else cfg["batch"]
    flops = sum(engine.step_flops(batch, cfg["d"], w, cfg["k"], METHODS.get(m).output)
                for m in cfg["methods"] for w in cfg["widths"]) * math.ceil(cfg["n"] / batch)
    result = {
        "problem": args.problem, "n": cfg["n"], "d": cfg["d"], "k": cfg["k"], "widths": cfg["widths"],
        "methods": cfg["methods"], "activation": cfg["activation"], "batch": cfg["batch"], "unfused": args.unfused,
        "engine": args.engine_file or "bench_suite.train", "threads": args.threads, "repeat": args.repeat,
        "momentum": cfg["momentum"], "lr": cfg["lr"], "eps": cfg["eps"], "eps_mode": cfg["eps_mode"],
        "gpu_cadence": args.gpu_cadence,
        "epochs_timed": len(epochs), "epoch_s": round(epoch_s, 5), "matmul_s": round(mm_s, 5),
        "ratio": round(ratio, 3), "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
        "epoch_gflops_per_s": round(flops / epoch_s / 1e9, 2), "matmul_gflops_per_s": round(flops / mm_s / 1e9, 2),
        # on a shared machine the fastest epoch is the least disturbed one: compare variants by these
        "epoch_s_min": round(min(epochs), 5), "matmul_s_min": round(min(mms), 5),
        "ratio_of_mins": round(min(epochs) / min(mms), 3),
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
    }
    print(f"{args.problem}: n={cfg['n']} d={cfg['d']} widths={cfg['widths']} x {len(cfg['methods'])} methods, "
          f"batch={cfg['batch'] or 'full'}, momentum={cfg['momentum']:g}, eps={cfg['eps']:g} {cfg['eps_mode']}, "
          f"{'device-side folds, ' if args.gpu_cadence else ''}"
          f"{args.threads} thread(s), {'unfused' if args.unfused else 'fused'}, "
          f"{len(epochs)} epochs timed (medians)")
    print(f"  epoch        {epoch_s * 1e3:10.2f} ms   ({result['epoch_gflops_per_s']} GFLOP/s of model FLOPs)")
    print(f"  matmuls only {mm_s * 1e3:10.2f} ms   ({result['matmul_gflops_per_s']} GFLOP/s)")
    print(f"  ratio        {ratio:10.3f}   (per epoch: {result['ratio_min']} .. {result['ratio_max']})")
    print(f"  fastest      {min(epochs) * 1e3:10.2f} ms epoch, {min(mms) * 1e3:.2f} ms matmuls "
          f"(ratio of the two: {result['ratio_of_mins']})")
    if ab is not None:
        a, b = ab["a_epochs"], ab["b_epochs"]
        ab.update({"a_epoch_s_min": round(min(a), 5), "b_epoch_s_min": round(min(b), 5),
                   "b_over_a_min": round(min(b) / min(a), 4),
                   "b_over_a_median": round(statistics.median(b) / statistics.median(a), 4),
                   "a_ratio": round(statistics.median(x / y for x, y in zip(a, ab["a_matmuls"])), 3),
                   "b_ratio": round(statistics.median(x / y for x, y in zip(b, ab["b_matmuls"])), 3)})
        for key in ("a_epochs", "b_epochs", "a_matmuls", "b_matmuls"):
            ab[key] = [round(x, 5) for x in ab[key]]
        result["ab"] = ab
        print(f"  A/B ({args.ab}): fastest epoch {min(a) * 1e3:.2f} ms -> {min(b) * 1e3:.2f} ms "
              f"(B/A {ab['b_over_a_min']}; medians {ab['b_over_a_median']}); epoch/matmuls "
              f"{ab['a_ratio']} -> {ab['b_ratio']}")
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
