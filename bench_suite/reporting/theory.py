"""The theory sections (docs/theory.md): the paper's two theorems as measured.

- ``jacobian_rank`` (every task whose cells computed J at init): the rank of J = ∂f(X)/∂W at
  init against m·d/(2n), with the predicted law min(nK, md/2) under MLI (min(nK, md) under
  LeCun init) drawn as lines; the smallest singular value;
- ``threshold`` (tasks that ask for it): the final loss against m·d/(2n) per method at the
  task's default radius, with the linearized floor;
- ``eps`` (tasks that ask for it): the final loss and KKT residual of ``mli_paired_pgd`` against
  ε, with the fitted log-log slope and a slope-2 guide.

Each is a table (``theory.rank_table``, ``threshold_table``, ``eps_table``) and a figure. Plain
pandas and matplotlib, no torch.
"""

from __future__ import annotations

import math

import pandas as pd

from .. import theory
from ..methods import METHODS
from . import figures, fmt
from .sections import ALL, Figure, SectionInput, Table, Text, register_section

MEMORIZED_BELOW = 0.01  # the threshold rows' "memorized" (baselines/theory.toml)
EPS_METHOD = "mli_paired_pgd"
NUM_COLS = ["width", "n", "d", "k", "jacobian_rank", "jacobian_rank_predicted", "jacobian_sigma_min",
            "jacobian_sigma_max", "train_loss", "eps", "kkt_residual", "loss_floor", "width_ratio", "epochs"]
_RANK_COLORS = {("mirrored_lecun", "tanh"): "#d62728", ("mirrored_lecun", "relu"): "#ff7f0e",
                ("lecun", "tanh"): "#1f77b4", ("lecun", "relu"): "#17becf"}
# rank J / n against x = m·d/(2n): min(K, x) under MLI (rank min(nK, md/2)), min(K, 2x) under LeCun (min(nK, md))
_LAW = {"mirrored_lecun": ("MLI: min(nK, md/2)", 1.0), "lecun": ("LeCun: min(nK, md)", 2.0)}


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["init"] = [METHODS.get(m).init if m in METHODS else None for m in out["method"]]
    for col in NUM_COLS:
        if col in out.columns:
            out[col] = pd.to_numeric(out[col], errors="coerce")
    return out


def _usable(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"].isin(["done", "diverged"])] if len(df) else df


def _table(frame: pd.DataFrame, caption: str = "") -> Table:
    return Table(frame.astype(str), caption=caption)


# --------------------------------------------------------------------------------------------
# the rank of J at init
# --------------------------------------------------------------------------------------------
def rank_law(init: str, ratio: float, outputs: int = 1) -> float | None:
    """The predicted rank of J at init over n, at x = m·d/(2n): min(K, x) under MLI (rank
    min(nK, md/2)), min(K, 2x) under LeCun init (min(nK, md)); None for another init."""
    if init not in _LAW:
        return None
    return min(float(outputs), _LAW[init][1] * ratio)


def rank_figure(part: pd.DataFrame, title: str):
    """rank J / n and σ_min against m·d/(2n); the law as lines (rank/n = min(K, x) under MLI,
    min(K, 2x) under LeCun init, x = m·d/(2n)); one series per init and activation."""
    fig, axes = figures.new(2, width=10.0)
    k = int(part["k"].dropna().max()) if part["k"].notna().any() else 1
    keys = sorted({(str(i), str(a)) for i, a in zip(part["init"], part["activation"])})
    labels = [f"{i}, {a}" for i, a in keys]
    inits = sorted({i for i, _ in keys})
    for (init, act), label in zip(keys, labels):
        g = part[(part["init"] == init) & (part["activation"] == act)]
        ls, marker = fmt.style(label, labels)
        col = _RANK_COLORS.get((init, act), "#7f7f7f")
        rank = {x: list(v / n for v, n in zip(gg["jacobian_rank"], gg["n"])) for x, gg in g.groupby("width_ratio")}
        sigma = {x: list(gg["jacobian_sigma_min"]) for x, gg in g.groupby("width_ratio")}
        figures.mean_line(axes[0], rank, color=col, ls="none", marker=marker, label=f"measured: {label}", band=False,
                          dots=False)
        figures.mean_line(axes[1], sigma, color=col, ls=ls, marker=marker, label=label)
    x_max = float(part["width_ratio"].max()) if len(part) else 2.0
    grid = [x_max * 1.05 * i / 200 for i in range(201)]
    for init in inits:
        if init in _LAW:
            text = _LAW[init][0]
            axes[0].plot(grid, [rank_law(init, x, k) for x in grid], color="black", lw=1.0,
                         ls=":" if init == "lecun" else "-", alpha=0.7, label=f"predicted law, {text}")
    axes[0].axvline(1.0, color="grey", lw=0.8)
    axes[0].set_xlabel("m·d/(2n)")
    axes[0].set_ylabel("rank J / n")
    axes[0].set_title("rank of J at init and the predicted law")
    axes[1].set_xlabel("m·d/(2n)")
    axes[1].set_ylabel("smallest nonzero singular value of J")
    axes[1].set_title("σ_min of J at init")
    if (part["jacobian_sigma_min"] > 0).any():
        axes[1].set_yscale("log")
    return figures.finish(fig, title)


@register_section("jacobian_rank", title="Theorem 1: the rank of J at init", tasks=ALL, order=40)
def rank_section(data: SectionInput) -> list:
    usable = _usable(data.frame)
    ranked = usable[usable["jacobian_status"] == "done"] if len(usable) else usable
    if ranked.empty:
        return []
    frame = _numeric(ranked)
    out: list = [Text("Theorem 1's proof rests on the rank of J = ∂f(X)/∂W at init (output weights fixed); the law "
                      "is min(nK, md/2) under MLI, min(nK, md) under LeCun init (docs/theory.md). Every cell small "
                      "enough for an exact SVD (bench_suite.theory.MAX_JACOBIAN_ENTRIES).")]
    for task in sorted(frame["task"].dropna().unique()):
        part = frame[frame["task"] == task]
        title = f"{task}: rank of J at init against m·d/(2n)"
        out += [Figure(name=fmt.slug("rank", task), title=title,
                       views={"mean over repetitions": lambda part=part, title=title: rank_figure(part, title)},
                       caption="Left: the measured rank / n (markers: mean over repetitions) and the predicted "
                               "law (lines); right: σ_min (mean, range, each repetition).", summary=True),
                _table(theory.rank_table(part), f"`{task}`: rank against the law, per init, activation and width.")]
    return out


# --------------------------------------------------------------------------------------------
# the width threshold
# --------------------------------------------------------------------------------------------
def default_eps(task: str) -> float | None:
    """The radius a task's threshold is read at: its default ``eps``."""
    from ..tasks import TASKS

    return TASKS.get(task).train_defaults.get("eps") if task in TASKS else None


def threshold_figure(part: pd.DataFrame, title: str):
    acts = sorted(part["activation"].unique())
    fig, axes = figures.new(max(1, len(acts)), width=5.0 * max(1, len(acts)))
    methods = sorted(part["method"].unique())
    for ax, act in zip(axes, acts):
        for method in methods:
            g = part[(part["activation"] == act) & (part["method"] == method) & (part["status"] == "done")]
            if g.empty:
                continue
            ls, marker = fmt.style(method, methods)
            figures.mean_line(ax, {x: list(gg["train_loss"]) for x, gg in g.groupby("width_ratio")},
                              color=fmt.color(method, methods), ls=ls, marker=marker, label=method)
            if "floor" in g and g["floor"].notna().any():
                # a zero floor (rounding: ~1e-29) drawn at 1e-12, so the losses keep the axis
                fl = g.groupby("width_ratio")["floor"].mean().clip(lower=1e-12)
                ax.plot(fl.index, fl.values, ":", color="black", lw=1.0, label=f"linearized floor ({method})")
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.axhline(MEMORIZED_BELOW, color="grey", lw=0.6, ls="--")
        ax.set_yscale("log")
        ax.set_xlabel("m·d/(2n)")
        ax.set_ylabel("final training loss")
        ax.set_title(act)
    return figures.finish(fig, title)


@register_section("threshold", title="Theorem 1 in training: the width threshold", order=50)
def threshold_section(data: SectionInput) -> list:
    out: list = []
    usable = _usable(data.frame)
    for task in data.tasks:
        thr = usable[usable["task"] == task] if len(usable) else usable
        eps = default_eps(task)
        if eps is not None and not thr.empty:  # the threshold is read at the task's own radius
            thr = thr[pd.to_numeric(thr["eps"], errors="coerce").round(12) == round(float(eps), 12)]
        if thr.empty or thr["width"].nunique() < 2:
            continue
        frame = _numeric(thr).rename(columns={"loss_floor": "floor"})
        for profile in sorted(frame["_profile"].dropna().unique()):
            mine = frame[frame["_profile"] == profile]
            part = mine[mine["epochs"] == mine["epochs"].max()]
            title = f"{task} · {profile}: final loss against m·d/(2n) (ε = {eps:g})"
            out += [Figure(name=fmt.slug("threshold", task, profile), title=title,
                           views={"mean and range over repetitions":
                                  lambda part=part, title=title: threshold_figure(part, title)},
                           caption=f"Mean (line), range (band), each repetition (dot); dashed: memorized "
                                   f"(< {MEMORIZED_BELOW:g}); dotted: the loss of the net's first-order model at "
                                   "MLI (the linearized floor, docs/theory.md).", summary=True),
                    _table(theory.threshold_table(part, memorized_below=MEMORIZED_BELOW),
                           f"Final training loss, mean ± sd over repetitions; memorized = below "
                           f"{MEMORIZED_BELOW:g}.")]
    return out


# --------------------------------------------------------------------------------------------
# loss and KKT residual against eps
# --------------------------------------------------------------------------------------------
def eps_figure(frame: pd.DataFrame, title: str):
    fig, axes = figures.new(2, width=10.0)
    keys = sorted({(float(w), str(a)) for w, a in zip(frame["width"], frame["activation"])})
    labels = []
    for width, act in keys:
        g = frame[(frame["width"] == width) & (frame["activation"] == act)]
        labels.append(f"m·d/(2n) = {g['width_ratio'].iloc[0]:.3g}, {act}")
    for (width, act), label in zip(keys, labels):
        g = frame[(frame["width"] == width) & (frame["activation"] == act)]
        ls, marker = fmt.style(label, labels)
        col = fmt.METHOD_COLORS["mli_paired_pgd"] if len(keys) == 1 else f"C{keys.index((width, act))}"
        for ax, col_name in ((axes[0], "train_loss"), (axes[1], "kkt_residual")):
            figures.mean_line(ax, {x: list(gg[col_name]) for x, gg in g.groupby("eps")}, color=col, ls=ls,
                              marker=marker, label=label)
    lo, hi = frame["eps"].min(), frame["eps"].max()
    ref = frame["train_loss"][frame["train_loss"] > 0]
    if len(ref) and math.isfinite(lo) and math.isfinite(hi) and lo > 0:
        anchor = float(ref.max())
        axes[0].plot([lo, hi], [anchor * (lo / hi) ** 2, anchor], ":", color="grey", label="slope 2 (ε²)")
    for ax, label in ((axes[0], "final training loss"), (axes[1], "KKT residual / ‖∇ℓ(W0, V0)‖")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("ε")
        ax.set_ylabel(label)
        ax.set_title(label)
    return figures.finish(fig, title)


@register_section("eps", title="Theorem 2: loss and KKT residual against ε", order=60)
def eps_section(data: SectionInput) -> list:
    out: list = []
    usable = _usable(data.frame)
    for task in data.tasks:
        cells = usable[(usable["task"] == task) & (usable["method"] == EPS_METHOD)] if len(usable) else usable
        if cells.empty or pd.to_numeric(cells["eps"], errors="coerce").nunique() < 2:
            continue
        frame = _numeric(cells)
        frame = frame[frame.groupby(["width", "activation"])["eps"].transform("nunique") > 1]
        per_eps, slopes = theory.eps_table(frame)
        title = f"{task}: loss and KKT residual against ε ({EPS_METHOD})"
        out += [Text("Learning rates scaled with ε (lr_w ∝ ε², lr_v ∝ 1/ε², docs/theory.md); the KKT residual is the "
                     "stationarity residual at the end over the gradient's norm at init. The slope is the "
                     "least-squares log-log fit over every cell (the verdict's row fits only KKT points above the "
                     "float floor)."),
                Figure(name=fmt.slug("eps", task), title=title,
                       views={"mean and range over repetitions": lambda frame=frame, title=title: eps_figure(frame,
                                                                                                          title)},
                       caption="Mean (line), range (band), each repetition (dot); dotted grey: slope 2 (loss ∝ ε², "
                               "Theorem 2's O(ε²)).", summary=True),
                _table(per_eps, "Per ε: final loss and KKT residual."), _table(slopes, "Fitted log-log slopes.")]
    return out
