"""Scoring: the store's results table + reference rows -> one verdict per reference row and cell group.

No training code here: :func:`run_checks` takes the DataFrame that ``ResultStore.to_dataframe()``
returns (or :func:`~bench_suite.scoring.selection.select`'s ``scored`` frame) and the rows of
:func:`~bench_suite.scoring.references.load_references`, groups the records of each row by
(width, activation) and configuration, and hands each group to the scorer of the row's kind
(:data:`~bench_suite.scoring.kinds.KINDS`). Then, for every kind alike (docs/checks.md):

- a row scored on another statistic than the final value is also scored on the final value,
  into the ``final_*`` columns;
- a group outside the assumptions the row declares (``assumes``) is OUT_OF_SCOPE;
- a group with fewer repetitions than its profile declares is never a plain PASS or FAIL: it
  is INCONCLUSIVE, the note naming the missing repetitions and what the partial sample says;
- each row gets its outcome for the exit code (a known deviation is decided per reference row).

The job of each neighbour: ``statistics`` (t intervals, decisions), ``selection`` (which records
count), ``kinds`` (one scorer per kind), ``verdicts`` (the table, outcomes, exit code, saving),
``scope`` (the theorems' assumptions).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import pandas as pd

from . import scope
from .kinds import KINDS
from .references import Reference
from .selection import (  # describe_left_out, explain_skips, select, LEFT_OUT_COLUMNS: the former module's names
    LEFT_OUT_COLUMNS,
    USABLE_STATUSES,
    admitted,
    axis_values,
    describe_left_out,
    explain_skips,
    only_text,
    prepare,
    repetitions_present,
    select,
    setting_groups,
    skip_reason,
)
from .statistics import mean_ci, seeds_to_decide, t_cdf, t_quantile  # the former module's names
from .verdicts import (
    FAIL,
    INCONCLUSIVE,
    OUT_OF_SCOPE,
    PASS,
    RESULT_COLUMNS,
    SKIPPED,
    VERDICT_COLUMNS,
    VERDICTS,
    add_note,
    as_frame,
    exit_code,
    mark_outcomes,
    save_verdicts,
    summary,
    verdict_row,
)


def run_checks(df: pd.DataFrame | None, references: Iterable[Reference], *, confidence: float = 0.95) -> pd.DataFrame:
    """Score the results in ``df`` against ``references``: one row per reference row and
    (width, activation) group (and configuration), columns ``VERDICT_COLUMNS``, in reference
    order then by width and activation. ``df`` is :func:`~bench_suite.scoring.selection.select`'s
    ``scored`` frame (rows are scored for their ``scoring_profile``, and a group is partial when
    it has fewer repetitions than ``declared_repetitions``), or any results table (then each row's
    own ``profile``, and no repetition count is declared)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    df = prepare(df)
    rows: list[dict] = []
    for ref in references:
        rows.extend(_score_reference(ref, df, confidence))
    mark_outcomes(rows)
    return as_frame(rows)


def _score_reference(ref: Reference, df: pd.DataFrame, confidence: float) -> list[dict]:
    kind = KINDS[ref.kind]
    methods = kind.methods(ref)
    eligible = df[(df["task"] == ref.task) & (df["scoring_profile"] == ref.profile) & (df["protocol"] == ref.protocol)
                  & df["method"].isin(methods) & df["status"].isin(USABLE_STATUSES)]
    before_only = eligible
    eligible = admitted(eligible, ref)
    if ref.only and eligible.empty and not before_only.empty:
        return [verdict_row(ref, None, None, note=(
            f"{len(before_only)} record(s) match the row but none meets its `only` conditions ({only_text(ref)}): "
            f"nothing to score"))]
    if ref.widths is None and ref.activations is None and eligible.empty:
        return [verdict_row(ref, None, None, note=skip_reason(ref, df, methods, None, None))]
    rows = []
    for width, activation in _groups(ref, eligible):
        cell = eligible
        if width is not None:
            cell = cell[cell["width"] == width]
        if activation is not None:
            cell = cell[cell["activation"] == activation]
        if cell[cell["method"] == ref.method].empty and ref.only:  # say when the row's own conditions left nothing
            pre = before_only[(before_only["method"] == ref.method)
                              & ((before_only["width"] == width) if width is not None else True)
                              & ((before_only["activation"] == activation) if activation is not None else True)]
            if not pre.empty:
                rows.append(verdict_row(ref, width, activation, note=(
                    f"{len(pre)} record(s) here, none meets the row's `only` conditions ({only_text(ref)}): nothing "
                    f"to score")))
                continue
        if any(cell[cell["method"] == m].empty for m in methods):
            rows.append(verdict_row(ref, width, activation, note=skip_reason(ref, df, methods, width, activation)))
            continue
        # records of different configurations are never pooled as repetitions (unless the kind fits across them)
        parts = [("", cell)] if kind.pools_settings else setting_groups(cell)
        for setting, sub in parts:
            lacking = [m for m in methods if sub[sub["method"] == m].empty]
            if lacking:
                rows.append(verdict_row(ref, width, activation, setting=setting,
                                        note=f"no results for {lacking[0]} at this setting ({setting})"))
                continue
            row = {**kind.score(ref, sub, width, activation, confidence), "setting": setting}
            rows.append(_finish(row, ref, sub, width, activation, confidence))
    return rows


def _groups(ref: Reference, eligible: pd.DataFrame) -> list[tuple]:
    """The (width, activation) groups of a row: its listed widths x activations, or, for an axis
    it omits, every value with results."""
    if ref.widths is not None and ref.activations is not None:
        return [(w, a) for w in ref.widths for a in ref.activations]
    groups: list[tuple] = []
    if ref.widths is not None:
        for w in ref.widths:
            acts = axis_values(eligible[eligible["width"] == w], "activation")
            groups.extend((w, a) for a in acts) if acts else groups.append((w, None))
        return groups
    if ref.activations is not None:
        for a in ref.activations:
            ws = axis_values(eligible[eligible["activation"] == a], "width")
            groups.extend((w, a) for w in ws) if ws else groups.append((None, a))
        return groups
    return sorted({(int(w), str(a)) for w, a in zip(eligible["width"], eligible["activation"])})


def _finish(row: dict, ref: Reference, cells: pd.DataFrame, width, activation, confidence: float) -> dict:
    """What every kind's verdict gets alike: the scope of the row's assumptions, the repetitions
    its profile declares, and the final-value result beside another statistic."""
    kind = KINDS[ref.kind]
    if row["verdict"] != SKIPPED:
        outside = scope.out_of_scope(ref.assumes, cells)
        if outside:
            row["scope"] = outside
            add_note(row, f"{outside}: not a check of it (measured: {row['verdict']})", first=True)
            row["verdict"] = OUT_OF_SCOPE
        elif kind.counts_repetitions:
            _mark_partial(row, ref, cells)
    if ref.statistic != "final":
        plain = dataclasses.replace(ref, statistic="final")
        final = _finish(kind.score(plain, cells, width, activation, confidence), plain, cells, width, activation,
                        confidence)
        row.update({f"final_{c}": final[c] for c in RESULT_COLUMNS})
        if final["verdict"] != row["verdict"]:
            add_note(row, f"on the final value instead of the {ref.statistic}: {final['verdict']}")
    return row


def _mark_partial(row: dict, ref: Reference, cells: pd.DataFrame) -> None:
    """A verdict on fewer repetitions than the profile declares is partial: INCONCLUSIVE, with the
    missing repetitions and the partial sample's own verdict in the note. A FAIL of aggregate
    "every" stays a FAIL: one failing cell decides a law, whatever the others show."""
    declared = [int(d) for d in cells["declared_repetitions"].dropna()] if "declared_repetitions" in cells else []
    if not declared:
        return
    n_declared = max(declared)
    row["n_declared"] = n_declared
    present = repetitions_present(cells, KINDS[ref.kind].methods(ref))
    if len(present) >= n_declared:
        return
    missing = sorted(set(range(n_declared)) - present)
    shown = ", ".join(str(r) for r in missing[:8]) + (", ..." if len(missing) > 8 else "")
    text = (f"partial: {len(present)} of the {n_declared} repetitions profile {ref.profile} declares "
            f"({n_declared - len(present)} missing: {shown})")
    if row["verdict"] == FAIL and ref.aggregate == "every":
        add_note(row, f"{text}; a failing cell decides it", first=True)
    elif row["verdict"] in (PASS, FAIL):
        row["note"] = row["note"].replace("n=1, no CI: decided on the single value", "n=1, no CI")
        add_note(row, f"{text}; on these alone: {row['verdict']}", first=True)
        row["verdict"] = INCONCLUSIVE
    else:
        add_note(row, text, first=True)


def __getattr__(name: str):
    # exit codes are defined once, in bench_suite.core.exit_codes
    aliases = {"EXIT_PASS": "CHECK_PASS", "EXIT_FAIL": "CHECK_FAIL", "EXIT_UNDECIDED": "CHECK_UNDECIDED",
               "EXIT_ERROR": "USAGE"}
    if name in aliases:
        import warnings

        from ..core import exit_codes

        warnings.warn(f"bench_suite.scoring.checks.{name} is deprecated: use "
                      f"bench_suite.core.exit_codes.{aliases[name]}", DeprecationWarning, stacklevel=2)
        return getattr(exit_codes, aliases[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FAIL", "INCONCLUSIVE", "LEFT_OUT_COLUMNS", "OUT_OF_SCOPE", "PASS", "SKIPPED", "VERDICTS",
           "VERDICT_COLUMNS", "describe_left_out", "exit_code", "explain_skips", "mean_ci", "run_checks",
           "save_verdicts", "seeds_to_decide", "select", "summary", "t_cdf", "t_quantile"]
