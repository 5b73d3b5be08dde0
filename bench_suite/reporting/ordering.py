"""The section "Ordering of the methods" (tasks that ask for ``ordering``): the final training
loss of each method per profile, width and activation, ranked; the ordering the comparison
claims state beside the measured one; a figure of each repetition's loss per method, lines
joining a repetition across methods (the claims are paired by repetition). The ``ablation_*``
sweeps have their own section (``study``)."""

from __future__ import annotations

import math

import pandas as pd

from . import figures, fmt
from .ablation import PREFIX
from .sections import Figure, SectionInput, Table, Text, register_section

METRIC = "train_loss"


def claimed_ordering(verdicts: pd.DataFrame, metric: str = METRIC) -> list[str]:
    """``method < a, b`` for each method and direction of the comparison rows on ``metric``."""
    if len(verdicts) == 0:
        return []
    comp = verdicts[(verdicts["kind"] == "comparison") & (verdicts["metric"] == metric)]
    groups: dict[tuple[str, str], set[str]] = {}
    for _, r in comp.iterrows():
        op = fmt.OPS.get(str(r["direction"]), str(r["direction"]))
        groups.setdefault((str(r["method"]), op), set()).add(str(r["versus"]))
    return [f"{m} {op} {', '.join(sorted(vs))}" for (m, op), vs in sorted(groups.items())]


def ranked(part: pd.DataFrame) -> list[dict]:
    """One row per method: mean and sd of the done cells' final loss, the count done and
    diverged, each repetition's loss; sorted by mean (diverged methods last)."""
    rows = []
    for method, cells in sorted(part.groupby("method"), key=lambda kv: str(kv[0])):
        done = cells[cells["status"] == "done"]
        values = pd.to_numeric(done[METRIC], errors="coerce")
        per_rep = {int(r): float(v) for r, v in zip(done["repetition"], values) if not fmt.missing(v)}
        vals = list(per_rep.values())
        rows.append({"method": str(method), "mean": sum(vals) / len(vals) if vals else math.nan,
                     "sd": float(pd.Series(vals).std(ddof=1)) if len(vals) > 1 else math.nan, "n": len(vals),
                     "diverged": int((cells["status"] == "diverged").sum()), "per_rep": per_rep})
    return sorted(rows, key=lambda r: (r["diverged"] > 0, math.isnan(r["mean"]),
                                       0.0 if math.isnan(r["mean"]) else r["mean"], r["method"]))


def ordering_figure(rows: list[dict], title: str):
    fig, (ax,) = figures.new(1, width=6.0, height=3.8)
    methods = [r["method"] for r in rows]
    reps = sorted({rep for r in rows for rep in r["per_rep"]})
    for rep in reps:  # a repetition across methods: the pairing the claims use
        xs = [i for i, r in enumerate(rows) if rep in r["per_rep"]]
        ax.plot(xs, [rows[i]["per_rep"][rep] for i in xs], color="grey", lw=0.6, alpha=0.5, zorder=1)
    for i, r in enumerate(rows):
        col = fmt.color(r["method"], methods)
        _, marker = fmt.style(r["method"], methods)
        figures.points(ax, [i] * len(r["per_rep"]), list(r["per_rep"].values()), col)
        if not math.isnan(r["mean"]):
            ax.plot([i], [r["mean"]], marker=marker, ms=8, color=col, ls="none", zorder=3,
                    label=f"{r['method']} (mean of {r['n']})")
    values = [v for r in rows for v in r["per_rep"].values()]
    if values and all(v > 0 for v in values):
        ax.set_yscale("log")
    ax.set_xticks(range(len(rows)), [r["method"] + (f"\n({r['diverged']} diverged)" if r["diverged"] else "")
                                     for r in rows], rotation=15, fontsize=7)
    ax.set_ylabel(f"final {METRIC}")
    ax.set_title("ranked by mean (left: lowest); grey lines join a repetition")
    return figures.finish(fig, title)


@register_section("ordering", title="Ordering of the methods (final training loss)", order=30)
def ordering_section(data: SectionInput) -> list:
    df = data.frame
    part_all = df[df["status"].isin(["done", "diverged"]) & ~df["_profile"].astype(str).str.startswith(PREFIX)] \
        if len(df) else df
    if part_all.empty:
        return [Text(f"_No results for {', '.join(f'`{t}`' for t in data.tasks)} (outside the {PREFIX}* sweeps)._")]
    out: list = []
    keys = sorted({(str(t), p, fmt.sort_key(w), w, str(a)) for t, p, w, a in
                   zip(part_all["task"], part_all["_profile"], part_all["width"], part_all["activation"])})
    for task, profile, _, width, activation in keys:
        part = part_all[(part_all["task"] == task) & (part_all["_profile"] == profile) & (part_all["width"] == width)
                        & (part_all["activation"] == activation)]
        rows = ranked(part)
        verdicts = data.verdicts[data.verdicts["task"] == task] if len(data.verdicts) else data.verdicts
        claims = claimed_ordering(verdicts)
        claim_text = "; ".join(f"`{c}`" for c in claims) if claims else "(no comparison claim on this metric)"
        measured = " < ".join(f"{r['method']} ({'diverged' if r['diverged'] else fmt.num(r['mean'])})" for r in rows)
        title = f"{task} · profile {profile} · width {width} · {activation}: final {METRIC}"
        table = pd.DataFrame([{"rank": str(i), "method": r["method"], f"final {METRIC} (mean)": fmt.num(r["mean"]),
                               "sd": fmt.num(r["sd"], ".2g"), "n done": str(r["n"]), "diverged": str(r["diverged"])}
                              for i, r in enumerate(rows, 1)])
        out += [
            Text(f"**`{task}`, profile `{profile}`, width {width}, {activation}.** Claimed: {claim_text}. "
                 f"Measured (mean): {measured}.", summary=True),
            Figure(name=fmt.slug("ordering", task, profile, f"w{width}", activation), title=title,
                   views={"each repetition": lambda rows=rows, title=title: ordering_figure(rows, title)},
                   caption="Each repetition's final loss (dot), the mean (large marker); grey lines join one "
                           "repetition across methods (same data and W0 draws).", summary=True),
            Table(table),
        ]
    return out
