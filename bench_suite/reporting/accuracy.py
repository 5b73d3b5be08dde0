"""The section "Accuracy against width" (the default of every classification task): per task,
profile and activation, the final train and test accuracy of each method against the width m,
mean with the range over repetitions as a band and each repetition as a dot; a table of the
test accuracy (mean ± sd, n) per width and method; the data source and 2n/d."""

from __future__ import annotations

import math

import pandas as pd

from . import figures, fmt
from .sections import Figure, SectionInput, Table, Text, register_section

METRICS = (("train_acc", "final train accuracy"), ("test_acc", "final test accuracy"))


def _points(part: pd.DataFrame, method: str, metric: str) -> dict[float, list[float]]:
    mine = part[(part["method"] == method) & (part["status"] == "done")]
    out: dict[float, list[float]] = {}
    for w, v in zip(mine["width"], pd.to_numeric(mine[metric], errors="coerce")):
        if not fmt.missing(v):
            out.setdefault(float(w), []).append(float(v))
    return out


def accuracy_figure(part: pd.DataFrame, title: str):
    methods = sorted({str(m) for m in part["method"]})
    widths = sorted({int(w) for w in part["width"]})
    fig, axes = figures.new(2, width=10.0)
    for ax, (metric, label) in zip(axes, METRICS):
        for method in methods:
            ls, marker = fmt.style(method, methods)
            figures.mean_line(ax, _points(part, method, metric), color=fmt.color(method, methods), ls=ls,
                              marker=marker, label=method)
        ax.set_xscale("log", base=2)
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.minorticks_off()
        ax.set_xlabel("width m (hidden units)")
        ax.set_ylabel(label)
        ax.set_title(label)
    return figures.finish(fig, title)


def coinciding_methods(part: pd.DataFrame) -> list[list[str]]:
    """Methods whose per-width mean accuracies are identical (both metrics): their lines hide
    each other."""
    methods = sorted({str(m) for m in part["method"]})
    series = {}
    for method in methods:
        values = []
        for metric, _ in METRICS:
            pts = _points(part, method, metric)
            values += [sum(v) / len(v) for _, v in sorted(pts.items())]
        series[method] = values
    return figures.coinciding(series)


@register_section("accuracy", title="Accuracy against width", order=20)
def accuracy_section(data: SectionInput) -> list:
    df = data.frame
    usable = df[df["status"].isin(["done", "diverged"])] if len(df) else df
    if usable.empty:
        return [Text(f"_No results for {', '.join(f'`{t}`' for t in data.tasks)}._")]
    out: list = []
    for task, profile, activation in sorted({(str(t), p, str(a)) for t, p, a in
                                             zip(usable["task"], usable["_profile"], usable["activation"])}):
        part = usable[(usable["task"] == task) & (usable["_profile"] == profile)
                      & (usable["activation"].astype(str) == activation)]
        methods = sorted({str(m) for m in part["method"]})
        rows = []
        for width in sorted({int(w) for w in part["width"]}):
            cells = part[part["width"] == width]
            ratios = pd.to_numeric(cells["width_ratio"], errors="coerce").dropna()
            row = {"width": str(width), "m·d/(2n)": fmt.ratio(ratios.median() if len(ratios) else None)}
            for method in methods:
                mine = cells[cells["method"] == method]
                acc = pd.to_numeric(mine.loc[mine["status"] == "done", "test_acc"], errors="coerce").dropna()
                n_div = int((mine["status"] == "diverged").sum())
                sd = float(acc.std(ddof=1)) if len(acc) > 1 else math.nan
                text = f"{fmt.num(acc.mean())} ± {fmt.num(sd, '.2g')} (n={len(acc)})" if len(acc) else fmt.DASH
                row[method] = text + (f", {n_div} diverged" if n_div else "")
            rows.append(row)
        n, d = (pd.to_numeric(part[c], errors="coerce").median() for c in ("n", "d"))
        shape = fmt.DASH if fmt.missing(n) or fmt.missing(d) else \
            f"n = {int(n):,}, d = {int(d):,}, 2n/d = {2 * n / d:.3g}"
        sources = sorted({fmt.scrub_paths(s) for s in part["data_source"] if not fmt.missing(s)})
        title = f"{task} · profile {profile} · {activation}: accuracy against width"
        note = figures.coincide_note(coinciding_methods(part), "lines")
        out += [
            Text(f"**`{task}`, profile `{profile}`, {activation}**: data {'; '.join(sources) or fmt.DASH}; {shape}.",
                 summary=True),
            Figure(name=fmt.slug("accuracy", task, profile, activation), title=title,
                   views={"mean and range over repetitions": lambda part=part, title=title: accuracy_figure(part,
                                                                                                        title)},
                   caption="Mean over repetitions (line), range (band), each repetition (dot); log2 width axis; "
                           "m·d/(2n) ≥ 1 is the paper's width condition." + note, summary=True),
            Table(pd.DataFrame(rows, columns=["width", "m·d/(2n)", *methods]),
                  caption="Final test accuracy, mean ± sd over repetitions (n done; diverged cells counted apart)."),
        ]
    return out
