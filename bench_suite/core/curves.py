"""A cell's curves: which epochs index each curve, the storage rule that thins long curves, and
the tail statistics of the per-epoch curves that a record keeps in ``final``. Pure Python (no
torch, numpy or pyarrow): ``records`` and ``check`` import it.

A cell's curves (``CellResult.curves``, ``Record.curves``) form two families, each a list of
x values and the metrics measured at them:

- per epoch: ``epoch`` (1, 2, ..., epochs run) and :data:`EPOCH_CURVES` (running means over
  each epoch's batches);
- per exact evaluation: ``eval_epoch`` (the epochs evaluated at) and every other curve
  (``eval_train_loss``, ``test_acc``, ``dist_w0``, ``wall_time``, ...).

The thinning rule (:func:`thin_indices`, docs/design.md "Curves"): a family of at most
:data:`MAX_POINTS` points is kept whole; a longer one keeps the union of
``MAX_POINTS // 2`` linearly spaced and ``MAX_POINTS // 2`` log-spaced indices, the first and
the last among them. It depends on the length alone, computed in exact integer arithmetic, so
cells that ran the same epochs keep the same x values on every machine (repetitions can be
averaged point by point), and thinning a thinned curve changes nothing. A thinned family also
keeps, for each of its curves, the **envelope** ``<curve>:min`` / ``<curve>:max``: the extremes
of the full curve over the points each kept point stands for (those after the previous kept
index, up to its own), so a spike between kept points (an oscillating loss) is still seen.
"""

from __future__ import annotations

import math
from typing import Any

EPOCH_X = "epoch"
EVAL_X = "eval_epoch"
# the curves indexed by curves["epoch"]; every other curve is indexed by curves["eval_epoch"]
EPOCH_CURVES = ("train_loss", "train_acc")
MAX_POINTS = 256
RULE = "linear+log"

# a thinned curve's envelope: "<curve>:min" and "<curve>:max", indexed as the curve
ENVELOPE = ("min", "max")
# what a schema-3 record says about its stored curves (``Record.curves_points``)
THINNING = {"rule": RULE, "max_points": MAX_POINTS, "envelope": list(ENVELOPE)}

# the tail statistics of the per-epoch curves (``final["<curve>_tail_median"]``)
TAIL_METRICS = tuple(f"{name}_tail_median" for name in EPOCH_CURVES)


def base_curve(name: str) -> str:
    """The curve a stored name belongs to: ``train_loss`` for ``train_loss`` and ``train_loss:max``."""
    return name.split(":", 1)[0]


def x_key(curve: str) -> str:
    """The x values a curve (or its envelope) is indexed by: ``epoch`` for :data:`EPOCH_CURVES`,
    else ``eval_epoch``."""
    return EPOCH_X if base_curve(curve) in EPOCH_CURVES else EVAL_X


def thin_indices(length: int, max_points: int = MAX_POINTS) -> list[int]:
    """The indices (0-based, increasing, unique) that the thinning rule keeps of ``length`` points.

    ``length <= max_points``: all of them. Otherwise, with ``h = max_points // 2`` and
    ``q = h - 1``: the linear indices ``round(k (L - 1) / q)`` and the log-spaced ones
    ``round(L^(k/q)) - 1`` for ``k = 0..q`` (rounding half up), which include 0 and L - 1; at most
    ``max_points`` in all. Raises ``ValueError`` for a negative length or ``max_points < 4``."""
    if length < 0:
        raise ValueError(f"a curve's length is >= 0, got {length}")
    if max_points < 4:
        raise ValueError(f"max_points must be >= 4, got {max_points}")
    if length <= max_points:
        return list(range(length))
    q = max_points // 2 - 1
    kept = {(2 * k * (length - 1) + q) // (2 * q) for k in range(q + 1)}  # floor(k (L-1)/q + 1/2)
    kept.update(_round_power(length, k, q) - 1 for k in range(q + 1))
    kept.update((0, length - 1))
    return sorted(kept)


def _round_power(base: int, k: int, q: int) -> int:
    """floor(base^(k/q) + 1/2), exactly: the largest n >= 1 with (2n - 1)^q <= 2^q base^k."""
    target = (2 ** q) * base ** k
    n = max(1, int(round(base ** (k / q))))  # a float estimate, then corrected exactly
    while n > 1 and (2 * n - 1) ** q > target:
        n -= 1
    while (2 * n + 1) ** q <= target:
        n += 1
    return n


def thin_curves(curves: dict[str, list]) -> dict[str, list]:
    """``curves`` as stored: each family thinned by :func:`thin_indices` of its length, x values
    as ints, values as floats (None kept: a value not defined, e.g. the test accuracy of a task
    without a test split); a family that was thinned gets each curve's envelope
    (:func:`envelope`). A family of no points is left out. Applying it twice changes nothing.

    Raises ``ValueError`` (one line) for a curve whose length differs from its x values' or a
    curve without its x values: a trainer's bug, not data."""
    out: dict[str, list] = {}
    for x in (EPOCH_X, EVAL_X):
        names = sorted(k for k in curves if k not in (EPOCH_X, EVAL_X) and x_key(k) == x)
        xs = curves.get(x)
        if xs is None:
            if any(len(curves[k]) for k in names):
                raise ValueError(f"curves.{names[0]} has no curves.{x} (its x values)")
            continue
        for name in names:
            if len(curves[name]) != len(xs):
                raise ValueError(f"curves.{name} has {len(curves[name])} values for {len(xs)} curves.{x}")
        if not xs:
            continue
        keep = thin_indices(len(xs))
        thinned = len(keep) < len(xs)
        if thinned and any(":" in name for name in names):
            raise ValueError(f"curves.{next(n for n in names if ':' in n)} is an envelope of stored curves: thin the "
                             f"full curves")
        out[x] = [int(xs[i]) for i in keep]
        for name in names:
            values = curves[name]
            out[name] = [None if values[i] is None else float(values[i]) for i in keep]
            if thinned:
                out[f"{name}:min"], out[f"{name}:max"] = envelope(values, keep)
    return out


def envelope(values: list, keep: list[int]) -> tuple[list, list]:
    """The minimum and maximum of ``values`` over the points each kept index stands for: for
    ``keep[j]``, the indices after ``keep[j - 1]`` up to ``keep[j]`` (for ``keep[0]``, those up to
    it). NaN where that stretch holds a NaN, None where it holds a missing value; infinities are
    extremes like any other."""
    lows, highs, start = [], [], 0
    for k in keep:
        stretch = values[start:k + 1]
        start = k + 1
        if any(v is None for v in stretch):
            lows.append(None), highs.append(None)
        elif any(math.isnan(v) for v in stretch):
            lows.append(math.nan), highs.append(math.nan)
        else:
            lows.append(float(min(stretch))), highs.append(float(max(stretch)))
    return lows, highs


def tail_window(epochs_run: int) -> int:
    """How many of the last epochs the tail statistics read: a quarter of the epochs run,
    rounded up (1 epoch of 1 to 4, 500 of 2000); 0 when none ran."""
    return (max(0, epochs_run) + 3) // 4


def tail_median(values: list) -> float | None:
    """The median of ``values`` over their last quarter (:func:`tail_window`), or None for an
    empty curve. NaN when the window holds a non-finite value or a missing one: a curve that
    blew up has no tail level, and must not get one from its finite remnants (as a diverged
    cell's final loss is not finite either)."""
    window = values[len(values) - tail_window(len(values)):] if values else []
    if not window:
        return None
    if any(v is None or not math.isfinite(v) for v in window):
        return math.nan
    ordered = sorted(float(v) for v in window)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def tail_statistics(curves: dict[str, Any]) -> dict[str, float | None]:
    """``{"<curve>_tail_median": ...}`` for each per-epoch curve in ``curves`` (:func:`tail_median`
    of the full, unthinned curve: the epochs run, fewer than asked for if the cell diverged)."""
    return {f"{name}_tail_median": tail_median(list(curves[name])) for name in EPOCH_CURVES if name in curves}


__all__ = ["ENVELOPE", "EPOCH_CURVES", "EPOCH_X", "EVAL_X", "MAX_POINTS", "RULE", "TAIL_METRICS", "THINNING",
           "base_curve", "envelope", "tail_median", "tail_statistics", "tail_window", "thin_curves", "thin_indices",
           "x_key"]
