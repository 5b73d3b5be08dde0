"""The Python API beside the CLI: run, load_results, load_curves, check, export."""

import math

import pandas as pd
import pytest

import bench_suite as bs
from bench_suite.core.records import COLUMN_NAMES, Status

TINY = dict(options={"n": 40, "d": 8}, widths=[4], train={"epochs": 6, "eval_every": 3, "lr": [0.1, 0.3]})


def test_run_returns_the_records_and_the_loaders_read_any_store(tmp_path):
    summary = bs.run("synthetic_ablation", store=tmp_path / "s", methods=["sgd", "mli_paired_pgd"], device="cpu",
                     **TINY)
    assert summary.exit_code == 0 and len(summary.records) == 4  # 2 methods x 2 lr (one axis: lr_w = lr_v)
    assert {(r.config["train"]["lr_w"], r.config["train"]["lr_v"]) for r in summary.records} == {(0.1, 0.1),
                                                                                                   (0.3, 0.3)}
    results = bs.load_results(tmp_path / "s")
    assert list(results.columns) == list(COLUMN_NAMES) and len(results) == 4
    assert str(results["width"].dtype) == "Int64" and str(results["lr_w"].dtype) == "float64"
    assert set(results["status"]) == {Status.DONE.value}
    curves = bs.load_curves(tmp_path / "s")
    assert list(curves.columns) == bs.api.CURVE_COLUMNS
    one = curves[curves["cell_id"] == summary.records[0].cell_id]
    rec = summary.records[0]
    per_epoch = one[one["metric"] == "train_loss"]
    assert per_epoch["epoch"].tolist() == rec.curves["epoch"] and per_epoch["value"].tolist() == pytest.approx(
        rec.curves["train_loss"])
    evals = one[one["metric"] == "eval_train_loss"]
    assert evals["epoch"].tolist() == rec.curves["eval_epoch"] == [3, 6]
    # a row per stored value; test_* and eval_train_acc are null (a regression task without a test split)
    expected_rows = sum(sum(x is not None for x in v) for k, v in rec.curves.items()
                        if k not in ("epoch", "eval_epoch"))
    assert len(one) == expected_rows and not one["value"].isna().any()
    assert not one["metric"].isin(["test_acc", "test_loss", "eval_train_acc"]).any()
    written = bs.export(tmp_path / "s", tmp_path / "out")
    assert {p.name for p in written} >= {"results.csv", "curves.csv"}
    back = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(back) == 4 and math.isclose(back["train_loss"].sum(), results["train_loss"].sum(), rel_tol=1e-9)


def test_check_returns_the_verdict_table_and_what_it_left_out(tmp_path):
    bs.run("synthetic_ablation", store=tmp_path / "s", methods=["sgd"], device="cpu", **TINY)
    verdicts = bs.check(tmp_path / "s", profile="ci")
    assert set(verdicts["verdict"]) == {"SKIPPED"}  # these cells are not the ci profile's
    assert len(verdicts.attrs["left_out"]) == 2 and set(verdicts.attrs["left_out"]["why"]) == {"ad hoc"}


def test_the_api_raises_value_errors_for_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no such result store"):
        bs.load_results(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown option"):
        bs.run("synthetic_ablation", store=tmp_path / "s", options={"q": 1})
    with pytest.raises(AttributeError):
        bs.no_such_function  # noqa: B018
