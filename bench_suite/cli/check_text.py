"""``check``'s terminal text: a summary of what was scored first, then the claims of the tasks the
store holds (one line per claim whose groups all agree, one per group otherwise, the paper's value
beside ours), the rows of tasks with no records folded into one line, every line within the
terminal's width (docs/checks.md, "The check command")."""

from __future__ import annotations

import math
import re
import shutil
import textwrap
from typing import Any

import pandas as pd

from ..scoring.verdicts import AS_EXPECTED, FAIL, OUT_OF_SCOPE, PASS, VERDICTS, missing

_FALLBACK_WIDTH = 120  # not a terminal (a CI log, a pipe): lines up to this width
_MIN_WIDTH = 60
# the parts of a note that every PASS says: not repeated in the terminal
_BOILERPLATE = (re.compile(r"^\d+% CI( of the slope)? inside the acceptance interval$"),
                re.compile(r"^every repetition satisfies it \(\d+ of \d+\)$"),
                re.compile(r"^ci_low/ci_high are the min/max$"))
_MEASURED = re.compile(r"\(measured: (\w+)\)")


def terminal_width() -> int:
    """The terminal's width (``$COLUMNS`` first, then the terminal; 120 when not a terminal)."""
    return max(_MIN_WIDTH, shutil.get_terminal_size((_FALLBACK_WIDTH, 24)).columns)


def _num(x: Any, fmt: str = ".4g") -> str:
    if missing(x):
        return "-"
    x = float(x)
    return str(x) if math.isinf(x) else format(x, fmt)


def _cells(row: pd.Series) -> str:
    parts = []
    if not missing(row["width"]):
        parts.append(f"m={int(row['width'])}")
    if not missing(row["activation"]):
        parts.append(str(row["activation"]))
    if row.get("setting"):
        parts.append(str(row["setting"]))
    return " ".join(parts) or "all"


def _ours(row: pd.Series) -> str:
    if missing(row["ours"]):
        return "-"
    if missing(row["ci_low"]) or missing(row["ci_high"]):
        return _num(row["ours"])
    return f"{_num(row['ours'])} [{_num(row['ci_low'])}, {_num(row['ci_high'])}]"


def _verdict(row: pd.Series) -> str:
    if row["verdict"] == FAIL and row.get("outcome") == AS_EXPECTED:
        return "FAIL (expected)"
    return str(row["verdict"])


def _note(row: pd.Series, verbose: bool) -> str:
    parts = [p for p in str(row["note"] or "").split("; ") if p]
    if not verbose:
        parts = [p for p in parts if not any(b.match(p) for b in _BOILERPLATE)]
    return "; ".join(parts)


def _collapsible(group: pd.DataFrame) -> bool:
    """A claim whose groups all PASS (or all lie out of scope) reads as one line."""
    return len(group) > 1 and len(set(group["verdict"])) == 1 and group["verdict"].iloc[0] in (PASS, OUT_OF_SCOPE)


def _span(values: list) -> str:
    values = sorted({int(v) for v in values if not missing(v)})
    if not values:
        return ""
    return f"{values[0]}" if len(values) == 1 else f"{values[0]}..{values[-1]}"


def _collapsed(group: pd.DataFrame) -> str:
    first = group.iloc[0]
    widths = _span(list(group["width"]))
    acts = ", ".join(sorted({str(a) for a in group["activation"] if not missing(a)}))
    where = "; ".join(p for p in (f"m={widths}" if widths else "", acts, f"n={_span(list(group['n']))}") if p)
    text = f"{first['verdict']} in all {len(group)} groups ({where})"
    if first["verdict"] == OUT_OF_SCOPE:
        measured = [m.group(1) for n in group["note"] if (m := _MEASURED.search(str(n)))]
        said = ", ".join(f"{measured.count(v)} {v}" for v in VERDICTS if v in measured)
        scopes = sorted({str(x) for x in group["scope"] if x})
        text += f": {'; '.join(scopes)}, not a check of it (measured: {said})"
    return text


def _group_fields(row: pd.Series) -> list[str]:
    n = str(int(row["n"])) + ("" if missing(row.get("n_declared")) else f"/{int(row['n_declared'])}")
    fields = [_verdict(row), _cells(row), f"ours {_ours(row)}", f"n={n}"]
    if not missing(row["paper_value"]):
        fields.append(f"paper {_num(row['paper_value'])}")
    if row.get("final_verdict"):
        fields.append(f"final value {_num(row['final_ours'])} ({row['final_verdict']})")
    return fields


def _aligned(lines: list[list[str]], indent: str, width: int) -> list[str]:
    """Fields in columns (as wide as their widest cell), each line cut at ``width``."""
    if not lines:
        return []
    sizes = [max(len(f[i]) for f in lines if len(f) > i) for i in range(max(len(f) for f in lines))]
    out = []
    for fields in lines:
        text = indent + "  ".join(f.ljust(sizes[i]) for i, f in enumerate(fields)).rstrip()
        out.append(text if len(text) <= width else text[: width - 1] + "…")
    return out


def _wrap(text: str, width: int, indent: str = "  ", more: str = "    ") -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=more,
                         break_long_words=True, break_on_hyphens=False) or [indent.rstrip()]


def _task_block(task: str, verdicts: pd.DataFrame, n_records: int, describe: dict[str, str], width: int,
                verbose: bool) -> list[str]:
    counts = verdicts["verdict"].value_counts()
    said = ", ".join(f"{int(counts[v])} {v}" for v in VERDICTS if v in counts.index)
    out = _wrap(f"{task}: {n_records} record(s) scored; {verdicts['id'].nunique()} claim(s), {len(verdicts)} "
                f"verdict(s): {said}", width, indent="", more="  ")
    groups = list(verdicts.groupby("id", sort=False))
    rows = [_group_fields(r) for _, g in groups if verbose or not _collapsible(g) for _, r in g.iterrows()]
    aligned = iter(_aligned(rows, "    ", width))
    for claim_id, group in groups:
        out += _wrap(f"{claim_id}: {describe.get(claim_id, group['metric'].iloc[0])}", width, more="      ")
        if _collapsible(group) and not verbose:
            out += _wrap(_collapsed(group), width, indent="    ", more="      ")
            continue
        for _, row in group.iterrows():
            out.append(next(aligned))
            note = _note(row, verbose)
            if note:
                out += _wrap(note, width, indent="      ", more="      ")
    return out + [""]


def render(verdicts: pd.DataFrame, *, scored: pd.DataFrame, records: list, store: str, profile: str | None,
           references: list, width: int | None = None, verbose: bool = False) -> list[str]:
    """The lines ``check`` prints on stdout before its footer."""
    width = width or terminal_width()
    per_task = scored["task"].value_counts() if len(scored) else pd.Series(dtype=int)
    in_store = {r.task for r in records}
    counts = verdicts["verdict"].value_counts() if len(verdicts) else pd.Series(dtype=int)
    expected = int(((verdicts["verdict"] == FAIL) & (verdicts["outcome"] == AS_EXPECTED)).sum()) if len(verdicts) else 0
    said = ", ".join(f"{int(counts.get(v, 0))} {v}" + (f" ({expected} expected: known deviation)"
                                                       if v == FAIL and expected else "") for v in VERDICTS)
    what = f"profile {profile}" if profile else "every profile"
    tasks_said = ", ".join(f"{t} {int(n)}" for t, n in per_task.sort_index().items()) or "none"
    out = _wrap(f"check {store} ({what}): {len(references)} reference row(s) against {len(records)} record(s); "
                f"scored {len(scored)} ({tasks_said})", width, indent="", more="  ")
    out += _wrap(f"verdicts: {said}", width, indent="", more="  ") + [""]
    order = list(dict.fromkeys(verdicts["task"])) if len(verdicts) else []
    absent = [t for t in order if t not in in_store]
    describe = {ref.id: ref.describe() for ref in references}
    for task in [t for t in order if t in in_store]:
        out += _task_block(task, verdicts[verdicts["task"] == task], int(per_task.get(task, 0)), describe, width,
                           verbose)
    if absent:
        mine = verdicts[verdicts["task"].isin(absent)]
        ids = list(dict.fromkeys(mine["id"]))
        out += _wrap(f"no records in the store for {', '.join(absent)}: {len(ids)} claim(s), {len(mine)} verdict(s) "
                     f"SKIPPED ({', '.join(ids)})", width, indent="", more="  ") + [""]
    return out


__all__ = ["render", "terminal_width"]
