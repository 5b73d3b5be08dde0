"""Scoring on synthetic DataFrames: every verdict, profile / protocol matching, seeds, pairing."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench_suite.core.exit_codes import CHECK_FAIL, CHECK_PASS, CHECK_UNDECIDED
from bench_suite.scoring import (
    FAIL,
    INCONCLUSIVE,
    OUT_OF_SCOPE,
    PASS,
    SKIPPED,
    VERDICT_COLUMNS,
    exit_code,
    mean_ci,
    run_checks,
    seeds_to_decide,
    summary,
    t_cdf,
    t_quantile,
)
from bench_suite.scoring.references import loads_references

COLUMNS = [
    "cell_id", "name", "profile", "protocol", "status", "reason", "task", "method", "width", "activation",
    "repetition", "epochs", "train_loss", "train_acc", "test_loss", "test_acc", "dist_w0", "proj_active_frac",
    "train_time_s", "wall_time_s", "flops", "group_tflops_per_s", "n", "d", "m", "k", "width_ratio", "device",
    "device_name", "precision", "data_source", "git_commit", "git_dirty",
]


def row(task="cifar10_random", method="mli_paired_pgd", width=1024, activation="relu", rep=0, profile="paper",
        protocol=1, status="done", reason=None, **metrics):
    r = dict.fromkeys(COLUMNS)
    r.update(task=task, method=method, width=width, activation=activation, repetition=rep, profile=profile,
             protocol=protocol, status=status, reason=reason,
             name=f"{task}[method={method},width={width},activation={activation},rep={rep}]",
             cell_id=f"{task}-{method}-{width}-{activation}-{rep}-{profile}")
    r.update(metrics)
    return r


def frame(rows):
    return pd.DataFrame(rows, columns=COLUMNS)


def refs(body: str, protocol: int = 1):
    return loads_references(f"protocol = {protocol}\n" + body)


VALUE = """
[[reference]]
id = "v"
task = "cifar10_random"
profile = "paper"
method = "mli_paired_pgd"
width = 1024
activation = "relu"
metric = "train_acc"
value = 0.99
tolerance = 0.01
"""

THRESHOLD = """
[[reference]]
id = "mem"
kind = "threshold"
task = "cifar10_random"
profile = "ci"
method = "mli_paired_pgd"
metric = "train_acc"
direction = "at_least"
bound = 0.9
"""

COMPARISON = """
[[reference]]
id = "cmp"
kind = "comparison"
task = "synthetic_ablation"
profile = "paper"
method = "mli_paired_pgd"
versus = "sgd"
metric = "train_loss"
direction = "lower"
"""


def one(verdicts) -> pd.Series:
    assert len(verdicts) == 1
    return verdicts.iloc[0]


# --------------------------------------------------------------------------------------------
# the t quantile
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "df, expected",
    [(1, 12.7062047), (2, 4.3026527), (3, 3.1824463), (4, 2.7764451), (5, 2.5705818), (9, 2.2621572),
     (19, 2.0930241), (29, 2.0452296), (100, 1.9839715), (1000, 1.9623391), (math.inf, 1.9599640)],
)
def test_t_quantile_975_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("p, df, expected", [(0.995, 4, 4.6040949), (0.95, 10, 1.8124611), (0.9, 3, 1.6377444),
                                             (0.999, 7, 4.7852896)])
def test_t_quantile_other_levels(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-6)
    assert t_quantile(1 - p, df) == pytest.approx(-expected, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(p=st.floats(0.001, 0.999), df=st.integers(1, 400))
def test_t_quantile_inverts_cdf(p, df):
    q = t_quantile(p, df)
    assert t_cdf(q, df) == pytest.approx(p, abs=1e-9)
    # heavier tails with fewer degrees of freedom: |quantile| shrinks as df grows
    assert abs(q) >= abs(t_quantile(p, df + 1)) - 1e-9


def test_t_quantile_matches_scipy_when_available():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 7, 15, 60, 250):
        for p in (0.6, 0.9, 0.975, 0.995):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), abs=1e-8)


def test_t_quantile_rejects_bad_input():
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError):
        t_quantile(0.5, 0)
    assert t_quantile(0.5, 3) == 0.0


def test_mean_ci_and_seeds_to_decide():
    mean, sd, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert (mean, sd) == (2.0, 1.0)
    assert hi - mean == pytest.approx(4.3026527 / math.sqrt(3), abs=1e-6)
    m1 = mean_ci([0.5])
    assert m1[0] == 0.5 and all(math.isnan(x) for x in m1[1:])
    n = seeds_to_decide(sd=0.01, distance=0.005, n=3)
    assert t_quantile(0.975, n - 1) * 0.01 / math.sqrt(n) < 0.005
    assert t_quantile(0.975, n - 2) * 0.01 / math.sqrt(n - 1) >= 0.005
    assert seeds_to_decide(sd=0.01, distance=0.0, n=3) is None
    assert seeds_to_decide(sd=1.0, distance=1e-6, n=3) is None  # more than a million


# --------------------------------------------------------------------------------------------
# value rows
# --------------------------------------------------------------------------------------------
def test_value_pass_fail_inconclusive():
    rs = refs(VALUE)
    ok = frame([row(rep=i, train_acc=v) for i, v in enumerate([0.991, 0.992, 0.990, 0.991, 0.992])])
    v = one(run_checks(ok, rs))
    assert v.verdict == PASS and v.n == 5 and v.ci_low < v.ours < v.ci_high
    assert v.ours == pytest.approx(0.9912) and v.difference == pytest.approx(0.0012)
    assert v.reference == 0.99 and v.tolerance == 0.01

    bad = frame([row(rep=i, train_acc=v) for i, v in enumerate([0.95, 0.951, 0.949])])
    v = one(run_checks(bad, rs))
    assert v.verdict == FAIL and v.ci_high < 0.98

    edge = frame([row(rep=i, train_acc=v) for i, v in enumerate([0.975, 0.985, 0.99])])
    v = one(run_checks(edge, rs))
    assert v.verdict == INCONCLUSIVE
    assert v.ci_low < 0.98 < v.ci_high
    assert "straddles the edge 0.98" in v.note and "more) would likely decide it" in v.note
    needed = int(v.note.split("about n=")[1].split()[0])
    assert needed > 3


def test_inconclusive_note_estimates_seeds_from_spread():
    rs = refs(VALUE)
    vals = [0.984, 0.978, 0.986, 0.982]  # mean 0.9825, 0.0025 inside the low edge 0.98
    v = one(run_checks(frame([row(rep=i, train_acc=x) for i, x in enumerate(vals)]), rs))
    assert v.verdict == INCONCLUSIVE
    sd = pd.Series(vals).std(ddof=1)
    n = seeds_to_decide(sd, abs(v.ours - 0.98), 4)
    assert f"about n={n} seeds ({n - 4} more)" in v.note and "inside" in v.note


def test_one_seed_decides_on_point_value():
    rs = refs(VALUE)
    v = one(run_checks(frame([row(train_acc=0.985)]), rs))
    assert v.verdict == PASS and v.n == 1 and "n=1, no CI" in v.note
    assert math.isnan(v.ci_low) and math.isnan(v.ci_high)
    v = one(run_checks(frame([row(train_acc=0.5)]), rs))
    assert v.verdict == FAIL and "n=1, no CI" in v.note


def test_only_done_counts_and_diverged_is_a_failure():
    rs = refs(VALUE)
    rows = [row(rep=0, train_acc=0.99), row(rep=1, train_acc=0.991),
            row(rep=2, status="error", reason="CUDA out of memory"), row(rep=3, status="interrupted"),
            row(rep=4, status="skipped", reason="data unavailable")]
    v = one(run_checks(frame(rows), rs))
    assert v.verdict == PASS and v.n == 2
    rows.append(row(rep=5, status="diverged", reason="training loss became non-finite by epoch 7"))
    v = one(run_checks(frame(rows), rs))
    assert v.verdict == FAIL and v.n == 3 and "diverged" in v.note and "epoch 7" in v.note
    only_errors = frame([row(rep=0, status="error", reason="boom"), row(rep=1, status="skipped", reason="no data")])
    v = one(run_checks(only_errors, rs))
    assert v.verdict == SKIPPED and "1 error" in v.note and "1 skipped" in v.note and "boom" in v.note


def test_skipped_no_data_and_wrong_width():
    rs = refs(VALUE)
    v = one(run_checks(frame([]), rs))
    assert v.verdict == SKIPPED and "no results for task cifar10_random" in v.note
    v = one(run_checks(pd.DataFrame(), rs))  # no columns at all
    assert v.verdict == SKIPPED
    v = one(run_checks(frame([row(width=2048, train_acc=0.99)]), rs))
    assert v.verdict == SKIPPED and "width=1024" in v.note
    v = one(run_checks(frame([row(train_acc=None)]), rs))
    assert v.verdict == SKIPPED and "not recorded" in v.note


def test_profile_mismatch_is_never_scored():
    rs = refs(VALUE)  # a paper-scale row
    ci_rows = frame([row(rep=i, profile="ci", train_acc=0.99) for i in range(3)])
    v = one(run_checks(ci_rows, rs))
    assert v.verdict == SKIPPED and "only from profile(s) ci" in v.note
    cli = frame([row(profile=None, train_acc=0.99)])
    v = one(run_checks(cli, rs))
    assert v.verdict == SKIPPED and "ad hoc" in v.note
    # and the other way: a ci row never looks at paper results
    v = run_checks(frame([row(rep=i, train_acc=0.99) for i in range(3)]), refs(THRESHOLD))
    assert list(v.verdict) == [SKIPPED] and "only from profile(s) paper" in v.note.iloc[0]


def test_protocol_mismatch_is_never_scored():
    rs = refs(VALUE, protocol=2)
    v = one(run_checks(frame([row(rep=i, train_acc=0.99) for i in range(3)]), rs))
    assert v.verdict == SKIPPED and "only from protocol(s) 1" in v.note and "protocol 2" in v.note


def test_mixed_profiles_use_only_the_matching_one():
    rs = refs(VALUE)
    rows = [row(rep=i, train_acc=0.99) for i in range(3)] + [row(rep=i, profile="ci", train_acc=0.2) for i in range(3)]
    v = one(run_checks(frame(rows), rs))
    assert v.verdict == PASS and v.n == 3


def test_duplicate_records_of_a_repetition_are_averaged():
    rs = refs(VALUE)
    rows = [row(rep=0, train_acc=0.99), row(rep=0, train_acc=0.992), row(rep=1, train_acc=0.991)]
    v = one(run_checks(frame(rows), rs))
    assert v.n == 2 and "averaged" in v.note and v.ours == pytest.approx((0.991 + 0.991) / 2)


# --------------------------------------------------------------------------------------------
# threshold rows, axes omitted / listed
# --------------------------------------------------------------------------------------------
def test_threshold_covers_every_cell_group_when_axes_omitted():
    rs = refs(THRESHOLD)
    rows = []
    for w, a, vals in [(256, "relu", [0.97, 0.98]), (128, "tanh", [0.40, 0.42]), (128, "relu", [0.95, 0.99])]:
        rows += [row(profile="ci", width=w, activation=a, rep=i, train_acc=x) for i, x in enumerate(vals)]
    rows.append(row(profile="ci", method="sgd", width=512, train_acc=0.1))  # other method: not this row's
    v = run_checks(frame(rows), rs)
    assert list(zip(v.width, v.activation)) == [(128, "relu"), (128, "tanh"), (256, "relu")]
    assert list(v.verdict) == [INCONCLUSIVE, FAIL, PASS]
    assert list(v.columns) == VERDICT_COLUMNS


def test_threshold_at_most_and_listed_widths():
    rs = refs("""
[[reference]]
id = "small"
kind = "threshold"
task = "t"
profile = "p"
method = "sgd"
metric = "test_loss"
direction = "at_most"
bound = 1.0
width = [8, 16]
""")
    v = run_checks(frame([row(task="t", profile="p", method="sgd", width=8, rep=i, test_loss=x)
                          for i, x in enumerate([0.5, 0.6, 0.55])]), rs)
    assert list(v.width) == [8, 16]
    assert list(v.verdict) == [PASS, SKIPPED]
    assert "width=16" in v.note.iloc[1]


# --------------------------------------------------------------------------------------------
# comparisons
# --------------------------------------------------------------------------------------------
def test_comparison_is_paired_by_repetition():
    rs = refs(COMPARISON)
    base = [0.10, 0.50, 0.90, 0.30, 0.70]  # a large spread across repetitions (data/init seeds)
    rows = []
    for rep, b in enumerate(base):
        rows.append(row(task="synthetic_ablation", width=20, activation="tanh", rep=rep, train_loss=b - 0.01))
        rows.append(row(task="synthetic_ablation", method="sgd", width=20, activation="tanh", rep=rep,
                        train_loss=b + 0.001 * rep))
    v = one(run_checks(frame(rows), rs))
    # unpaired, the two means' CIs would overlap completely; paired, A is lower in every repetition
    assert v.verdict == PASS and v.n == 5
    assert v.ci_high < 0 and v.ours == pytest.approx(-0.01 - 0.002)
    assert v.method_mean == pytest.approx(sum(base) / 5 - 0.01)
    assert v.versus_mean == pytest.approx(sum(base) / 5 + 0.002)

    # shuffling sgd's repetitions breaks the pairing: the paired differences now straddle 0
    shuffled = [dict(r) for r in rows]
    for r in shuffled:
        if r["method"] == "sgd":
            r["repetition"] = (r["repetition"] + 2) % 5
    v = one(run_checks(frame(shuffled), rs))
    assert v.verdict == INCONCLUSIVE


def test_comparison_unpaired_repetitions_are_not_counted():
    rs = refs(COMPARISON)
    rows = [row(task="synthetic_ablation", rep=r, train_loss=0.1) for r in (0, 1, 2)]
    rows += [row(task="synthetic_ablation", method="sgd", rep=r, train_loss=0.5 + 0.01 * r) for r in (1, 2, 3)]
    v = one(run_checks(frame(rows), rs))
    assert v.n == 2 and v.verdict == PASS and "[0, 3]" in v.note
    v = one(run_checks(frame([row(task="synthetic_ablation", rep=0, train_loss=0.1),
                              row(task="synthetic_ablation", method="sgd", rep=1, train_loss=0.5)]), rs))
    assert v.verdict == SKIPPED and "no repetition has both" in v.note


def test_comparison_fail_and_missing_side():
    rs = refs(COMPARISON)
    rows = []
    for rep in range(4):
        rows.append(row(task="synthetic_ablation", rep=rep, train_loss=0.5 + 0.01 * rep))
        rows.append(row(task="synthetic_ablation", method="sgd", rep=rep, train_loss=0.1))
    v = one(run_checks(frame(rows), rs))
    assert v.verdict == FAIL and v.ci_low > 0
    only_a = [r for r in rows if r["method"] == "mli_paired_pgd"]
    v = one(run_checks(frame(only_a), rs))
    assert v.verdict == SKIPPED and "sgd" in v.note


def test_comparison_diverged_repetitions():
    rs = refs(COMPARISON)
    def rows(a_status, b_status):
        out = []
        for rep in range(3):
            out.append(row(task="synthetic_ablation", rep=rep, train_loss=0.1 + 0.01 * rep,
                           status=a_status if rep == 0 else "done"))
            out.append(row(task="synthetic_ablation", method="sgd", rep=rep, train_loss=0.5 + 0.02 * rep,
                           status=b_status if rep == 0 else "done"))
        return frame(out)
    v = one(run_checks(rows("diverged", "done"), rs))
    assert v.verdict == FAIL and "mli_paired_pgd diverged in repetition(s) [0]" in v.note
    v = one(run_checks(rows("done", "diverged"), rs))
    # one n: the repetitions the CI is computed over (the diverged one is named in the note)
    assert v.verdict == PASS and v.n == 2 and "won by mli_paired_pgd" in v.note and "n counts the 2" in v.note
    all_b_diverged = frame([row(task="synthetic_ablation", rep=0, train_loss=0.1),
                            row(task="synthetic_ablation", method="sgd", rep=0, status="diverged")])
    v = one(run_checks(all_b_diverged, rs))
    assert v.verdict == PASS and v.n == 1


def test_comparison_at_least_with_one_seed():
    rs = refs("""
[[reference]]
id = "imnet"
kind = "comparison"
task = "restricted_imagenet"
profile = "paper"
method = "mli_paired_pgd"
versus = "sgd"
metric = "test_acc"
direction = "at_least"
width = [64, 128]
""")
    rows = [row(task="restricted_imagenet", width=64, test_acc=0.80),
            row(task="restricted_imagenet", method="sgd", width=64, test_acc=0.80),
            row(task="restricted_imagenet", width=128, test_acc=0.70),
            row(task="restricted_imagenet", method="sgd", width=128, test_acc=0.75)]
    v = run_checks(frame(rows), rs)
    assert list(v.width) == [64, 128]
    assert list(v.verdict) == [PASS, FAIL]  # a tie is "at least"; 0.70 < 0.75 is not
    assert all("n=1, no CI" in n for n in v.note)


# --------------------------------------------------------------------------------------------
# exit codes
# --------------------------------------------------------------------------------------------
def verdicts_of(*names):
    return pd.DataFrame({"verdict": list(names)})


@pytest.mark.parametrize(
    "names, code, strict",
    [((PASS, PASS), CHECK_PASS, CHECK_PASS), ((PASS, FAIL), CHECK_FAIL, CHECK_FAIL),
     ((FAIL, INCONCLUSIVE, SKIPPED), CHECK_FAIL, CHECK_FAIL),
     ((PASS, INCONCLUSIVE), CHECK_PASS, CHECK_UNDECIDED), ((SKIPPED,), CHECK_PASS, CHECK_UNDECIDED),
     ((), CHECK_PASS, CHECK_UNDECIDED), ((PASS, OUT_OF_SCOPE), CHECK_PASS, CHECK_PASS),
     ((OUT_OF_SCOPE,), CHECK_PASS, CHECK_PASS)],
)
def test_exit_codes_go_on_unless_something_failed_and_strict_asks_for_every_row_decided(names, code, strict):
    assert exit_code(verdicts_of(*names)) == code
    assert exit_code(verdicts_of(*names), strict=True) == strict


def test_exit_code_constants_and_summary():
    assert (CHECK_PASS, CHECK_FAIL, CHECK_UNDECIDED) == (0, 1, 3)
    with pytest.raises(ValueError):
        exit_code(verdicts_of("MAYBE"))
    assert summary(verdicts_of(PASS, PASS, SKIPPED)) == {PASS: 2, FAIL: 0, INCONCLUSIVE: 0, SKIPPED: 1,
                                                        OUT_OF_SCOPE: 0}


def test_repository_baselines_on_a_cpu_scale_store_never_touch_paper_rows():
    """A CPU run (ci profile) against the real reference files: the paper rows are all SKIPPED."""
    from bench_suite.scoring.references import load_references

    rows = [row(profile="ci", width=w, activation=a, rep=i, train_acc=0.97, test_acc=0.1 + 0.002 * i)
            for w in (1024, 2048) for a in ("relu", "tanh") for i in range(2)]
    v = run_checks(frame(rows), load_references())
    paper = v[v.profile == "paper"]
    assert len(paper) and set(paper.verdict) == {SKIPPED}
    ci = v[(v.profile == "ci") & (v.task == "cifar10_random")]
    assert len(ci) == 8 and set(ci.verdict) <= {PASS, INCONCLUSIVE}


def test_known_deviation_rows_keep_their_fail_but_do_not_fail_the_exit_code():
    import pandas as pd

    from bench_suite.scoring.checks import FAIL, INCONCLUSIVE, PASS, exit_code

    def frame(*rows):
        return pd.DataFrame([{"verdict": v, "known_deviation": k} for v, k in rows])

    assert exit_code(frame((FAIL, "docs/ablation.md"), (PASS, ""))) == 0
    assert exit_code(frame((PASS, "docs/ablation.md"))) == 1  # the write-up is stale
    assert exit_code(frame((FAIL, ""), (FAIL, "docs/ablation.md"))) == 1
    assert exit_code(frame((INCONCLUSIVE, "docs/ablation.md"))) == 0
    assert exit_code(frame((INCONCLUSIVE, "docs/ablation.md")), strict=True) == 3


def test_known_deviation_is_read_and_noted():
    from bench_suite.scoring.checks import FAIL, run_checks
    from bench_suite.scoring.references import loads_references

    refs = loads_references(
        'protocol = 1\n[[reference]]\nid = "r"\nkind = "threshold"\ntask = "t"\nprofile = "ci"\nmethod = "m"\n'
        'metric = "train_acc"\ndirection = "at_least"\nbound = 0.9\nknown_deviation = "see docs/x.md"\n'
    )
    assert refs[0].known_deviation == "see docs/x.md"
    import pandas as pd

    df = pd.DataFrame([{"task": "t", "profile": "ci", "protocol": 1, "method": "m", "status": "done", "width": 4,
                        "activation": "relu", "repetition": 0, "train_acc": 0.5}])
    verdicts = run_checks(df, refs)
    assert verdicts.loc[0, "verdict"] == FAIL
    assert "known deviation (expected): see docs/x.md" in verdicts.loc[0, "note"]


def test_a_known_deviation_is_decided_per_reference_row_not_per_group():
    rs = loads_references('''
protocol = 1
[[reference]]
id = "rank"
kind = "value"
aggregate = "every"
task = "synthetic_ablation"
profile = "ci"
method = "sgd"
metric = "train_loss"
value = 0
tolerance = 0
known_deviation = "a write-up"
''')
    def frame(per_width):
        return pd.DataFrame([{"task": "synthetic_ablation", "profile": "ci", "protocol": 1, "method": "sgd",
                              "width": w, "activation": "tanh", "repetition": r, "status": "done", "train_loss": v}
                             for w, values in per_width.items() for r, v in enumerate(values)])
    # one width fails as written up, the others pass: decided, the row holds its known deviation
    some = run_checks(frame({4: [0, 1], 8: [0, 0], 16: [0, 0]}), rs)
    assert list(some.verdict) == [FAIL, PASS, PASS] and exit_code(some) == 0
    assert "known deviation (expected)" in some.note.iloc[0] and "UNEXPECTED" not in " ".join(some.note)
    # no group fails any more: the write-up is stale
    none = run_checks(frame({4: [0, 0], 8: [0, 0]}), rs)
    assert list(none.verdict) == [PASS, PASS] and exit_code(none) == 1
    assert all("UNEXPECTED" in n for n in none.note)


# --------------------------------------------------------------------------------------------
# each row in the direction of its claim (Table 3), the paper's value beside ours
# --------------------------------------------------------------------------------------------
def _table3(metric, width, activation):
    from bench_suite.scoring.references import load_references

    return [r for r in load_references() if r.task == "cifar10_random" and r.profile == "paper"
            and r.metric == metric and r.widths == (width,) and r.activations == (activation,)]


def test_table3_train_accuracy_is_one_sided_and_the_paper_value_is_shown():
    refs_ = _table3("train_acc", 1024, "tanh")  # the paper: 0.9872
    perfect = run_checks(frame([row(width=1024, activation="tanh", rep=r, train_acc=1.0) for r in range(3)]), refs_)
    v = one(perfect)  # memorizing better than the paper is no failure
    assert v.verdict == PASS and v.paper_value == 0.9872 and v.reference == 0.9872
    short = run_checks(frame([row(width=1024, activation="tanh", rep=r, train_acc=0.97 + 0.001 * r)
                              for r in range(3)]), refs_)
    assert one(short).verdict == FAIL  # below 0.9872 - 0.01


def test_table3_test_accuracy_is_centred_on_chance_with_the_paper_value_beside():
    refs_ = _table3("test_acc", 4096, "relu")  # the paper: 0.0962; the claim: at chance, 0.10 ± 0.02
    chance = one(run_checks(frame([row(width=4096, rep=r, test_acc=0.100 + 0.001 * r) for r in range(3)]), refs_))
    assert chance.verdict == PASS and chance.reference == 0.10 and chance.paper_value == 0.0962
    above = one(run_checks(frame([row(width=4096, rep=r, test_acc=0.15 + 0.001 * r) for r in range(3)]), refs_))
    assert above.verdict == FAIL  # far above chance: labels leaked


# --------------------------------------------------------------------------------------------
# the statistic of a curve: declared, every method alike, the final value beside
# --------------------------------------------------------------------------------------------
TAIL = COMPARISON.replace('direction = "lower"', 'statistic = "tail_median"\ndirection = "lower"')


def _ablation(method, rep, final, tail):
    return {**row(task="synthetic_ablation", method=method, width=20, activation="tanh", rep=rep, profile="paper",
                  train_loss=final), "train_loss_tail_median": tail}


def test_a_curve_claim_scores_the_tail_median_and_reports_the_final_value_beside():
    # the method's curve oscillates: one repetition ends on a spike, its tail median does not
    rows = []
    for r in range(5):
        rows.append(_ablation("mli_paired_pgd", r, 5.3 if r == 3 else 0.37 + 0.01 * r, 0.36 + 0.01 * r))
        rows.append(_ablation("sgd", r, 0.60 + 0.01 * r, 0.61 + 0.01 * r))
    df = pd.DataFrame(rows)
    v = one(run_checks(df, refs(TAIL)))
    assert (v.statistic, v.verdict) == ("tail_median", PASS)
    assert v.ours == pytest.approx(-0.25) and v.method_mean == pytest.approx(0.38)
    assert v.final_verdict == INCONCLUSIVE and v.final_ours == pytest.approx((5.3 - 0.6 + 4 * -0.23 - 0.03) / 5)
    assert "on the final value instead of the tail_median: INCONCLUSIVE" in v.note
    plain = one(run_checks(df, refs(COMPARISON)))  # the same records on the final value
    assert (plain.statistic, plain.verdict, plain.ours) == ("final", INCONCLUSIVE, v.final_ours)
    assert plain.final_verdict == "" and math.isnan(plain.final_ours)


def test_the_statistic_is_a_declared_field_not_a_metric_name():
    from bench_suite.scoring.references import BaselineError

    with pytest.raises(BaselineError, match='statistic = "tail_median"'):
        refs(COMPARISON.replace('metric = "train_loss"', 'metric = "train_loss_tail_median"'))
    with pytest.raises(BaselineError, match="per-epoch curve"):
        refs(VALUE.replace('metric = "train_acc"', 'metric = "test_acc"\nstatistic = "tail_median"'))
    with pytest.raises(BaselineError, match="statistic must be one of"):
        refs(COMPARISON.replace('direction = "lower"', 'statistic = "mode"\ndirection = "lower"'))
    (r,) = refs(TAIL)
    assert r.column == "train_loss_tail_median" and "tail_median(train_loss)[sgd]" in r.describe()


# --------------------------------------------------------------------------------------------
# scope: cells outside a theorem's assumptions are out of scope, not checks of it
# --------------------------------------------------------------------------------------------
THEOREM1 = """
[[reference]]
id = "mem"
kind = "threshold"
task = "width_threshold"
profile = "ci"
method = "mli_paired_pgd"
metric = "train_loss"
direction = "at_most"
bound = 0.01
assumes = "theorem_1"
"""


def test_cells_outside_a_theorems_assumptions_are_out_of_scope_and_never_fail_the_exit_code():
    rows = [{**row(task="width_threshold", width=w, activation=a, rep=r, profile="ci", train_loss=loss),
             "width_ratio": w / 20} for w, a, loss in ((40, "tanh", 1e-6), (40, "relu", 0.5), (10, "tanh", 0.3))
            for r in range(3)]
    v = run_checks(pd.DataFrame(rows), refs(THEOREM1)).set_index(["width", "activation"])
    assert v.loc[(40, "tanh"), "verdict"] == PASS and v.loc[(40, "tanh"), "scope"] == ""
    relu = v.loc[(40, "relu")]  # a measured FAIL, but relu is not smooth: not a check of Theorem 1
    assert relu.verdict == OUT_OF_SCOPE and "relu is not smooth" in relu.scope and "measured: FAIL" in relu.note
    narrow = v.loc[(10, "tanh")]  # m d/(2n) = 0.5 < 1
    assert narrow.verdict == OUT_OF_SCOPE and "m d/(2n) = 0.5 < 1" in narrow.scope
    assert exit_code(v.reset_index()) == 0 and exit_code(v.reset_index(), strict=True) == 0
    from bench_suite.scoring.references import BaselineError

    with pytest.raises(BaselineError, match="`assumes` names 'theorem_9'"):
        refs(THEOREM1.replace("theorem_1", "theorem_9"))


# --------------------------------------------------------------------------------------------
# a verdict never rests on fewer repetitions than its profile declares without saying so
# --------------------------------------------------------------------------------------------
def test_fewer_repetitions_than_the_profile_declares_make_a_partial_inconclusive_verdict():
    rs = refs(THRESHOLD)

    def reps(*values, declared=5):
        return pd.DataFrame([{**row(profile="ci", width=256, rep=r, train_acc=v), "declared_repetitions": declared}
                             for r, v in enumerate(values)])

    one_rep = one(run_checks(reps(1.0), rs))  # would PASS on its single value
    assert one_rep.verdict == INCONCLUSIVE and one_rep.n == 1 and one_rep.n_declared == 5
    assert one_rep.note.startswith("partial: 1 of the 5 repetitions profile ci declares (4 missing: 1, 2, 3, 4); "
                                   "on these alone: PASS")
    assert one(run_checks(reps(0.2), rs)).verdict == INCONCLUSIVE  # nor a plain FAIL
    full = one(run_checks(reps(0.99, 1.0, 0.98, 0.99, 1.0), rs))
    assert full.verdict == PASS and (full.n, full.n_declared) == (5, 5) and "partial" not in full.note
    assert one(run_checks(reps(1.0, declared=1), rs)).verdict == PASS  # the profile declares one
    # a law of every cell fails on one failing cell, partial or not (the note says partial)
    law = refs(THRESHOLD.replace('direction = "at_least"', 'aggregate = "every"\ndirection = "at_least"'))
    broken = one(run_checks(reps(1.0, 0.2, declared=3), law))
    assert broken.verdict == FAIL and "partial: 2 of the 3" in broken.note and "a failing cell decides" in broken.note


# --------------------------------------------------------------------------------------------
# the table of check kinds
# --------------------------------------------------------------------------------------------
def test_a_kind_is_one_entry_with_its_scorer_and_the_fields_it_takes():
    from bench_suite.scoring.kinds import KINDS, CheckKind, register_kind, score_single
    from bench_suite.scoring.references import BaselineError

    assert {"value", "threshold", "comparison", "slope"} <= set(KINDS)
    kind = CheckKind("at_least_once", score_single, ("at_least",), lambda r: f"{r.metric} >= {r.target:g} once",
                     takes=frozenset({"bound"}), needs=("bound",))
    register_kind(kind)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_kind(CheckKind("at_least_once", score_single, ("at_least",), str))
        body = THRESHOLD.replace('kind = "threshold"', 'kind = "at_least_once"')
        (r,) = refs(body)
        assert r.describe() == "train_acc >= 0.9 once"
        assert one(run_checks(frame([row(profile="ci", width=256, train_acc=0.95)]), [r])).verdict == PASS
        with pytest.raises(BaselineError, match="`versus` only belongs to comparison"):
            refs(body + 'versus = "sgd"\n')
        with pytest.raises(BaselineError, match="needs `bound`"):
            refs(body.replace("bound = 0.9\n", ""))
        with pytest.raises(BaselineError, match="direction in"):
            refs(body.replace('"at_least"', '"at_most"'))
    finally:
        KINDS.pop("at_least_once")
