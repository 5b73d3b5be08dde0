"""The report's "Theory" section (docs/theory.md): the paper's two theorems as measured.

From the results table (``records.COLUMNS``, the record's theory section flattened) and the
verdicts: the rank and smallest singular value of J at init against m·d/(2n) (MLI against
LeCun init), the final loss against m·d/(2n) per method, the final loss and KKT residual
against ε with the fitted log-log slope; each a table (``theory.rank_table``,
``threshold_table``, ``eps_table``) and a plot, then the verdicts of the theory rows. Plain
pandas and matplotlib (Agg, no metadata): deterministic, no torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import pandas as pd

from .. import theory
from ..methods import METHODS

TASK = "width_threshold"
MEMORIZED_BELOW = 0.01  # the threshold rows' "memorized" (baselines/theory.toml)


def _with_init(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["init"] = [METHODS.get(m).init if m in METHODS else None for m in out["method"]]
    return out


def _numeric(frame: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    out = frame.copy()
    for col in cols:
        out[col] = pd.to_numeric(out[col], errors="coerce")
    return out


def _plot(path: Path, title: str, draw: Callable) -> None:
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.style.context("default"):
        fig = Figure(figsize=(11, 4.2), dpi=100)
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2)
        draw(axes)
        for ax in axes:
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[1]:  # no labelled artist: no legend (and no warning)
                ax.legend(fontsize=7)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=100, metadata={"Software": None})


def theory_section(df: pd.DataFrame, verdicts: pd.DataFrame, out_dir: Path, *, table: Callable,
                   color: Callable, slug: Callable) -> list[str]:
    """Markdown lines of the section; plots go to ``out_dir/plots``. ``table``, ``color`` and
    ``slug`` are the report's own helpers (one table style, one colour per method)."""
    out = ["## Theory: the paper's theorems measured", ""]
    usable = df[df["status"].isin(["done", "diverged"])]
    ranked = usable[usable["jacobian_status"] == "done"] if "jacobian_status" in usable else usable.iloc[0:0]
    wt = usable[usable["task"] == TASK]
    if ranked.empty and wt.empty:
        return out + ["_No cells with a computed Jacobian (the theory section of small cells) and no "
                      f"`{TASK}` results._", ""]
    out += ["Theorem 1's proof rests on the rank of J = ∂f(X)/∂W at init (output weights fixed); its claim is "
            "trainability for m ≥ 2n/d. Theorem 2: with the paired output, MLI and ‖W − W0‖_F ≤ ε, every KKT point "
            "has loss O(ε²). docs/theory.md has the setup and what the numbers support.", ""]
    plots = out_dir / "plots"
    num_cols = ["width", "n", "d", "jacobian_rank", "jacobian_rank_predicted", "jacobian_sigma_min",
                "jacobian_sigma_max", "train_loss", "eps", "kkt_residual", "loss_floor", "width_ratio"]
    # --- rank of J at init ---
    if not ranked.empty:
        frame = _numeric(_with_init(ranked), num_cols)
        out += ["### Rank of J at init against m·d/(2n)", "",
                "Every cell small enough for an exact SVD (bench_suite.theory.MAX_JACOBIAN_ENTRIES), per task; the "
                "law: min(nK, md/2) under MLI, min(nK, md) under LeCun init.", ""]
        for task in sorted(frame["task"].dropna().unique()):
            part = frame[frame["task"] == task]
            tab = theory.rank_table(part)
            out += [f"`{task}`:", "", table(tab.astype(str).to_dict("records"), list(tab.columns)), ""]
            name = slug("theory", "rank", task) + ".png"
            plots.mkdir(parents=True, exist_ok=True)

            def draw(axes, part=part):
                for (init, act), g in sorted(part.groupby(["init", "activation"])):
                    g = g.sort_values("width_ratio")
                    mean = g.groupby("width_ratio")[["jacobian_rank", "jacobian_rank_predicted",
                                                     "jacobian_sigma_min"]].mean()
                    style = "-" if init == "mirrored_lecun" else "--"
                    axes[0].plot(mean.index, mean["jacobian_rank"] / g["n"].iloc[0], style, marker="o", ms=3,
                                 label=f"{init}, {act}")
                    axes[1].plot(mean.index, mean["jacobian_sigma_min"], style, marker="o", ms=3,
                                 label=f"{init}, {act}")
                axes[0].axvline(1.0, color="grey", lw=0.8)
                axes[0].set_xlabel("m·d/(2n)")
                axes[0].set_ylabel("rank J / n")
                axes[1].set_xlabel("m·d/(2n)")
                axes[1].set_ylabel("smallest nonzero singular value of J")
                axes[1].set_yscale("log")

            _plot(plots / name, f"{task}: rank and σ_min of J at init", draw)
            out += [f"![rank of J, {task}](plots/{name})", ""]
    # --- the width threshold ---
    thr = wt
    if "eps" in thr.columns and not thr.empty:  # the threshold is read at the task's own radius
        eps_default = 0.1
        thr = thr[pd.to_numeric(thr["eps"], errors="coerce").round(12) == eps_default]
    if not thr.empty and thr["width"].nunique() > 1:
        frame = _numeric(thr, num_cols).rename(columns={"loss_floor": "floor"})
        for profile in sorted(frame["profile"].dropna().unique()):
            part = frame[(frame["profile"] == profile) & (frame["epochs"] == frame[frame["profile"] == profile]
                                                         ["epochs"].max())]
            tab = theory.threshold_table(part, memorized_below=MEMORIZED_BELOW)
            out += [f"### Final loss against m·d/(2n) (`{TASK}`, profile `{profile}`, ε = 0.1)", "",
                    f"Final training loss, mean ± sd over repetitions; memorized = below {MEMORIZED_BELOW:g}; the "
                    "linearized floor is the loss of the net's first-order model at MLI (docs/theory.md).", "",
                    table(tab.astype(str).to_dict("records"), list(tab.columns)), ""]
            name = slug("theory", "threshold", profile) + ".png"
            plots.mkdir(parents=True, exist_ok=True)
            methods = sorted(part["method"].unique())

            def draw(axes, part=part, methods=methods):
                others = sorted(set(methods))
                for act_i, act in enumerate(sorted(part["activation"].unique())):
                    for method in methods:
                        g = part[(part["activation"] == act) & (part["method"] == method) & (part["status"] == "done")]
                        if g.empty:
                            continue
                        mean = g.groupby("width_ratio")["train_loss"].mean()
                        axes[act_i % 2].plot(mean.index, mean.values, marker="o", ms=3, color=color(method, others),
                                             label=f"{method}")
                        if "floor" in g and g["floor"].notna().any():
                            # a zero floor (rounding: ~1e-29) drawn at 1e-12, so the losses keep the axis
                            fl = g.groupby("width_ratio")["floor"].mean().clip(lower=1e-12)
                            axes[act_i % 2].plot(fl.index, fl.values, ":", color="grey",
                                                 label="linearized floor (≥ 1e-12 shown)")
                    axes[act_i % 2].set_title(act, fontsize=9)
                for ax in axes:
                    ax.axvline(1.0, color="grey", lw=0.8)
                    ax.axhline(MEMORIZED_BELOW, color="grey", lw=0.6, ls="--")
                    ax.set_yscale("log")
                    ax.set_xlabel("m·d/(2n)")
                    ax.set_ylabel("final training loss")

            _plot(plots / name, f"{TASK} · {profile}: final loss against m·d/(2n)", draw)
            out += [f"![final loss against m d/2n, {profile}](plots/{name})", ""]
    # --- loss and KKT residual against eps ---
    eps_cells = wt[wt["method"] == "mli_paired_pgd"] if not wt.empty else wt
    if not eps_cells.empty and pd.to_numeric(eps_cells["eps"], errors="coerce").nunique() > 1:
        frame = _numeric(eps_cells, num_cols)
        frame = frame[frame.groupby(["width", "activation"])["eps"].transform("nunique") > 1]
        per_eps, slopes = theory.eps_table(frame)
        out += ["### Final loss and KKT residual against ε (mli_paired_pgd)", "",
                "Learning rates scaled with ε (lr_w ∝ ε², lr_v ∝ 1/ε², docs/theory.md); the KKT residual is the "
                "stationarity residual at the end over the gradient's norm at init. The slope is the least-squares "
                "log-log fit over every cell (the verdict's row fits only KKT points above the float floor).", "",
                table(per_eps.astype(str).to_dict("records"), list(per_eps.columns)), "",
                table(slopes.astype(str).to_dict("records"), list(slopes.columns)), ""]
        name = slug("theory", "eps") + ".png"
        plots.mkdir(parents=True, exist_ok=True)

        def draw(axes, frame=frame):
            for (_width, act), g in sorted(frame.groupby(["width", "activation"])):
                mean = g.groupby("eps")[["train_loss", "kkt_residual"]].mean()
                ratio = g["width_ratio"].iloc[0]
                label = f"m·d/(2n) = {ratio:.3g}, {act}"
                axes[0].plot(mean.index, mean["train_loss"], marker="o", ms=3, label=label)
                axes[1].plot(mean.index, mean["kkt_residual"], marker="o", ms=3, label=label)
            lo, hi = frame["eps"].min(), frame["eps"].max()
            ref = frame["train_loss"][frame["train_loss"] > 0]
            if len(ref) and math.isfinite(lo) and math.isfinite(hi):
                anchor = float(ref.max())
                axes[0].plot([lo, hi], [anchor * (lo / hi) ** 2, anchor], ":", color="grey", label="slope 2 (ε²)")
            for ax, label in ((axes[0], "final training loss"), (axes[1], "KKT residual / ‖∇ℓ(W0, V0)‖")):
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlabel("ε")
                ax.set_ylabel(label)

        _plot(plots / name, f"{TASK}: loss and KKT residual against ε", draw)
        out += [f"![loss against eps](plots/{name})", ""]
    # --- verdicts ---
    rows = verdicts[verdicts["id"].astype(str).str.startswith("theory/")] if len(verdicts) else verdicts
    if len(rows):
        out += ["### Verdicts of the theory rows", "",
                table([{"id": r["id"], "width": "" if r["width"] is None else str(r["width"]),
                        "activation": str(r["activation"] or ""), "setting": str(r.get("setting") or ""),
                        "metric": r["metric"], "ours": _fmt(r["ours"]), "n": str(int(r["n"])), "verdict": r["verdict"],
                        "note": r["note"]} for _, r in rows.iterrows()],
                      ["id", "width", "activation", "setting", "metric", "ours", "n", "verdict", "note"]), ""]
    return out


def _fmt(x) -> str:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(value) else f"{value:.4g}"
