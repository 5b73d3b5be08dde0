"""A template plug-in: a new kind of check, ``ratio``, one entry in the table of check kinds.

A row of kind ``ratio`` scores the per-repetition ratio ``metric[method] / metric[versus]``
(paired by repetition, as a comparison) against ``bound``: ``at_most`` (e.g. "the method's loss
is at most 0.8 times the ablation's": at least 20% lower) or ``at_least``. The mean ratio gets
a Student-t interval and is decided like any mean (docs/checks.md, "Verdicts").
``my_check_kind.toml`` beside this file is a reference file that uses it. Use it from any
folder, with the folder that holds it on PYTHONPATH (it is not part of the package):

    export PYTHONPATH=/path/to/examples
    python -m bench_suite --plugin my_check_kind check --store reports/ci/store \\
        --baselines examples/my_check_kind.toml

(or ``BENCH_SUITE_PLUGINS=my_check_kind``). In Python: ``import my_check_kind`` before
``bench_suite.check(...)``.

What a kind declares (``bench_suite/scoring/kinds.py``, ``CheckKind``): its scorer, the
directions a row may take, the fields it takes (of ``value``, ``bound``, ``versus``, ``x``) and
needs, defaults for them, a one-line description of a row, and whether the verdict's ``n``
counts repetitions (then fewer than the profile declares makes it partial). The driver does the
rest for every kind alike: which records count, one verdict per width x activation x
configuration, the row's ``statistic`` (``ref.column``), scope, the final-value result beside a
tail statistic, outcomes and the exit code.
"""

from __future__ import annotations

import math

from bench_suite.scoring.kinds import OPERATORS, CheckKind, register_kind
from bench_suite.scoring.selection import per_repetition, provenance_fields
from bench_suite.scoring.statistics import decide_mean
from bench_suite.scoring.verdicts import verdict_row


def score_ratio(ref, cells, width, activation, confidence):
    """``cells``: the usable records of one group, of both methods (a pandas DataFrame, one row
    per record, the results-table columns); returns one verdict row."""
    a, b = cells[cells["method"] == ref.method], cells[cells["method"] == ref.versus]
    prov = provenance_fields(a, b)
    rep_a, _ = per_repetition(a, ref.column)
    rep_b, _ = per_repetition(b, ref.column)
    pairs = [r for r in sorted(set(rep_a) & set(rep_b))
             if rep_a[r][0] == rep_b[r][0] == "done" and rep_b[r][1] != 0
             and not (math.isnan(rep_a[r][1]) or math.isnan(rep_b[r][1]))]
    if not pairs:
        return verdict_row(ref, width, activation, note="no repetition with both finished and a nonzero denominator",
                           **prov)
    ratios = [rep_a[r][1] / rep_b[r][1] for r in pairs]
    out = decide_mean(ratios, ref.acceptance(), ref.target, confidence)
    out["method_mean"] = math.fsum(rep_a[r][1] for r in pairs) / len(pairs)
    out["versus_mean"] = math.fsum(rep_b[r][1] for r in pairs) / len(pairs)
    return verdict_row(ref, width, activation, **out, **prov)


def describe_ratio(ref):
    return f"{ref.metric}[{ref.method}] / {ref.metric}[{ref.versus}] {OPERATORS[ref.direction]} {ref.target:g}"


RATIO = register_kind(CheckKind(
    "ratio", score_ratio, ("at_most", "at_least"), describe_ratio,
    takes=frozenset({"bound", "versus"}), needs=("bound", "versus"),
    description="the per-repetition ratio metric[method] / metric[versus] against bound (an example plug-in)",
))
