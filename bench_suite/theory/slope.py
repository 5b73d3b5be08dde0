"""The fitted exponent of final loss against eps (:func:`loglog_slope`): a descriptive
statistic of the eps sweep; Theorem 2 is an upper bound, scored by ``kkt_bound``."""

from __future__ import annotations

import math
from typing import Any, Sequence


def loglog_slope(eps: Sequence[float], loss: Sequence[float], *, confidence: float = 0.95) -> dict[str, Any]:
    """Least-squares fit log(loss) = a + b log(eps) over the points given (pool repetitions:
    one point per cell), with the slope's standard error from ``scipy.stats.linregress`` and a
    two-sided Student-t interval with n - 2 degrees of freedom (``scipy.stats.t``).

    Points with a non-finite or non-positive loss or eps cannot be logged: they are dropped and
    counted in ``dropped``. Returns ``slope``, ``intercept``, ``stderr``, ``ci_low``,
    ``ci_high``, ``confidence``, ``n`` (points used), ``rvalue``, ``dropped``; the interval is
    None with fewer than 3 points or fewer than two distinct eps (no residual degrees of freedom),
    and the slope too with fewer than 2 distinct eps.

    Reading it against O(eps^2): an upper bound loss <= C eps^2 as eps -> 0 is contradicted by a
    slope below 2 over a range where the loss is a KKT point's (check ``kkt_residual``), not by
    a slope above 2."""
    from scipy import stats

    pairs = [(float(e), float(l_)) for e, l_ in zip(eps, loss)
             if _positive_finite(e) and _positive_finite(l_)]
    dropped = len(list(eps)) - len(pairs) if hasattr(eps, "__len__") else None
    out: dict[str, Any] = {"slope": None, "intercept": None, "stderr": None, "ci_low": None, "ci_high": None,
                           "confidence": confidence, "n": len(pairs), "rvalue": None, "dropped": dropped}
    if len({e for e, _ in pairs}) < 2:
        return out
    fit = stats.linregress([math.log(e) for e, _ in pairs], [math.log(l_) for _, l_ in pairs])
    out.update(slope=float(fit.slope), intercept=float(fit.intercept), rvalue=float(fit.rvalue))
    if len(pairs) >= 3:
        half = float(stats.t.ppf(0.5 + confidence / 2, len(pairs) - 2)) * float(fit.stderr)
        out.update(stderr=float(fit.stderr), ci_low=float(fit.slope) - half, ci_high=float(fit.slope) + half)
    return out


def _positive_finite(value: Any) -> bool:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(f) and f > 0

