"""A template plug-in report section, and a task that asks for it.

Copy this file, rename what it registers, keep the shape. Use it from any folder, with the
folder that holds it on PYTHONPATH (it is not part of the package):

    export PYTHONPATH=/path/to/examples
    python -m bench_suite --plugin my_report_section run --task synthetic_small --profile smoke --store s
    python -m bench_suite --plugin my_report_section report --store s   # s/report/report.md and report.html

A section is a function of a ``SectionInput`` (``.tasks``, ``.frame``: the results table of the
tasks it applies to, ``.records``, ``.verdicts``) returning blocks: ``Text`` (a paragraph),
``Table`` (a DataFrame) and ``Figure`` (named views, each a function returning a matplotlib
Figure; draw with ``bench_suite.reporting.figures``, no pyplot). A block marked
``summary=True`` also goes into report.md; everything goes into report.html
(``bench_suite/reporting/sections.py``).

Which tasks get it: a task lists it in its ``report_sections`` (as ``synthetic_small`` below),
or the section names tasks itself (``register_section(..., tasks=("synthetic_ablation",))``,
or ``tasks="*"`` for every task): no file of the package is edited either way.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench_suite.reporting import Figure, SectionInput, Table, Text, figures, fmt, register_section
from bench_suite.tasks import register_task
from bench_suite.tasks.synthetic import SyntheticAblation

METRIC = "dist_w0"  # ||W - W0||_F at the end (records.COLUMNS)


def distance_figure(frame: pd.DataFrame, title: str):
    methods = sorted(frame["method"].unique())
    fig, (ax,) = figures.new(1, width=6.0)
    for method in methods:
        mine = frame[frame["method"] == method]
        ls, marker = fmt.style(method, methods)
        figures.mean_line(ax, {float(w): list(g[METRIC]) for w, g in mine.groupby("width")},
                          color=fmt.color(method, methods), ls=ls, marker=marker, label=method)
    ax.set_xlabel("width m (hidden units)")
    ax.set_ylabel("‖W − W0‖_F at the end")
    return figures.finish(fig, title)


@register_section("weight_distance", title="Distance travelled: ‖W − W0‖_F at the end", order=80)
def weight_distance(data: SectionInput) -> list:
    done = data.frame[data.frame["status"] == "done"] if len(data.frame) else data.frame
    if done.empty:
        return []
    out: list[Any] = [Text("How far each method moved W from its initialization (mean over repetitions, the range "
                           "as a band, each repetition as a dot).", summary=True)]
    for task, part in done.groupby("task"):
        title = f"{task}: ‖W − W0‖_F at the end"
        table = part.groupby(["method", "width"])[METRIC].agg(["mean", "std", "count"]).reset_index()
        out += [Figure(name=fmt.slug("weight_distance", task), title=title,
                       views={"mean and range": lambda part=part, title=title: distance_figure(part, title)},
                       summary=True),
                Table(table.round(4), caption=f"`{task}`: ‖W − W0‖_F at the end, per method and width.")]
    return out


@register_task
class SyntheticSmall(SyntheticAblation):
    """The synthetic ablation's data at a tiny size: an example of a task that asks for its
    report sections (the built-in ordering of the methods, and the section above)."""

    name = "synthetic_small"
    version = 1
    description = "an example plug-in task: the synthetic ablation at n=64, d=16 (m >= 2n/d = 8)"
    report_sections = ("ordering", "weight_distance")
    options: dict[str, Any] = {"n": 64, "d": 16}
    grid: dict[str, list] = {"methods": ["mli_paired_pgd", "sgd", "constraint_only", "no_mirroring"],
                             "widths": [8, 16], "activations": ["tanh"]}
    profiles: dict[str, dict[str, Any]] = {
        "smoke": {"description": "the four methods, widths 8 and 16, two repetitions, 50 GD steps (seconds)",
                  "device": "cpu", "seeds": 2, "train": {"epochs": 50, "eval_every": 25}},
    }
