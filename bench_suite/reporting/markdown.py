"""A deterministic markdown report from the store (DataFrame + records) and the verdicts.

``write_report(df, records, verdicts, out_dir)`` writes ``out_dir/report.md`` and
``out_dir/plots/*.png``. Same inputs, same bytes: no clock is read (the only timestamps are
the ``created`` times inside the records' provenance), every table is sorted, and the PNGs are
drawn with matplotlib's default style on the Agg canvas with no ``Software`` metadata.
Tables are rendered by ``DataFrame.to_markdown`` (tabulate).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from ..core.records import COLUMN_NAMES, USABLE, Record, Status
from ..scoring.references import SCORED_METRICS as METRICS
from ..scoring.verdicts import EXIT_CODE_MEANINGS as _EXIT_MEANING
from ..scoring.verdicts import FAIL, VERDICTS, exit_code
from .ablation import study_section
from .theory import theory_section

PAPER_PROFILE = "paper"  # the only profile whose value rows are the paper's numbers (Table 3 mirror)
ABLATION_TASK = "synthetic_ablation"
ABLATION_METRIC = "train_loss"
DASH = "—"
_OPS = {"lower": "<", "higher": ">", "at_most": "≤", "at_least": "≥"}
# fixed colours, so a method keeps its colour across plots (others: tab10 by sorted name)
_METHOD_COLORS = {
    "mli_paired_pgd": "#d62728", "sgd": "#1f77b4", "constraint_only": "#2ca02c", "no_mirroring": "#9467bd",
}
_TAB10 = ["#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


# --------------------------------------------------------------------------------------------
# formatting helpers
# --------------------------------------------------------------------------------------------
def _missing(x: Any) -> bool:
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def _num(x: Any, fmt: str = ".4g") -> str:
    if _missing(x):
        return DASH
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return format(x, fmt)


def _int(x: Any) -> str:
    return DASH if _missing(x) else str(int(x))


def _text(x: Any) -> str:
    if _missing(x):
        return DASH
    return str(x).replace("\r", " ").replace("\n", " ").replace("|", "\\|")


def _table(rows: list[Record], columns: Sequence[str]) -> str:
    """A markdown (pipe) table via pandas/tabulate; every cell already a string."""
    if not rows:
        return "_none_"
    frame = pd.DataFrame([{c: _text(r.get(c)) for c in columns} for r in rows], columns=list(columns))
    return frame.to_markdown(index=False, disable_numparse=True)


def _profile(p: Any) -> str:
    return "(command line)" if _missing(p) else str(p)


def _sort_key(v: Any) -> tuple:
    """Sort mixed None / numbers / strings deterministically (None last)."""
    if _missing(v):
        return (2, "")
    if isinstance(v, (int, float)):
        return (0, float(v), "")
    return (1, str(v))


def _slug(*parts: Any) -> str:
    text = "__".join(str(p) for p in parts)
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text)


def _metric_order(metric: str) -> tuple:
    return (METRICS.index(metric), "") if metric in METRICS else (len(METRICS), metric)


def _ratio(x: Any) -> str:
    """m·d/(2n) without exponents: 3 significant digits below 100, whole numbers above."""
    if _missing(x):
        return DASH
    return f"{float(x):.0f}" if abs(float(x)) >= 100 else f"{float(x):.3g}"


def _ours(row: pd.Series) -> str:
    """``mean ± half-width (n=…)``, or ``mean (n=1, no CI)``."""
    if _missing(row["ours"]):
        return DASH
    n = int(row["n"])
    if _missing(row["ci_low"]) or _missing(row["ci_high"]):
        return f"{_num(row['ours'])} (n={n}, no CI)"
    half = (float(row["ci_high"]) - float(row["ci_low"])) / 2.0
    return f"{_num(row['ours'])} ± {_num(half, '.2g')} (n={n})"


def _ci(row: pd.Series) -> str:
    if _missing(row["ci_low"]):
        return DASH
    return f"[{_num(row['ci_low'])}, {_num(row['ci_high'])}]"


def _prepare_df(df: pd.DataFrame | None) -> pd.DataFrame:
    df = pd.DataFrame() if df is None else df.copy()
    for c in COLUMN_NAMES:  # a frame from elsewhere may lack some: they read as missing
        if c not in df.columns:
            df[c] = None
    df["_profile"] = df["profile"].map(_profile)
    df["_key"] = [
        (str(t), p, _sort_key(w), str(a), str(m), _sort_key(r), str(c))
        for t, p, w, a, m, r, c in zip(df["task"], df["_profile"], df["width"], df["activation"], df["method"],
                                       df["repetition"], df["cell_id"])
    ]
    return df.sort_values("_key", kind="mergesort").reset_index(drop=True)


def _sorted_verdicts(verdicts: pd.DataFrame | None) -> pd.DataFrame:
    if verdicts is None or len(verdicts) == 0:
        return pd.DataFrame(columns=["id", "width", "activation", "verdict"])
    v = verdicts.copy()
    v["_key"] = [(str(i), _sort_key(w), _sort_key(a)) for i, w, a in zip(v["id"], v["width"], v["activation"])]
    return v.sort_values("_key", kind="mergesort").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------
def _summary_section(verdicts: pd.DataFrame) -> list[str]:
    counts = {k: int((verdicts["verdict"] == k).sum()) for k in VERDICTS}
    code = exit_code(verdicts)
    parts = ", ".join(f"{counts[k]} {k}" for k in VERDICTS)
    known = verdicts.get("known_deviation", pd.Series([""] * len(verdicts), index=verdicts.index)).fillna("")
    n_known = int(((verdicts["verdict"] == FAIL) & (known.astype(str) != "")).sum())
    if n_known:
        parts += f" ({n_known} of the FAILs {'is a' if n_known == 1 else 'are'} documented known deviation"
        parts += "" if n_known == 1 else "s"
        parts += ": a measured non-reproduction, see its note)"
    return [f"**Verdicts:** {parts}; `check` exit code {code} ({_EXIT_MEANING[code]}).", ""]


def _paper_values_section(verdicts: pd.DataFrame) -> list[str]:
    out = ["## Paper values (Table 3 mirror)", ""]
    if len(verdicts) == 0:
        return out + [f"_No value references for profile `{PAPER_PROFILE}` were checked._", ""]
    vals = verdicts[(verdicts["kind"] == "value") & (verdicts["profile"] == PAPER_PROFILE)]
    if len(vals) == 0:
        return out + [f"_No value references for profile `{PAPER_PROFILE}` were checked._", ""]
    sources = sorted({str(s) for s in vals["source"]})
    for source in sources:
        part = vals[vals["source"] == source]
        first = part.iloc[0]
        out += [
            f"### {source or '(no source)'}",
            "",
            f"Task `{first['task']}`, profile `{first['profile']}`, method `{first['method']}`; "
            "ours = mean ± 95% CI half-width over seeds (n seeds); the reasons for SKIPPED rows are under "
            "All verdicts.",
            "",
        ]
        rows = []
        for _, r in part.iterrows():
            rows.append({
                "width": _int(r["width"]) if not _missing(r["width"]) else "all",
                "activation": r["activation"] if not _missing(r["activation"]) else "all",
                "metric": r["metric"],
                "paper": _num(r["reference"] if _missing(r.get("paper_value")) else r["paper_value"]),
                "ours": _ours(r),
                "difference": _num(r["difference"], "+.4f"),
                "tolerance": f"±{_num(r['tolerance'])}",
                "verdict": r["verdict"],
            })
        rows.sort(key=lambda x: (x["activation"], _sort_key(None if x["width"] == "all" else int(x["width"])),
                                 _metric_order(x["metric"])))
        out += [_table(rows, ["width", "activation", "metric", "paper", "ours", "difference", "tolerance", "verdict"]),
                ""]
    return out


def _claimed_ordering(verdicts: pd.DataFrame) -> list[str]:
    if len(verdicts) == 0:
        return []
    comp = verdicts[(verdicts["kind"] == "comparison") & (verdicts["task"] == ABLATION_TASK)
                    & (verdicts["metric"] == ABLATION_METRIC)]
    groups: dict[tuple[str, str], set[str]] = {}
    for _, r in comp.iterrows():
        groups.setdefault((str(r["method"]), _OPS.get(str(r["direction"]), str(r["direction"]))), set()).add(
            str(r["versus"]))
    return [f"{m} {op} {', '.join(sorted(vs))}" for (m, op), vs in sorted(groups.items())]


def _ablation_section(df: pd.DataFrame, verdicts: pd.DataFrame) -> list[str]:
    out = [f"## Ablation: final training loss on `{ABLATION_TASK}`", ""]
    claims = _claimed_ordering(verdicts)
    claim_text = "; ".join(f"`{c}`" for c in claims) if claims else "(no comparison references for this task)"
    out += [f"Ordering the paper claims (final `{ABLATION_METRIC}`): {claim_text}.", ""]
    abl = df[(df["task"] == ABLATION_TASK) & df["status"].isin([s.value for s in USABLE])]
    # the ablation_* sweeps vary settings within a profile: they have their own tables (study_section)
    abl = abl[~abl["_profile"].astype(str).str.startswith("ablation_")]
    if abl.empty:
        return out + ["_No results for this task (outside the ablation_* sweeps)._", ""]
    keys = sorted({(p, _sort_key(w), w, str(a)) for p, w, a in zip(abl["_profile"], abl["width"], abl["activation"])})
    comp = verdicts[(verdicts["kind"] == "comparison") & (verdicts["task"] == ABLATION_TASK)] if len(verdicts) else None
    for profile, _, width, activation in keys:
        part = abl[(abl["_profile"] == profile) & (abl["width"] == width) & (abl["activation"] == activation)]
        rows = []
        for method, cells in sorted(part.groupby("method"), key=lambda kv: str(kv[0])):
            done = pd.to_numeric(cells.loc[cells["status"] == "done", ABLATION_METRIC], errors="coerce").dropna()
            n_div = int((cells["status"] == "diverged").sum())
            mean = float(done.mean()) if len(done) else math.nan
            sd = float(done.std(ddof=1)) if len(done) > 1 else math.nan
            verdict = DASH
            if comp is not None and len(comp):
                match = comp[(comp["versus"] == method) & (comp["profile"] == profile) & (comp["width"] == width)
                             & (comp["activation"] == activation)]
                if len(match):
                    verdict = ", ".join(f"{v} ({i})" for i, v in sorted(zip(match["id"], match["verdict"])))
            rows.append({"method": str(method), "mean": mean, "sd": sd, "n": len(done), "diverged": n_div,
                         "claim verdict": verdict})
        ranked = sorted(rows, key=lambda r: (r["diverged"] > 0, math.isnan(r["mean"]),
                                             r["mean"] if not math.isnan(r["mean"]) else 0.0, r["method"]))
        for i, r in enumerate(ranked, 1):
            r["rank"] = str(i)
        measured = " < ".join(
            f"{r['method']} ({'diverged' if r['diverged'] else _num(r['mean'])})" for r in ranked
        )
        table = [{
            "rank": r["rank"], "method": r["method"], f"final {ABLATION_METRIC} (mean)": _num(r["mean"]),
            "sd": _num(r["sd"], ".2g"), "n done": str(r["n"]), "diverged": str(r["diverged"]),
            "claim verdict": r["claim verdict"],
        } for r in ranked]
        out += [
            f"### profile `{profile}`, width {width}, {activation}",
            "",
            _table(table, ["rank", "method", f"final {ABLATION_METRIC} (mean)", "sd", "n done", "diverged",
                           "claim verdict"]),
            "",
            f"Measured ordering: {measured}.",
            "",
        ]
    return out


def _generalization_section(df: pd.DataFrame, verdicts: pd.DataFrame, out_dir: Path) -> list[str]:
    """Test accuracy against width per method, for each generalization task (true labels) and
    profile that ran: the data source and 2n/d, a table (mean ± sd over repetitions), a plot
    (``plots/generalization__<task>__<profile>__<activation>.png``, log2 width axis, error bars
    = sd, the curves plots' style) and the verdicts of that task and profile's reference rows."""
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = ("cifar10", "mnist", "cifar100", "restricted_imagenet")
    out = ["## Generalization: test accuracy against width", ""]
    gen = df[df["task"].isin(tasks) & df["status"].isin(USABLE)]
    checked = verdicts[verdicts["task"].isin(tasks)] if len(verdicts) else verdicts
    if gen.empty:
        return out + [f"_No results for the generalization tasks ({', '.join(f'`{t}`' for t in tasks)})._", ""]
    out += ["Final test accuracy, mean ± sd over repetitions (n done; diverged cells counted apart), per width "
            "and method; m·d/(2n) ≥ 1 is the paper's width condition.", ""]
    sources = gen["data_source"] if "data_source" in gen.columns else pd.Series([None] * len(gen), index=gen.index)
    for task, profile, activation in sorted({(str(t), p, str(a)) for t, p, a in
                                             zip(gen["task"], gen["_profile"], gen["activation"])}):
        part = gen[(gen["task"] == task) & (gen["_profile"] == profile) & (gen["activation"].astype(str) == activation)]
        methods = sorted({str(m) for m in part["method"]})
        points: dict[str, list[tuple[int, float, float]]] = {m: [] for m in methods}
        rows = []
        for width in sorted({int(w) for w in part["width"]}):
            cells = part[part["width"] == width]
            ratios = pd.to_numeric(cells["width_ratio"], errors="coerce").dropna()
            row = {"width": str(width), "m·d/(2n)": _ratio(ratios.median() if len(ratios) else None)}
            for method in methods:
                mine = cells[cells["method"] == method]
                acc = pd.to_numeric(mine.loc[mine["status"] == "done", "test_acc"], errors="coerce").dropna()
                n_div = int((mine["status"] == "diverged").sum())
                sd = float(acc.std(ddof=1)) if len(acc) > 1 else math.nan
                if len(acc):
                    points[method].append((width, float(acc.mean()), sd))
                text = f"{_num(acc.mean())} ± {_num(sd, '.2g')} (n={len(acc)})" if len(acc) else DASH
                row[method] = text + (f", {n_div} diverged" if n_div else "")
            rows.append(row)
        n, d = (pd.to_numeric(part[c], errors="coerce").median() for c in ("n", "d"))
        shape = DASH if _missing(n) or _missing(d) else f"n = {int(n):,}, d = {int(d):,}, 2n/d = {2 * n / d:.3g}"
        names = sorted({str(x) for x in sources[part.index] if not _missing(x)})
        plot = _slug("generalization", task, profile, activation) + ".png"
        (out_dir / "plots").mkdir(parents=True, exist_ok=True)
        others = sorted(set(methods) - set(_METHOD_COLORS))
        with matplotlib.style.context("default"):
            fig = Figure(figsize=(6.5, 4.2), dpi=100)
            FigureCanvasAgg(fig)
            ax = fig.subplots(1, 1)
            for method in methods:
                if points[method]:
                    ws, means, sds = zip(*points[method])
                    ax.errorbar(ws, means, yerr=[0.0 if math.isnan(x) else x for x in sds], lw=1.2, marker="o",
                                ms=4, capsize=3, color=_color(method, others), label=method)
            ax.set_xscale("log", base=2)
            ax.set_xticks([int(r["width"]) for r in rows], [r["width"] for r in rows])
            ax.set_xlabel("width m (hidden units)")
            ax.set_ylabel("final test accuracy (error bar: sd over repetitions)")
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[1]:  # no labelled artist: no legend (and no warning)
                ax.legend(fontsize=8)
            fig.suptitle(f"{task} · profile {profile} · {activation}: test accuracy against width", fontsize=10)
            fig.tight_layout()
            fig.savefig(out_dir / "plots" / plot, format="png", dpi=100, metadata={"Software": None})
        out += [f"### `{task}`, profile `{profile}`, {activation}", "",
                f"Data source: {'; '.join(names) if names else DASH}; {shape}.", "",
                _table(rows, ["width", "m·d/(2n)", *methods]), "",
                f"![{task} {profile} {activation}: test accuracy against width](plots/{plot})", ""]
        mine = checked[(checked["task"] == task) & (checked["profile"] == profile)] if len(checked) else checked
        vrows = []
        for _, r in mine.iterrows():
            lhs = r["method"] + (f" − {r['versus']}" if not _missing(r["versus"]) else "")
            tol = f" (tolerance {_num(r['tolerance'])})" if not _missing(r["tolerance"]) and r["tolerance"] else ""
            vrows.append({"id": r["id"], "width": _int(r["width"]) if not _missing(r["width"]) else "all",
                          "claim": f"{r['metric']}[{lhs}] {_OPS.get(str(r['direction']), r['direction'])} "
                                   f"{_num(r['reference'])}{tol}",
                          "ours": _ours(r), "verdict": r["verdict"], "note": r["note"] or ""})
        if vrows:
            out += [_table(vrows, ["id", "width", "claim", "ours", "verdict", "note"]), ""]
    idle = sorted({str(t) for t in checked["task"]} - {str(t) for t in gen["task"]}) if len(checked) else []
    if idle:
        out += ["No results for " + ", ".join(f"`{t}`" for t in idle) + ": their rows are SKIPPED (All verdicts).", ""]
    return out


def _verdicts_section(verdicts: pd.DataFrame) -> list[str]:
    out = ["## All verdicts", ""]
    if len(verdicts) == 0:
        return out + ["_No references were checked._", ""]
    rows = []
    for _, r in verdicts.iterrows():
        rows.append({
            "id": r["id"], "task": r["task"], "profile": r["profile"],
            "method": r["method"] + (f" vs {r['versus']}" if not _missing(r["versus"]) else ""),
            "width": _int(r["width"]) if not _missing(r["width"]) else "all",
            "activation": r["activation"] if not _missing(r["activation"]) else "all",
            "metric": r["metric"], "direction": r["direction"], "reference": _num(r["reference"]),
            "ours": _num(r["ours"]), "95% CI": _ci(r), "n": str(int(r["n"])),
            "difference": _num(r["difference"], "+.4g"), "tolerance": _num(r["tolerance"]),
            "verdict": r["verdict"], "note": r["note"] or "",
        })
    cols = ["id", "task", "profile", "method", "width", "activation", "metric", "direction", "reference", "ours",
            "95% CI", "n", "difference", "tolerance", "verdict", "note"]
    return out + [
        "For comparisons, `ours` is the mean per-repetition difference (method − versus) and `reference` the "
        "bound on it.",
        "",
        _table(rows, cols),
        "",
    ]


def _left_out_section(left_out: pd.DataFrame | None) -> list[str]:
    if left_out is None or left_out.empty:
        return []
    rows = [{"record": r["name"], "profile": _profile(r["profile"]), "why": r["why"], "detail": r["detail"]}
            for _, r in left_out.sort_values(["why", "name"], kind="mergesort").iterrows()]
    return ["## Records not scored", "",
            "Records of the checked tasks that no verdict used (docs/checks.md, \"Which results count\").", "",
            _table(rows, ["record", "profile", "why", "detail"]), ""]


def _cells_section(df: pd.DataFrame) -> list[str]:
    out = ["## Cells: the width condition", ""]
    if df.empty:
        return out + ["_No cells in the store._", ""]
    rows = []
    for _, r in df.iterrows():
        ratio = r["width_ratio"]
        rows.append({
            "cell": r["name"], "profile": r["_profile"], "status": r["status"], "m": _int(r["m"]), "n": _int(r["n"]),
            "d": _int(r["d"]), "k": _int(r["k"]), "m·d/(2n)": _ratio(ratio),
            "m ≥ 2n/d": DASH if _missing(ratio) else ("yes" if float(ratio) >= 1.0 else "no"),
        })
    out += [
        "m hidden units, n training samples, d input dimension, k outputs; the paper's width condition is "
        "m·d/(2n) ≥ 1 (fewer than n neurons suffice when d is large).",
        "",
        _table(rows, ["cell", "profile", "status", "m", "n", "d", "k", "m·d/(2n)", "m ≥ 2n/d"]),
        "",
    ]
    failed = df[df["status"] != Status.DONE.value]
    if not failed.empty:
        out += ["### Cells that did not finish", ""]
        out += [_table([{"cell": r["name"], "profile": r["_profile"], "status": r["status"], "reason": r["reason"]}
                        for _, r in failed.iterrows()], ["cell", "profile", "status", "reason"]), ""]
    return out


def _cost_section(df: pd.DataFrame, group_sizes: dict[str, Any]) -> list[str]:
    out = ["## Time and cost per cell", ""]
    if df.empty:
        return out + ["_No cells in the store._", ""]
    rows = []
    for _, r in df.iterrows():
        t, ep = r["train_time_s"], r["epochs"]
        eps = float(ep) / float(t) if not (_missing(t) or _missing(ep)) and float(t) > 0 else math.nan
        rows.append({
            "cell": r["name"], "profile": r["_profile"], "status": r["status"], "epochs": _int(ep),
            "train time (s)": _num(t, ".3g"), "epochs/s": _num(eps, ".3g"),
            "GFLOP": _num(float(r["flops"]) / 1e9 if not _missing(r["flops"]) else None, ".3g"),
            "group size": _int(group_sizes.get(str(r["cell_id"]))),
            "group TFLOP/s": _num(r["group_tflops_per_s"], ".3g"),
            "device": r["device_name"] if not _missing(r["device_name"]) else r["device"],
            "precision": r["precision"],
        })
    return out + [
        "Cells trained together in one fused group share its time: train time and epochs/s are the group's, and "
        "the achieved TFLOP/s is the group's (all its cells' FLOPs over its time).",
        "",
        _table(rows, ["cell", "profile", "status", "epochs", "train time (s)", "epochs/s", "GFLOP", "group size",
                      "group TFLOP/s", "device", "precision"]),
        "",
    ]


def _finite(xs: Iterable[Any]) -> list[float]:
    out = []
    for x in xs:
        try:
            v = float(x)
        except (TypeError, ValueError):
            v = math.nan
        out.append(v if math.isfinite(v) else math.nan)
    return out


def _color(method: str, others: list[str]) -> str:
    if method in _METHOD_COLORS:
        return _METHOD_COLORS[method]
    return _TAB10[others.index(method) % len(_TAB10)]


def _plot_group(path: Path, title: str, recs: list[Record]) -> None:
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def acc_of(rec):
        c = rec.curves or {}
        return bool(c.get("train_acc")) or any(v is not None for v in (c.get("test_acc") or []))

    has_acc = any(acc_of(r) for r in recs)
    others = sorted({r.method for r in recs} - set(_METHOD_COLORS))
    with matplotlib.style.context("default"):
        fig = Figure(figsize=(11 if has_acc else 6.5, 4.2), dpi=100)
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2) if has_acc else [fig.subplots(1, 1)]
        ax_loss = axes[0]
        positive = True
        methods_seen: dict[str, int] = {}
        for rec in recs:
            method = rec.method
            methods_seen[method] = methods_seen.get(method, 0) + 1
            label = method if methods_seen[method] == 1 else f"{method} ({rec.cell_id[:6]})"
            if rec.status == Status.DIVERGED:
                label += " [diverged]"
            color = _color(method, others)
            c = rec.curves or {}
            loss = _finite(c.get("train_loss") or [])
            epochs = list(c.get("epoch") or range(1, len(loss) + 1))[: len(loss)]
            if loss:
                positive = positive and all(v > 0 for v in loss if not math.isnan(v))
                ax_loss.plot(epochs, loss, color=color, lw=1.2, label=label)
                _envelope(ax_loss, c, "train_loss", epochs, color)
            if has_acc:
                ax_acc = axes[1]
                acc = _finite(c.get("train_acc") or [])
                if acc:
                    acc_epochs = list(c.get("epoch") or range(1, len(acc) + 1))[: len(acc)]
                    ax_acc.plot(acc_epochs, acc, color=color, lw=1.2, label=f"{label} train")
                    _envelope(ax_acc, c, "train_acc", acc_epochs, color)
                test = _finite(c.get("test_acc") or [])
                if test and not all(math.isnan(v) for v in test):
                    ax_acc.plot(list(c.get("eval_epoch") or [])[: len(test)], test, color=color, lw=1.2, ls="--",
                                label=f"{label} test")
        if positive and ax_loss.lines:
            ax_loss.set_yscale("log")
        ax_loss.set_xlabel("epoch")
        ax_loss.set_ylabel("train loss (running mean per epoch)")
        ax_loss.grid(True, alpha=0.3)
        if ax_loss.get_legend_handles_labels()[1]:
            ax_loss.legend(fontsize=8)
        if has_acc:
            axes[1].set_xlabel("epoch")
            axes[1].set_ylabel("accuracy (solid: train, dashed: test)")
            axes[1].set_ylim(-0.02, 1.02)
            axes[1].grid(True, alpha=0.3)
            if axes[1].get_legend_handles_labels()[1]:
                axes[1].legend(fontsize=7)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=100, metadata={"Software": None})


def _envelope(ax, curves: dict, name: str, epochs: list, color: str) -> None:
    """A thinned curve's envelope (its extremes between the kept points: a spike the kept points
    miss), as a band under its line."""
    low, high = curves.get(f"{name}:min"), curves.get(f"{name}:max")
    if low and high and len(low) == len(high) == len(epochs):
        ax.fill_between(epochs, _finite(low), _finite(high), color=color, alpha=0.3, lw=0)


def _curves_section(records: list[Record], out_dir: Path) -> list[str]:
    out = ["## Training curves", ""]
    groups: dict[tuple, list[Record]] = {}
    for rec in records:
        if rec.status not in USABLE or not rec.curves:
            continue
        cfg = rec.config
        key = (str(cfg.get("task")), _profile(rec.profile), cfg.get("width"), str(cfg.get("activation")),
               cfg.get("repetition"))
        groups.setdefault(key, []).append(rec)
    if not groups:
        return out + ["_No curves (no done or diverged cells)._", ""]
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    out += ["One plot per task, profile, width, activation and repetition; one line per method.", ""]
    if any(any(":" in k for k in (r.curves or {})) for recs in groups.values() for r in recs):
        out += ["Curves longer than 256 points are stored thinned (docs/runner.md, \"Curves\"); the shaded band is "
                "the full curve's range between the points drawn.", ""]
    current = None
    for key in sorted(groups, key=lambda k: tuple(_sort_key(x) for x in k)):
        task, profile, width, activation, rep = key
        recs = sorted(groups[key], key=lambda r: (r.method, r.cell_id))
        name = _slug(task, profile, f"w{width}", activation, f"rep{rep}") + ".png"
        _plot_group(plots / name, f"{task} · profile {profile} · width {width} · {activation} · repetition {rep}",
                    recs)
        head = (task, profile, width, activation)
        if head != current:
            out += [f"### `{task}`, profile `{profile}`, width {width}, {activation}", ""]
            current = head
        out += [f"Repetition {rep}:", "", f"![{task} {profile} width {width} {activation} rep {rep}](plots/{name})", ""]
    return out


def _provenance_section(records: list[Record]) -> list[str]:
    out = ["---", "", "## Provenance", ""]
    if not records:
        return out + ["_No records._", ""]
    tally: dict[tuple[str, str], int] = {}

    def add(field: str, value: str) -> None:
        tally[(field, value)] = tally.get((field, value), 0) + 1

    created = []
    jobs: set[str] = set()  # the SLURM jobs / Dask workers that wrote the records
    with_job = 0
    for rec in records:
        p = rec.provenance
        task = rec.task
        commit = p.get("git_commit")
        add("commit", DASH if commit is None else f"{commit}{' (dirty)' if p.get('git_dirty') else ''}")
        dev = p.get("device")
        name = p.get("device_name")
        add("device", f"{dev}{f' ({name})' if name else ''}")
        versions = [f"python {p.get('python')}", f"torch {p.get('torch')}"]
        if p.get("cuda"):
            versions.append(f"CUDA {p['cuda']}")
        if p.get("cudnn"):
            versions.append(f"cuDNN {p['cudnn']}")
        add("versions", ", ".join(versions))
        add("precision", f"{p.get('precision')}{', TF32 matmul' if p.get('tf32_matmul') else ''}")
        src = p.get("data_source")
        checksum = p.get("data_checksum")
        add("data source", f"{task}: {src if src is not None else DASH}"
            + (f" (checksum {checksum})" if checksum else ""))
        add("protocol", str(rec.protocol))
        add("executor", str(p.get("executor", DASH)))
        job = p.get("slurm_job") or _slurm_job(p) or p.get("dask_worker")
        if job:
            jobs.add(str(job))
            with_job += 1
        if p.get("created"):
            created.append(str(p["created"]))
    rows = [{"field": f, "value": v, "records": str(n)} for (f, v), n in sorted(tally.items())]
    if created:
        rows.append({"field": "created", "value": f"{min(created)} … {max(created)}", "records": str(len(created))})
    if jobs:
        listed = sorted(jobs)
        value = ", ".join(listed[:12]) + (f" and {len(listed) - 12} more" if len(listed) > 12 else "")
        rows.append({"field": f"cluster jobs / workers ({len(listed)})", "value": value, "records": str(with_job)})
    return out + [_table(rows, ["field", "value", "records"]), ""]


def _slurm_job(p: dict[str, Any]) -> str | None:
    """The SLURM job a record came from, as squeue names it (51_3 for an array task)."""
    if p.get("slurm_array_job_id") and p.get("slurm_array_task_id") is not None:
        return f"{p['slurm_array_job_id']}_{p['slurm_array_task_id']}"
    return p.get("slurm_job_id")


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def write_report(
    df: pd.DataFrame,
    records: list[Record],
    verdicts: pd.DataFrame,
    out_dir: str | Path,
    *,
    title: str = "bench_suite report",
    note_lines: Sequence[str] = (),
    left_out: pd.DataFrame | None = None,
) -> Path:
    """Write ``out_dir/report.md`` (and ``out_dir/plots/*.png``); return the markdown's path.

    ``df`` is ``ResultStore.to_dataframe()``, ``records`` ``ResultStore.records()``, ``verdicts``
    :func:`bench_suite.scoring.checks.run_checks`'s output. ``note_lines`` go right under the title
    (e.g. "CPU-scale results are not comparable with Table 3"). Deterministic: same inputs,
    same bytes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = _prepare_df(df)
    verd = _sorted_verdicts(verdicts)
    recs = sorted(records or [], key=lambda r: (r.name, r.cell_id))
    group_sizes = {r.cell_id: (r.timing or {}).get("group_size") for r in recs}
    plots = out_dir / "plots"
    manifest = out_dir / ".report-files"
    # stale plots of an earlier render would otherwise linger: remove those it wrote (its
    # manifest), never a file of the user's
    if manifest.is_file():
        for name in manifest.read_text().split():
            if "/" not in name and name.endswith(".png"):
                (plots / name).unlink(missing_ok=True)

    lines: list[str] = [f"# {title}", ""]
    for note in note_lines:
        lines += [f"> {note}", ""]
    n_cells = len(frame)
    status_counts = frame["status"].fillna("unknown").value_counts() if n_cells else pd.Series(dtype=int)
    status_text = ", ".join(f"{int(status_counts[s])} {s}" for s in sorted(status_counts.index)) or "none"
    lines += [f"**Cells:** {n_cells} ({status_text}).", ""]
    lines += _summary_section(verd)
    lines += _paper_values_section(verd)
    lines += _ablation_section(frame, verd)
    lines += _generalization_section(frame, verd, out_dir)
    lines += theory_section(frame, verd, out_dir, table=_table, color=_color, slug=_slug)
    lines += study_section(recs)  # the synthetic ablation study's tables (bench_suite/reporting/ablation.py)
    lines += _verdicts_section(verd)
    lines += _left_out_section(left_out)
    lines += _cells_section(frame)
    lines += _cost_section(frame, group_sizes)
    lines += _curves_section(recs, out_dir)
    lines += _provenance_section(recs)
    text = "\n".join(lines).rstrip("\n") + "\n"
    path = out_dir / "report.md"
    path.write_text(text, encoding="utf-8")
    written = sorted(p.name for p in plots.glob("*.png")) if plots.is_dir() else []
    manifest.write_text("".join(f"{name}\n" for name in written), encoding="utf-8")
    return path
