"""``compare A B`` (bench_suite/reporting/compare.py): the statistics of a difference (Welch,
paired), the change of each verdict row, the metrics of matching cells paired by cell id, the
cells on one side, the exit code; and the command on real stores."""

from __future__ import annotations

import math
import shutil

import pandas as pd
import pytest
from scipy import stats
from test_bad_input import TINY, assert_one_line, cli

import bench_suite as bs
from bench_suite.reporting.compare import (
    EXIT_WORSE,
    Comparison,
    change,
    compare,
    compare_claims,
    compare_metrics,
    describe,
    paired,
    setting_of,
    welch,
)


def test_welch_and_paired_intervals_are_scipys():
    a, b = [1.0, 2.0, 3.5], [2.0, 4.0, 5.0, 6.1]
    se = [stats.sem(a), stats.sem(b)]
    diff, lo, hi = welch(sum(a) / 3, se[0], 3, sum(b) / 4, se[1], 4)
    ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(sum(b) / 4 - sum(a) / 3) and (lo, hi) == pytest.approx((ci.low, ci.high))
    before, after = [1.0, 2.0, 3.0], [2.0, 4.0, 5.5]
    diff, lo, hi = paired([y - x for x, y in zip(before, after)])
    ci = stats.ttest_rel(after, before).confidence_interval(0.95)
    assert diff == pytest.approx(11.5 / 3 - 2.0) and (lo, hi) == pytest.approx((ci.low, ci.high))
    assert math.isnan(paired([0.5])[1]) and math.isnan(welch(1.0, math.nan, 1, 2.0, 0.1, 3)[1])


def test_a_verdict_change_is_ranked_and_skipped_is_not_a_verdict():
    assert change("PASS", "FAIL") == change("PASS", "INCONCLUSIVE") == change("INCONCLUSIVE", "FAIL") == "worse"
    assert change("FAIL", "PASS") == change("INCONCLUSIVE", "PASS") == "better"
    assert change("PASS", "SKIPPED") == "no longer scored" and change("SKIPPED", "FAIL") == "now scored"
    assert change("PASS", "PASS") == "same" and change(None, "PASS") == "only in B" and change("PASS", None) == \
        "only in A"


def _verdict(id_, verdict, ours, lo, hi, n, cells, width=20):
    return {"id": id_, "task": "synthetic_ablation", "profile": "ci", "width": width, "activation": "tanh",
            "setting": None, "verdict": verdict, "ours": ours, "ci_low": lo, "ci_high": hi, "n": n, "cells": cells}


def test_claims_pair_rows_by_id_and_group_and_give_the_difference():
    a = pd.DataFrame([_verdict("x", "PASS", 1.0, 0.8, 1.2, 5, ["c1", "c2"]),
                      _verdict("y", "PASS", 0.1, 0.05, 0.15, 3, ["c3"]),
                      _verdict("z", "PASS", 2.0, 1.9, 2.1, 3, ["c4"]),
                      _verdict("gone", "PASS", 2.0, 1.9, 2.1, 3, ["c5"])])
    b = pd.DataFrame([_verdict("x", "PASS", 1.0, 0.8, 1.2, 5, ["c2", "c1"]),  # the same cells: exactly 0
                      _verdict("y", "FAIL", 0.3, 0.25, 0.35, 3, ["c6"]),
                      _verdict("z", "SKIPPED", math.nan, math.nan, math.nan, 0, []),
                      _verdict("new", "PASS", 2.0, 1.9, 2.1, 3, ["c7"])])
    rows = compare_claims(a, b).set_index("id")
    assert rows.loc["x", "change"] == "same" and rows.loc["x", "same_cells"]
    assert (rows.loc["x", "difference"], rows.loc["x", "ci_low"], rows.loc["x", "ci_high"]) == (0.0, 0.0, 0.0)
    y = rows.loc["y"]
    assert y["change"] == "worse" and y["difference"] == pytest.approx(0.2) and 0 < y["ci_low"] < 0.2 < y["ci_high"]
    assert rows.loc["z", "change"] == "no longer scored" and math.isnan(rows.loc["z", "difference"])
    assert rows.loc["gone", "change"] == "only in A" and rows.loc["new", "change"] == "only in B"
    cmp = Comparison("A", "B", compare_claims(a, b), compare_metrics(pd.DataFrame(), pd.DataFrame()),
                     pd.DataFrame(), pd.DataFrame())
    assert cmp.exit_code == EXIT_WORSE and list(cmp.worse["id"]) == ["y"]
    text = "\n".join(describe(cmp))
    assert "WORSE: y (width 20, tanh): PASS -> FAIL; ours 0.1 -> 0.3, difference +0.2 [" in text
    assert text.index("WORSE") < text.index("NO LONGER SCORED") and "1 verdict row(s) got worse (exit 1)" in text


def _results(values, *, ids=None, rep_names=True):
    rows = []
    for i, v in enumerate(values):
        name = f"synthetic_ablation[method=sgd,width=4,activation=tanh,rep={i}]"
        rows.append({"cell_id": (ids or [f"id{j}" for j in range(len(values))])[i], "name": name, "task":
                     "synthetic_ablation", "profile": None, "status": "done", "train_loss": v})
    return pd.DataFrame(rows)


def test_metrics_pair_by_cell_id_and_fall_back_to_welch():
    assert setting_of("t[method=sgd,width=4,activation=tanh,rep=3,epochs=4]") == \
        "t[method=sgd,width=4,activation=tanh,epochs=4]"
    assert setting_of("t[method=sgd,rep=12]") == "t[method=sgd]"
    a = _results([1.0, 2.0, 3.0])
    same = compare_metrics(a, a, metrics=("train_loss",)).iloc[0]
    assert same["paired"] == 3 and same["difference"] == 0.0 and not same["moved"]
    shifted = compare_metrics(a, _results([1.5, 2.6, 3.4]), metrics=("train_loss",)).iloc[0]
    assert shifted["paired"] == 3 and shifted["difference"] == pytest.approx(0.5) and shifted["moved"]
    other = compare_metrics(a, _results([1.1, 2.0, 3.1], ids=["x", "y", "z"]), metrics=("train_loss",)).iloc[0]
    ci = stats.ttest_ind([1.1, 2.0, 3.1], [1.0, 2.0, 3.0], equal_var=False).confidence_interval(0.95)
    assert other["paired"] == 0 and (other["ci_low"], other["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert not other["moved"]


def test_cells_match_whichever_profile_they_were_run_for():
    """The README's default job (no profile) computes the committed `ci` cells: same names, same
    ids, so compare pairs them and lists none as only on one side."""
    from bench_suite.reporting.compare import only_in

    a, b = _results([1.0, 2.0, 3.0]), _results([1.0, 2.5, 3.0])
    a["profile"] = "ci"
    row = compare_metrics(a, b, metrics=("train_loss",)).iloc[0]
    assert row["paired"] == 3 and row["difference"] == pytest.approx(0.5 / 3)
    assert row["profile"] == "(command line) / ci"
    assert only_in(a, b).empty and only_in(b, a).empty
    assert len(only_in(a, b.iloc[:2])) == 1


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from bench_suite.cli import main

    root = tmp_path_factory.mktemp("cmp")
    assert main(["run", "--store", str(root / "a"), *TINY, "--method", "sgd,mli_paired_pgd", "--repetitions",
                 "2"]) == 0
    shutil.copytree(root / "a", root / "b")
    assert main(["run", "--store", str(root / "b"), *TINY, "--method", "sgd", "--width", "6"]) == 0
    (root / "reports" / "ci").mkdir(parents=True)
    shutil.copytree(root / "a", root / "reports" / "ci" / "store")  # a committed report's layout
    return root


def test_compare_two_stores(stores, capsys):
    cmp = bs.compare(stores / "a", stores / "b")
    assert cmp.exit_code == 0 and len(cmp.worse) == 0
    assert set(cmp.claims["change"]) == {"same"}
    assert len(cmp.only_a) == 0 and list(cmp.only_b["name"]) == [
        "synthetic_ablation[method=sgd,width=6,activation=tanh,rep=0,epochs=4,eval_every=2,d=8,n=40]"]
    loss = cmp.metrics[cmp.metrics["metric"] == "train_loss"]
    assert len(loss) == 2 and set(loss["paired"]) == {2} and not loss["moved"].any()
    code, out, err = cli(capsys, "compare", str(stores / "reports" / "ci"), str(stores / "b"), "--save",
                         str(stores / "saved"))
    assert code == 0, err
    assert "metrics: " in out and "0 moved" in out and "cells only in B: 1" in out and "no verdict got worse" in out
    assert {p.name for p in (stores / "saved").iterdir()} == {"compare.json", "claims.csv", "metrics.csv",
                                                              "cells_only.csv"}


def test_compare_exits_1_when_a_verdict_got_worse(stores, capsys, monkeypatch):
    worse = pd.DataFrame([_verdict("y", "PASS", 0.1, 0.05, 0.15, 3, ["c3"])])
    cmp = compare(pd.DataFrame(), worse, pd.DataFrame(), worse.assign(verdict="FAIL"))
    monkeypatch.setattr(bs.api, "compare", lambda *a, **k: cmp)
    code, out, _ = cli(capsys, "compare", str(stores / "a"), str(stores / "b"))
    assert code == 1 and "WORSE: y" in out


def test_compare_bad_input_is_one_line(stores, capsys, tmp_path):
    code, _, err = cli(capsys, "compare", str(stores / "a"), str(tmp_path / "nowhere"))
    assert_one_line(code, err, "B " + str(tmp_path / "nowhere") + ": no such result store")
    code, _, err = cli(capsys, "compare", str(stores / "a"), str(stores / "b"), "--task", "nosuch")
    assert_one_line(code, err, "unknown task 'nosuch'")
    with pytest.raises(ValueError, match="no such result store"):
        bs.compare(stores / "a", tmp_path / "nowhere")
