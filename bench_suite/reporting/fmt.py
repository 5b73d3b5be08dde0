"""Formatting shared by the report's writers: numbers, markdown tables, names, colours, and the
scrubbing of machine paths. Pure pandas, no matplotlib."""

from __future__ import annotations

import math
import os
import re
from typing import Any, Sequence

import pandas as pd

from ..scoring.references import METRICS

DASH = "—"
OPS = {"lower": "<", "higher": ">", "at_most": "≤", "at_least": "≥", "within": "within"}
# fixed colours, so a method keeps its colour across figures (others: the rest of tab10 by sorted name)
METHOD_COLORS = {
    "mli_paired_pgd": "#d62728", "sgd": "#1f77b4", "constraint_only": "#2ca02c", "no_mirroring": "#9467bd",
}
_TAB10 = ["#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
# line styles and markers in the same fixed order: lines that coincide stay told apart
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def missing(x: Any) -> bool:
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def num(x: Any, fmt: str = ".4g") -> str:
    if missing(x):
        return DASH
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return format(x, fmt)


def integer(x: Any) -> str:
    return DASH if missing(x) else str(int(x))


def text(x: Any) -> str:
    """A table cell: one line, pipes escaped."""
    if missing(x):
        return DASH
    return str(x).replace("\r", " ").replace("\n", " ").replace("|", "\\|")


def md_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A markdown (pipe) table via pandas/tabulate; every cell rendered by :func:`text`."""
    if not rows:
        return "_none_"
    frame = pd.DataFrame([{c: text(r.get(c)) for c in columns} for r in rows], columns=list(columns))
    return frame.to_markdown(index=False, disable_numparse=True)


def profile_name(p: Any) -> str:
    return "(command line)" if missing(p) else str(p)


def sort_key(v: Any) -> tuple:
    """Sort mixed None / numbers / strings deterministically (None last)."""
    if missing(v):
        return (2, 0.0, "")
    if isinstance(v, (int, float)):
        return (0, float(v), "")
    return (1, 0.0, str(v))


def slug(*parts: Any) -> str:
    """A file-name-safe name of ``parts``."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", "__".join(str(p) for p in parts))


def metric_order(metric: str) -> tuple:
    return (METRICS.index(metric), "") if metric in METRICS else (len(METRICS), metric)


def ratio(x: Any) -> str:
    """m·d/(2n) without exponents: 3 significant digits below 100, whole numbers above."""
    if missing(x):
        return DASH
    return f"{float(x):.0f}" if abs(float(x)) >= 100 else f"{float(x):.3g}"


def ours(row: Any) -> str:
    """``mean ± half-width (n=…)`` of a verdict row, or ``mean (n=1, no CI)``."""
    if missing(row["ours"]):
        return DASH
    n = int(row["n"])
    if missing(row["ci_low"]) or missing(row["ci_high"]):
        return f"{num(row['ours'])} (n={n}, no CI)"
    half = (float(row["ci_high"]) - float(row["ci_low"])) / 2.0
    return f"{num(row['ours'])} ± {num(half, '.2g')} (n={n})"


def color(method: str, methods: Sequence[str]) -> str:
    """A method's colour: fixed for the paper's four, else by its place among ``methods``."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    others = sorted(set(methods) - set(METHOD_COLORS))
    return _TAB10[others.index(method) % len(_TAB10)] if method in others else _TAB10[0]


def style(method: str, methods: Sequence[str]) -> tuple[str, str]:
    """A method's (line style, marker): distinct among ``methods`` (sorted), so lines that
    coincide are still told apart."""
    i = sorted(set(methods)).index(method) if method in methods else 0
    return LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)]


# absolute paths: POSIX (/a/b), home (~/a) and Windows (C:\a); a report never shows them
_ABS_PATH = re.compile(r"(?<![\w./~-])(?:~/|[A-Za-z]:[\\/]|/)(?:[^\s'\"`,;:()\[\]<>|]+)")


def scrub_paths(value: Any) -> str:
    """``value`` as text with every absolute path replaced by ``…/<last part>``: a committed
    report names no machine's folders (the store is shown relative to the report instead)."""
    def short(m: re.Match) -> str:
        path = m.group(0).rstrip(".")
        tail = m.group(0)[len(path):]
        last = re.split(r"[\\/]", path.rstrip("\\/"))[-1]
        return f"…/{last}{tail}" if last and last != "~" else f"…{tail}"

    return _ABS_PATH.sub(short, str(value))


def relative_to(path: Any, start: Any) -> str:
    """``path`` relative to the folder ``start`` (POSIX separators): how a report names its store."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(start))
    return rel.replace(os.sep, "/")


def display_path(path: Any) -> str:
    """How a report names a folder the user gave: as given when relative, relative to the
    working folder when inside it, else ``…/<name>`` (never a machine's absolute path)."""
    p = os.path.expanduser(str(path))
    if not os.path.isabs(p):
        return os.path.normpath(p).replace(os.sep, "/")
    rel = os.path.relpath(os.path.abspath(p), os.getcwd())
    if not rel.startswith(".."):
        return rel.replace(os.sep, "/")
    return f"…/{os.path.basename(os.path.normpath(p))}"


def plain(text_: str) -> str:
    """Markdown emphasis and code marks removed (for a figure title or an HTML attribute)."""
    return re.sub(r"[`*]", "", text_)


__all__ = ["DASH", "LINESTYLES", "MARKERS", "METHOD_COLORS", "OPS", "color", "display_path", "integer", "md_table",
           "metric_order", "missing", "num", "ours", "plain", "profile_name", "ratio", "relative_to", "scrub_paths",
           "slug", "sort_key", "style", "text"]
