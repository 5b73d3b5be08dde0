"""The statistics of a verdict: Student-t quantiles and intervals (``scipy.stats``), how many seeds
would decide an undecided row, and the decision of a sample against a row's acceptance interval
(docs/checks.md, "Verdicts"). No pandas, no records: numbers in, a verdict's fields out.
"""

from __future__ import annotations

import math
from typing import Iterable

from .verdicts import FAIL, INCONCLUSIVE, PASS

EDGE_EPS = 1e-12  # measured values this close to an edge count as on it (float noise in edges)
_MAX_SEEDS = 1_000_000


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (``df = inf``: the
    normal), from ``scipy.stats``. ValueError for p outside (0, 1) or df <= 0."""
    from scipy import stats

    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    return float(stats.norm.ppf(p) if math.isinf(df) else stats.t.ppf(p, df))


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (``scipy.stats``)."""
    from scipy import stats

    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    return float(stats.norm.cdf(t) if math.isinf(df) else stats.t.cdf(t, df))


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, sample sd, ci_low, ci_high) of ``values`` with a two-sided Student-t interval at
    ``confidence`` (``scipy.stats.t.interval`` on the standard error). One value: sd and the
    interval are NaN (no interval from one seed); none: all NaN."""
    from scipy import stats

    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = math.fsum(xs) / n
    if n == 1:
        return mean, math.nan, math.nan, math.nan
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    if sd == 0:
        return mean, 0.0, mean, mean
    lo, hi = stats.t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return mean, sd, float(lo), float(hi)


def seeds_to_decide(sd: float, distance: float, n: int, confidence: float = 0.95) -> int | None:
    """The smallest n' > n whose CI half-width t(n'-1) * sd / sqrt(n') is below ``distance``
    (the mean's distance to the nearest edge), assuming the observed mean and spread hold.
    None if the mean sits on the edge or more than a million seeds would be needed."""
    if not distance > 0 or not math.isfinite(sd):
        return None
    if sd == 0:
        return n + 1
    q = 0.5 + confidence / 2.0

    def decides(k: int) -> bool:
        return t_quantile(q, k - 1) * sd / math.sqrt(k) < distance

    # the half-width is above z * sd / sqrt(n'), so n' >= (z sd / distance)^2 is a lower bound
    bound = (t_quantile(q, math.inf) * sd / distance) ** 2
    if bound > _MAX_SEEDS:
        return None
    lo = max(n + 1, int(bound))
    if decides(lo):
        return lo
    hi = lo
    while not decides(hi):
        if hi > _MAX_SEEDS:
            return None
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # lo does not decide, hi does
        mid = (lo + hi) // 2
        if decides(mid):
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------------------------------
# a sample against an acceptance interval (low, high, low_closed, high_closed)
# --------------------------------------------------------------------------------------------
def below(x: float, acceptance: tuple[float, float, bool, bool]) -> bool:
    """x misses the low edge of the acceptance interval."""
    low, _, low_closed, _ = acceptance
    return not (x >= low - EDGE_EPS if low_closed else x > low + EDGE_EPS)


def above(x: float, acceptance: tuple[float, float, bool, bool]) -> bool:
    """x misses the high edge of the acceptance interval."""
    _, high, _, high_closed = acceptance
    return not (x <= high + EDGE_EPS if high_closed else x < high - EDGE_EPS)


def inside(x: float, acceptance: tuple[float, float, bool, bool]) -> bool:
    return not (below(x, acceptance) or above(x, acceptance))


def decide_interval(lo: float, hi: float, acceptance) -> str:
    """PASS if [lo, hi] lies in the acceptance interval, FAIL if no part of it does, else
    INCONCLUSIVE."""
    if inside(lo, acceptance) and inside(hi, acceptance):
        return PASS
    if below(hi, acceptance) or above(lo, acceptance):
        return FAIL
    return INCONCLUSIVE


def decide_mean(values: list[float], acceptance, target: float, confidence: float) -> dict:
    """The verdict fields (ours, ci_low, ci_high, n, difference, verdict, note) of a sample's
    mean and its t-interval against ``acceptance``; ``target`` is the row's number (difference =
    mean - target). An infinite value is a value (a loss that blew up), not a missing one: the
    mean is then infinite and decides. One value: no interval, the value decides (``n=1, no CI``)."""
    n = len(values)
    infinite = [v for v in values if math.isinf(v)]
    if infinite:
        mean = math.fsum(values) / n if len({math.copysign(1, v) for v in infinite}) == 1 else math.nan
        out = {"ours": mean, "ci_low": math.nan, "ci_high": math.nan, "n": n, "difference": mean - target}
        out["verdict"] = PASS if (not math.isnan(mean) and inside(mean, acceptance)) else FAIL
        out["note"] = f"{len(infinite)} of {n} value(s) infinite: the mean is {mean}, no CI; decided on it"
        return out
    mean, sd, lo, hi = mean_ci(values, confidence)
    out = {"ours": mean, "ci_low": lo, "ci_high": hi, "n": n, "difference": mean - target}
    pct = int(round(confidence * 100))
    if n == 1:
        out["verdict"] = PASS if inside(mean, acceptance) else FAIL
        out["note"] = "n=1, no CI: decided on the single value"
        return out
    out["verdict"] = decide_interval(lo, hi, acceptance)
    if out["verdict"] == PASS:
        out["note"] = f"{pct}% CI inside the acceptance interval"
    elif out["verdict"] == FAIL:
        out["note"] = f"{pct}% CI outside the acceptance interval"
    else:
        out["note"] = _undecided_note(mean, sd, lo, hi, n, acceptance, confidence)
    return out


def _undecided_note(mean, sd, lo, hi, n, acceptance, confidence) -> str:
    low, high, _, _ = acceptance
    edges = [e for e in (low, high) if math.isfinite(e)]
    edge = min(edges, key=lambda e: abs(mean - e))
    distance = abs(mean - edge)
    more = seeds_to_decide(sd, distance, n, confidence)
    side = "inside" if inside(mean, acceptance) else "outside"
    if more is None:
        hint = "the mean sits on the edge: more seeds are unlikely to decide it" if distance <= EDGE_EPS else (
            "more than a million seeds would be needed at the observed spread"
        )
    else:
        hint = f"about n={more} seeds ({more - n} more) would likely decide it, from the observed spread (sd {sd:.3g})"
    return f"CI [{lo:.4g}, {hi:.4g}] straddles the edge {edge:.4g} (mean {mean:.4g}, {distance:.3g} {side}); {hint}"


def decide_every(values: dict[int, float], acceptance, target: float) -> dict:
    """Aggregate "every": each repetition (each cell) must lie in ``acceptance``; no interval
    (ci_low / ci_high hold the min / max). ``values``: repetition -> value."""
    failing = sorted(r for r, v in values.items() if not inside(v, acceptance))
    mean = math.fsum(values.values()) / len(values)
    out = {"ours": mean, "n": len(values), "difference": mean - target, "method_mean": mean,
           "ci_low": min(values.values()), "ci_high": max(values.values())}
    if failing:
        shown = ", ".join(f"{r}: {values[r]:.4g}" for r in failing[:5]) + (", ..." if len(failing) > 5 else "")
        return {**out, "verdict": FAIL,
                "note": f"every repetition must satisfy it: {len(failing)} of {len(values)} do not ({shown}); "
                        f"ci_low/ci_high are the min/max"}
    return {**out, "verdict": PASS, "note": f"every repetition satisfies it ({len(values)} of {len(values)}); "
                                           f"ci_low/ci_high are the min/max"}


__all__ = ["EDGE_EPS", "above", "below", "decide_every", "decide_interval", "decide_mean", "inside", "mean_ci",
           "seeds_to_decide", "t_cdf", "t_quantile"]
