"""The kinds of check: one entry per kind in :data:`KINDS`, with its scorer and the reference fields
it takes (docs/checks.md, "Kinds of check"). Adding a kind is one :func:`register_kind` call, in
this module or in a plug-in (``examples/my_check_kind.py``); the reader of the reference files
(``references.py``) validates rows against the entry and ``checks.run_checks`` calls its scorer.

A scorer gets the reference row, the usable records of one cell group (one width x activation,
and one configuration unless the kind pools them; the records of every method the row names)
and the confidence level, and returns one verdict row (:func:`verdicts.verdict_row`). It reads
each record's value of the row through ``ref.column`` (the metric as the row's ``statistic``
reads it), so every kind honours ``statistic = "tail_median"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import pandas as pd

from .selection import mixed_data, per_repetition, provenance_fields
from .statistics import decide_every, decide_interval, decide_mean
from .verdicts import FAIL, INCONCLUSIVE, PASS, verdict_row

if TYPE_CHECKING:
    from .references import Reference

# the row fields whose presence depends on the kind (every kind takes tolerance, paper_value,
# statistic, aggregate, only, assumes, and the common fields)
KIND_FIELDS = ("value", "bound", "versus", "x")

OPERATORS = {"at_least": ">=", "at_most": "<=", "lower": "<", "higher": ">", "within": "within"}


@dataclass(frozen=True)
class CheckKind:
    """One kind of check.

    ``score(ref, cells, width, activation, confidence) -> dict`` (a verdict row);
    ``directions``: the directions a row may take (the first is the default when
    ``default_direction``); ``takes``: the fields of :data:`KIND_FIELDS` a row may give;
    ``needs``: those it must give; ``defaults``: values of taken fields a row may omit;
    ``validate(row, where)``: further checks of a raw row (raise ``ValueError`` with the reason);
    ``describe(ref)``: the row as one line; ``aggregates``: the ways the row may combine
    repetitions; ``pools_settings``: the scorer takes every configuration of the group at once
    (a fit across them) instead of one verdict per configuration; ``counts_repetitions``: the
    verdict's ``n`` counts repetitions, so fewer than the profile declares makes it partial."""

    name: str
    score: Callable[..., dict]
    directions: tuple[str, ...]
    describe: Callable[["Reference"], str]
    takes: frozenset = frozenset()
    needs: tuple[str, ...] = ()
    defaults: dict = field(default_factory=dict)
    default_direction: bool = False
    validate: Callable[[dict, str], None] | None = None
    aggregates: tuple[str, ...] = ("mean",)
    pools_settings: bool = False
    counts_repetitions: bool = True
    description: str = ""

    def methods(self, ref: "Reference") -> list[str]:
        """The methods a row of this kind reads: its method, and ``versus`` when it takes one."""
        return [ref.method] + ([ref.versus] if "versus" in self.takes and ref.versus else [])


KINDS: dict[str, CheckKind] = {}


def register_kind(kind: CheckKind, *, replace: bool = False) -> CheckKind:
    """Add ``kind`` to :data:`KINDS` (ValueError if the name is taken, unless ``replace``)."""
    if not replace and kind.name in KINDS and KINDS[kind.name] is not kind:
        raise ValueError(f"check kind {kind.name!r} is already registered")
    unknown = set(kind.takes) - set(KIND_FIELDS)
    if unknown or not set(kind.needs) <= set(kind.takes):
        raise ValueError(f"check kind {kind.name!r}: takes/needs must be among {list(KIND_FIELDS)}, needs within takes")
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> CheckKind:
    """The registered kind ``name``; KeyError naming the known ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown check kind {name!r}; known: {', '.join(KINDS)}") from None


# --------------------------------------------------------------------------------------------
# value and threshold: the metric of one method, against a number
# --------------------------------------------------------------------------------------------
def score_single(ref: "Reference", cells: pd.DataFrame, width, activation, confidence: float) -> dict:
    """The metric of ``ref.method`` per repetition against the row's acceptance interval: its mean
    with a t-interval (aggregate "mean") or each repetition (aggregate "every"). A diverged
    repetition is a measured failure: FAIL."""
    cells = cells[cells["method"] == ref.method]
    prov = provenance_fields(cells)
    mixed = mixed_data(cells)
    if mixed:
        return verdict_row(ref, width, activation, note=mixed, **prov)
    column = ref.column
    per_rep, notes = per_repetition(cells, column)
    diverged = [r for r, (s, _) in per_rep.items() if s == "diverged"]
    values = [v for r, (s, v) in per_rep.items() if s == "done" and not math.isnan(v)]
    not_recorded = [r for r, (s, v) in per_rep.items() if s == "done" and math.isnan(v)]
    if not_recorded:
        notes.append(f"{column} not recorded for repetition(s) {not_recorded}")
    if diverged:
        mean = math.fsum(values) / len(values) if values else math.nan
        reasons = sorted({str(r) for r in cells.loc[cells["status"] == "diverged", "reason"].dropna()})
        note = f"{len(diverged)} of {len(per_rep)} repetition(s) diverged ({diverged}): a measured failure"
        if reasons:
            note += f" [{reasons[0]}]"
        return verdict_row(ref, width, activation, ours=mean, n=len(per_rep), difference=mean - ref.target,
                           method_mean=mean, verdict=FAIL, note="; ".join([note] + notes), **prov)
    if not values:
        return verdict_row(ref, width, activation, note=f"metric {column} not recorded in the matching results",
                           **prov)
    if ref.aggregate == "every":
        done = {r: v for r, (s, v) in per_rep.items() if s == "done" and not math.isnan(v)}
        return verdict_row(ref, width, activation, **decide_every(done, ref.acceptance(), ref.target),
                           note_extra=notes, **prov)
    out = decide_mean(values, ref.acceptance(), ref.target, confidence)
    out["method_mean"] = out["ours"]
    out["note"] = "; ".join([out["note"]] + notes)
    return verdict_row(ref, width, activation, **out, **prov)


def _describe_value(ref: "Reference") -> str:
    paper = f" (paper {ref.paper_value:g})" if ref.paper_value not in (None, ref.target) else ""
    if ref.direction == "within":
        return f"{ref.metric} within {ref.target:g} ± {ref.tolerance:g}{paper}"
    sign = "-" if ref.direction == "at_least" else "+"
    tol = f" {sign} {ref.tolerance:g}" if ref.tolerance else ""
    return f"{ref.metric} {OPERATORS[ref.direction]} {ref.target:g}{tol}{paper}"


def _validate_value(row: dict, where: str) -> None:
    if row.get("value") is None and row.get("paper_value") is None:
        raise ValueError("a value row needs `value` (or `paper_value`: the paper's number, then also the centre)")
    if "tolerance" not in row:
        raise ValueError("a value row needs an explicit `tolerance`")


def _describe_threshold(ref: "Reference") -> str:
    tol = f" (tolerance {ref.tolerance:g})" if ref.tolerance else ""
    return f"{ref.metric} {OPERATORS[ref.direction]} {ref.target:g}{tol}"


# --------------------------------------------------------------------------------------------
# comparison: the paired per-repetition difference of two methods
# --------------------------------------------------------------------------------------------
def score_comparison(ref: "Reference", cells: pd.DataFrame, width, activation, confidence: float) -> dict:
    """The per-repetition difference ``metric[method] - metric[versus]``, paired by repetition
    (same data and batch order), against the row's acceptance interval. A repetition where
    ``method`` diverged fails the claim; one where only ``versus`` diverged is won by ``method``."""
    a, b = cells[cells["method"] == ref.method], cells[cells["method"] == ref.versus]
    prov = provenance_fields(a, b)
    mixed = mixed_data(pd.concat([a, b]))
    if mixed:
        return verdict_row(ref, width, activation, note=mixed, **prov)
    column = ref.column
    rep_a, notes_a = per_repetition(a, column)
    rep_b, notes_b = per_repetition(b, column)
    notes = [f"{ref.method}: {x}" for x in notes_a] + [f"{ref.versus}: {x}" for x in notes_b]
    common = sorted(set(rep_a) & set(rep_b))
    unpaired = sorted(set(rep_a) ^ set(rep_b))
    if unpaired:
        notes.append(f"repetition(s) {unpaired} have only one of the two methods: not paired, not counted")
    if not common:
        return verdict_row(ref, width, activation, note="; ".join(
            [f"no repetition has both {ref.method} and {ref.versus}"] + notes), **prov)
    a_div = [r for r in common if rep_a[r][0] == "diverged"]
    b_div = [r for r in common if rep_b[r][0] == "diverged" and r not in a_div]
    pairs = [r for r in common if r not in a_div and r not in b_div]
    not_recorded = [r for r in pairs if math.isnan(rep_a[r][1]) or math.isnan(rep_b[r][1])]
    if not_recorded:
        notes.append(f"{column} not recorded for repetition(s) {not_recorded}")
        pairs = [r for r in pairs if r not in not_recorded]
    diffs = [rep_a[r][1] - rep_b[r][1] for r in pairs]
    mean_a = math.fsum(rep_a[r][1] for r in pairs) / len(pairs) if pairs else math.nan
    mean_b = math.fsum(rep_b[r][1] for r in pairs) / len(pairs) if pairs else math.nan
    base = {"method_mean": mean_a, "versus_mean": mean_b, **prov}
    if a_div:  # the claim fails in those repetitions: n counts every paired repetition
        mean = math.fsum(diffs) / len(diffs) if diffs else math.nan
        return verdict_row(ref, width, activation, ours=mean, n=len(pairs) + len(a_div) + len(b_div),
                           difference=mean - ref.target, verdict=FAIL, note="; ".join(
                               [f"{ref.method} diverged in repetition(s) {a_div}: the claim fails there"] + notes),
                           **base)
    if b_div:
        notes.insert(0, f"{ref.versus} diverged in repetition(s) {b_div}: won by {ref.method}, outside the CI "
                        f"(n counts the {len(pairs)} repetition(s) where both trained)")
    if not diffs:
        if b_div:  # decided by those repetitions alone (no CI): n counts them
            return verdict_row(ref, width, activation, n=len(b_div), verdict=PASS, note="; ".join(notes), **base)
        return verdict_row(ref, width, activation, note="; ".join([f"metric {column} not recorded"] + notes),
                           **base)
    out = decide_mean(diffs, ref.acceptance(), ref.target, confidence)  # n = len(diffs): the CI's sample
    out["note"] = "; ".join([out["note"]] + notes)
    return verdict_row(ref, width, activation, **{**out, **base})


def _describe_comparison(ref: "Reference") -> str:
    tol = f" (tolerance {ref.tolerance:g})" if ref.tolerance else ""
    return f"{ref.metric}[{ref.method}] - {ref.metric}[{ref.versus}] {OPERATORS[ref.direction]} {ref.target:g}{tol}"


def _validate_comparison(row: dict, where: str) -> None:
    if row.get("versus") == row.get("method"):
        raise ValueError(f"a comparison needs two different methods, got {row.get('versus')!r} twice")


# --------------------------------------------------------------------------------------------
# slope: a log-log fit across the cells of a group
# --------------------------------------------------------------------------------------------
def score_slope(ref: "Reference", cells: pd.DataFrame, width, activation, confidence: float) -> dict:
    """The least-squares slope of log(metric) against log(x) over the cells (each repetition a
    point; theory.loglog_slope), its t-interval decided against the row like a mean."""
    from ..theory import loglog_slope

    cells = cells[cells["method"] == ref.method]
    prov = provenance_fields(cells)
    mixed = mixed_data(cells)
    if mixed:
        return verdict_row(ref, width, activation, note=mixed, **prov)
    done = cells[cells["status"] == "done"]
    xs = pd.to_numeric(done[ref.x], errors="coerce").tolist()
    ys = pd.to_numeric(done[ref.column], errors="coerce").tolist()
    fit = loglog_slope(xs, ys, confidence=confidence)
    where = f" (only: {', '.join(f'{c} {op} {b:g}' for c, op, b in ref.only)})" if ref.only else ""
    if fit["slope"] is None or fit["ci_low"] is None:
        return verdict_row(ref, width, activation, n=fit["n"], note=(
            f"{fit['n']} usable point(s){where} with {len({x for x in xs if x == x})} distinct {ref.x}: a slope "
            f"with an interval needs >= 3 points at >= 2 values of {ref.x} with a positive {ref.metric}"), **prov)
    slope, lo, hi = fit["slope"], fit["ci_low"], fit["ci_high"]
    out = {"ours": slope, "ci_low": lo, "ci_high": hi, "n": fit["n"], "difference": slope - ref.target,
           "method_mean": slope}
    pct = int(round(confidence * 100))
    verdict = decide_interval(lo, hi, ref.acceptance())
    note = {PASS: f"{pct}% CI of the slope inside the acceptance interval",
            FAIL: f"{pct}% CI of the slope outside the acceptance interval",
            INCONCLUSIVE: f"{pct}% CI of the slope [{lo:.3g}, {hi:.3g}] straddles an edge"}[verdict]
    note += f"; log-log fit over {fit['n']} cells{where}, r = {fit['rvalue']:.3g}"
    if fit.get("dropped"):
        note += f"; {fit['dropped']} point(s) not positive/finite, left out"
    return verdict_row(ref, width, activation, verdict=verdict, note=note, **out, **prov)


def _describe_slope(ref: "Reference") -> str:
    tail = f" ± {ref.tolerance:g}" if ref.direction == "within" else ""
    return f"slope of log {ref.metric} against log {ref.x} {OPERATORS[ref.direction]} {ref.target:g}{tail}"


def _validate_slope(row: dict, where: str) -> None:
    if row.get("direction") == "within":
        if row.get("value") is None or row.get("bound") is not None:
            raise ValueError("a slope row with direction within takes `value` (and `tolerance`)")
    elif row.get("value") is not None:
        raise ValueError("a slope row takes `bound`, not `value`")
    elif row.get("bound") is None:
        raise ValueError("a slope row needs `bound`")


register_kind(CheckKind(
    "value", score_single, ("within", "at_least", "at_most"), _describe_value, takes=frozenset({"value"}),
    default_direction=True, validate=_validate_value, aggregates=("mean", "every"),
    description="one method's metric against a number: within value ± tolerance, or at least / at most "
                "value ∓ tolerance (one-sided claims)"))
register_kind(CheckKind(
    "threshold", score_single, ("at_least", "at_most"), _describe_threshold, takes=frozenset({"bound"}),
    needs=("bound",), aggregates=("mean", "every"),
    description="one method's metric against a bound (at least / at most, loosened by tolerance)"))
register_kind(CheckKind(
    "comparison", score_comparison, ("lower", "higher", "at_least", "at_most"), _describe_comparison,
    takes=frozenset({"bound", "versus"}), needs=("versus",), defaults={"bound": 0.0}, validate=_validate_comparison,
    description="the per-repetition difference metric[method] - metric[versus] against bound (default 0)"))
register_kind(CheckKind(
    "slope", score_slope, ("at_least", "at_most", "within"), _describe_slope,
    takes=frozenset({"value", "bound", "x"}), needs=("x",), validate=_validate_slope, pools_settings=True,
    counts_repetitions=False,
    description="the log-log slope of metric against x over the group's cells (every repetition a point)"))


# --------------------------------------------------------------------------------------------
# kkt_bound: Theorem 2 as a bound over the instances (cells) of a group
# --------------------------------------------------------------------------------------------
def score_kkt_bound(ref: "Reference", cells: pd.DataFrame, width, activation, confidence: float) -> dict:
    """Theorem 2 as a bound over the instances (cells) of the group, each judged on its own radii
    (``theory.kkt_bound.bound_verdict``, slack = the row's ``bound``): ``ours`` is the largest
    growth of loss/eps^2 from the larger- to the smaller-eps half, ``n`` the instances; the note
    counts the non-degenerate KKT points above the float64 floor and, when there are none, says
    the eps^2 rate is untestable ("stated, not fitted")."""
    from ..core.records import KKT_BOUND_SUMMARY
    from ..theory.kkt_bound import bound_verdict

    cells = cells[cells["method"] == ref.method]
    prov = provenance_fields(cells)
    done = cells[(cells["status"] == "done") & cells["kkt_bound_starts"].notna()] \
        if "kkt_bound_starts" in cells.columns else cells.iloc[0:0]
    if done.empty:
        return verdict_row(ref, width, activation, note="no record here carries Theorem 2's KKT study (the theory "
                                                        "section's kkt_bound part: the kkt_bound task's cells)", **prov)
    instances = [{k: (None if pd.isna(row[f"kkt_bound_{k}"]) else row[f"kkt_bound_{k}"]) for k in KKT_BOUND_SUMMARY}
                 for _, row in done.iterrows()]
    out = bound_verdict(instances, slack=ref.target)
    growth = pd.to_numeric(done["kkt_bound_growth"], errors="coerce").max() if "kkt_bound_growth" in done else math.nan
    return verdict_row(ref, width, activation, verdict=out["verdict"], ours=growth, n=len(instances),
                       note=out["note"], **prov)


def _describe_kkt_bound(ref: "Reference") -> str:
    return (f"per instance, max loss/eps^2 of non-degenerate KKT points above the float64 floor on the smaller-eps "
            f"half <= {ref.target:g} x that on the larger-eps half")


register_kind(CheckKind(
    "kkt_bound", score_kkt_bound, ("at_most",), _describe_kkt_bound, takes=frozenset({"bound"}), needs=("bound",),
    pools_settings=True, counts_repetitions=False,
    description="Theorem 2 as a bound (the kkt_bound task's records): C estimated on the larger-eps half of each "
                "instance's radii, tested on the smaller (bound: the slack, 2); bench_suite/theory/kkt_bound.py"))


__all__ = ["CheckKind", "KINDS", "KIND_FIELDS", "OPERATORS", "get_kind", "register_kind", "score_comparison",
           "score_kkt_bound", "score_single", "score_slope"]
