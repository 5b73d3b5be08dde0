"""``compare A B``: what moved between two stores (two runs, two machines, two commits).

- **Claims**: every verdict row (reference row and width / activation / setting group) of
  either side: the verdict in A and in B, the change (``same``, ``better``, ``worse``,
  ``now scored``, ``no longer scored``, ``only in A``/``only in B``), ours in each and the
  difference B − A with a confidence interval (Welch's, from each side's mean, CI and n; exact
  0 when both used the same cells). Verdicts rank PASS > INCONCLUSIVE > FAIL; SKIPPED is not a
  verdict on the claim (no data), so a move to or from it is reported, not ranked.
- **Metrics**: every final metric (``records.SCORED_METRICS``) of every group of matching cells
  (same task and setting: the cell's name without its repetition, whichever profile it was run
  for): the mean in each,
  the difference B − A with a Student-t CI, **paired by cell id** where both sides hold the same
  cells (same configuration, seeds and code), else unpaired (Welch). ``moved``: the CI excludes
  0, or (no CI) the values differ.
- **Cells only in one side** (by name).

The exit code is 1 when some verdict got worse, else 0 (:data:`EXIT_WORSE`). Pure pandas and
scipy (through ``scoring.checks``), no torch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..core.records import SCORED_METRICS
from ..scoring.statistics import t_quantile
from ..scoring.verdicts import FAIL, INCONCLUSIVE, PASS, SKIPPED
from . import fmt

EXIT_SAME = 0
EXIT_WORSE = 1  # some verdict got worse (PASS -> INCONCLUSIVE/FAIL, INCONCLUSIVE -> FAIL)
_RANK = {PASS: 3, INCONCLUSIVE: 2, FAIL: 1}
CLAIM_COLUMNS = ["id", "task", "profile", "width", "activation", "setting", "verdict_a", "verdict_b", "change",
                 "ours_a", "ours_b", "n_a", "n_b", "difference", "ci_low", "ci_high", "same_cells"]
METRIC_COLUMNS = ["task", "profile", "setting", "metric", "n_a", "n_b", "paired", "mean_a", "mean_b", "difference",
                  "ci_low", "ci_high", "moved"]
CELL_COLUMNS = ["cell_id", "name", "profile", "status"]


@dataclass
class Comparison:
    """The outcome of :func:`compare`: ``claims`` (``CLAIM_COLUMNS``), ``metrics``
    (``METRIC_COLUMNS``), ``only_a`` / ``only_b`` (``CELL_COLUMNS``), the two sides' labels and
    the confidence level."""

    a: str
    b: str
    claims: pd.DataFrame
    metrics: pd.DataFrame
    only_a: pd.DataFrame
    only_b: pd.DataFrame
    confidence: float = 0.95

    @property
    def worse(self) -> pd.DataFrame:
        return self.claims[self.claims["change"] == "worse"]

    @property
    def exit_code(self) -> int:
        return EXIT_WORSE if len(self.worse) else EXIT_SAME

    def summary(self) -> dict[str, Any]:
        changes = self.claims["change"].value_counts().to_dict() if len(self.claims) else {}
        moved = int(self.metrics["moved"].sum()) if len(self.metrics) else 0
        return {"a": self.a, "b": self.b, "claims": {str(k): int(v) for k, v in sorted(changes.items())},
                "metrics_compared": len(self.metrics), "metrics_moved": moved, "only_a": len(self.only_a),
                "only_b": len(self.only_b), "exit_code": self.exit_code}


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------
def _se_from_ci(low: Any, high: Any, n: Any, confidence: float) -> float:
    """The standard error behind a t-interval [low, high] over n values (NaN without one)."""
    if fmt.missing(low) or fmt.missing(high) or fmt.missing(n) or int(n) < 2:
        return math.nan
    return (float(high) - float(low)) / 2.0 / t_quantile(0.5 + confidence / 2.0, int(n) - 1)


def welch(mean_a: float, se_a: float, n_a: int, mean_b: float, se_b: float, n_b: int,
          confidence: float = 0.95) -> tuple[float, float, float]:
    """(difference B − A, ci_low, ci_high) from each side's mean, standard error and count
    (Welch-Satterthwaite degrees of freedom); NaN bounds when a side has no error."""
    diff = mean_b - mean_a
    if not (math.isfinite(se_a) and math.isfinite(se_b)) or n_a < 2 or n_b < 2:
        return diff, math.nan, math.nan
    var = se_a ** 2 + se_b ** 2
    if var == 0:
        return diff, diff, diff
    df = var ** 2 / (se_a ** 4 / (n_a - 1) + se_b ** 4 / (n_b - 1))
    half = t_quantile(0.5 + confidence / 2.0, df) * math.sqrt(var)
    return diff, diff - half, diff + half


def _mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, sd / math.sqrt(n)


def paired(diffs: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean difference, ci_low, ci_high) of paired differences (Student t; NaN bounds for one)."""
    mean, se = _mean_se(diffs)
    if not math.isfinite(se):
        return mean, math.nan, math.nan
    half = t_quantile(0.5 + confidence / 2.0, len(diffs) - 1) * se
    return mean, mean - half, mean + half


# --------------------------------------------------------------------------------------------
# claims
# --------------------------------------------------------------------------------------------
def _key(row: Any) -> tuple:
    def norm(v):
        return "all" if fmt.missing(v) else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))

    return (str(row["id"]), norm(row["width"]), norm(row["activation"]), norm(row.get("setting")))


def change(va: str | None, vb: str | None) -> str:
    if va is None:
        return "only in B"
    if vb is None:
        return "only in A"
    if va == vb:
        return "same"
    if va == SKIPPED:
        return "now scored"
    if vb == SKIPPED:
        return "no longer scored"
    return "better" if _RANK.get(vb, 0) > _RANK.get(va, 0) else "worse"


def compare_claims(a: pd.DataFrame, b: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    rows_a = {_key(r): r for _, r in a.iterrows()} if len(a) else {}
    rows_b = {_key(r): r for _, r in b.iterrows()} if len(b) else {}
    out = []
    for key in sorted(set(rows_a) | set(rows_b)):
        ra, rb = rows_a.get(key), rows_b.get(key)
        first = ra if ra is not None else rb
        va = None if ra is None else str(ra["verdict"])
        vb = None if rb is None else str(rb["verdict"])
        row = {"id": key[0], "task": first["task"], "profile": fmt.profile_name(first["profile"]), "width": key[1],
               "activation": key[2], "setting": key[3] if key[3] != "all" else "", "verdict_a": va or "",
               "verdict_b": vb or "", "change": change(va, vb), "ours_a": math.nan, "ours_b": math.nan,
               "n_a": 0, "n_b": 0, "difference": math.nan, "ci_low": math.nan, "ci_high": math.nan,
               "same_cells": False}
        for side, r in (("a", ra), ("b", rb)):
            if r is not None and not fmt.missing(r["ours"]):
                row[f"ours_{side}"] = float(r["ours"])
                row[f"n_{side}"] = int(r["n"]) if not fmt.missing(r["n"]) else 0
        if ra is not None and rb is not None and math.isfinite(row["ours_a"]) and math.isfinite(row["ours_b"]):
            cells_a, cells_b = ra.get("cells"), rb.get("cells")
            same = isinstance(cells_a, (list, tuple)) and isinstance(cells_b, (list, tuple)) and cells_a \
                and sorted(cells_a) == sorted(cells_b)
            row["same_cells"] = bool(same)
            if same and row["ours_a"] == row["ours_b"]:
                row["difference"], row["ci_low"], row["ci_high"] = 0.0, 0.0, 0.0
            else:
                se_a = _se_from_ci(ra["ci_low"], ra["ci_high"], ra["n"], confidence)
                se_b = _se_from_ci(rb["ci_low"], rb["ci_high"], rb["n"], confidence)
                row["difference"], row["ci_low"], row["ci_high"] = welch(row["ours_a"], se_a, row["n_a"],
                                                                         row["ours_b"], se_b, row["n_b"], confidence)
        out.append(row)
    return pd.DataFrame(out, columns=CLAIM_COLUMNS)


# --------------------------------------------------------------------------------------------
# metrics of matching cells
# --------------------------------------------------------------------------------------------
def setting_of(name: str) -> str:
    """A cell's name without its repetition: the setting repetitions share."""
    return re.sub(r"(?<=[\[,])rep=\d+,?", "", str(name)).replace(",]", "]")


def _usable(frame: pd.DataFrame) -> pd.DataFrame:
    if frame is None or len(frame) == 0:
        return pd.DataFrame(columns=["cell_id", "name", "task", "profile", "status"])
    out = frame[frame["status"].isin(["done", "diverged"])].copy()
    out["_setting"] = out["name"].map(setting_of)
    out["_profile"] = out["profile"].map(fmt.profile_name)
    return out


def compare_metrics(a: pd.DataFrame, b: pd.DataFrame, confidence: float = 0.95,
                    metrics: tuple[str, ...] = SCORED_METRICS) -> pd.DataFrame:
    ua, ub = _usable(a), _usable(b)
    out = []
    # a setting is what the cells compute (task, configuration, repetition left out), whichever
    # profile they were run for: the README's default job matches the committed `ci` cells
    keys = sorted(set(zip(ua.get("task", []), ua.get("_setting", [])))
                  & set(zip(ub.get("task", []), ub.get("_setting", []))))
    for task, setting in keys:
        ga = ua[(ua["task"] == task) & (ua["_setting"] == setting)]
        gb = ub[(ub["task"] == task) & (ub["_setting"] == setting)]
        profile = " / ".join(sorted(set(ga["_profile"]) | set(gb["_profile"])))
        for metric in metrics:
            if metric not in ga.columns or metric not in gb.columns:
                continue
            va = dict(zip(ga["cell_id"], pd.to_numeric(ga[metric], errors="coerce")))
            vb = dict(zip(gb["cell_id"], pd.to_numeric(gb[metric], errors="coerce")))
            va = {k: float(v) for k, v in va.items() if not fmt.missing(v) and math.isfinite(v)}
            vb = {k: float(v) for k, v in vb.items() if not fmt.missing(v) and math.isfinite(v)}
            if not va or not vb:
                continue
            both = sorted(set(va) & set(vb))
            if both:
                diff, lo, hi = paired([vb[k] - va[k] for k in both], confidence)
            else:
                ma, sa = _mean_se(list(va.values()))
                mb, sb = _mean_se(list(vb.values()))
                diff, lo, hi = welch(ma, sa, len(va), mb, sb, len(vb), confidence)
            mean_a, mean_b = math.fsum(va.values()) / len(va), math.fsum(vb.values()) / len(vb)
            if math.isfinite(lo):
                moved = lo > 0 or hi < 0
            else:
                moved = abs(diff) > 1e-9 * max(abs(mean_a), abs(mean_b), 1e-300)
            out.append({"task": task, "profile": profile, "setting": setting, "metric": metric, "n_a": len(va),
                        "n_b": len(vb), "paired": len(both), "mean_a": mean_a, "mean_b": mean_b, "difference": diff,
                        "ci_low": lo, "ci_high": hi, "moved": bool(moved)})
    return pd.DataFrame(out, columns=METRIC_COLUMNS)


def only_in(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Cells of ``a`` whose name (task, configuration and repetition) is not in ``b``, whichever
    profile either was run for."""
    if a is None or len(a) == 0:
        return pd.DataFrame(columns=CELL_COLUMNS)
    theirs = set() if b is None or len(b) == 0 else set(b["name"])
    mask = [n not in theirs for n in a["name"]]
    out = a.loc[mask, CELL_COLUMNS].copy()
    out["profile"] = out["profile"].map(fmt.profile_name)
    return out.sort_values(["profile", "name"], kind="mergesort").reset_index(drop=True)


def compare(results_a: pd.DataFrame, verdicts_a: pd.DataFrame, results_b: pd.DataFrame, verdicts_b: pd.DataFrame,
            *, a: str = "A", b: str = "B", confidence: float = 0.95) -> Comparison:
    """Compare two stores' results tables and verdicts (``bench_suite.compare`` scores both
    stores and calls this)."""
    return Comparison(a, b, compare_claims(verdicts_a, verdicts_b, confidence),
                      compare_metrics(results_a, results_b, confidence), only_in(results_a, results_b),
                      only_in(results_b, results_a), confidence)


# --------------------------------------------------------------------------------------------
# words
# --------------------------------------------------------------------------------------------
def _diff(row: Any) -> str:
    if fmt.missing(row["difference"]):
        return fmt.DASH
    ci = "" if fmt.missing(row["ci_low"]) else f" [{fmt.num(row['ci_low'], '.3g')}, {fmt.num(row['ci_high'], '.3g')}]"
    return f"{fmt.num(row['difference'], '+.3g')}{ci}"


def describe(cmp: Comparison, *, limit: int = 20) -> list[str]:
    """The lines ``compare`` prints: the verdicts that changed (worse first), the metrics that
    moved (largest relative change first, at most ``limit`` unless 0), the cells on one side."""
    s = cmp.summary()
    lines = [f"compare A = {cmp.a} with B = {cmp.b} ({cmp.confidence:.0%} intervals; difference = B - A)"]
    claims = cmp.claims
    changes = ", ".join(f"{n} {k}" for k, n in s["claims"].items()) or "no verdict rows"
    lines.append(f"verdict rows: {changes}")
    order = {"worse": 0, "better": 1, "no longer scored": 2, "now scored": 3, "only in A": 4, "only in B": 5}
    moved = claims[claims["change"] != "same"].copy() if len(claims) else claims
    if len(moved):
        moved["_o"] = moved["change"].map(order)
        for _, r in moved.sort_values(["_o", "id"], kind="mergesort").iterrows():
            where = ", ".join(x for x in (f"width {r['width']}" if r["width"] != "all" else "",
                                          r["activation"] if r["activation"] != "all" else "", r["setting"]) if x)
            lines.append(f"  {r['change'].upper()}: {r['id']}{f' ({where})' if where else ''}: "
                         f"{r['verdict_a'] or '-'} -> {r['verdict_b'] or '-'}; ours {fmt.num(r['ours_a'])} -> "
                         f"{fmt.num(r['ours_b'])}, difference {_diff(r)}")
    metrics = cmp.metrics
    n_moved = int(metrics["moved"].sum()) if len(metrics) else 0
    n_paired = int((metrics["paired"] > 0).sum()) if len(metrics) else 0
    lines.append(f"metrics: {len(metrics)} (setting, metric) pairs of matching cells compared ({n_paired} paired by "
                 f"cell id); {n_moved} moved (the interval excludes 0, or the values differ)")
    if n_moved:
        m = metrics[metrics["moved"]].copy()
        m["_rel"] = (m["difference"].abs() / m[["mean_a", "mean_b"]].abs().max(axis=1).clip(lower=1e-300))
        m = m.sort_values(["_rel", "setting", "metric"], ascending=[False, True, True], kind="mergesort")
        shown = m if not limit else m.head(limit)
        for _, r in shown.iterrows():
            lines.append(f"  {r['setting']} [{r['profile']}] {r['metric']}: {fmt.num(r['mean_a'])} -> "
                         f"{fmt.num(r['mean_b'])}, difference {_diff(r)} "
                         f"({'paired, n=' + str(r['paired']) if r['paired'] else f'unpaired, n={r.n_a}/{r.n_b}'})")
        if limit and len(m) > limit:
            lines.append(f"  ... and {len(m) - limit} more (--all, or --save DIR: metrics.csv)")
    for side, frame in (("A", cmp.only_a), ("B", cmp.only_b)):
        if len(frame):
            names = ", ".join(frame["name"].head(5))
            lines.append(f"cells only in {side}: {len(frame)} ({names}{', ...' if len(frame) > 5 else ''})")
    lines.append("worse: " + (f"{len(cmp.worse)} verdict row(s) got worse (exit {EXIT_WORSE})" if len(cmp.worse)
                              else "no verdict got worse"))
    return lines


def save(cmp: Comparison, out_dir) -> list:
    """``compare.json`` (the summary), ``claims.csv``, ``metrics.csv`` and ``cells_only.csv``
    in ``out_dir``; the paths written."""
    import json
    from pathlib import Path

    from ..core.files import atomic_write

    out = Path(out_dir)
    only = pd.concat([cmp.only_a.assign(side="A"), cmp.only_b.assign(side="B")], ignore_index=True)
    paths = [atomic_write(out / "compare.json", json.dumps(cmp.summary(), indent=1, sort_keys=True) + "\n")]
    for name, frame in (("claims", cmp.claims), ("metrics", cmp.metrics), ("cells_only", only)):
        paths.append(atomic_write(out / f"{name}.csv", frame.to_csv(index=False, lineterminator="\n")))
    return paths


__all__ = ["CELL_COLUMNS", "CLAIM_COLUMNS", "Comparison", "EXIT_SAME", "EXIT_WORSE", "METRIC_COLUMNS", "change",
           "compare", "compare_claims", "compare_metrics", "describe", "only_in", "paired", "save", "setting_of",
           "welch"]
