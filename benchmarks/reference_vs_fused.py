#!/usr/bin/env python
"""The reference trainer against the fused engine, per step, at the shapes of the ci profiles.

For each problem (random tensors with the shapes of a task's ``ci`` profile, no data needed) one
cell of ``mli_paired_pgd`` (the method both trainers run) is trained for a few epochs by the
fused engine (a group of one), the four paper methods at that shape by the fused engine as one
group (what the ci profiles fuse; its time divided by 4), and the one cell by the reference
trainer (the same method with ``trainer_choice="reference"``); milliseconds per optimizer step
are reported, with the ratios.
Set-up and the final evaluation are in both times (as in a run); the epochs are few, so the
numbers are per-step rates, not whole-run times. Each is the fastest of ``--repeats`` runs (a
shared machine disturbs the others). One torch thread unless ``--threads`` says more.

    python benchmarks/reference_vs_fused.py              # all problems; a markdown table on stdout
    python benchmarks/reference_vs_fused.py --problem synthetic --repeats 1
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# (n, d, k, width, activation, batch, loss, eps, eps_mode, epochs timed, lr, momentum): the ci shapes
PROBLEMS = {
    "synthetic_ablation ci": dict(n=1000, d=100, k=1, width=20, activation="tanh", batch=None, loss="mse", eps=1.0,
                                  eps_mode="absolute", epochs=200, lr=0.1, momentum=0.0),
    "width_threshold ci (m = 40)": dict(n=200, d=20, k=1, width=40, activation="tanh", batch=None, loss="mse",
                                        eps=0.1, eps_mode="absolute", epochs=500, lr=3e-5, momentum=0.0),
    "cifar10_random ci": dict(n=5000, d=3072, k=10, width=256, activation="relu", batch=128, loss="ce", eps=1.0,
                              eps_mode="relative", epochs=1, lr=0.01, momentum=0.9),
    "cifar10 ci (m = 64)": dict(n=10000, d=3072, k=10, width=64, activation="relu", batch=128, loss="ce", eps=1.0,
                                eps_mode="relative", epochs=1, lr=0.01, momentum=0.9),
}


PAPER_METHODS = ("mli_paired_pgd", "sgd", "constraint_only", "no_mirroring")  # what the ci profiles fuse


def _data(p: dict):
    from bench_suite.tasks import TaskData

    g = torch.Generator().manual_seed(0)
    x = torch.randn(p["n"], p["d"], generator=g)
    if p["loss"] == "ce":
        return TaskData(x, torch.randint(0, p["k"], (p["n"],), generator=g), p["k"], True, "random")
    return TaskData(x, torch.randn(p["n"], p["k"], generator=g), p["k"], False, "random")


def measure(p: dict, repeats: int) -> dict:
    from dataclasses import replace

    from bench_suite.methods import METHODS
    from bench_suite.train import CellSpec, TrainConfig, train_group
    from bench_suite.train.reference import train_reference

    data = _data(p)
    cfg = TrainConfig(epochs=p["epochs"], batch_size=p["batch"], lr_w=p["lr"], lr_v=p["lr"], momentum=p["momentum"],
                      loss=p["loss"], eps=p["eps"], eps_mode=p["eps_mode"], eval_every=p["epochs"])
    method = METHODS.get("mli_paired_pgd")
    cell = CellSpec(method, p["width"], p["activation"], cfg, 1)
    ref_cell = CellSpec(replace(method, name="mli_paired_pgd_reference", trainer_choice="reference"), p["width"],
                        p["activation"], cfg, 1)
    group = [CellSpec(METHODS.get(m), p["width"], p["activation"], cfg, 1) for m in PAPER_METHODS]
    steps = p["epochs"] * math.ceil(p["n"] / (p["batch"] or p["n"]))
    times = {"fused": [], "group": [], "reference": []}
    losses = {}
    for _ in range(repeats):
        t = time.perf_counter()
        (res,) = train_group(data, [cell], order_seed=0)
        times["fused"].append(time.perf_counter() - t)
        losses["fused"] = res.final["train_loss"]
        t = time.perf_counter()
        train_group(data, group, order_seed=0)
        times["group"].append((time.perf_counter() - t) / len(group))
        t = time.perf_counter()
        res = train_reference(data, ref_cell, order_seed=0)
        times["reference"].append(time.perf_counter() - t)
        losses["reference"] = res.final["train_loss"]
    fused, grouped, ref = (min(times[k]) / steps for k in ("fused", "group", "reference"))
    return {"steps": steps, "fused_ms": 1e3 * fused, "group_ms": 1e3 * grouped, "reference_ms": 1e3 * ref,
            "ratio": ref / fused, "group_ratio": ref / grouped, "losses": losses}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problem", choices=["all", *PROBLEMS], default="all")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply n and the epochs by this (tests: 0.05)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    print(f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), "
          f"fastest of {args.repeats}")
    print("| problem | steps timed | fused engine, one cell: ms/step | fused group of the 4 paper methods: ms/step "
          "per cell | reference trainer: ms/step | reference / fused (one cell) | reference / fused (per cell of the "
          "group) |")
    print("|---|---|---|---|---|---|---|")
    for name, p in PROBLEMS.items():
        if args.problem not in ("all", name):
            continue
        p = dict(p)
        if args.scale != 1.0:
            p["n"] = max(16, int(p["n"] * args.scale))
            p["epochs"] = max(1, int(p["epochs"] * args.scale))
        r = measure(p, args.repeats)
        rows.append({"problem": name, **r})
        print(f"| {name} | {r['steps']} | {r['fused_ms']:.3g} | {r['group_ms']:.3g} | {r['reference_ms']:.3g} | "
              f"{r['ratio']:.2g} | {r['group_ratio']:.2g} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
