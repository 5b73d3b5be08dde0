"""The claims table: one row per reference row (a claim), its verdict over every (width,
activation, setting) group it was scored on; and the one-line summaries of what was not
scored (SKIPPED claims and unfinished cells, one line per task and reason)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd

from ..scoring.verdicts import FAIL, INCONCLUSIVE, OUT_OF_SCOPE, PASS, SKIPPED
from . import fmt

# a claim's verdict over its groups: the worst decided one (FAIL, then INCONCLUSIVE, then PASS)
_SEVERITY = {FAIL: 3, INCONCLUSIVE: 2, PASS: 1, OUT_OF_SCOPE: 0, SKIPPED: -1}


@dataclass
class Claim:
    """One reference row and its verdicts. ``verdict``: the worst over its groups (SKIPPED only
    when every group is); ``known``: its documented known deviation (empty: none)."""

    id: str
    task: str
    profile: str
    text: str
    reference: str
    ours: str
    n: str
    verdict: str
    counts: dict[str, int]
    known: str
    groups: pd.DataFrame
    cells: list[str] = field(default_factory=list)

    @property
    def verdict_text(self) -> str:
        """``PASS``, ``FAIL (known deviation)``, ``PASS (18 of 19 groups; 1 FAIL)``..."""
        total = sum(self.counts.values())
        head = self.verdict + (" (known deviation)" if self.known and self.verdict == FAIL else "")
        if total <= 1 or self.counts.get(self.verdict, 0) == total:
            return head + (f" ({total} groups)" if total > 1 else "")
        rest = ", ".join(f"{n} {v}" for v, n in self.counts.items() if v != self.verdict and n)
        return f"{head} ({self.counts.get(self.verdict, 0)} of {total} groups; {rest})"


def claim_verdict(verdicts: Iterable[str]) -> str:
    vs = list(verdicts)
    return max(vs, key=lambda v: _SEVERITY.get(v, -1)) if vs else SKIPPED


def reference_text(row: Any) -> str:
    """The claim as a formula: ``test_acc[mli_paired_pgd − sgd] ≥ 0 (tolerance 0.01)``."""
    versus = "" if fmt.missing(row.get("versus")) else f" − {row['versus']}"
    lhs = f"{row['metric']}[{row['method']}{versus}]"
    ref, tol, paper = row.get("reference"), row.get("tolerance"), row.get("paper_value")
    # the paper's own number beside a claim centred elsewhere (test accuracy at chance)
    beside = f"; the paper: {fmt.num(paper)}" if not fmt.missing(paper) and paper != ref else ""
    if str(row.get("direction")) == "within":
        return f"{lhs} = {fmt.num(ref)} ± {fmt.num(tol)}" + (f" ({beside[2:]})" if beside else "")
    op = fmt.OPS.get(str(row.get("direction")), str(row.get("direction")))
    extra = f"tolerance {fmt.num(tol)}" if not fmt.missing(tol) and float(tol) else ""
    notes = "; ".join(t for t in (extra, beside[2:]) if t)
    return f"{lhs} {op} {fmt.num(ref)}" + (f" ({notes})" if notes else "")


def _range(values: list[float], digits: str = ".4g") -> str:
    if not values:
        return fmt.DASH
    lo, hi = min(values), max(values)
    return fmt.num(lo, digits) if lo == hi else f"{fmt.num(lo, digits)} … {fmt.num(hi, digits)}"


def claims(verdicts: pd.DataFrame, texts: dict[str, str] | None = None) -> list[Claim]:
    """One :class:`Claim` per reference row id of ``verdicts``, ordered by task, profile, id.
    ``texts``: id -> the reference row's ``claim`` sentence (baselines/*.toml)."""
    texts = texts or {}
    if verdicts is None or len(verdicts) == 0:
        return []
    out = []
    for cid, rows in verdicts.groupby("id", sort=False):
        first = rows.iloc[0]
        counts = Counter(rows["verdict"])
        verdict = claim_verdict(counts)
        scored = rows[rows["verdict"] != SKIPPED]
        if len(rows) == 1:
            ours, n = fmt.ours(first), fmt.integer(first["n"]) if verdict != SKIPPED else fmt.DASH
        else:
            ours = _range([float(v) for v in scored["ours"] if not fmt.missing(v)])
            ns = [int(v) for v in scored["n"] if not fmt.missing(v)]
            n = (str(min(ns)) if min(ns) == max(ns) else f"{min(ns)}–{max(ns)}") if ns else fmt.DASH
            ours = f"{ours} over {len(scored)} groups" if len(scored) > 1 else ours
        known = first.get("known_deviation")
        cells = sorted({c for cs in rows["cells"] for c in (cs if isinstance(cs, (list, tuple)) else [])}) \
            if "cells" in rows else []
        out.append(Claim(str(cid), str(first["task"]), fmt.profile_name(first["profile"]),
                         str(texts.get(str(cid)) or ""), reference_text(first), ours, n, verdict,
                         {v: counts[v] for v in (PASS, FAIL, INCONCLUSIVE, SKIPPED) if counts[v]},
                         "" if fmt.missing(known) else str(known), rows, cells))
    out.sort(key=lambda c: (c.task, c.profile, c.id))
    return out


def claims_table(items: list[Claim]) -> list[dict[str, str]]:
    """The markdown rows: claim (id and sentence), reference, ours, n, verdict, note."""
    rows = []
    for c in items:
        claim = f"`{c.id}`" + (f" {c.text}" if c.text else "")
        rows.append({"claim": claim, "task": c.task, "reference": c.reference, "ours (95% CI)": c.ours,
                     "repetitions": c.n, "verdict": c.verdict_text, "known deviation": c.known})
    return rows


def skipped_lines(items: list[Claim]) -> list[str]:
    """One line per task whose claims were all SKIPPED: how many, and the distinct reasons."""
    by_task: dict[str, list[Claim]] = {}
    for c in items:
        if c.verdict == SKIPPED:
            by_task.setdefault(c.task, []).append(c)
    lines = []
    for task, cs in sorted(by_task.items()):
        reasons = sorted({fmt.scrub_paths(n) for c in cs for n in c.groups["note"] if not fmt.missing(n) and n})
        lines.append(f"`{task}`: {len(cs)} claim(s) SKIPPED: {_join(reasons, 'verdicts.csv')}.")
    return lines


def unfinished_lines(frame: pd.DataFrame) -> list[str]:
    """One line per task and status of the cells that did not end done or diverged: the count
    and the distinct reasons (machine paths scrubbed)."""
    if frame is None or frame.empty:
        return []
    bad = frame[~frame["status"].isin(["done", "diverged"])]
    lines = []
    for (task, status), rows in sorted(bad.groupby(["task", "status"]), key=lambda kv: (str(kv[0][0]),
                                                                                         str(kv[0][1]))):
        reasons = sorted({fmt.scrub_paths(r) for r in rows["reason"] if not fmt.missing(r)})
        why = _join(reasons, "results.csv") or "no reason recorded"
        lines.append(f"`{task}`: {len(rows)} cell(s) {status}: {why}.")
    return lines


def _join(reasons: list[str], where: str, limit: int = 3) -> str:
    shown = "; ".join(r.rstrip(".") for r in reasons[:limit])
    return shown + (f"; and {len(reasons) - limit} other reason(s) ({where})" if len(reasons) > limit else "")


__all__ = ["Claim", "claim_verdict", "claims", "claims_table", "reference_text", "skipped_lines", "unfinished_lines"]
