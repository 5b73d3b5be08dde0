"""The theory check wired through the harness: the record's theory section, the rows that score it
(aggregate "every", kind "slope", `only`), one verdict per configuration, the report's section."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench_suite.core.records import to_frame
from bench_suite.grid import expand
from bench_suite.reporting.build import write_report
from bench_suite.runner.runner import Runner
from bench_suite.scoring.checks import FAIL, INCONCLUSIVE, PASS, SKIPPED, run_checks
from bench_suite.scoring.references import BaselineError, loads_references
from bench_suite.store.result_store import ResultStore
from bench_suite.theory import MAX_JACOBIAN_ENTRIES, predicted_rank


def test_the_runner_records_the_theory_section_of_small_cells(tmp_path):
    cells = expand("width_threshold", methods=["mli_paired_pgd", "constraint_only"], widths=[10, 40],
                   activations=["tanh"], train={"epochs": 3, "eval_every": 3, "lr_v": 0.1})
    summary = Runner(ResultStore(tmp_path), device="cpu").run(cells)
    assert summary.exit_code == 0
    for record in summary.records:
        jac, kkt, floor = (record.theory[k] for k in ("jacobian", "kkt", "floor"))
        init = "mirrored_lecun" if record.method == "mli_paired_pgd" else "lecun"
        m = record.config["width"]
        assert jac["status"] == "done" and jac["jacobian_rank_predicted"] == predicted_rank(200, m, 20, init=init)
        assert jac["jacobian_rank_deficit"] == jac["jacobian_rank_predicted"] - jac["jacobian_rank"] == 0
        assert 0 < jac["jacobian_sigma_min"] <= jac["jacobian_sigma_max"]
        assert kkt["status"] == "done" and kkt["kkt_residual"] > 0 and math.isclose(
            kkt["loss_final"], record.final["train_loss"], rel_tol=1e-4)
        assert floor["status"] == "done" and floor["n"] == 200
    frame = ResultStore(tmp_path).to_dataframe()
    assert set(frame["jacobian_status"]) == {"done"} and (frame["jacobian_rank_deficit"] == 0).all()
    assert frame["kkt_residual"].notna().all() and frame["loss_floor"].notna().all()


def test_a_cell_too_large_for_the_svd_is_skipped_with_its_size_and_the_bound(tmp_path):
    # n = 1000, d = 100: m = 60 gives 6e6 entries, above the 2**22 bound (no memory error, no SVD)
    (cell,) = expand("synthetic_ablation", methods=["sgd"], widths=[60], train={"epochs": 2, "eval_every": 2})
    (record,) = Runner(ResultStore(tmp_path), device="cpu").run([cell]).records
    jac = record.theory["jacobian"]
    assert jac["status"] == "skipped" and jac["jacobian_entries"] == 6_000_000
    assert str(MAX_JACOBIAN_ENTRIES) in jac["reason"] and record.theory["kkt"]["status"] == "skipped"
    assert ResultStore(tmp_path).to_dataframe()["jacobian_rank"].isna().all()


def _frame(rows):
    base = {"task": "width_threshold", "profile": "ci", "protocol": 1, "method": "mli_paired_pgd", "width": 40,
            "activation": "tanh", "status": "done", "eps": 0.1, "lr_w": 3e-5}
    return pd.DataFrame([{**base, **r} for r in rows])


EVERY = """
protocol = 1
[[reference]]
id = "rank"
kind = "value"
aggregate = "every"
task = "width_threshold"
profile = "ci"
method = "mli_paired_pgd"
metric = "jacobian_rank_deficit"
value = 0
tolerance = 0
"""


def test_aggregate_every_fails_on_one_deficient_cell_where_a_mean_would_not():
    refs = loads_references(EVERY)
    ok = run_checks(_frame([{"repetition": r, "jacobian_rank_deficit": 0} for r in range(3)]), refs)
    assert ok.verdict.tolist() == [PASS] and ok.n.tolist() == [3]
    bad = run_checks(_frame([{"repetition": r, "jacobian_rank_deficit": int(r == 1)} for r in range(3)]), refs)
    assert bad.verdict.tolist() == [FAIL] and "1 of 3 do not (1: 1)" in bad.note.iloc[0]
    with pytest.raises(BaselineError, match="aggregate"):
        loads_references(EVERY.replace('"every"', '"median"'))
    # the former spelling, `statistic = "every"`, still reads as the aggregate, with a warning
    with pytest.warns(DeprecationWarning, match="aggregate"):
        (old,) = loads_references(EVERY.replace('aggregate = "every"', 'statistic = "every"'))
    assert (old.aggregate, old.statistic) == ("every", "final")


SLOPE = """
protocol = 1
[[reference]]
id = "slope"
kind = "slope"
x = "eps"
task = "width_threshold"
profile = "ci"
method = "mli_paired_pgd"
metric = "train_loss"
direction = "at_least"
bound = 1.5
only = { kkt_residual = { at_most = 0.01 }, train_loss = { at_least = 1e-8 } }
"""


def test_a_slope_row_fits_the_log_log_slope_over_the_cells_it_admits():
    refs = loads_references(SLOPE)
    rows = [{"repetition": r, "eps": e, "lr_w": 3e-5 * (e / 0.1) ** 2, "train_loss": 0.3 * e**2 * (1 + 0.01 * r),
             "kkt_residual": 1e-3} for e in (0.01, 0.03, 0.1, 0.3, 1.0) for r in range(3)]
    (row,) = run_checks(_frame(rows), refs).itertuples()
    assert row.verdict == PASS and row.ours == pytest.approx(2.0, abs=1e-2) and row.n == 15
    flat = [{**r, "train_loss": 1e-3 * r["eps"] ** 0.5} for r in rows]
    assert run_checks(_frame(flat), refs).verdict.tolist() == [FAIL]  # slope 0.5 < 1.5
    not_kkt = [{**r, "kkt_residual": 5.0} for r in rows]  # nothing is a KKT point: nothing to fit
    (row,) = run_checks(_frame(not_kkt), refs).itertuples()
    assert row.verdict == SKIPPED
    noisy = [{**r, "train_loss": 0.3 * r["eps"] ** 2 * (10 if r["repetition"] == 0 else 0.1)} for r in rows]
    (row,) = run_checks(_frame(noisy), refs).itertuples()  # the same slope, scattered: its CI straddles 1.5
    assert row.verdict == INCONCLUSIVE and row.ours == pytest.approx(2.0) and row.ci_low < 1.5 < row.ci_high
    with pytest.raises(BaselineError, match="`x`"):
        loads_references(SLOPE.replace('x = "eps"\n', ""))


THRESHOLD = """
protocol = 1
[[reference]]
id = "thr"
kind = "threshold"
task = "width_threshold"
profile = "ci"
method = "mli_paired_pgd"
metric = "train_loss"
direction = "at_most"
bound = 0.01
"""


def test_records_of_different_configurations_are_separate_verdicts_never_pooled():
    refs = loads_references(THRESHOLD)
    rows = [{"repetition": r, "eps": e, "train_loss": 0.001 if e == 0.1 else 0.5} for e in (0.1, 1.0) for r in range(3)]
    verdicts = run_checks(_frame(rows), refs)
    assert verdicts["setting"].tolist() == ["eps=0.1", "eps=1"]
    assert verdicts.verdict.tolist() == [PASS, FAIL] and verdicts.n.tolist() == [3, 3]
    assert not any("averaged" in note for note in verdicts.note)


def test_the_report_has_a_theory_section_with_tables_and_plots(tmp_path):
    cells = expand("width_threshold", profile="smoke", train={"epochs": 20, "eval_every": 10})
    cells += expand("width_threshold", methods=["mli_paired_pgd"], widths=[20], activations=["tanh"],
                    train={"epochs": 20, "eval_every": 10, "eps": 0.3, "lr_w": 2.7e-4, "lr_v": 100 / 9})
    store = ResultStore(tmp_path / "s")
    Runner(store, device="cpu").run(cells)
    records = store.records()
    paths = write_report(to_frame(records), records, run_checks(to_frame(records), []), tmp_path / "r")
    text, page = paths[0].read_text(), paths[1].read_text()
    for heading in ("## Theorem 1: the rank of J at init", "## Theorem 1 in training: the width threshold",
                    "## Theorem 2: loss and KKT residual against ε"):
        assert heading in text
    assert "law holds" in page and "predicted rank" in page  # the tables are on the page
    names = {p.name for p in (tmp_path / "r" / "figures").iterdir()}
    assert {"rank__width_threshold.svg", "eps__width_threshold.svg"} <= names
    assert any(n.startswith("threshold__width_threshold__") for n in names)
