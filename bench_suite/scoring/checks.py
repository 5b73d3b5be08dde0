"""Scoring: the store's DataFrame + reference rows -> one verdict per reference row and cell group.

No training code here: :func:`run_checks` takes the DataFrame that ``ResultStore.to_dataframe()``
returns (columns in ``docs/design.md``) and the rows of :func:`bench_suite.scoring.references.load_references`.

Rules (``docs/checks.md`` has the long form):

- A result counts only if its ``profile`` and ``protocol`` equal the reference row's; a
  scaled-down profile is never scored against a paper-scale number.
- Status ``done`` is a measurement. Status ``diverged`` is a measured failure of that method:
  a value / threshold row with a diverged repetition FAILs; in a comparison a diverged
  repetition loses (the claim fails if ``method`` diverged, and counts as won for ``method`` if
  only ``versus`` diverged). ``error`` / ``skipped`` / ``interrupted`` never count.
- The statistic (the metric per repetition, or the paired difference ``method - versus`` per
  repetition) gets a Student-t confidence interval over repetitions (95% by default). PASS if
  the CI lies inside the acceptance interval, FAIL if it lies outside, INCONCLUSIVE if it
  straddles an edge (the note estimates how many seeds would decide it). One repetition: no
  CI; the point value decides and the note says ``n=1, no CI``.
- SKIPPED when nothing usable matches; the note says why (no results, other profile, other
  protocol, only failed cells, metric not recorded).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import pandas as pd

from ..core import exit_codes
from ..core.records import USABLE as USABLE_STATUSES
from ..core.records import Record
from .references import Reference

PASS, FAIL, INCONCLUSIVE, SKIPPED = "PASS", "FAIL", "INCONCLUSIVE", "SKIPPED"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, SKIPPED)

EXIT_PASS, EXIT_FAIL, EXIT_UNDECIDED = exit_codes.CHECK_PASS, exit_codes.CHECK_FAIL, exit_codes.CHECK_UNDECIDED
EXIT_ERROR = exit_codes.USAGE  # reserved for errors (bad arguments, unreadable files): the CLI returns it

USABLE = tuple(s.value for s in USABLE_STATUSES)  # done: a measurement; diverged: a measured failure

VERDICT_COLUMNS = [
    "id", "kind", "source", "task", "profile", "protocol", "method", "versus", "width", "activation", "setting",
    "metric", "direction", "reference", "ours", "ci_low", "ci_high", "n", "difference", "tolerance", "method_mean",
    "versus_mean", "verdict", "note", "known_deviation", "cells", "code_versions", "data_checksums",
]
# what `check` and `report` list for records they did not score
LEFT_OUT_COLUMNS = ["cell_id", "name", "task", "profile", "why", "detail"]

_EDGE_EPS = 1e-12  # measured values this close to an edge count as on it (float noise in edges)
_MAX_SEEDS = 1_000_000


# --------------------------------------------------------------------------------------------
# Student t (scipy.stats)
# --------------------------------------------------------------------------------------------
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (``df = inf``: the
    normal), from ``scipy.stats``."""
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
    """(mean, sample sd, ci_low, ci_high) over ``values`` with a Student-t interval.

    One value: sd and the CI are NaN (no interval from one seed).
    """
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = math.fsum(xs) / n
    if n == 1:
        return mean, math.nan, math.nan, math.nan
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def seeds_to_decide(sd: float, distance: float, n: int, confidence: float = 0.95) -> int | None:
    """The smallest n' > n whose CI half-width t(n'-1) * sd / sqrt(n') is below ``distance``
    (the mean's distance to the nearest edge), assuming the observed mean and spread hold.
    None if the mean sits on the edge or more than a million seeds would be needed."""
    if not distance > 0 or not math.isfinite(sd):
        return None
    if sd == 0:
        return n + 1
    q = 0.5 + confidence / 2.0
    # the half-width is above z * sd / sqrt(n'), so n' >= (z sd / distance)^2 is a lower bound
    bound = (t_quantile(q, math.inf) * sd / distance) ** 2
    if bound > _MAX_SEEDS:
        return None
    lo = max(n + 1, int(bound))
    if t_quantile(q, lo - 1) * sd / math.sqrt(lo) < distance:
        return lo
    hi = lo
    while t_quantile(q, hi - 1) * sd / math.sqrt(hi) >= distance:
        if hi > _MAX_SEEDS:
            return None
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # lo fails, hi decides
        mid = (lo + hi) // 2
        if t_quantile(q, mid - 1) * sd / math.sqrt(mid) < distance:
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------
def _below(x: float, ref: Reference) -> bool:
    """x misses the low edge of the row's acceptance interval."""
    low, _, low_closed, _ = ref.acceptance()
    return not (x >= low - _EDGE_EPS if low_closed else x > low + _EDGE_EPS)


def _above(x: float, ref: Reference) -> bool:
    """x misses the high edge of the row's acceptance interval."""
    _, high, _, high_closed = ref.acceptance()
    return not (x <= high + _EDGE_EPS if high_closed else x < high - _EDGE_EPS)


def _inside(x: float, ref: Reference) -> bool:
    return not (_below(x, ref) or _above(x, ref))


def _decide(ref: Reference, values: list[float], confidence: float) -> dict:
    """Verdict of one statistic sample against the row's acceptance interval. An infinite value
    is a value (a loss that blew up), not a missing one: the mean is then infinite and decides."""
    n = len(values)
    infinite = [v for v in values if math.isinf(v)]
    if infinite:
        mean = math.fsum(values) / n if len({math.copysign(1, v) for v in infinite}) == 1 else math.nan
        out = {"ours": mean, "ci_low": math.nan, "ci_high": math.nan, "n": n, "difference": mean - ref.target}
        out["verdict"] = PASS if (not math.isnan(mean) and _inside(mean, ref)) else FAIL
        out["note"] = f"{len(infinite)} of {n} value(s) infinite: the mean is {mean}, no CI; decided on it"
        return out
    mean, sd, lo, hi = mean_ci(values, confidence)
    out = {"ours": mean, "ci_low": lo, "ci_high": hi, "n": n, "difference": mean - ref.target}
    if n == 1:
        out["verdict"] = PASS if _inside(mean, ref) else FAIL
        out["note"] = "n=1, no CI: decided on the single value"
        return out
    if _inside(lo, ref) and _inside(hi, ref):
        out["verdict"], out["note"] = PASS, f"{int(round(confidence * 100))}% CI inside the acceptance interval"
        return out
    if _below(hi, ref) or _above(lo, ref):  # no part of the CI is acceptable
        out["verdict"], out["note"] = FAIL, f"{int(round(confidence * 100))}% CI outside the acceptance interval"
        return out
    low, high, _, _ = ref.acceptance()
    edges = [e for e in (low, high) if math.isfinite(e)]
    edge = min(edges, key=lambda e: abs(mean - e))
    distance = abs(mean - edge)
    more = seeds_to_decide(sd, distance, n, confidence)
    side = "inside" if _inside(mean, ref) else "outside"
    if more is None:
        hint = "the mean sits on the edge: more seeds are unlikely to decide it" if distance <= _EDGE_EPS else (
            "more than a million seeds would be needed at the observed spread"
        )
    else:
        hint = f"about n={more} seeds ({more - n} more) would likely decide it, from the observed spread (sd {sd:.3g})"
    out["verdict"] = INCONCLUSIVE
    out["note"] = (
        f"CI [{lo:.4g}, {hi:.4g}] straddles the edge {edge:.4g} (mean {mean:.4g}, {distance:.3g} {side}); {hint}"
    )
    return out


def _missing(v) -> bool:
    """Not recorded: None, NaN or pandas' NA. (An infinite value is recorded: it is a value.)"""
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _norm_profile(v) -> str | None:
    return None if _missing(v) else str(v)


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    needed = ["profile", "protocol", "status", "reason", "task", "method", "width", "activation", "repetition",
              "cell_id", "code_version", "data_checksum"]
    df = df.copy()
    for col in needed:
        if col not in df.columns:
            df[col] = None
    df["profile"] = df["profile"].map(_norm_profile).astype(object)
    if "scoring_profile" not in df.columns:  # a frame not from select(): score rows by their own profile
        df["scoring_profile"] = df["profile"]
    df["scoring_profile"] = df["scoring_profile"].map(_norm_profile).astype(object)
    for col in ("task", "method", "activation", "status", "reason", "cell_id", "code_version", "data_checksum",
                *(c for c in ("task_options", "loss", "eps_mode", "precision") if c in df.columns)):
        df[col] = df[col].map(lambda v: None if _missing(v) else str(v)).astype(object)
    for col in ("width", "repetition", "protocol"):
        df[col] = df[col].map(lambda v: None if _missing(v) else int(v)).astype(object)
    return df


# --------------------------------------------------------------------------------------------
# which records a verdict may be computed from
# --------------------------------------------------------------------------------------------
def select(records: Iterable[Record], references: Iterable[Reference], *,
           is_current: Callable[[Record], bool], why_not_current: Callable[[Record], str],
           declares: Callable[[str, str, dict], str | None],
           include_old_code: bool = False, rejected: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scored, left_out) for the reference rows' profiles.

    A record is scored for profile P when its resolved configuration is one P declares
    (``declares(task, P, config)`` is None: any override of a profile's settings makes an ad-hoc
    cell), and, unless ``include_old_code``, when the current code computes its cell as its code
    did (``is_current(record)``: the same code version, bench_suite/grid/versions.py). ``scored``
    is the flat results table with one row per record and profile it is scored for (column
    ``scoring_profile``); ``left_out`` one row per record (of the rows' tasks) that a row of its
    profile could have scored but did not, with why (``LEFT_OUT_COLUMNS``), plus the unreadable
    files of ``rejected`` (path -> reason)."""
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
            scored.append({**record.flat(), "scoring_profile": profile})
            used = True
        if reasons and not used:
            why, detail = next(iter(reasons.values()))
            left.append({"cell_id": record.cell_id, "name": record.name, "task": record.task,
                         "profile": record.profile, "why": why, "detail": detail})
    for path, reason in sorted((rejected or {}).items(), key=lambda kv: str(kv[0])):
        left.append({"cell_id": getattr(path, "stem", str(path)), "name": str(path), "task": None, "profile": None,
                     "why": "unreadable", "detail": reason})
    from ..core.records import COLUMN_NAMES

    frame = pd.DataFrame(scored, columns=[*COLUMN_NAMES, "scoring_profile"])
    return frame, pd.DataFrame(left, columns=LEFT_OUT_COLUMNS)


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


def describe_left_out(left_out: pd.DataFrame) -> str | None:
    """One line: how many records were left out and why, or None."""
    if left_out is None or left_out.empty:
        return None
    counts = left_out["why"].value_counts()
    parts = [f"{int(counts[w])} {w}" for w in sorted(counts.index)]
    return f"left out {len(left_out)} record(s) not scored: {', '.join(parts)}"


def _axis_values(ref_axis, frame: pd.DataFrame, col: str) -> list:
    if ref_axis is not None:
        return list(ref_axis)
    return sorted(frame[col].dropna().unique().tolist())


def _describe_cells(frame: pd.DataFrame) -> str:
    counts = frame["status"].fillna("unknown").value_counts()
    parts = [f"{int(counts[s])} {s}" for s in sorted(counts.index)]
    reasons = sorted({str(r) for r in frame["reason"].dropna().tolist()})
    text = ", ".join(parts)
    if reasons:
        shown = "; ".join(reasons[:2]) + ("; ..." if len(reasons) > 2 else "")
        text += f" ({shown})"
    return text


def _skip_reason(ref: Reference, df: pd.DataFrame, methods: list[str], width, activation) -> str:
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
    usable = same_protocol[same_protocol["status"].isin(USABLE)]
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


def _per_repetition(frame: pd.DataFrame, metric: str) -> tuple[dict[int, tuple[str, float]], list[str]]:
    """repetition -> (status, value); a diverged repetition wins over done duplicates; done
    duplicates of one repetition (only with --include-old-code: records of several code
    versions) are averaged, and noted. A missing value (None, NaN) is NaN here; inf stays inf."""
    notes: list[str] = []
    out: dict[int, tuple[str, float]] = {}
    for rep, rows in sorted(frame.groupby("repetition", sort=True), key=lambda kv: kv[0]):
        rep = int(rep)
        if (rows["status"] == "diverged").any():
            out[rep] = ("diverged", math.nan)
            continue
        vals = [float(v) for v in rows[metric] if not _missing(v)]
        if len(rows) > 1:
            notes.append(f"{len(rows)} records for repetition {rep} (code versions "
                         f"{'; '.join(sorted({str(c) for c in rows['code_version']}))}): averaged")
        out[rep] = ("done", math.fsum(vals) / len(vals) if vals else math.nan)
    return out, notes


def _provenance_fields(*frames: pd.DataFrame) -> dict:
    cells, codes, data = set(), set(), set()
    for frame in frames:
        cells.update(str(c) for c in frame["cell_id"] if not _missing(c))
        codes.update(str(c) for c in frame["code_version"] if not _missing(c))
        data.update(str(c) for c in frame["data_checksum"] if not _missing(c))
    return {"cells": sorted(cells), "code_versions": sorted(codes), "data_checksums": sorted(data)}


def _decide_every(ref: Reference, per_rep: dict[int, tuple[str, float]]) -> dict:
    """statistic "every": each repetition (each cell) must satisfy the row; no interval."""
    values = {r: v for r, (s, v) in per_rep.items() if s == "done" and not math.isnan(v)}
    failing = sorted(r for r, v in values.items() if not _inside(v, ref))
    mean = math.fsum(values.values()) / len(values)
    out = {"ours": mean, "n": len(values), "difference": mean - ref.target, "method_mean": mean,
           "ci_low": min(values.values()), "ci_high": max(values.values())}
    if failing:
        shown = ", ".join(f"{r}: {values[r]:.4g}" for r in failing[:5]) + (", ..." if len(failing) > 5 else "")
        return {**out, "verdict": FAIL,
                "note": f"every repetition must satisfy it: {len(failing)} of {len(values)} do not ({shown}); "
                        f"ci_low/ci_high are the min/max"}
    return {**out, "verdict": PASS, "note": f"every repetition satisfies it ({len(values)} of {len(values)}); "
                                           f"ci_low/ci_high are the min/max"}


# the columns that make two records of one (method, width, activation) different configurations
SETTING_COLUMNS = ("task_options", "epochs", "batch_size", "lr_w", "lr_v", "momentum", "loss", "eps", "eps_mode",
                   "eval_every", "precision")


def _setting_groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The frame split by configuration (``SETTING_COLUMNS``): [("", frame)] when all records share
    one, else one (label, records) per configuration, the label naming what differs, e.g.
    ``"eps=0.3, lr_w=0.0003"``."""
    present = [c for c in SETTING_COLUMNS if c in frame.columns]
    if not present or frame.empty:
        return [("", frame)]
    keys = [tuple(None if _missing(v) else v for v in row) for row in frame[present].itertuples(index=False)]
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


def _only(frame: pd.DataFrame, ref: Reference) -> pd.DataFrame:
    """The records a row's ``only`` conditions admit (a missing value is not admitted)."""
    for column, op, bound in ref.only:
        if column not in frame.columns:
            return frame.iloc[0:0]
        values = pd.to_numeric(frame[column], errors="coerce")
        keep = (values <= bound) if op == "at_most" else (values >= bound)
        frame = frame[keep.fillna(False).astype(bool)]
    return frame


def _score_slope(ref: Reference, cells: pd.DataFrame, width, activation, confidence: float) -> dict:
    """kind "slope": the least-squares slope of log(metric) against log(x) over the cells (each
    repetition a point; theory.loglog_slope), its t-interval decided against the row like a mean."""
    from ..theory import loglog_slope

    prov = _provenance_fields(cells)
    mixed = _mixed_data(cells)
    if mixed:
        return _row(ref, width, activation, note=mixed, **prov)
    done = cells[cells["status"] == "done"]
    xs = pd.to_numeric(done[ref.x], errors="coerce").tolist()
    ys = pd.to_numeric(done[ref.metric], errors="coerce").tolist()
    fit = loglog_slope(xs, ys, confidence=confidence)
    where = f" (only: {', '.join(f'{c} {op} {b:g}' for c, op, b in ref.only)})" if ref.only else ""
    if fit["slope"] is None or fit["ci_low"] is None:
        return _row(ref, width, activation, n=fit["n"], note=(
            f"{fit['n']} usable point(s){where} with {len({x for x in xs if x == x})} distinct {ref.x}: a slope "
            f"with an interval needs >= 3 points at >= 2 values of {ref.x} with a positive {ref.metric}"), **prov)
    slope, lo, hi = fit["slope"], fit["ci_low"], fit["ci_high"]
    out = {"ours": slope, "ci_low": lo, "ci_high": hi, "n": fit["n"], "difference": slope - ref.target,
           "method_mean": slope}
    pct = int(round(confidence * 100))
    if _inside(lo, ref) and _inside(hi, ref):
        verdict, note = PASS, f"{pct}% CI of the slope inside the acceptance interval"
    elif _below(hi, ref) or _above(lo, ref):
        verdict, note = FAIL, f"{pct}% CI of the slope outside the acceptance interval"
    else:
        verdict, note = INCONCLUSIVE, f"{pct}% CI of the slope [{lo:.3g}, {hi:.3g}] straddles an edge"
    note += f"; log-log fit over {fit['n']} cells{where}, r = {fit['rvalue']:.3g}"
    if fit.get("dropped"):
        note += f"; {fit['dropped']} point(s) not positive/finite, left out"
    return _row(ref, width, activation, verdict=verdict, note=note, **out, **prov)


def _score_kkt_bound(ref: Reference, cells: pd.DataFrame, width, activation) -> dict:
    """kind "kkt_bound": Theorem 2 as a bound over the instances (cells) of the group, each judged
    on its own radii (``theory.kkt_bound.bound_verdict``, slack = the row's ``bound``): the row
    reports the count of non-degenerate KKT points above the float64 floor and, when it is zero,
    says the eps^2 rate is untestable ("stated, not fitted")."""
    from ..core.records import KKT_BOUND_SUMMARY
    from ..theory.kkt_bound import bound_verdict

    prov = _provenance_fields(cells)
    done = cells[(cells["status"] == "done") & cells["kkt_bound_starts"].notna()] \
        if "kkt_bound_starts" in cells.columns else cells.iloc[0:0]
    if done.empty:
        return _row(ref, width, activation, note="no record here carries Theorem 2's KKT study (the theory "
                                                 "section's kkt_bound part: the kkt_bound task's cells)", **prov)
    instances = [{k: (None if _missing(row[f"kkt_bound_{k}"]) else row[f"kkt_bound_{k}"]) for k in KKT_BOUND_SUMMARY}
                 for _, row in done.iterrows()]
    out = bound_verdict(instances, slack=ref.target)
    growth = pd.to_numeric(done["kkt_bound_growth"], errors="coerce").max() if "kkt_bound_growth" in done else math.nan
    return _row(ref, width, activation, verdict=out["verdict"], ours=growth, n=len(instances), note=out["note"],
                **prov)


def _row(ref: Reference, width, activation, **fields) -> dict:
    row = {
        "id": ref.id, "kind": ref.kind, "source": ref.source, "task": ref.task, "profile": ref.profile,
        "protocol": ref.protocol, "method": ref.method, "versus": ref.versus, "width": width,
        "activation": activation, "setting": "", "metric": ref.metric, "direction": ref.direction,
        "reference": ref.target,
        "ours": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0, "difference": math.nan,
        "tolerance": ref.tolerance, "method_mean": math.nan, "versus_mean": math.nan, "verdict": SKIPPED, "note": "",
        "known_deviation": ref.known_deviation, "cells": [], "code_versions": [], "data_checksums": [],
    }
    extra_notes = fields.pop("note_extra", None)
    row.update(fields)
    if extra_notes:
        row["note"] = "; ".join([row["note"], *extra_notes])
    if ref.known_deviation and row["verdict"] == FAIL:
        row["note"] = f"{row['note']}; known deviation (expected): {ref.known_deviation}".lstrip("; ")
    return row


def _known_deviation_rows(rows: list[dict]) -> None:
    """A known deviation is a claim about a reference row, not each of its groups: the row is
    expected to FAIL somewhere (e.g. the relu rank law, in the cells with a dead sample). When no
    group of it FAILs but some PASS, the write-up is stale: said in those groups' notes."""
    by_id: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("known_deviation"):
            by_id.setdefault(row["id"], []).append(row)
    for group in by_id.values():
        verdicts = {r["verdict"] for r in group}
        if FAIL not in verdicts and PASS in verdicts:
            for r in group:
                if r["verdict"] == PASS:
                    r["note"] = (f"{r['note']}; known deviation UNEXPECTED: no group of this row fails, the write-up "
                                 f"is stale: {r['known_deviation']}").lstrip("; ")


def _mixed_data(frame: pd.DataFrame) -> str | None:
    checksums = sorted({str(c) for c in frame["data_checksum"] if c is not None})
    if len(checksums) > 1:
        return (f"records computed from {len(checksums)} different data sources (checksums "
                f"{', '.join(c[:19] for c in checksums)}): not one measurement; re-run them on one copy")
    return None


def _score_single(ref: Reference, cells: pd.DataFrame, width, activation, confidence: float) -> dict:
    prov = _provenance_fields(cells)
    mixed = _mixed_data(cells)
    if mixed:
        return _row(ref, width, activation, note=mixed, **prov)
    per_rep, notes = _per_repetition(cells, ref.metric)
    diverged = [r for r, (s, _) in per_rep.items() if s == "diverged"]
    values = [v for r, (s, v) in per_rep.items() if s == "done" and not math.isnan(v)]
    missing = [r for r, (s, v) in per_rep.items() if s == "done" and math.isnan(v)]
    if missing:
        notes.append(f"{ref.metric} not recorded for repetition(s) {missing}")
    if diverged:
        mean = math.fsum(values) / len(values) if values else math.nan
        reasons = sorted({str(r) for r in cells.loc[cells["status"] == "diverged", "reason"].dropna()})
        note = f"{len(diverged)} of {len(per_rep)} repetition(s) diverged ({diverged}): a measured failure"
        if reasons:
            note += f" [{reasons[0]}]"
        return _row(ref, width, activation, ours=mean, n=len(per_rep), difference=mean - ref.target,
                    method_mean=mean, verdict=FAIL, note="; ".join([note] + notes), **prov)
    if not values:
        return _row(ref, width, activation, note=f"metric {ref.metric} not recorded in the matching results", **prov)
    if ref.statistic == "every":
        return _row(ref, width, activation, **_decide_every(ref, per_rep), note_extra=notes, **prov)
    out = _decide(ref, values, confidence)
    out["method_mean"] = out["ours"]
    out["note"] = "; ".join([out["note"]] + notes)
    return _row(ref, width, activation, **out, **prov)


def _score_comparison(ref: Reference, a: pd.DataFrame, b: pd.DataFrame, width, activation,
                      confidence: float) -> dict:
    prov = _provenance_fields(a, b)
    mixed = _mixed_data(pd.concat([a, b]))
    if mixed:
        return _row(ref, width, activation, note=mixed, **prov)
    rep_a, notes_a = _per_repetition(a, ref.metric)
    rep_b, notes_b = _per_repetition(b, ref.metric)
    notes = [f"{ref.method}: {x}" for x in notes_a] + [f"{ref.versus}: {x}" for x in notes_b]
    common = sorted(set(rep_a) & set(rep_b))
    unpaired = sorted(set(rep_a) ^ set(rep_b))
    if unpaired:
        notes.append(f"repetition(s) {unpaired} have only one of the two methods: not paired, not counted")
    if not common:
        return _row(ref, width, activation, note="; ".join(
            [f"no repetition has both {ref.method} and {ref.versus}"] + notes), **prov)
    a_div = [r for r in common if rep_a[r][0] == "diverged"]
    b_div = [r for r in common if rep_b[r][0] == "diverged" and r not in a_div]
    pairs = [r for r in common if r not in a_div and r not in b_div]
    missing = [r for r in pairs if math.isnan(rep_a[r][1]) or math.isnan(rep_b[r][1])]
    if missing:
        notes.append(f"{ref.metric} not recorded for repetition(s) {missing}")
        pairs = [r for r in pairs if r not in missing]
    diffs = [rep_a[r][1] - rep_b[r][1] for r in pairs]
    mean_a = math.fsum(rep_a[r][1] for r in pairs) / len(pairs) if pairs else math.nan
    mean_b = math.fsum(rep_b[r][1] for r in pairs) / len(pairs) if pairs else math.nan
    base = {"method_mean": mean_a, "versus_mean": mean_b, **prov}
    if a_div:  # the claim fails in those repetitions: n counts every paired repetition
        mean = math.fsum(diffs) / len(diffs) if diffs else math.nan
        return _row(ref, width, activation, ours=mean, n=len(pairs) + len(a_div) + len(b_div),
                    difference=mean - ref.target, verdict=FAIL,
                    note="; ".join([f"{ref.method} diverged in repetition(s) {a_div}: the claim fails there"] + notes),
                    **base)
    if b_div:
        notes.insert(0, f"{ref.versus} diverged in repetition(s) {b_div}: won by {ref.method}, outside the CI "
                        f"(n counts the {len(pairs)} repetition(s) where both trained)")
    if not diffs:
        if b_div:
            # decided by those repetitions alone (no CI): n counts them
            return _row(ref, width, activation, n=len(b_div), verdict=PASS, note="; ".join(notes), **base)
        return _row(ref, width, activation, note="; ".join([f"metric {ref.metric} not recorded"] + notes), **base)
    out = _decide(ref, diffs, confidence)  # n = len(diffs): the sample the CI and the seeds hint use
    out["note"] = "; ".join([out["note"]] + notes)
    return _row(ref, width, activation, **{**out, **base})


def run_checks(df: pd.DataFrame, references: Iterable[Reference], *, confidence: float = 0.95) -> pd.DataFrame:
    """Score the results in ``df`` against ``references``: one row per reference row and
    (width, activation) group, columns ``VERDICT_COLUMNS``, in reference order then by width
    and activation. ``df`` is :func:`select`'s ``scored`` frame (rows are scored for their
    ``scoring_profile``), or any results table (then each row's own ``profile``)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    df = _prepare(df if df is not None else pd.DataFrame())
    rows: list[dict] = []
    for ref in references:
        methods = [ref.method] + ([ref.versus] if ref.versus else [])
        eligible = df[
            (df["task"] == ref.task) & (df["scoring_profile"] == ref.profile) & (df["protocol"] == ref.protocol)
            & df["method"].isin(methods) & df["status"].isin(USABLE)
        ]
        before_only = eligible
        eligible = _only(eligible, ref)
        if ref.only and eligible.empty and not before_only.empty:
            conditions = ", ".join(f"{c} {op.replace('_', ' ')} {b:g}" for c, op, b in ref.only)
            rows.append(_row(ref, None, None, n=0, note=(
                f"{len(before_only)} record(s) match the row but none meets its `only` conditions ({conditions}): "
                f"nothing to score")))
            continue
        if ref.widths is None and ref.activations is None and eligible.empty:
            rows.append(_row(ref, None, None, note=_skip_reason(ref, df, methods, None, None)))
            continue
        groups: list[tuple] = []
        if ref.widths is not None and ref.activations is not None:
            groups = [(w, a) for w in ref.widths for a in ref.activations]
        elif ref.widths is not None:
            for w in ref.widths:
                acts = _axis_values(None, eligible[eligible["width"] == w], "activation")
                groups.extend((w, a) for a in acts) if acts else groups.append((w, None))
        elif ref.activations is not None:
            for a in ref.activations:
                ws = _axis_values(None, eligible[eligible["activation"] == a], "width")
                groups.extend((w, a) for w in ws) if ws else groups.append((None, a))
        else:
            groups = sorted({(int(w), str(a)) for w, a in zip(eligible["width"], eligible["activation"])})
        for width, activation in groups:
            cell = eligible
            if width is not None:
                cell = cell[cell["width"] == width]
            if activation is not None:
                cell = cell[cell["activation"] == activation]
            a = cell[cell["method"] == ref.method]
            if a.empty and ref.only:  # say when the row's own conditions left nothing
                pre = before_only[(before_only["method"] == ref.method)
                                  & ((before_only["width"] == width) if width is not None else True)
                                  & ((before_only["activation"] == activation) if activation is not None else True)]
                if not pre.empty:
                    conditions = ", ".join(f"{c} {op.replace('_', ' ')} {b:g}" for c, op, b in ref.only)
                    rows.append(_row(ref, width, activation, note=(
                        f"{len(pre)} record(s) here, none meets the row's `only` conditions ({conditions}): nothing "
                        f"to score")))
                    continue
            if ref.kind in ("slope", "kkt_bound"):  # the points differ in x (and what is tied to it): pooled
                if a.empty:
                    rows.append(_row(ref, width, activation, note=_skip_reason(ref, df, methods, width, activation)))
                    continue
                rows.append(_score_slope(ref, a, width, activation, confidence) if ref.kind == "slope"
                            else _score_kkt_bound(ref, a, width, activation))
                continue
            if a.empty or (ref.kind == "comparison" and cell[cell["method"] == ref.versus].empty):
                rows.append(_row(ref, width, activation, note=_skip_reason(ref, df, methods, width, activation)))
                continue
            # records of different configurations are never pooled as repetitions: one verdict each
            for setting, sub in _setting_groups(cell):
                a = sub[sub["method"] == ref.method]
                if ref.kind == "comparison":
                    b = sub[sub["method"] == ref.versus]
                    if a.empty or b.empty:
                        who = ref.method if a.empty else ref.versus
                        rows.append(_row(ref, width, activation, setting=setting,
                                         note=f"no results for {who} at this setting ({setting})"))
                        continue
                    rows.append({**_score_comparison(ref, a, b, width, activation, confidence), "setting": setting})
                elif not a.empty:
                    rows.append({**_score_single(ref, a, width, activation, confidence), "setting": setting})
    _known_deviation_rows(rows)
    out = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    out["width"] = out["width"].astype(object)
    out["n"] = out["n"].astype(int)
    return out


def save_verdicts(verdicts: pd.DataFrame, out_dir, *, left_out: pd.DataFrame | None = None,
                  context: dict | None = None) -> list:
    """Write ``verdicts.json`` (rows, the records and code versions each used, the records left
    out, ``context``) and ``verdicts.csv`` (one row per verdict; lists joined by ``;``) into
    ``out_dir``; return the two paths. Deterministic: same inputs, same bytes."""
    import json
    from pathlib import Path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if _missing(v):
            return None
        return v.item() if hasattr(v, "item") else v

    rows = [{k: clean(v) for k, v in row.items()} for row in verdicts.to_dict("records")]
    left = [] if left_out is None else [{k: clean(v) for k, v in r.items()} for r in left_out.to_dict("records")]
    payload = {"context": context or {}, "summary": summary(verdicts), "exit_code": exit_code(verdicts),
               "verdicts": rows, "left_out": left}
    json_path = out_dir / "verdicts.json"
    json_path.write_text(json.dumps(payload, indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
    flat = verdicts.copy()
    for col in ("cells", "code_versions", "data_checksums"):
        flat[col] = flat[col].map(lambda v: ";".join(v) if isinstance(v, (list, tuple)) else v)
    csv_path = out_dir / "verdicts.csv"
    flat.to_csv(csv_path, index=False, lineterminator="\n")
    return [json_path, csv_path]


def exit_code(verdicts: pd.DataFrame) -> int:
    """0 if every verdict is PASS, 1 if any FAIL, else 3 (INCONCLUSIVE / SKIPPED, or none at
    all). 2 is reserved for errors and never returned here.

    Rows with a ``known_deviation`` (a documented non-reproduction) invert, per reference row
    (all its width/activation/setting groups together): a FAIL in some group is expected and the
    row counts as decided; no FAIL but a PASS is unexpected (the write-up is stale) and counts
    as a FAIL."""
    if verdicts is None or len(verdicts) == 0:
        return EXIT_UNDECIDED
    vs = set(verdicts["verdict"])
    unknown = vs - set(VERDICTS)
    if unknown:
        raise ValueError(f"unknown verdict(s) {sorted(unknown)}")
    known = verdicts.get("known_deviation", pd.Series([""] * len(verdicts), index=verdicts.index)).fillna("")
    known = known.astype(str) != ""
    effective = verdicts["verdict"].where(~known)
    # a known deviation is decided per reference row: some group FAILs as written up -> the
    # row's groups count as decided; none fails but some PASS -> the write-up is stale (a FAIL)
    ids = verdicts["id"] if "id" in verdicts.columns else pd.Series(verdicts.index, index=verdicts.index)
    for _, group in verdicts[known].groupby(ids[known]):
        row_verdicts = set(group["verdict"])
        if FAIL in row_verdicts:
            value = PASS if row_verdicts <= {FAIL, PASS} else INCONCLUSIVE
        elif PASS in row_verdicts:
            value = FAIL
        else:
            value = INCONCLUSIVE if INCONCLUSIVE in row_verdicts else SKIPPED
        effective[group.index] = value
    vs = set(effective)
    if FAIL in vs:
        return EXIT_FAIL
    if vs == {PASS}:
        return EXIT_PASS
    return EXIT_UNDECIDED


def summary(verdicts: pd.DataFrame) -> dict[str, int]:
    """Count of each verdict (all four keys, in ``VERDICTS`` order)."""
    counts = verdicts["verdict"].value_counts() if len(verdicts) else {}
    return {v: int(counts.get(v, 0)) for v in VERDICTS}
