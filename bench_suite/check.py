"""Scoring: the store's DataFrame + reference rows -> one verdict per reference row and cell group.

No training code here: :func:`run_checks` takes the DataFrame that ``ResultStore.to_dataframe()``
returns (columns in ``docs/design.md``) and the rows of :func:`bench_suite.baselines.load_references`.

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
from typing import Iterable

import pandas as pd

from .baselines import Reference

PASS, FAIL, INCONCLUSIVE, SKIPPED = "PASS", "FAIL", "INCONCLUSIVE", "SKIPPED"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, SKIPPED)

EXIT_PASS = 0  # every verdict PASS
EXIT_FAIL = 1  # at least one FAIL
EXIT_ERROR = 2  # reserved for errors (bad arguments, unreadable files): the CLI returns it
EXIT_UNDECIDED = 3  # no FAIL, but something INCONCLUSIVE or SKIPPED (or nothing to check)

MEASURED = ("done",)
FAILED_MEASUREMENT = ("diverged",)
USABLE = MEASURED + FAILED_MEASUREMENT

VERDICT_COLUMNS = [
    "id", "kind", "source", "task", "profile", "protocol", "method", "versus", "width", "activation", "metric",
    "direction", "reference", "ours", "ci_low", "ci_high", "n", "difference", "tolerance", "method_mean",
    "versus_mean", "verdict", "note", "known_deviation",
]

_EDGE_EPS = 1e-12  # measured values this close to an edge count as on it (float noise in edges)
_MAX_SEEDS = 1_000_000


# --------------------------------------------------------------------------------------------
# Student t without scipy
# --------------------------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (``df = inf``: the normal)."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if math.isinf(df):
        return 0.5 * math.erfc(-t / math.sqrt(2.0))
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (accurate to ~1e-10).

    Inverts :func:`t_cdf` by bisection; closed forms for df = 1 and 2.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2.0 * p - 1.0) / math.sqrt(2.0 * p * (1.0 - p))
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


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
    """Verdict of one statistic sample against the row's acceptance interval."""
    n = len(values)
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


def _norm_profile(v) -> str | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    needed = ["profile", "protocol", "status", "reason", "task", "method", "width", "activation", "repetition"]
    df = df.copy()
    for col in needed:
        if col not in df.columns:
            df[col] = None
    df["profile"] = df["profile"].map(_norm_profile)
    return df


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
    same_profile = m[m["profile"] == ref.profile]
    if same_profile.empty:
        profiles = sorted({p if p is not None else "(none: axes from the command line)" for p in m["profile"]})
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
    duplicates of one repetition are averaged (and noted)."""
    notes: list[str] = []
    out: dict[int, tuple[str, float]] = {}
    for rep, rows in sorted(frame.groupby("repetition", sort=True), key=lambda kv: kv[0]):
        rep = int(rep)
        if (rows["status"] == "diverged").any():
            out[rep] = ("diverged", math.nan)
            continue
        vals = pd.to_numeric(rows[metric], errors="coerce").astype(float)
        finite = [float(v) for v in vals if math.isfinite(v)]
        if len(rows) > 1:
            notes.append(f"{len(rows)} records for repetition {rep}: averaged")
        out[rep] = ("done", math.fsum(finite) / len(finite) if finite else math.nan)
    return out, notes


def _row(ref: Reference, width, activation, **fields) -> dict:
    row = {
        "id": ref.id, "kind": ref.kind, "source": ref.source, "task": ref.task, "profile": ref.profile,
        "protocol": ref.protocol, "method": ref.method, "versus": ref.versus, "width": width,
        "activation": activation, "metric": ref.metric, "direction": ref.direction, "reference": ref.target,
        "ours": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0, "difference": math.nan,
        "tolerance": ref.tolerance, "method_mean": math.nan, "versus_mean": math.nan, "verdict": SKIPPED, "note": "",
        "known_deviation": ref.known_deviation,
    }
    row.update(fields)
    if ref.known_deviation and row["verdict"] in (FAIL, PASS):
        expected = "expected" if row["verdict"] == FAIL else "UNEXPECTED PASS: the write-up is stale"
        row["note"] = f"{row['note']}; known deviation ({expected}): {ref.known_deviation}".lstrip("; ")
    return row


def _score_single(ref: Reference, cells: pd.DataFrame, width, activation, confidence: float) -> dict:
    per_rep, notes = _per_repetition(cells, ref.metric)
    diverged = [r for r, (s, _) in per_rep.items() if s == "diverged"]
    values = [v for r, (s, v) in per_rep.items() if s == "done" and math.isfinite(v)]
    missing = [r for r, (s, v) in per_rep.items() if s == "done" and not math.isfinite(v)]
    if missing:
        notes.append(f"{ref.metric} not recorded for repetition(s) {missing}")
    if diverged:
        mean = math.fsum(values) / len(values) if values else math.nan
        reasons = sorted({str(r) for r in cells.loc[cells["status"] == "diverged", "reason"].dropna()})
        note = f"{len(diverged)} of {len(per_rep)} repetition(s) diverged ({diverged}): a measured failure"
        if reasons:
            note += f" [{reasons[0]}]"
        return _row(ref, width, activation, ours=mean, n=len(per_rep), difference=mean - ref.target,
                    method_mean=mean, verdict=FAIL, note="; ".join([note] + notes))
    if not values:
        return _row(ref, width, activation, note=f"metric {ref.metric} not recorded in the matching results")
    out = _decide(ref, values, confidence)
    out["method_mean"] = out["ours"]
    out["note"] = "; ".join([out["note"]] + notes)
    return _row(ref, width, activation, **out)


def _score_comparison(ref: Reference, a: pd.DataFrame, b: pd.DataFrame, width, activation,
                      confidence: float) -> dict:
    rep_a, notes_a = _per_repetition(a, ref.metric)
    rep_b, notes_b = _per_repetition(b, ref.metric)
    notes = [f"{ref.method}: {x}" for x in notes_a] + [f"{ref.versus}: {x}" for x in notes_b]
    common = sorted(set(rep_a) & set(rep_b))
    unpaired = sorted(set(rep_a) ^ set(rep_b))
    if unpaired:
        notes.append(f"repetition(s) {unpaired} have only one of the two methods: not paired, not counted")
    if not common:
        return _row(ref, width, activation, note="; ".join(
            [f"no repetition has both {ref.method} and {ref.versus}"] + notes))
    a_div = [r for r in common if rep_a[r][0] == "diverged"]
    b_div = [r for r in common if rep_b[r][0] == "diverged" and r not in a_div]
    pairs = [r for r in common if r not in a_div and r not in b_div]
    missing = [r for r in pairs if not (math.isfinite(rep_a[r][1]) and math.isfinite(rep_b[r][1]))]
    if missing:
        notes.append(f"{ref.metric} not recorded for repetition(s) {missing}")
        pairs = [r for r in pairs if r not in missing]
    diffs = [rep_a[r][1] - rep_b[r][1] for r in pairs]
    mean_a = math.fsum(rep_a[r][1] for r in pairs) / len(pairs) if pairs else math.nan
    mean_b = math.fsum(rep_b[r][1] for r in pairs) / len(pairs) if pairs else math.nan
    n_total = len(pairs) + len(a_div) + len(b_div)
    base = {"method_mean": mean_a, "versus_mean": mean_b}
    if a_div:
        mean = math.fsum(diffs) / len(diffs) if diffs else math.nan
        return _row(ref, width, activation, ours=mean, n=n_total, difference=mean - ref.target, verdict=FAIL,
                    note="; ".join([f"{ref.method} diverged in repetition(s) {a_div}: the claim fails there"] + notes),
                    **base)
    if b_div:
        notes.insert(0, f"{ref.versus} diverged in repetition(s) {b_div}: counted as won by {ref.method}")
    if not diffs:
        if b_div:
            return _row(ref, width, activation, n=n_total, verdict=PASS, note="; ".join(notes), **base)
        return _row(ref, width, activation, note="; ".join([f"metric {ref.metric} not recorded"] + notes))
    out = _decide(ref, diffs, confidence)
    out["n"] = n_total
    if b_div and out["verdict"] == INCONCLUSIVE:
        notes.append(f"CI over the {len(diffs)} repetition(s) where both trained")
    out["note"] = "; ".join([out["note"]] + notes)
    return _row(ref, width, activation, **{**out, **base})


def run_checks(df: pd.DataFrame, references: Iterable[Reference], *, confidence: float = 0.95) -> pd.DataFrame:
    """Score the results in ``df`` against ``references``: one row per reference row and
    (width, activation) group, columns ``VERDICT_COLUMNS``, in reference order then by width
    and activation."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    df = _prepare(df if df is not None else pd.DataFrame())
    rows: list[dict] = []
    for ref in references:
        methods = [ref.method] + ([ref.versus] if ref.versus else [])
        eligible = df[
            (df["task"] == ref.task) & (df["profile"] == ref.profile) & (df["protocol"] == ref.protocol)
            & df["method"].isin(methods) & df["status"].isin(USABLE)
        ]
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
            if ref.kind == "comparison":
                b = cell[cell["method"] == ref.versus]
                if a.empty or b.empty:
                    rows.append(_row(ref, width, activation, note=_skip_reason(ref, df, methods, width, activation)))
                    continue
                rows.append(_score_comparison(ref, a, b, width, activation, confidence))
            else:
                if a.empty:
                    rows.append(_row(ref, width, activation, note=_skip_reason(ref, df, methods, width, activation)))
                    continue
                rows.append(_score_single(ref, a, width, activation, confidence))
    out = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    out["width"] = out["width"].astype(object)
    out["n"] = out["n"].astype(int)
    return out


def exit_code(verdicts: pd.DataFrame) -> int:
    """0 if every verdict is PASS, 1 if any FAIL, else 3 (INCONCLUSIVE / SKIPPED, or none at
    all). 2 is reserved for errors and never returned here.

    Rows with a ``known_deviation`` (a documented non-reproduction) invert: their FAIL is
    expected and counts as decided, their PASS is unexpected and counts as a FAIL."""
    if verdicts is None or len(verdicts) == 0:
        return EXIT_UNDECIDED
    vs = set(verdicts["verdict"])
    unknown = vs - set(VERDICTS)
    if unknown:
        raise ValueError(f"unknown verdict(s) {sorted(unknown)}")
    known = verdicts.get("known_deviation", pd.Series([""] * len(verdicts), index=verdicts.index)).fillna("")
    known = known.astype(str) != ""
    effective = verdicts["verdict"].where(~known, verdicts["verdict"].map({FAIL: PASS, PASS: FAIL}).fillna(
        verdicts["verdict"]))
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
