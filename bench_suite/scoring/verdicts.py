"""The verdict table: its vocabulary, its columns, one row per reference row and cell group, the
outcome of each row for the exit code, the summary, and the saved form (``verdicts.json``/``.csv``).

Two vocabularies, one name each (docs/checks.md, "Verdicts" and "Exit codes"):

- a **verdict** is what the measurement says about the row's claim: :data:`PASS`, :data:`FAIL`,
  :data:`INCONCLUSIVE`, :data:`SKIPPED`, or :data:`OUT_OF_SCOPE` (the cells lie outside the
  assumptions of the theorem the row checks: measured and shown, not a check of it);
- an **outcome** is what the verdict means for ``check``'s exit code once a documented known
  deviation is taken into account: :data:`AS_EXPECTED` (a PASS, or the FAIL a known deviation
  predicts), :data:`UNEXPECTED` (a FAIL, or a PASS where a known deviation predicts a FAIL: the
  write-up is stale), :data:`UNDECIDED` (INCONCLUSIVE, SKIPPED) or :data:`NOT_A_CHECK`
  (OUT_OF_SCOPE).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..core import exit_codes

PASS, FAIL, INCONCLUSIVE, SKIPPED, OUT_OF_SCOPE = "PASS", "FAIL", "INCONCLUSIVE", "SKIPPED", "OUT_OF_SCOPE"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, SKIPPED, OUT_OF_SCOPE)

AS_EXPECTED, UNEXPECTED, UNDECIDED, NOT_A_CHECK = "as expected", "unexpected", "undecided", "not a check"
OUTCOMES = (AS_EXPECTED, UNEXPECTED, UNDECIDED, NOT_A_CHECK)

VERDICT_COLUMNS = [
    "id", "kind", "source", "task", "profile", "protocol", "method", "versus", "width", "activation", "setting",
    "metric", "statistic", "aggregate", "direction", "reference", "paper_value", "ours", "ci_low", "ci_high", "n",
    "n_declared", "difference", "tolerance", "method_mean", "versus_mean", "verdict", "outcome", "scope", "note",
    "known_deviation", "final_ours", "final_ci_low", "final_ci_high", "final_verdict", "cells", "code_versions",
    "data_checksums",
]
# the columns of a statistic's result, copied into final_* for a row scored on another statistic
RESULT_COLUMNS = ("ours", "ci_low", "ci_high", "verdict")


def missing(v: Any) -> bool:
    """Not recorded: None, NaN or pandas' NA. (An infinite value is recorded: it is a value.)"""
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def verdict_row(ref, width, activation, **fields) -> dict:
    """One verdict row of reference row ``ref`` for the cell group (width, activation): SKIPPED
    with no statistic unless ``fields`` say otherwise. ``note_extra`` (a list) is appended to the
    note."""
    row = {
        "id": ref.id, "kind": ref.kind, "source": ref.source, "task": ref.task, "profile": ref.profile,
        "protocol": ref.protocol, "method": ref.method, "versus": ref.versus, "width": width,
        "activation": activation, "setting": "", "metric": ref.metric, "statistic": ref.statistic,
        "aggregate": ref.aggregate, "direction": ref.direction, "reference": ref.target,
        "paper_value": math.nan if ref.paper_value is None else ref.paper_value,
        "ours": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0, "n_declared": math.nan,
        "difference": math.nan, "tolerance": ref.tolerance, "method_mean": math.nan, "versus_mean": math.nan,
        "verdict": SKIPPED, "outcome": "", "scope": "", "note": "", "known_deviation": ref.known_deviation,
        "final_ours": math.nan, "final_ci_low": math.nan, "final_ci_high": math.nan, "final_verdict": "",
        "cells": [], "code_versions": [], "data_checksums": [],
    }
    extra_notes = fields.pop("note_extra", None)
    row.update(fields)
    if extra_notes:
        row["note"] = "; ".join([row["note"], *extra_notes]).lstrip("; ")
    return row


def add_note(row: dict, text: str, *, first: bool = False) -> None:
    """Add ``text`` to a verdict row's note (in front when ``first``)."""
    parts = [text, row["note"]] if first else [row["note"], text]
    row["note"] = "; ".join(p for p in parts if p)


# --------------------------------------------------------------------------------------------
# outcomes: a known deviation is a claim about a reference row, not each of its groups
# --------------------------------------------------------------------------------------------
def _plain_outcome(verdict: str) -> str:
    return {PASS: AS_EXPECTED, FAIL: UNEXPECTED, OUT_OF_SCOPE: NOT_A_CHECK}.get(verdict, UNDECIDED)


def _known_deviation_outcome(verdicts: set[str]) -> str:
    """The outcome of every group of a row with a known deviation (the row is expected to FAIL
    somewhere, e.g. the relu rank law in the cells with a dead sample): some group FAILs as
    written up -> decided as expected (undecided if some group is still undecided); none fails
    but some PASS -> the write-up is stale (unexpected)."""
    scored = verdicts - {OUT_OF_SCOPE}
    if FAIL in scored:
        return AS_EXPECTED if scored <= {FAIL, PASS} else UNDECIDED
    if PASS in scored:
        return UNEXPECTED
    return UNDECIDED


def outcomes(verdicts: pd.DataFrame) -> pd.Series:
    """The outcome (:data:`OUTCOMES`) of each verdict row, indexed as ``verdicts``."""
    unknown = set(verdicts["verdict"]) - set(VERDICTS)
    if unknown:
        raise ValueError(f"unknown verdict(s) {sorted(unknown)}")
    out = verdicts["verdict"].map(_plain_outcome)
    known = verdicts.get("known_deviation", pd.Series([""] * len(verdicts), index=verdicts.index)).fillna("")
    known = known.astype(str) != ""
    ids = verdicts["id"] if "id" in verdicts.columns else pd.Series(verdicts.index, index=verdicts.index)
    for _, group in verdicts[known].groupby(ids[known]):
        value = _known_deviation_outcome(set(group["verdict"]))
        out[group.index] = [NOT_A_CHECK if v == OUT_OF_SCOPE else value for v in group["verdict"]]
    return out


def mark_outcomes(rows: list[dict]) -> None:
    """Fill the ``outcome`` of verdict rows in place; a row with a known deviation names the
    write-up in a FAIL's note, and says in a PASS group's note when the write-up is stale (no
    group of its row fails)."""
    if not rows:
        return
    frame = pd.DataFrame(rows)
    for row, outcome in zip(rows, outcomes(frame)):
        row["outcome"] = outcome
        if row.get("known_deviation") and row["verdict"] == FAIL:
            add_note(row, f"known deviation (expected): {row['known_deviation']}")
        if row.get("known_deviation") and outcome == UNEXPECTED and row["verdict"] == PASS:
            add_note(row, f"known deviation UNEXPECTED: no group of this row fails, the write-up is stale: "
                          f"{row['known_deviation']}")


# --------------------------------------------------------------------------------------------
# exit code, summary, saved form
# --------------------------------------------------------------------------------------------
def exit_code(verdicts: pd.DataFrame | None, *, strict: bool = False) -> int:
    """``check``'s exit code: 1 (:data:`~bench_suite.core.exit_codes.CHECK_FAIL`) if any outcome is
    :data:`UNEXPECTED` (a FAIL, or a known deviation whose row no longer fails), else 0. With
    ``strict``: 3 (``CHECK_UNDECIDED``) when nothing failed but some verdict is INCONCLUSIVE or
    SKIPPED, or there was nothing to check; 0 only when every row is decided. 2 is reserved for
    errors (the CLI's) and never returned here. OUT_OF_SCOPE rows are not checks: they never
    change the code."""
    if verdicts is None or len(verdicts) == 0:
        return exit_codes.CHECK_UNDECIDED if strict else exit_codes.CHECK_PASS
    found = set(outcomes(verdicts))
    if UNEXPECTED in found:
        return exit_codes.CHECK_FAIL
    if strict and UNDECIDED in found:
        return exit_codes.CHECK_UNDECIDED
    return exit_codes.CHECK_PASS


EXIT_CODE_MEANINGS = {
    exit_codes.CHECK_PASS: "nothing failed unexpectedly (every verdict PASS, OUT_OF_SCOPE, a known deviation's "
                           "expected FAIL, or, without --strict, INCONCLUSIVE or SKIPPED)",
    exit_codes.CHECK_FAIL: "at least one unexpected FAIL",
    exit_codes.USAGE: "error",
    exit_codes.CHECK_UNDECIDED: "--strict: no unexpected FAIL, but some verdicts INCONCLUSIVE or SKIPPED, or nothing "
                                "checked",
}


def summary(verdicts: pd.DataFrame) -> dict[str, int]:
    """Count of each verdict (every key of :data:`VERDICTS`, in that order)."""
    counts = verdicts["verdict"].value_counts() if len(verdicts) else {}
    return {v: int(counts.get(v, 0)) for v in VERDICTS}


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if missing(v):
        return None
    return v.item() if hasattr(v, "item") else v


def save_verdicts(verdicts: pd.DataFrame, out_dir, *, left_out: pd.DataFrame | None = None,
                  context: dict | None = None) -> list[Path]:
    """Write ``verdicts.json`` (rows, the records and code versions each used, the records left
    out, ``context``, the exit code and the ``--strict`` one) and ``verdicts.csv`` (one row per
    verdict; lists joined by ``;``) into ``out_dir``; return the two paths. Deterministic: same
    inputs, same bytes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [{k: _clean(v) for k, v in row.items()} for row in verdicts.to_dict("records")]
    left = [] if left_out is None else [{k: _clean(v) for k, v in r.items()} for r in left_out.to_dict("records")]
    payload = {"context": context or {}, "summary": summary(verdicts), "exit_code": exit_code(verdicts),
               "exit_code_strict": exit_code(verdicts, strict=True), "verdicts": rows, "left_out": left}
    json_path = out_dir / "verdicts.json"
    json_path.write_text(json.dumps(payload, indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
    flat = verdicts.copy()
    for col in ("cells", "code_versions", "data_checksums"):
        flat[col] = flat[col].map(lambda v: ";".join(v) if isinstance(v, (list, tuple)) else v)
    csv_path = out_dir / "verdicts.csv"
    flat.to_csv(csv_path, index=False, lineterminator="\n")
    return [json_path, csv_path]


def as_frame(rows: list[dict]) -> pd.DataFrame:
    """Verdict rows as the verdict table (columns :data:`VERDICT_COLUMNS`, typed)."""
    out = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    out["width"] = out["width"].astype(object)
    out["n"] = out["n"].astype(int)
    return out


__all__ = [
    "AS_EXPECTED", "EXIT_CODE_MEANINGS", "FAIL", "INCONCLUSIVE", "NOT_A_CHECK", "OUTCOMES", "OUT_OF_SCOPE", "PASS",
    "RESULT_COLUMNS", "SKIPPED", "UNDECIDED", "UNEXPECTED", "VERDICTS", "VERDICT_COLUMNS", "add_note", "as_frame",
    "exit_code", "mark_outcomes", "missing", "outcomes", "save_verdicts", "summary", "verdict_row",
]
