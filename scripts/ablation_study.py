#!/usr/bin/env python
"""Where does the paper's synthetic-ablation ordering hold?

The claim (slides, "Ablation studies on synthetic data"): for a narrow net, the final training
loss of ``mli_paired_pgd`` (mirrored LeCun init + paired output + projected GD) is lower than
that of ``sgd`` (unconstrained GD), ``constraint_only`` and ``no_mirroring``.

This script trains the four methods of the ``synthetic_ablation`` task over a named sweep of
settings (eps, learning rates, steps, activation, width ratio m*d/2n, ...) and prints markdown
tables: the final training loss of each method as mean +- sd over seeds, and how many seeds
show the claimed ordering. Every number in docs/ablation.md comes from this script::

    python scripts/ablation_study.py --sweep eps --seeds 3
    python scripts/ablation_study.py --list

Cells that share the data (n, d, repetition) and the schedule (steps, eval_every) are trained
in one fused ``train_group`` call. Unconstrained ``sgd`` ignores eps, so its cells are
deduplicated across eps values (same numbers, trained once).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd
import torch

from bench_suite.methods import METHODS
from bench_suite.seeds import seeds_for
from bench_suite.tasks import TASKS
from bench_suite.training import CellSpec, TrainConfig, train_group

TASK = "synthetic_ablation"
METHOD_NAMES = ["mli_paired_pgd", "sgd", "constraint_only", "no_mirroring"]
OURS, OTHERS = METHOD_NAMES[0], METHOD_NAMES[1:]


@dataclass(frozen=True)
class Setting:
    """One row of a table: data shape, width, activation and training overrides."""

    label: tuple  # ((column, value), ...) shown in the table
    n: int
    d: int
    width: int
    activation: str
    train: tuple  # ((TrainConfig field, value), ...) on top of the task's train_defaults
    methods: tuple = tuple(METHOD_NAMES)

    def config(self, base: dict[str, Any]) -> TrainConfig:
        return TrainConfig(**{**base, **dict(self.train)})


def setting(label: dict, *, n: int = 1000, d: int = 100, width: int = 20, activation: str = "tanh",
            methods=tuple(METHOD_NAMES), **train: Any) -> Setting:
    return Setting(tuple(label.items()), n, d, width, activation, tuple(sorted(train.items())), tuple(methods))


# ------------------------------------------------------------------------------------------
# The study's base setting and sweeps. Learning rates are per the engine's loss (mean over
# samples of the squared error); scaling that loss by c is the same as scaling both lrs by c.
# ------------------------------------------------------------------------------------------
BASE = {"n": 1000, "d": 100, "width": 20, "activation": "tanh"}
# every TrainConfig field is pinned here, so the study does not move when the task defaults do
BASE_TRAIN = {"batch_size": None, "loss": "mse", "momentum": 0.0, "precision": "fp32", "epochs": 2000,
              "eval_every": 200, "lr_w": 0.1, "lr_v": 0.1, "eps": 1.0, "eps_mode": "absolute"}


def _with(**over: Any) -> dict[str, Any]:
    out = {**BASE, **BASE_TRAIN}
    out.update(over)
    return out


def _mk(label: dict, **kw: Any) -> Setting:
    return setting(label, **_with(**kw))


def sweep_naive() -> list[Setting]:
    """The reported naive setting: lr 1.0 for W and V, eps 1 and 5 (absolute), tanh, m=20, 5000 steps."""
    return [_mk({"lr": 1.0, "eps": eps}, lr_w=1.0, lr_v=1.0, eps=eps, epochs=5000, eval_every=500)
            for eps in (1.0, 5.0)]


def sweep_lr() -> list[Setting]:
    """Joint learning rate lr_w = lr_v (= loss scaling), tanh, m=20, eps=1 (absolute), 2000 steps."""
    return [_mk({"lr": lr}, lr_w=lr, lr_v=lr) for lr in (0.01, 0.1, 0.5, 1.0)]


def sweep_lr_wv() -> list[Setting]:
    """lr_w and lr_v separately, tanh, m=20, eps=1 (absolute), 2000 steps."""
    return [_mk({"lr_w": lw, "lr_v": lv}, lr_w=lw, lr_v=lv) for lw in (0.01, 0.1) for lv in (0.1, 1.0, 10.0)]


def sweep_eps() -> list[Setting]:
    """Constraint radius eps (absolute; ||W0||_F ~ sqrt(m) = 4.47 at m=20), tanh, m=20, lr 0.1, 2000 steps."""
    return [_mk({"eps": eps, "eps/‖W0‖": round(eps / math.sqrt(20), 3)}, eps=eps)
            for eps in (0.1, 0.3, 1.0, 3.0, 10.0)]


def sweep_steps() -> list[Setting]:
    """GD steps 500..10000 (one 10000-step run), tanh, m=20, eps 1, (lr_w, lr_v) = (0.1, 0.1), (0.01, 0.1)."""
    return [_mk({"lr_w": lw, "lr_v": lv}, lr_w=lw, lr_v=lv, epochs=10000, eval_every=250)
            for lw, lv in ((0.1, 0.1), (0.01, 0.1))]


def sweep_activation() -> list[Setting]:
    """tanh / relu / softplus at m=20, eps 1, joint lr 0.01 and 0.1, 2000 steps."""
    return [_mk({"activation": a, "lr": lr}, activation=a, lr_w=lr, lr_v=lr)
            for a in ("tanh", "relu", "softplus") for lr in (0.01, 0.1)]


def sweep_softplus() -> list[Setting]:
    """softplus at the in-between joint lrs 0.03 / 0.05, m=20, eps 1, 1000..5000 steps (one 5000-step run)."""
    return [_mk({"lr": lr}, activation="softplus", lr_w=lr, lr_v=lr, epochs=5000, eval_every=250)
            for lr in (0.03, 0.05)]


def sweep_width() -> list[Setting]:
    """Width ratio m*d/2n at n=1000, d=100: m in {10, 20, 40, 80}, eps = 0.25 sqrt(m) (~0.25 ||W0||_F), lr 0.1."""
    return [_mk({"m": m, "md/2n": m * 100 / 2000, "eps": round(0.25 * math.sqrt(m), 3)},
                width=m, eps=0.25 * math.sqrt(m)) for m in (10, 20, 40, 80)]


def sweep_wide_d() -> list[Setting]:
    """m >= 2n/d with m << n: n=1000, d=500 (2n/d = 4), m in {4, 8, 16}, eps = 0.25 sqrt(m), lr 0.1."""
    return [_mk({"d": 500, "m": m, "md/2n": m * 500 / 2000, "eps": round(0.25 * math.sqrt(m), 3)},
                d=500, width=m, eps=0.25 * math.sqrt(m)) for m in (4, 8, 16)]


def sweep_smoke() -> list[Setting]:
    """A tiny sweep for tests: n=64, d=16, m=8, 50 steps."""
    return [_mk({"eps": eps}, n=64, d=16, width=8, epochs=50, eval_every=25, eps=eps) for eps in (0.5, 1.0)]


# sweeps whose table reports the loss after each of these numbers of steps, read off the
# evaluation curve of one long run (GD with a constant lr: the first T steps of a long run
# are a T-step run)
AT_STEPS: dict[str, tuple[int, ...]] = {"steps": (500, 1000, 2000, 5000, 10000), "softplus": (1000, 2000, 5000)}

# label columns a sweep's "best per method" table minimizes over (each method at its own best value)
TUNE_OVER: dict[str, tuple[str, ...]] = {
    "smoke": ("eps",),
    "lr": ("lr",),
    "lr_wv": ("lr_w", "lr_v"),
    "activation": ("lr",),
}

SWEEPS: dict[str, Callable[[], list[Setting]]] = {
    "naive": sweep_naive,
    "lr": sweep_lr,
    "lr_wv": sweep_lr_wv,
    "eps": sweep_eps,
    "steps": sweep_steps,
    "activation": sweep_activation,
    "softplus": sweep_softplus,
    "width": sweep_width,
    "wide_d": sweep_wide_d,
    "smoke": sweep_smoke,
}


# ------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    setting: Setting
    method: str
    rep: int
    status: str
    train_loss: float
    dist_w0: float | None
    radius: float | None
    extra: dict = field(default_factory=dict)


def _cell_key(s: Setting, method: str, cfg: TrainConfig) -> tuple:
    """Cells with equal keys compute the same numbers (unconstrained methods ignore eps)."""
    if not METHODS.get(method).constrained:
        cfg = cfg.updated(eps=1.0, eps_mode="absolute")
    return (method, s.width, s.activation, cfg)


def run_settings(settings: list[Setting], seeds: int, *, device: str = "cpu", verbose: bool = True) -> list[Outcome]:
    task = TASKS.get(TASK)()
    base = dict(task.train_defaults)
    groups: dict[tuple, list[Setting]] = {}
    for s in settings:
        cfg = s.config(base)
        groups.setdefault((s.n, s.d, cfg.schedule_key()), []).append(s)
    outcomes: list[Outcome] = []
    for (n, d, _sched), group in groups.items():
        for rep in range(seeds):
            sd = seeds_for(TASK, rep)
            data = task.load({**task.options, "n": n, "d": d}, data_seed=sd["data"])
            cells: list[CellSpec] = []
            index: dict[tuple, int] = {}
            wanted: list[tuple[Setting, str, int]] = []
            for s in group:
                cfg = s.config(base)
                for m in s.methods:
                    key = _cell_key(s, m, cfg)
                    if key not in index:
                        index[key] = len(cells)
                        cells.append(CellSpec(METHODS.get(m), s.width, s.activation, cfg, sd["init"]))
                    wanted.append((s, m, index[key]))
            t0 = time.perf_counter()
            results = train_group(data, cells, order_seed=sd["order"], device=device)
            if verbose:
                print(f"  [n={n} d={d} rep={rep}: {len(cells)} fused cells, "
                      f"{cells[0].config.epochs} steps, {time.perf_counter() - t0:.1f}s]", file=sys.stderr)
            for s, m, i in wanted:
                r = results[i]
                loss = r.final["train_loss"] if r.status == "done" else math.nan
                outcomes.append(Outcome(s, m, rep, r.status, loss, r.final.get("dist_w0"), r.final.get("radius"),
                                        {"proj_active_frac": r.final.get("proj_active_frac"),
                                         "curve": list(zip(r.curves["eval_epoch"], r.curves["eval_train_loss"])),
                                         "dist_curve": list(zip(r.curves["eval_epoch"], r.curves["dist_w0"])),
                                         "proj_curve": list(zip(r.curves["eval_epoch"],
                                                                r.curves["proj_active_frac"]))}))
    return outcomes


# ------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------
def expand_steps(outcomes: list[Outcome], at_steps: tuple[int, ...]) -> list[Outcome]:
    """One outcome per (outcome, T): the exact training loss after T steps (an evaluation
    point of the curve); a cell that diverged before T is reported as diverged."""
    out = []
    settings = list(dict.fromkeys(o.setting for o in outcomes))
    for o, T in sorted(((o, T) for o in outcomes for T in at_steps),
                       key=lambda t: (settings.index(t[0].setting), t[1])):
        curve = dict(o.extra["curve"])
        if T not in curve and o.status == "done":
            raise ValueError(f"step {T} is not an evaluation point of {o.setting.label}")
        loss = curve.get(T, math.nan)
        status = "done" if math.isfinite(loss) else "diverged"
        s = o.setting
        label = s.label + (("steps", T),)
        out.append(Outcome(Setting(label, s.n, s.d, s.width, s.activation, s.train, s.methods), o.method,
                           o.rep, status, loss, dict(o.extra["dist_curve"]).get(T), o.radius,
                           {"proj_active_frac": dict(o.extra["proj_curve"]).get(T)}))
    return out


def _fmt(values: list[float], statuses: list[str]) -> str:
    ok = [v for v, st in zip(values, statuses) if st == "done" and math.isfinite(v)]
    div = len(values) - len(ok)
    if not ok:
        return f"diverged ({div}/{len(values)})"
    mean = sum(ok) / len(ok)
    sd = (sum((v - mean) ** 2 for v in ok) / (len(ok) - 1)) ** 0.5 if len(ok) > 1 else 0.0
    out = f"{mean:.3g} ± {sd:.2g}"
    return out + (f" ({div} div)" if div else "")


def to_frame(outcomes: list[Outcome]) -> pd.DataFrame:
    rows = []
    for o in outcomes:
        rows.append({**dict(o.setting.label), "setting": o.setting, "method": o.method, "rep": o.rep,
                     "status": o.status, "train_loss": o.train_loss, "dist_w0": o.dist_w0, "radius": o.radius,
                     **o.extra})
    return pd.DataFrame(rows)


def _per_rep_losses(df: pd.DataFrame, s: Setting) -> dict[str, dict[int, float]]:
    """method -> rep -> final train loss, with a diverged cell as +inf."""
    out: dict[str, dict[int, float]] = {}
    sub = df[df["setting"] == s]
    for m, rep, loss, st in zip(sub["method"], sub["rep"], sub["train_loss"], sub["status"]):
        out.setdefault(m, {})[rep] = loss if st == "done" and math.isfinite(loss) else math.inf
    return out


def _fmt_losses(values: list[float]) -> str:
    return _fmt([v if math.isfinite(v) else math.nan for v in values],
                ["done" if math.isfinite(v) else "diverged" for v in values])


def _ordering_columns(losses: dict[str, dict[int, float]]) -> dict[str, str]:
    """In how many seeds mli_paired_pgd beats all three others, and each one separately."""
    if OURS not in losses or len(losses) < 2:
        return {}
    others = [m for m in METHOD_NAMES if m in losses and m != OURS]
    reps = sorted(losses[OURS])
    wins = sum(all(losses[OURS][r] < losses[m][r] for m in others) for r in reps)
    beats = [sum(losses[OURS][r] < losses[m][r] for r in reps) for m in others]
    return {"ordering holds": f"{wins}/{len(reps)}",
            "ours < (sgd, c_only, no_mirr)": ", ".join(map(str, beats))}


def summary_table(outcomes: list[Outcome]) -> pd.DataFrame:
    """One row per setting: each method's final train loss (mean ± sd over seeds, diverged
    seeds excluded and counted), and in how many seeds mli_paired_pgd has the lowest loss of
    the four (a diverged cell counts as infinitely bad)."""
    df = to_frame(outcomes)
    rows = []
    for s in dict.fromkeys(o.setting for o in outcomes):
        losses = _per_rep_losses(df, s)
        row: dict[str, Any] = dict(s.label)
        for m in s.methods:
            row[m] = _fmt_losses([losses[m][r] for r in sorted(losses[m])])
        row.update(_ordering_columns(losses))
        rows.append(row)
    return pd.DataFrame(rows)


def best_table(outcomes: list[Outcome], tune_over: tuple[str, ...]) -> pd.DataFrame:
    """Each method at its own best value of ``tune_over`` (per seed, the lowest final train
    loss over the sweep's values), grouped by the other label columns. [x] is the value most
    often chosen."""
    df = to_frame(outcomes)
    groups: dict[tuple, list[Setting]] = {}
    for s in dict.fromkeys(o.setting for o in outcomes):
        rest = tuple((k, v) for k, v in s.label if k not in tune_over)
        groups.setdefault(rest, []).append(s)
    rows = []
    for rest, settings in groups.items():
        per = [(s, _per_rep_losses(df, s)) for s in settings]
        best: dict[str, dict[int, float]] = {}
        row: dict[str, Any] = dict(rest) if rest else {"tuned over": ", ".join(tune_over)}
        for m in settings[0].methods:
            reps = sorted(per[0][1][m])
            choice = {}
            for r in reps:
                s_best, l_best = min(((s, ls[m][r]) for s, ls in per), key=lambda t: t[1])
                best.setdefault(m, {})[r] = l_best
                tag = ",".join(f"{v}" for k, v in s_best.label if k in tune_over)
                choice[tag] = choice.get(tag, 0) + 1
            mode = max(choice, key=choice.get)
            row[m] = f"{_fmt_losses([best[m][r] for r in reps])} [{mode}]"
        row.update(_ordering_columns(best))
        rows.append(row)
    return pd.DataFrame(rows)


def detail_table(outcomes: list[Outcome]) -> pd.DataFrame:
    """One row per setting and constrained method: ||W - W0||_F / radius at the end (mean) and
    the fraction of steps where the projection was active (mean)."""
    df = to_frame(outcomes)
    rows = []
    for s in dict.fromkeys(o.setting for o in outcomes):
        for m in s.methods:
            sub = df[(df["setting"] == s) & (df["method"] == m) & (df["status"] == "done")]
            if sub.empty:
                continue
            row = {**dict(s.label), "method": m, "‖W−W0‖_F": sub["dist_w0"].mean()}
            if METHODS.get(m).constrained:
                row["radius"] = sub["radius"].mean()
                row["proj. active (frac. of steps)"] = sub["proj_active_frac"].mean()
            rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sweep", action="append", choices=sorted(SWEEPS), help="sweep(s) to run (repeatable)")
    p.add_argument("--seeds", type=int, default=3, help="repetitions (seeds 0..k-1), default 3")
    p.add_argument("--steps", type=int, default=None, help="override the number of GD steps of every setting")
    p.add_argument("--detail", action="store_true", help="also print ||W-W0||_F, radius and projection activity")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--list", action="store_true", help="list the sweeps and exit")
    args = p.parse_args(argv)
    if args.list or not args.sweep:
        for name, fn in SWEEPS.items():
            print(f"{name:12s} {fn.__doc__.strip().splitlines()[0]}")
        return 0
    torch.set_num_threads(args.threads)
    print(f"<!-- torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}, "
          f"{torch.get_num_threads()} thread(s), device {args.device}, seeds {args.seeds} -->")
    for name in args.sweep:
        settings = SWEEPS[name]()
        if args.steps is not None:
            settings = [Setting(s.label, s.n, s.d, s.width, s.activation,
                                tuple(sorted({**dict(s.train), "epochs": args.steps,
                                              "eval_every": args.steps}.items())), s.methods) for s in settings]
        t0 = time.perf_counter()
        outcomes = run_settings(settings, args.seeds, device=args.device)
        if name in AT_STEPS and args.steps is None:
            outcomes = expand_steps(outcomes, AT_STEPS[name])
        doc = SWEEPS[name].__doc__.strip().splitlines()[0]
        print(f"\n### sweep `{name}`: {doc}\n")
        print(f"Final training loss (mean ± sd over {args.seeds} seeds); "
              f"loss of the zero predictor ≈ Var(y) ≈ 1.\n")
        print(summary_table(outcomes).to_markdown(index=False))
        if name in TUNE_OVER:
            keys = TUNE_OVER[name]
            print(f"\nEach method at its own best {' / '.join(keys)} (per seed, lowest final loss over the values "
                  f"above; [value] = the most frequent choice):\n")
            print(best_table(outcomes, keys).to_markdown(index=False))
        if args.detail:
            print()
            print(detail_table(outcomes).to_markdown(index=False, floatfmt=".3g"))
        print(f"\n<!-- sweep {name}: {time.perf_counter() - t0:.0f}s -->")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
