"""Figures: matplotlib (Agg canvas, no pyplot) drawn the same way for the markdown summary, the
HTML page and a paper (``--figure-format svg|pdf|png``).

Deterministic: the default style, no clock (no ``Date``/``CreationDate`` metadata), the SVG ids
salted with the figure's name (unique on a page that inlines many), text kept as text in SVG
(small files; fonts from the viewer). Curves are aggregated over repetitions by default: a
mean line, a band for the range over repetitions, and a lighter band for the envelope that a
thinned curve keeps between its points (``<curve>:min`` / ``<curve>:max``: the extremes the
kept points miss, e.g. a loss spike).
"""

from __future__ import annotations

import io
import math
import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from . import fmt

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure as MplFigure

    from ..core.records import Record

FORMATS = ("svg", "pdf", "png")
BAND_ALPHA = 0.25  # the range over repetitions
ENVELOPE_ALPHA = 0.10  # the envelope between kept points: lighter, it is a bound, not data points
_RC = {"svg.fonttype": "none", "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"], "figure.dpi": 100,
       "savefig.dpi": 100, "axes.titlesize": 9, "legend.fontsize": 7,
       "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7}


@contextmanager
def _style(salt: str):
    import matplotlib
    import matplotlib.style

    with matplotlib.style.context("default"), matplotlib.rc_context({**_RC, "svg.hashsalt": salt}):
        yield


def new(ncols: int = 1, *, nrows: int = 1, width: float | None = None,
        height: float | None = None) -> tuple["MplFigure", list["Axes"]]:
    """A figure with ``nrows`` x ``ncols`` axes (row by row in the list; no pyplot: nothing
    global is kept)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width or 4.2 * ncols + 0.6, height or 3.6 * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def finish(fig: "MplFigure", title: str, *, tight: bool = True) -> "MplFigure":
    """Grid, legends (only where something is labelled), the title, and a tight layout (or,
    ``tight=False``, fixed margins: a layout pass less, for the many training-curve figures)."""
    for ax in fig.axes:
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    if tight:
        fig.tight_layout()
    else:
        fig.subplots_adjust(left=0.09, right=0.98, bottom=0.13, top=0.84, wspace=0.22)
    return fig


def render(make, fmt_: str, *, salt: str) -> bytes:
    """Draw (``make()`` -> matplotlib Figure) and save as ``fmt_`` (svg, pdf or png); the bytes.
    Same inputs, same bytes."""
    if fmt_ not in FORMATS:
        raise ValueError(f"figure format {fmt_!r}: choose one of {', '.join(FORMATS)}")
    with _style(salt):
        fig = make()
        buf = io.BytesIO()
        metadata = {"svg": {"Date": None, "Creator": None}, "pdf": {"CreationDate": None, "Creator": None,
                                                                    "Producer": None},
                    "png": {"Software": None}}[fmt_]
        fig.savefig(buf, format=fmt_, metadata=metadata)
        fig.clear()
    return compact_svg(buf.getvalue()) if fmt_ == "svg" else buf.getvalue()


_GEOMETRY = re.compile(r'( (?:d|x|y|width|height|transform)="[^"]*")')
_DECIMALS = re.compile(r"(-?\d+\.\d)\d+")
_REPEAT = re.compile(r"(L (\S+ \S+) )(?:L \2 )+")


def compact_svg(data: bytes) -> bytes:
    """Coordinates rounded to 0.1 pt (below what a screen shows), indentation, runs of spaces
    and repeated path points dropped: about half of matplotlib's bytes, the same picture."""
    def geometry(m: re.Match) -> str:
        value = re.sub(r"\s+", " ", _DECIMALS.sub(r"\1", m.group(1)))
        return _REPEAT.sub(r"\1", value)

    text = re.sub(r"\n[ \t]+", "\n", _GEOMETRY.sub(geometry, data.decode("utf-8")))
    return _USES.sub(_shared_style, text).encode("utf-8")


# a group of markers: <g ...> then <use .../> lines, each with its style
_USES = re.compile(r'(<g(?: clip-path="[^"]*")?)>\n((?:<use [^>]*/>\n)+)(</g>)')
_USE_STYLE = re.compile(r' style="([^"]*)"/>')


def _shared_style(m: re.Match) -> str:
    """The markers' common style moved to their group (inherited: the same picture, one copy)."""
    uses = m.group(2).splitlines()
    styles = {s.group(1) for s in (_USE_STYLE.search(u) for u in uses) if s}
    if len(uses) < 2 or len(styles) != 1 or any(_USE_STYLE.search(u) is None for u in uses):
        return m.group(0)
    style = styles.pop()
    body = "".join(_USE_STYLE.sub("/>", u) + "\n" for u in uses)
    return f'{m.group(1)} style="{style}">\n{body}{m.group(3)}'


def svg_inline(data: bytes) -> str:
    """An SVG file's text without its XML prolog and DOCTYPE, to inline in HTML."""
    text = data.decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


# --------------------------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------------------------
def finite(xs: Iterable[Any]) -> list[float]:
    out = []
    for x in xs:
        try:
            v = float(x)
        except (TypeError, ValueError):
            v = math.nan
        out.append(v if math.isfinite(v) else math.nan)
    return out


def aggregate(curves: Sequence[dict], name: str) -> dict[str, list[float]] | None:
    """Curve ``name`` over repetitions (one curves dict each), point by point on the union of
    their x values: ``x``, ``mean``, ``low``/``high`` (range over the repetitions that have the
    point), ``env_low``/``env_high`` (the envelope between kept points, where stored; else the
    range), ``n`` (repetitions at the point). None when no repetition has the curve."""
    from ..core.curves import x_key

    by_x: dict[float, list[tuple[float, float, float]]] = {}
    for c in curves:
        values = finite(c.get(name) or [])
        if not values:
            continue
        xs = list(c.get(x_key(name)) or range(1, len(values) + 1))[: len(values)]
        lo = finite(c.get(f"{name}:min") or [])
        hi = finite(c.get(f"{name}:max") or [])
        has_env = len(lo) == len(hi) == len(values)
        for i, (x, v) in enumerate(zip(xs, values)):
            if x is None:
                continue
            e_lo = lo[i] if has_env and not math.isnan(lo[i]) else v
            e_hi = hi[i] if has_env and not math.isnan(hi[i]) else v
            by_x.setdefault(float(x), []).append((v, e_lo, e_hi))
    if not by_x:
        return None
    out: dict[str, list[float]] = {k: [] for k in ("x", "mean", "low", "high", "env_low", "env_high", "n")}
    for x in sorted(by_x):
        pts = [p for p in by_x[x] if not math.isnan(p[0])]
        vals = [p[0] for p in pts]
        out["x"].append(x)
        out["n"].append(float(len(vals)))
        out["mean"].append(sum(vals) / len(vals) if vals else math.nan)
        out["low"].append(min(vals) if vals else math.nan)
        out["high"].append(max(vals) if vals else math.nan)
        out["env_low"].append(min((p[1] for p in pts if not math.isnan(p[1])), default=math.nan))
        out["env_high"].append(max((p[2] for p in pts if not math.isnan(p[2])), default=math.nan))
    return out


def thin(agg: dict[str, list[float]], max_points: int = 120) -> dict[str, list[float]]:
    """An aggregate (:func:`aggregate`) merged into at most ``max_points`` bins of consecutive
    points for drawing: the mean of the means, the extremes of the bands (so a band never
    shrinks), the last x of each bin."""
    size = len(agg["x"])
    if size <= max_points:
        return agg
    step = math.ceil(size / max_points)
    out: dict[str, list[float]] = {k: [] for k in agg}
    for start in range(0, size, step):
        sl = slice(start, min(start + step, size))
        means = [v for v in agg["mean"][sl] if not math.isnan(v)]
        out["x"].append(agg["x"][sl][-1])
        out["n"].append(max(agg["n"][sl]))
        out["mean"].append(sum(means) / len(means) if means else math.nan)
        for key, pick in (("low", min), ("env_low", min), ("high", max), ("env_high", max)):
            vals = [v for v in agg[key][sl] if not math.isnan(v)]
            out[key].append(pick(vals) if vals else math.nan)
    return out


def coinciding(series: dict[str, Sequence[float]], *, rtol: float = 1e-9) -> list[list[str]]:
    """Groups (of two or more) of names whose values are identical point by point (within
    ``rtol``): lines that would hide each other, to be said in the caption."""
    names = sorted(series)
    groups: list[list[str]] = []
    seen: set[str] = set()
    for i, a in enumerate(names):
        if a in seen or not len(series[a]):
            continue
        same = [a]
        for b in names[i + 1:]:
            if b in seen or len(series[b]) != len(series[a]):
                continue
            if all((math.isnan(x) and math.isnan(y)) or abs(x - y) <= rtol * max(abs(x), abs(y), 1e-300)
                   for x, y in zip(finite(series[a]), finite(series[b]))):
                same.append(b)
        if len(same) > 1:
            groups.append(same)
            seen.update(same)
    return groups


def coincide_note(groups: list[list[str]], what: str = "lines") -> str:
    """A caption sentence naming the coinciding groups, or ''."""
    if not groups:
        return ""
    parts = "; ".join(" and ".join(g) for g in groups)
    return f" Identical {what} (drawn on top of each other, told apart by marker and line style): {parts}."


# --------------------------------------------------------------------------------------------
# training curves of one group (task, profile, width, activation): the methods overlaid
# --------------------------------------------------------------------------------------------
def _has_accuracy(records: Sequence["Record"]) -> bool:
    for r in records:
        c = r.curves or {}
        if any(not math.isnan(v) for v in finite(c.get("train_acc") or [])):
            return True
        if any(not math.isnan(v) for v in finite(c.get("test_acc") or [])):
            return True
    return False


def _settings(record: "Record") -> list[str]:
    """The ``key=value`` parts of a record's name beyond method, width, activation and
    repetition (the settings a profile or the command line added)."""
    name = record.name
    inner = name[name.find("[") + 1: name.rfind("]")] if "[" in name else ""
    return [p for p in inner.split(",") if p and p.split("=", 1)[0] not in ("method", "width", "activation", "rep")]


def series_labels(records: Sequence["Record"]) -> tuple[dict[str, str], list[str]]:
    """(cell id -> series label, common settings): what tells a record's line apart within a
    group of records, the method and the settings that differ among the group
    (``mli_paired_pgd, eps=0.3``); the settings every record shares are returned apart (for
    the title). Repetitions of one setting share a label."""
    parts = {r.cell_id: _settings(r) for r in records}
    common = sorted(set.intersection(*(set(p) for p in parts.values()))) if parts else []
    labels = {r.cell_id: ", ".join([r.method, *(p for p in parts[r.cell_id] if p not in common)]) for r in records}
    return labels, common


def curves_figure(records: Sequence["Record"], title: str, *, per_repetition: bool = False,
                  linear: bool = False) -> "MplFigure":
    """Training loss against epochs (log scale where positive; ``linear``: linear scale) and,
    for a task with labels, accuracy (solid: train, dashed: test); one series per method and
    setting (:func:`series_labels`), each with its colour (the method's), line style and marker.
    Default: the mean over repetitions, the range over repetitions as a band and the envelope
    between kept points as a lighter band; ``per_repetition``: one thin line per repetition."""
    from ..core.curves import x_key

    label_of, common = series_labels(records)
    labels = sorted(set(label_of.values()))
    methods = sorted({r.method for r in records})
    acc = _has_accuracy(records)
    fig, axes = new(2 if acc else 1, width=10.0 if acc else 6.0)
    ax_loss = axes[0]
    for label in labels:
        mine = sorted((r for r in records if label_of[r.cell_id] == label),
                      key=lambda r: r.config.get("repetition") or 0)
        col = fmt.color(mine[0].method, methods)
        ls, marker = fmt.style(label, labels)
        curves = [r.curves or {} for r in mine]
        diverged = sum(1 for r in mine if r.status.value == "diverged")
        shown = f"{label} (n={len(mine)}{f', {diverged} diverged' if diverged else ''})"
        panels = [(ax_loss, "train_loss", ls, "")]
        if acc:
            panels += [(axes[1], "train_acc", "-", " train"), (axes[1], "test_acc", "--", " test")]
        for ax, name, line_style, tag in panels:
            if per_repetition:
                for j, c in enumerate(curves):
                    ys = finite(c.get(name) or [])
                    if not ys or all(math.isnan(v) for v in ys):
                        continue
                    xs = list(c.get(x_key(name)) or range(1, len(ys) + 1))[: len(ys)]
                    ax.plot(xs, ys, color=col, lw=0.8, ls=line_style, alpha=0.8,
                            label=(shown + tag) if j == 0 else None)
                continue
            agg = aggregate(curves, name)
            agg = thin(agg) if agg is not None else None
            if agg is None or all(math.isnan(v) for v in agg["mean"]):
                continue
            every = max(1, len(agg["x"]) // 8)
            ax.plot(agg["x"], agg["mean"], color=col, lw=1.3, ls=line_style, marker=marker, markevery=every, ms=3.5,
                    label=shown + tag)
            if len(curves) > 1:
                ax.fill_between(agg["x"], agg["low"], agg["high"], color=col, alpha=BAND_ALPHA, lw=0)
            if agg["env_low"] != agg["low"] or agg["env_high"] != agg["high"]:
                ax.fill_between(agg["x"], agg["env_low"], agg["env_high"], color=col, alpha=ENVELOPE_ALPHA, lw=0)
    positive = all(v > 0 for line in ax_loss.get_lines() for v in line.get_ydata() if not math.isnan(v))
    log = ax_loss.get_lines() and positive and not linear
    if log:
        ax_loss.set_yscale("log")
    ax_loss.set_title(f"train loss ({'log' if log else 'linear'} scale)")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("train loss (running mean per epoch)")
    if acc:
        axes[1].set_title("accuracy (solid: train, dashed: test)")
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("accuracy")
        axes[1].set_ylim(-0.02, 1.02)
    return finish(fig, title + (f" · {', '.join(common)}" if common else ""), tight=False)


def points(ax: "Axes", xs: Sequence[float], ys: Sequence[float], color: str) -> None:
    """Each repetition as a small hollow dot (under the mean)."""
    ax.plot(xs, ys, ls="none", marker="o", ms=3, mfc="none", mec=color, mew=0.6, alpha=0.7, zorder=1)


def mean_line(ax: "Axes", groups: dict[float, list[float]], *, color: str, ls: str = "-", marker: str = "o",
              label: str | None = None, band: bool = True, dots: bool = True) -> list[float]:
    """x -> values over repetitions: the mean line, the range as a band, each value as a dot.
    Returns the means (in x order)."""
    xs = sorted(groups)
    vals = [[v for v in finite(groups[x]) if not math.isnan(v)] for x in xs]
    keep = [(x, v) for x, v in zip(xs, vals) if v]
    if not keep:
        return []
    xs = [x for x, _ in keep]
    means = [sum(v) / len(v) for _, v in keep]
    ax.plot(xs, means, color=color, ls=ls, marker=marker, ms=4, lw=1.3, label=label, zorder=3)
    if band and any(len(v) > 1 for _, v in keep):
        ax.fill_between(xs, [min(v) for _, v in keep], [max(v) for _, v in keep], color=color, alpha=BAND_ALPHA,
                        lw=0, zorder=2)
    if dots:
        points(ax, [x for x, v in keep for _ in v], [y for _, v in keep for y in v], color)
    return means


def heatmap(ax: "Axes", xs: Sequence[Any], ys: Sequence[Any], values: Sequence[Sequence[float]], *,
            xlabel: str, ylabel: str, title: str, vmin: float | None = None, vmax: float | None = None,
            log: bool = True, annotate: bool = True):
    """A grid of ``values[i][j]`` (row ``ys[i]``, column ``xs[j]``), log colour scale where all
    positive; NaN (diverged or absent) drawn grey and written "div"/"—". Returns the image."""
    import numpy as np
    from matplotlib.colors import LogNorm, Normalize

    arr = np.array([[math.nan if v is None else v for v in row] for row in values], dtype=float)
    good = arr[np.isfinite(arr)]
    use_log = log and good.size > 0 and bool((good > 0).all())
    lo = vmin if vmin is not None else (float(good.min()) if good.size else 1.0)
    hi = vmax if vmax is not None else (float(good.max()) if good.size else 1.0)
    if hi <= lo:
        hi = lo * 1.0001 + 1e-12
    norm = LogNorm(vmin=lo, vmax=hi) if use_log else Normalize(vmin=lo, vmax=hi)
    cmap = _cmap()
    image = ax.imshow(np.ma.masked_invalid(arr), cmap=cmap, norm=norm, aspect="auto", origin="lower")
    ax.set_xticks(range(len(xs)), [_tick(x) for x in xs], rotation=45 if len(xs) > 4 else 0)
    ax.set_yticks(range(len(ys)), [_tick(y) for y in ys])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if annotate and arr.size <= 64:
        for i in range(arr.shape[0]):
            for j in range(arr.shape[1]):
                v = arr[i, j]
                dark = math.isfinite(v) and float(norm(v)) < 0.4  # viridis is dark at its low end
                ax.text(j, i, "div" if math.isinf(values[i][j] or 0.0) else ("—" if math.isnan(v) else f"{v:.2g}"),
                        ha="center", va="center", fontsize=6, color="white" if dark else "black")
    return image


def _cmap():
    import matplotlib

    cmap = matplotlib.colormaps["viridis"].copy()
    cmap.set_bad("#d0d0d0")
    return cmap


def _tick(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


__all__ = ["BAND_ALPHA", "ENVELOPE_ALPHA", "FORMATS", "aggregate", "coincide_note", "coinciding", "curves_figure",
           "series_labels", "thin",
           "finish", "finite", "heatmap", "mean_line", "new", "points", "render", "svg_inline"]
