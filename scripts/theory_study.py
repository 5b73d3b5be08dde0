#!/usr/bin/env python
"""The theory check's measurements (docs/theory.md), until the runner records them itself.

Three studies, each printing markdown tables (bench_suite.theory.rank_table / threshold_table /
eps_table) and optionally writing one JSON line per cell (``--out``):

    python scripts/theory_study.py rank --profile ci              # rank of J at init, MLI vs LeCun
    python scripts/theory_study.py threshold --profile ci         # final loss against m d/(2n)
    python scripts/theory_study.py eps --width 40 --eps 0.01,0.03,0.1,0.3,1 --seeds 3
    python scripts/theory_study.py tables rows.jsonl              # the tables again, from saved rows

``rank`` trains nothing: it draws each cell's W0 and V0 exactly as the engine does (same seeds,
``model.init_weights``) and runs ``theory.jacobian_stats``. ``threshold`` expands the task's
profile with ``grid.expand`` (the cells ``run`` would train), trains each fused group with
``train_group(..., keep_weights=True)`` and adds, per cell, the Jacobian at init, the KKT
residual at the end and the linearized loss floor. ``eps`` trains ``mli_paired_pgd`` at one
width over a list of radii; with ``--scale-lr`` (the default) the learning rates follow the
radius as lr_w ~ eps^2 and lr_v ~ 1/eps^2 from the task's values at its default eps, which keeps
the tight-eps dynamics the same at every radius (docs/theory.md); ``--fixed-lr`` keeps them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import OrderedDict
from typing import Any

import pandas as pd
import torch

from bench_suite import theory
from bench_suite.grid import Cell, expand
from bench_suite.methods import METHODS
from bench_suite.model import effective_output_weights, init_weights
from bench_suite.tasks import TASKS
from bench_suite.training import CellSpec, train_group

TASK = "width_threshold"


def _csv(kind):
    return lambda text: [kind(t) for t in text.split(",") if t.strip()]


def _load(cell: Cell):
    task = cell.task_cls()
    return task.load(dict(cell.options), data_seed=cell.seeds()["data"], data_root=None, cache_dir=None)


def _jacobian_row(data, width: int, activation: str, method: str, init_seed: int, max_entries: int) -> dict:
    m = METHODS.get(method)
    gen = torch.Generator().manual_seed(init_seed)
    weights = init_weights(width, data.dim, data.num_outputs, m.init, m.output, gen)
    stats = theory.jacobian_stats(data.x_train, weights.w, effective_output_weights(weights.v, m.output), activation,
                                  init=m.init, max_entries=max_entries)
    return {"init": m.init, **stats}


def study_rank(args) -> list[dict]:
    rows = []
    cells = expand(args.task, profile=args.profile, widths=args.widths, activations=args.activations,
                   repetitions=list(range(args.seeds)) if args.seeds else None, methods=["mli_paired_pgd"])
    seen = set()
    for cell in cells:
        data = _load(cell)
        for method in args.methods:
            key = (cell.repetition, cell.width, cell.activation, method)
            if key in seen:
                continue
            seen.add(key)
            row = {"method": method, "activation": cell.activation, "width": cell.width, "repetition": cell.repetition,
                   "n": data.n, "d": data.dim}
            row.update(_jacobian_row(data, cell.width, cell.activation, method, cell.seeds()["init"], args.max_entries))
            rows.append(row)
    return rows


def _train_rows(cells: list[Cell], *, with_floor: bool, max_entries: int, verbose: bool) -> list[dict]:
    groups: OrderedDict[tuple, list[Cell]] = OrderedDict()
    for cell in cells:
        groups.setdefault(cell.group_key(), []).append(cell)
    rows = []
    for group in groups.values():
        data = _load(group[0])
        seeds = group[0].seeds()
        specs = [CellSpec(METHODS.get(c.method), c.width, c.activation, c.train, seeds["init"]) for c in group]
        t0 = time.perf_counter()
        results = train_group(data, specs, order_seed=seeds["order"], keep_weights=True)
        if verbose:
            print(f"# group rep={group[0].repetition}: {len(group)} cells in {time.perf_counter() - t0:.1f}s",
                  file=sys.stderr)
        for cell, result in zip(group, results):
            method = METHODS.get(cell.method)
            row: dict[str, Any] = {
                "method": cell.method, "init": method.init, "activation": cell.activation, "width": cell.width,
                "repetition": cell.repetition, "n": data.n, "d": data.dim, "eps": cell.train.eps,
                "lr_w": cell.train.lr_w, "lr_v": cell.train.lr_v, "epochs": cell.train.epochs,
                "status": result.status, "train_loss": result.final["train_loss"],
                "dist_w0": result.final["dist_w0"], "radius": result.final["radius"],
                "proj_active_frac": result.final["proj_active_frac"],
                "train_time_s": result.timing["train_time_s"],
            }
            extra = result.extra
            v0_eff = effective_output_weights(extra["v0"], method.output)
            row.update(theory.jacobian_stats(data.x_train, extra["w0"], v0_eff, cell.activation, init=method.init,
                                             max_entries=max_entries))
            if result.status == "done":
                kkt = theory.kkt_stats(data.x_train, data.y_train, w=extra["w"], v=extra["v"], w0=extra["w0"],
                                       v0=extra["v0"], activation=cell.activation, output=method.output,
                                       loss=cell.train.loss, radius=result.final["radius"])
                row.update({k: kkt[k] for k in ("kkt_residual", "kkt_residual_w", "kkt_active", "kkt_radial_frac")})
            if with_floor and cell.train.loss == "mse":
                floor = theory.linearized_loss_floor(data.x_train, data.y_train, extra["w0"], extra["v0"],
                                                     activation=cell.activation, output=method.output)
                row["floor"] = floor["floor"]
            rows.append(row)
    return rows


def study_threshold(args) -> list[dict]:
    cells = expand(args.task, profile=args.profile, methods=args.methods_given, widths=args.widths,
                   activations=args.activations, repetitions=list(range(args.seeds)) if args.seeds else None,
                   train=_train_overrides(args))
    return _train_rows(cells, with_floor=True, max_entries=args.max_entries, verbose=True)


def study_eps(args) -> list[dict]:
    task_cls = TASKS.get(args.task)
    base = {**task_cls.train_defaults, **_train_overrides(args)}
    cells = []
    for eps in args.eps:
        train = dict(base, eps=eps)
        if not args.fixed_lr:  # the tight-limit scaling: lr_w ~ eps^2, lr_v ~ 1/eps^2
            ratio = eps / base["eps"]
            train.update(lr_w=base["lr_w"] * ratio**2, lr_v=base["lr_v"] / ratio**2)
        cells += expand(args.task, methods=["mli_paired_pgd"], widths=args.widths or [40],
                        activations=args.activations or ["tanh"], repetitions=list(range(args.seeds or 3)),
                        train=train)
    return _train_rows(cells, with_floor=False, max_entries=args.max_entries, verbose=True)


def _train_overrides(args) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("epochs", "eval_every", "lr_w", "lr_v"):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    return out


def print_tables(study: str, rows: list[dict], memorized_below: float) -> None:
    frame = pd.DataFrame(rows)
    if study == "rank":
        print(theory.rank_table(frame).to_markdown(index=False))
        return
    if study == "threshold":
        print(theory.threshold_table(frame, memorized_below=memorized_below).to_markdown(index=False))
        print()
        detail = frame.groupby(["activation", "width"]).agg(
            rank=("jacobian_rank", "min"), predicted=("jacobian_rank_predicted", "first"),
            kkt_residual=("kkt_residual", "median"), active=("kkt_active", "mean"),
            dist_w0=("dist_w0", "mean"), time_s=("train_time_s", "first")).reset_index()
        print(detail.to_markdown(index=False, floatfmt=".3g"))
        return
    per_eps, slopes = theory.eps_table(frame)
    print(per_eps.to_markdown(index=False))
    print()
    print(slopes.to_markdown(index=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", choices=("rank", "threshold", "eps", "tables"))
    parser.add_argument("rows", nargs="?", help="tables: a JSON-lines file written with --out")
    parser.add_argument("--task", default=TASK)
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--seeds", type=int, default=None, help="repetitions 0..N-1 (default: the profile's)")
    parser.add_argument("--widths", type=_csv(int), default=None)
    parser.add_argument("--activations", type=_csv(str), default=None)
    parser.add_argument("--methods", type=_csv(str), default=None,
                        help="rank: the methods whose init to measure (default mli_paired_pgd,constraint_only); "
                             "threshold: the methods to train (default: the profile's)")
    parser.add_argument("--eps", type=_csv(float), default=[0.01, 0.03, 0.1, 0.3, 1.0])
    parser.add_argument("--fixed-lr", action="store_true", help="eps: keep the learning rates at every radius")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--lr-w", type=float, default=None)
    parser.add_argument("--lr-v", type=float, default=None)
    parser.add_argument("--memorized-below", type=float, default=0.01)
    parser.add_argument("--max-entries", type=int, default=theory.MAX_JACOBIAN_ENTRIES)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="write one JSON line per cell here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.methods_given = args.methods
    if args.study == "tables":
        if not args.rows:
            parser.error("tables needs the JSON-lines file written with --out")
        rows = [json.loads(line) for line in open(args.rows)]
        study = "rank" if "train_loss" not in rows[0] else ("eps" if len({r["eps"] for r in rows}) > 1 else "threshold")
        print_tables(study, rows, args.memorized_below)
        return 0
    if args.study == "rank":
        args.methods = args.methods or ["mli_paired_pgd", "constraint_only"]
    t0 = time.perf_counter()
    rows = {"rank": study_rank, "threshold": study_threshold, "eps": study_eps}[args.study](args)
    print(f"# {args.study}: {len(rows)} cells, {time.perf_counter() - t0:.1f}s, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)", file=sys.stderr)
    if args.out:
        with open(args.out, "w") as fh:
            for row in rows:
                fh.write(json.dumps(row, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v)
                         + "\n")
    print_tables(args.study, rows, args.memorized_below)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
