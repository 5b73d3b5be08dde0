"""Theorem 2 as the bound it is (issue 21, ask 4): many adversarial starts per radius, each solved
to a certified KKT point (``kkt_solver``), summarized per instance for the record, and the
bound's verdict. docs/theory.md, "Theorem 2 as a bound", has the argument and the verdict.

An *instance* is one data set and MLI init (n, d, m, activation, seed); its record part
(``kkt_study.measure``, the ``kkt_bound`` part of the record's theory section, computed for the
``kkt_bound`` task's cells) holds per radius eps: the starts, the certified KKT points, the
uncertified starts, the KKT points on the boundary, the non-degenerate KKT points above their
float64 floor and the largest loss / eps^2 among them, and the degenerate ones (a dead pair)
apart; and the instance's ``summary`` for the check (:func:`summarize`).

The rule (:func:`bound_verdict`), fixed before any data: l is the paper's 1/2 sum of squares, eps
absolute. C is estimated on the larger-eps half of an instance's radii (C_hat = the largest
loss / eps^2 of its non-degenerate KKT points above the floor) and tested on the smaller half
(R_small the same there): FAIL if each half has >= ``min_points`` such points and R_small >
``slack`` x C_hat (an eps-rate below 2 grows the ratio by 10x a decade: slack 2 is far from
both); INCONCLUSIVE if some such points exist but fewer in a half, or more than
``max_not_certified`` of the starts were not certified (certified counterexamples FAIL
regardless); else PASS. With no such point at all the bound holds trivially and the statement
is "no bad KKT points near MLI; the eps^2 rate is untestable on these instances": stated, not
fitted. Degenerate KKT points (v_j = 0 and G(W)^T y = 0, saddles at loss 1/2 ||y||^2 at any
width) are counted and reported, not scored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# the per-radius lists of an instance's record part (kkt_study.measure)
PER_EPS = ("starts", "kkt_points", "not_certified", "unresolved", "active", "above_floor", "degenerate", "max_loss",
           "max_floor", "max_loss_over_eps2", "max_ratio_above", "max_degenerate_loss")


def summarize(part: dict[str, Any]) -> dict[str, Any]:
    """An instance's numbers for the check, from its per-radius lists: totals, and on each half
    of the radii (the smaller ``small``, the larger ``large``; the middle one goes to ``large``
    for an odd count) the non-degenerate KKT points above the floor and their largest loss /
    eps^2 (``r_small``, and ``c_hat``: C estimated on the larger half)."""
    order = sorted(range(len(part["eps"])), key=lambda i: part["eps"][i])
    small, large = order[: len(order) // 2], order[len(order) // 2:]

    def total(key, idx=order):
        return int(sum(part[key][i] for i in idx))

    return {
        "starts": total("starts"), "kkt_points": total("kkt_points"), "not_certified": total("not_certified"),
        "unresolved": total("unresolved"), "active": total("active"), "above_floor": total("above_floor"),
        "degenerate": total("degenerate"), "above_small": total("above_floor", small),
        "above_large": total("above_floor", large),
        "r_small": _max(part["max_ratio_above"][i] for i in small),
        "c_hat": _max(part["max_ratio_above"][i] for i in large),
        "max_loss": _max(part["max_loss"]), "max_floor": _max(part["max_floor"]),
        "max_loss_over_eps2": _max(part["max_loss_over_eps2"]),
        "max_degenerate_loss": _max(part["max_degenerate_loss"]),
    }


# ------------------------------------------------------------------------------------------
# The verdict
# ------------------------------------------------------------------------------------------
SLACK = 2.0
MIN_POINTS = 3
MAX_NOT_CERTIFIED = 0.05


def instance_verdict(s: dict[str, Any], *, slack: float = SLACK, min_points: int = MIN_POINTS,
                     max_not_certified: float = MAX_NOT_CERTIFIED) -> tuple[str, str]:
    """(PASS | FAIL | INCONCLUSIVE, one line) for one instance's :func:`summarize` (module
    docstring: the rule)."""
    starts = max(int(s["starts"]), 1)
    many_nc = s["not_certified"] / starts > max_not_certified
    nc = f"; {s['not_certified']}/{s['starts']} starts not certified" if s["not_certified"] else ""
    deg = (f"; {s['degenerate']} degenerate KKT point(s) (a dead pair, loss up to {s['max_degenerate_loss']:.3g}) "
           f"reported apart" if s["degenerate"] else "")
    above = int(s["above_small"]) + int(s["above_large"])
    if s["above_small"] >= min_points and s["above_large"] >= min_points:
        ok = s["r_small"] <= slack * s["c_hat"]
        word = "FAIL" if not ok else ("INCONCLUSIVE" if many_nc else "PASS")
        text = (f"max loss/eps^2 on the smaller-eps half {s['r_small']:.3g} vs {slack:g} x C_hat = "
                f"{slack * s['c_hat']:.3g} (C_hat from the larger-eps half)")
    elif above:
        word = "INCONCLUSIVE"
        text = (f"{above} non-degenerate KKT point(s) above the float64 floor ({s['above_small']} on the smaller-eps "
                f"half, {s['above_large']} on the larger), too few to test the rate (>= {min_points} a half)")
    else:
        word = "INCONCLUSIVE" if many_nc else "PASS"
        text = (f"no bad KKT points near MLI: all {int(s['kkt_points']) - int(s['degenerate'])} non-degenerate KKT "
                f"points at the float64 floor (max loss {_fmt(s['max_loss'])}); the eps^2 rate is untestable")
    return word, text + deg + nc


def bound_verdict(instances: Sequence[dict[str, Any]], *, slack: float = SLACK, min_points: int = MIN_POINTS,
                  max_not_certified: float = MAX_NOT_CERTIFIED) -> dict[str, Any]:
    """The verdict over instances (their :func:`summarize`): FAIL if any instance FAILs, else
    INCONCLUSIVE if any is, else PASS; ``note`` counts them and states the finding. When no
    instance has a non-degenerate KKT point above its float64 floor the note says "no bad KKT
    points near MLI; the eps^2 rate is untestable on these instances". Also ``above_floor``
    (the count of such points, the number the row reports), ``kkt_points``, ``starts``,
    ``not_certified``, ``degenerate``, ``max_ratio`` (the largest loss / eps^2 of those points,
    None without one) and ``words`` (each instance's)."""
    if not instances:
        return {"verdict": "SKIPPED", "note": "no instance", "above_floor": 0, "kkt_points": 0, "starts": 0,
                "not_certified": 0, "degenerate": 0, "max_ratio": None, "words": []}
    judged = [instance_verdict(s, slack=slack, min_points=min_points, max_not_certified=max_not_certified)
              for s in instances]
    words = [w for w, _ in judged]
    verdict = "FAIL" if "FAIL" in words else "INCONCLUSIVE" if "INCONCLUSIVE" in words else "PASS"
    totals = {k: int(sum(int(s[k]) for s in instances)) for k in ("above_floor", "kkt_points", "starts",
                                                                  "not_certified", "degenerate")}
    ratios = [s[k] for s in instances for k in ("r_small", "c_hat") if s.get(k) is not None]
    counts = ", ".join(f"{words.count(w)} {w}" for w in ("PASS", "FAIL", "INCONCLUSIVE") if w in words)
    if totals["above_floor"] == 0 and verdict == "PASS":
        note = (f"no bad KKT points near MLI; the eps^2 rate is untestable on these instances: all "
                f"{totals['kkt_points'] - totals['degenerate']} non-degenerate certified KKT points of "
                f"{len(instances)} instance(s) ({totals['starts']} starts) are at their float64 floor")
    else:
        note = (f"{totals['above_floor']} non-degenerate KKT point(s) above the float64 floor over "
                f"{len(instances)} instance(s) ({counts})")
        worst = next((t for w, t in judged if w == verdict), "")
        note += f"; e.g. {worst}" if worst else ""
    if totals["degenerate"]:
        note += f"; {totals['degenerate']} degenerate KKT point(s) (dead pairs) reported apart"
    if totals["not_certified"]:
        note += f"; {totals['not_certified']}/{totals['starts']} starts not certified"
    return {"verdict": verdict, "note": note, **totals, "max_ratio": max(ratios) if ratios else None, "words": words}


def _max(values: Iterable[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return max(vals) if vals else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
