"""The section "Ablation study" (tasks that ask for ``study``): the tables of each ``ablation_*``
profile present (:mod:`.ablation`) and its sensitivity figure: for a sweep over two independent
settings (lr × ε, lr_w × lr_v, m × ε), a heat map per method of the mean final training loss
(log colour scale, one scale for all methods; grey: every repetition diverged); over one
setting, the loss against it per method (mean, range, each repetition)."""

from __future__ import annotations

import math

import pandas as pd

from . import figures, fmt
from .ablation import LEGEND, SECTION_TITLE, STUDY_SECTION, _key_value, _methods, profile_study, study_profiles
from .sections import Figure, SectionInput, Table, Text, register_section


def sweep_axes(final: pd.DataFrame) -> list[str]:
    """The numeric label columns that vary independently (a column that another kept one
    determines, such as ε/‖W0‖ beside ε at one width, is left out), in label order."""
    from .ablation import FRAME_COLUMNS

    labels = [c for c in final.columns if c not in FRAME_COLUMNS and c != "steps"]
    kept: list[str] = []
    for col in labels:
        values = pd.to_numeric(final[col], errors="coerce")
        if values.isna().any() or values.nunique() < 2:
            continue
        before = final[kept].drop_duplicates().shape[0] if kept else 1
        after = final[[*kept, col]].drop_duplicates().shape[0]
        if after > before:
            kept.append(col)
    return kept


def _mean_losses(final: pd.DataFrame, method: str, keys: list[str]) -> dict[tuple, float]:
    """Setting -> mean final loss of ``method`` over its done repetitions; +inf where every
    repetition diverged."""
    out = {}
    mine = final[final["method"] == method]
    for key, rows in mine.groupby(keys):
        key = key if isinstance(key, tuple) else (key,)
        done = [v for v, st in zip(rows["train_loss"], rows["status"]) if st == "done" and math.isfinite(v)]
        out[tuple(_key_value(k) for k in key)] = sum(done) / len(done) if done else math.inf
    return out


def heatmap_figure(final: pd.DataFrame, axes_: list[str], title: str):
    x_name, y_name = axes_
    methods = _methods(final)
    xs = sorted({_key_value(v) for v in final[x_name]})
    ys = sorted({_key_value(v) for v in final[y_name]})
    ncols = min(4, len(methods))
    nrows = math.ceil(len(methods) / ncols)
    fig, axes = figures.new(ncols, nrows=nrows, width=3.4 * ncols + 1.0, height=3.0 * nrows + 0.4)
    grids = {m: _mean_losses(final, m, [x_name, y_name]) for m in methods}
    finite = [v for g in grids.values() for v in g.values() if math.isfinite(v) and v > 0]
    lo, hi = (min(finite), max(finite)) if finite else (None, None)
    image = None
    for ax, method in zip(axes, methods):
        values = [[grids[method].get((x, y), math.nan) for x in xs] for y in ys]
        image = figures.heatmap(ax, xs, ys, values, xlabel=x_name, ylabel=y_name, title=method, vmin=lo, vmax=hi)
    for ax in axes[len(methods):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    if image is not None:
        fig.colorbar(image, ax=axes[: len(methods)], shrink=0.8, label="mean final training loss")
    return fig


def sweep_figure(final: pd.DataFrame, axis: str, title: str):
    methods = _methods(final)
    fig, (ax,) = figures.new(1, width=6.5)
    for method in methods:
        mine = final[(final["method"] == method) & (final["status"] == "done")]
        ls, marker = fmt.style(method, methods)
        figures.mean_line(ax, {float(x): list(g["train_loss"]) for x, g in mine.groupby(axis)},
                          color=fmt.color(method, methods), ls=ls, marker=marker, label=method)
    values = final["train_loss"][final["train_loss"] > 0]
    if len(values):
        ax.set_yscale("log")
    if (pd.to_numeric(final[axis], errors="coerce") > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel(axis)
    ax.set_ylabel("final training loss")
    return figures.finish(fig, title)


@register_section(STUDY_SECTION, title=SECTION_TITLE, order=70)
def study_section(data: SectionInput) -> list:
    out: list = []
    for task in data.tasks:
        declared, undeclared = study_profiles(data.records, task=task)
        if not declared and not undeclared:
            continue
        out.append(Text(LEGEND))
        if undeclared:
            out.append(Text(f"Not declared here (load their --profile-file to build their tables): "
                            f"{', '.join(undeclared)}.", summary=True))
        if declared:
            out.append(Text(f"`{task}`: {len(declared)} sweep(s) ({', '.join(declared)}): their tables and heat "
                            "maps are in report.html; `report --section ablation` writes the tables as markdown.",
                            summary=True))
        for profile in declared:
            study = profile_study(data.records, profile, task=task)
            out.append(Text(f"**{study.heading}**"))
            out += [Text(note) for note in study.notes]
            if study.summary is None:
                continue
            what = "Training loss after T steps" if study.at_steps else "Final training loss"
            out.append(Table(study.summary, caption=f"{what} (mean ± sd over {study.n_reps} repetitions)."))
            if study.best is not None:
                out.append(Table(study.best, caption=f"Each method at its own best {' / '.join(study.tune_over)} "
                                                     "(per repetition; [value] = the most frequent choice)."))
            out.append(Table(study.detail.round(4), caption="‖W − W0‖_F at the end, radius, fraction of steps "
                                                            "with an active projection (means over done repetitions)."))
            axes_ = sweep_axes(study.final)
            title = f"{task} · {profile}: final training loss"
            if len(axes_) == 2:
                out.append(Figure(name=fmt.slug("study", task, profile), title=title,
                                  views={"heat map": lambda f=study.final, a=axes_, t=title: heatmap_figure(f, a, t)},
                                  caption=f"Mean final training loss over the done repetitions per {axes_[0]} × "
                                          f"{axes_[1]}, one panel per method, one colour scale; grey: no "
                                          "repetition finished (diverged or absent)."))
            elif len(axes_) == 1:
                out.append(Figure(name=fmt.slug("study", task, profile), title=title,
                                  views={"sensitivity": lambda f=study.final, a=axes_[0], t=title: sweep_figure(f, a,
                                                                                                              t)},
                                  caption=f"Final training loss against {axes_[0]}: mean (line), range (band), each "
                                          "repetition (dot)."))
    return out
