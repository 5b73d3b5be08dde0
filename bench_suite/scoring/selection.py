"""Which records a verdict may be computed from (docs/checks.md, "Which results count"): the records
a reference row's profile declares and the current code computed, the row's ``only`` conditions,
the split by configuration, one value per repetition, the provenance of a verdict, and why a row
found nothing to score.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Iterable

import pandas as pd

from ..core.records import USABLE as _USABLE
from ..core.records import Record
from .verdicts import SKIPPED, missing

if TYPE_CHECKING:
    from .references import Reference

# what a verdict may be computed from: done (a measurement) and diverged (a measured failure)
USABLE_STATUSES = tuple(s.value for s in _USABLE)

# what `check` and `report` list for records they did not score
LEFT_OUT_COLUMNS = ["cell_id", "name", "task", "profile", "why", "detail"]

# the columns that make two records of one (method, width, activation) different configurations
SETTING_COLUMNS = ("task_options", "epochs", "batch_size", "lr_w", "lr_v", "momentum", "loss", "eps", "eps_mode",
                   "eval_every", "precision")


def select(records: Iterable[Record], references: Iterable["Reference"], *,
           is_current: Callable[[Record], bool], why_not_current: Callable[[Record], str],
           declares: Callable[[str, str, dict], str | None],
           declared_repetitions: Callable[[str, str, dict], int | None] | None = None,
           include_old_code: bool = False, rejected: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scored, left_out) for the reference rows' profiles.

    A record is scored for profile P when its resolved configuration is one P declares
    (``declares(task, P, config)`` is None: any override of a profile's settings makes an ad-hoc
    cell), and, unless ``include_old_code``, when the current code computes its cell as its code
    did (``is_current(record)``: the same code version, bench_suite/grid/versions.py). ``scored``
    is the flat results table with one row per record and profile it is scored for (column
    ``scoring_profile``; ``declared_repetitions``: how many repetitions P declares for its
    configuration, from ``declared_repetitions(task, P, config)`` when given); ``left_out`` one
    row per record (of the rows' tasks) that a row of its profile could have scored but did not,
    with why (``LEFT_OUT_COLUMNS``), plus the unreadable files of ``rejected`` (path -> reason)."""
    refs = list(references)
    profiles_by_task: dict[str, set[str]] = {}
    for ref in refs:
        profiles_by_task.setdefault(ref.task, set()).add(ref.profile)
    scored, left = [], []
    for record in records:
        profiles = profiles_by_task.get(record.task)
        if not profiles:
            continue
        reasons: dict[str, tuple[str, str]] = {}
        used = False
        for profile in sorted(profiles):
            why = declares(record.task, profile, record.config)
            if why is not None:
                if record.profile in (None, profile):  # launched for it (or ad hoc), but not declared by it
                    reasons[profile] = ("ad hoc", f"not a configuration profile {profile} declares: {why}")
                continue
            if not include_old_code and not is_current(record):
                reasons[profile] = ("older code", f"{why_not_current(record)} (--include-old-code scores it)")
                continue
            declared = declared_repetitions(record.task, profile, record.config) if declared_repetitions else None
            scored.append({**record.flat(), "scoring_profile": profile, "declared_repetitions": declared})
            used = True
        if reasons and not used:
            why, detail = next(iter(reasons.values()))
            left.append({"cell_id": record.cell_id, "name": record.name, "task": record.task,
                         "profile": record.profile, "why": why, "detail": detail})
    for path, reason in sorted((rejected or {}).items(), key=lambda kv: str(kv[0])):
        left.append({"cell_id": getattr(path, "stem", str(path)), "name": str(path), "task": None, "profile": None,
                     "why": "unreadable", "detail": reason})
    from ..core.records import COLUMN_NAMES

    frame = pd.DataFrame(scored, columns=[*COLUMN_NAMES, "scoring_profile", "declared_repetitions"])
    return frame, pd.DataFrame(left, columns=LEFT_OUT_COLUMNS)


def prepare(df: pd.DataFrame | None) -> pd.DataFrame:
    """A results table with the columns scoring reads, typed (strings, ints, None for missing).
    A frame not from :func:`select` is scored by each row's own ``profile``."""
    needed = ["profile", "protocol", "status", "reason", "task", "method", "width", "activation", "repetition",
              "cell_id", "code_version", "data_checksum", "declared_repetitions"]
    df = (df if df is not None else pd.DataFrame()).copy()
    for col in needed:
        if col not in df.columns:
            df[col] = None
    norm = lambda v: None if missing(v) else str(v)  # noqa: E731
    df["profile"] = df["profile"].map(norm).astype(object)
    if "scoring_profile" not in df.columns:
        df["scoring_profile"] = df["profile"]
    df["scoring_profile"] = df["scoring_profile"].map(norm).astype(object)
    for col in ("task", "method", "activation", "status", "reason", "cell_id", "code_version", "data_checksum",
                *(c for c in ("task_options", "loss", "eps_mode", "precision") if c in df.columns)):
        df[col] = df[col].map(norm).astype(object)
    for col in ("width", "repetition", "protocol", "declared_repetitions"):
        df[col] = df[col].map(lambda v: None if missing(v) else int(v)).astype(object)
    return df


def admitted(frame: pd.DataFrame, ref: "Reference") -> pd.DataFrame:
    """The records a row's ``only`` conditions admit (a missing value is not admitted)."""
    for column, op, bound in ref.only:
        if column not in frame.columns:
            return frame.iloc[0:0]
        values = pd.to_numeric(frame[column], errors="coerce")
        keep = (values <= bound) if op == "at_most" else (values >= bound)
        frame = frame[keep.fillna(False).astype(bool)]
    return frame


def only_text(ref: "Reference") -> str:
    """A row's ``only`` conditions in words, e.g. ``eps at least 0.1, eps at most 0.1``."""
    return ", ".join(f"{c} {op.replace('_', ' ')} {b:g}" for c, op, b in ref.only)


def axis_values(frame: pd.DataFrame, col: str) -> list:
    return sorted(frame[col].dropna().unique().tolist())


def setting_groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The frame split by configuration (``SETTING_COLUMNS``): [("", frame)] when all records share
    one, else one (label, records) per configuration, the label naming what differs, e.g.
    ``"eps=0.3, lr_w=0.0003"``. Records of different configurations are never pooled as
    repetitions."""
    present = [c for c in SETTING_COLUMNS if c in frame.columns]
    if not present or frame.empty:
        return [("", frame)]
    keys = [tuple(None if missing(v) else v for v in row) for row in frame[present].itertuples(index=False)]
    distinct = list(dict.fromkeys(keys))
    if len(distinct) == 1:
        return [("", frame)]
    varying = [i for i, _ in enumerate(present) if len({k[i] for k in distinct}) > 1]
    out = []
    for key in sorted(distinct, key=lambda k: tuple(_sortable(k[i]) for i in varying)):
        mask = [k == key for k in keys]
        label = ", ".join(f"{present[i]}={_fmt_setting(key[i])}" for i in varying)
        out.append((label, frame[mask]))
    return out


def _sortable(v) -> tuple:
    return (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, str(v))


def _fmt_setting(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def per_repetition(frame: pd.DataFrame, column: str) -> tuple[dict[int, tuple[str, float]], list[str]]:
    """repetition -> (status, value of ``column``); a diverged repetition wins over done
    duplicates; done duplicates of one repetition (only with --include-old-code: records of
    several code versions) are averaged, and noted. A missing value (None, NaN) is NaN here;
    inf stays inf."""
    notes: list[str] = []
    out: dict[int, tuple[str, float]] = {}
    values = frame[column] if column in frame.columns else pd.Series([None] * len(frame), index=frame.index)
    for rep, rows in sorted(frame.groupby("repetition", sort=True), key=lambda kv: kv[0]):
        rep = int(rep)
        if (rows["status"] == "diverged").any():
            out[rep] = ("diverged", math.nan)
            continue
        vals = [float(v) for v in values[rows.index] if not missing(v)]
        if len(rows) > 1:
            notes.append(f"{len(rows)} records for repetition {rep} (code versions "
                         f"{'; '.join(sorted({str(c) for c in rows['code_version']}))}): averaged")
        out[rep] = ("done", math.fsum(vals) / len(vals) if vals else math.nan)
    return out, notes


def repetitions_present(frame: pd.DataFrame, methods: list[str]) -> set[int]:
    """The repetitions every one of ``methods`` has a usable record of in ``frame``."""
    sets = [set(int(r) for r in frame.loc[(frame["method"] == m) & frame["status"].isin(USABLE_STATUSES),
                                          "repetition"].dropna()) for m in methods]
    return set.intersection(*sets) if sets else set()


def provenance_fields(*frames: pd.DataFrame) -> dict:
    """The ``cells``, ``code_versions`` and ``data_checksums`` a verdict used."""
    cells, codes, data = set(), set(), set()
    for frame in frames:
        cells.update(str(c) for c in frame["cell_id"] if not missing(c))
        codes.update(str(c) for c in frame["code_version"] if not missing(c))
        data.update(str(c) for c in frame["data_checksum"] if not missing(c))
    return {"cells": sorted(cells), "code_versions": sorted(codes), "data_checksums": sorted(data)}


def mixed_data(frame: pd.DataFrame) -> str | None:
    """Why the records are not one measurement when they were computed from several data sources."""
    checksums = sorted({str(c) for c in frame["data_checksum"] if c is not None})
    if len(checksums) > 1:
        return (f"records computed from {len(checksums)} different data sources (checksums "
                f"{', '.join(c[:19] for c in checksums)}): not one measurement; re-run them on one copy")
    return None


def _describe_cells(frame: pd.DataFrame) -> str:
    counts = frame["status"].fillna("unknown").value_counts()
    parts = [f"{int(counts[s])} {s}" for s in sorted(counts.index)]
    reasons = sorted({str(r) for r in frame["reason"].dropna().tolist()})
    text = ", ".join(parts)
    if reasons:
        shown = "; ".join(reasons[:2]) + ("; ..." if len(reasons) > 2 else "")
        text += f" ({shown})"
    return text


def skip_reason(ref: "Reference", df: pd.DataFrame, methods: list[str], width, activation) -> str:
    """Why nothing usable matched: the most specific explanation available."""
    what = " and ".join(methods)
    where = []
    if width is not None:
        where.append(f"width={width}")
    if activation is not None:
        where.append(f"activation={activation}")
    at = f" at {', '.join(where)}" if where else ""
    m = df[(df["task"] == ref.task) & df["method"].isin(methods)]
    if width is not None:
        m = m[m["width"] == width]
    if activation is not None:
        m = m[m["activation"] == activation]
    if m.empty:
        if (df["task"] == ref.task).any():
            return f"no results for {what} on {ref.task}{at}"
        return f"no results for task {ref.task}"
    same_profile = m[m["scoring_profile"] == ref.profile]
    if same_profile.empty:
        profiles = sorted({p if p is not None else "(none: ad hoc)" for p in m["scoring_profile"]})
        return (
            f"results only from profile(s) {', '.join(profiles)}; this row is for profile {ref.profile} "
            "(results of another profile are never scored against it)"
        )
    same_protocol = same_profile[same_profile["protocol"] == ref.protocol]
    if same_protocol.empty:
        protocols = sorted({str(p) for p in same_profile["protocol"]})
        return f"results only from protocol(s) {', '.join(protocols)}; this row is for protocol {ref.protocol}"
    usable = same_protocol[same_protocol["status"].isin(USABLE_STATUSES)]
    if usable.empty:
        return f"no usable results{at} (only {_describe_cells(same_protocol)})"
    lacking = sorted(set(methods) - set(usable["method"]))
    if lacking:
        parts = []
        for method in lacking:
            own = same_protocol[same_protocol["method"] == method]
            parts.append(f"no usable results for {method}{at} (only {_describe_cells(own)})" if len(own)
                         else f"no results for {method}{at}")
        return "; ".join(parts)
    return f"no usable results{at}"


def _given(value: Any) -> bool:
    """A verdict cell that holds a value: not None, not NaN (pandas turns a missing one into NaN)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def explain_skips(verdicts: pd.DataFrame, records: Iterable[Record], left_out: pd.DataFrame) -> pd.DataFrame:
    """SKIPPED rows whose note says "no results" when the store does hold records of the row's
    task and method(s): say which, and why none was scored (left out as older code / ad hoc /
    unreadable, or of other profiles, never scored against this one)."""
    records = list(records)
    out = verdicts.copy()
    for i, row in out.iterrows():
        if row["verdict"] != SKIPPED or not str(row["note"]).startswith("no results"):
            continue
        methods = {row["method"]} | ({row["versus"]} if _given(row.get("versus")) else set())
        mine = [r for r in records if r.task == row["task"] and r.method in methods
                and (not _given(row["width"]) or r.config.get("width") == row["width"])
                and (not _given(row["activation"]) or r.config.get("activation") == row["activation"])]
        if not mine:
            continue
        ids = {r.cell_id for r in mine}
        left = left_out[left_out["cell_id"].isin(ids)] if len(left_out) else left_out
        parts = []
        if len(left):
            counts = left["why"].value_counts()
            parts.append("left out: " + ", ".join(f"{int(counts[w])} {w}" for w in sorted(counts.index)))
        others = sorted({str(r.profile) if r.profile is not None else "ad hoc" for r in mine
                         if r.cell_id not in set(left["cell_id"] if len(left) else [])})
        if others:
            who = "the others are" if parts else "they are"
            parts.append(f"{who} of profile(s) {', '.join(others)}, never scored against {row['profile']}")
        out.at[i, "note"] = (f"no record the row may score: the store holds {len(mine)} record(s) of "
                             f"{' and '.join(sorted(methods))} on {row['task']} here ({'; '.join(parts)})")
    return out


def describe_left_out(left_out: pd.DataFrame | None) -> str | None:
    """One line: how many records were left out and why, or None."""
    if left_out is None or left_out.empty:
        return None
    counts = left_out["why"].value_counts()
    parts = [f"{int(counts[w])} {w}" for w in sorted(counts.index)]
    return f"left out {len(left_out)} record(s) not scored: {', '.join(parts)}"


__all__ = ["LEFT_OUT_COLUMNS", "SETTING_COLUMNS", "USABLE_STATUSES", "admitted", "axis_values", "describe_left_out",
           "explain_skips", "mixed_data", "only_text", "per_repetition", "prepare", "provenance_fields",
           "repetitions_present", "select", "setting_groups", "skip_reason"]
