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


# --------------------------------------------------------------------------- Theorem 2 as a bound

def test_the_kkt_bound_task_records_the_instance_study_and_the_check_states_the_finding(tmp_path):
    from bench_suite.scoring.references import load_references

    cells = expand("kkt_bound", profile="smoke")
    assert [c.width for c in cells] == [8] and cells[0].train.precision == "fp64" and cells[0].train.lr_w == 0
    store = ResultStore(tmp_path)
    (record,) = Runner(store, device="cpu").run(cells).records
    part = record.theory["kkt_bound"]
    assert part["status"] == "done" and part["m"] == 8 and part["width_ratio"] == 2.0 and len(part["eps"]) == 4
    assert part["summary"]["starts"] == sum(part["starts"]) > 0 and record.timing["dtype"] == "float64"
    frame = store.to_dataframe()
    assert frame.loc[0, "kkt_bound_starts"] == part["summary"]["starts"]
    refs = [r for r in load_references() if r.id == "theory/kkt/thm2-bound"]
    assert refs and refs[0].kind == "kkt_bound"
    # the smoke cell is not the ci profile's: score it as if it were (the row's rule, not its profile)
    verdicts = run_checks(frame.assign(profile="ci"), refs)
    (row,) = verdicts.to_dict("records")
    assert row["verdict"] == PASS and row["n"] == 1
    assert "no bad KKT points near MLI; the eps^2 rate is untestable on these instances" in row["note"]


def _kkt_frame(rows):
    base = {"task": "kkt_bound", "profile": "ci", "protocol": 1, "method": "mli_paired_pgd", "width": 8,
            "activation": "tanh", "status": "done", "width_ratio": 2.0, "kkt_bound_starts": 100,
            "kkt_bound_kkt_points": 100, "kkt_bound_not_certified": 0, "kkt_bound_above_floor": 0,
            "kkt_bound_above_small": 0, "kkt_bound_above_large": 0, "kkt_bound_degenerate": 0,
            "kkt_bound_r_small": None, "kkt_bound_c_hat": None, "kkt_bound_max_loss": 1e-25,
            "kkt_bound_max_floor": 1e-22, "kkt_bound_max_degenerate_loss": None, "kkt_bound_growth": None}
    return pd.DataFrame([{**base, **r} for r in rows])


KKT_ROW = """
protocol = 1
[[reference]]
id = "thm2"
kind = "kkt_bound"
metric = "kkt_bound_growth"
direction = "at_most"
bound = 2
only = { width_ratio = { at_least = 1 } }
task = "kkt_bound"
profile = "ci"
method = "mli_paired_pgd"
"""


def test_the_kkt_bound_kind_fails_a_growing_ratio_and_leaves_out_of_scope_instances_out():
    refs = loads_references(KKT_ROW)
    failing = {"kkt_bound_above_small": 5, "kkt_bound_above_large": 5, "kkt_bound_above_floor": 10,
               "kkt_bound_r_small": 7.0, "kkt_bound_c_hat": 0.7, "kkt_bound_growth": 10.0}
    (row,) = run_checks(_kkt_frame([{}, failing]), refs).to_dict("records")
    assert row["verdict"] == FAIL and row["ours"] == 10.0 and "10 non-degenerate KKT point(s) above" in row["note"]
    # the same instance below the width condition is out of the theorem's scope: not scored
    (row,) = run_checks(_kkt_frame([{}, {**failing, "width_ratio": 1 / 3}]), refs).to_dict("records")
    assert row["verdict"] == PASS and row["n"] == 1 and "untestable" in row["note"]
    few = {"kkt_bound_above_small": 1, "kkt_bound_above_floor": 1, "kkt_bound_r_small": 3.0}
    assert run_checks(_kkt_frame([few]), refs).verdict.tolist() == [INCONCLUSIVE]
    no_part = _kkt_frame([{}]).drop(columns=[c for c in _kkt_frame([{}]).columns if c.startswith("kkt_bound_")])
    assert run_checks(no_part, refs).verdict.tolist() == [SKIPPED]
    with pytest.raises(BaselineError, match="needs `bound`"):
        loads_references(KKT_ROW.replace("bound = 2\n", ""))


def test_a_cell_outside_theorem_2s_problem_gets_a_skipped_part():
    import torch

    from bench_suite.methods import METHODS
    from bench_suite.theory.section import kkt_bound_part

    x, y = torch.randn(6, 2), torch.randn(6, 1)
    extra = {"w0": torch.randn(4, 2)}
    settings = {"eps_min_rel": 1e-3, "eps_max_rel": 1e-1, "eps_count": 2, "starts": 1}
    for method, activation, why in (("sgd", "tanh", "paired output layer at MLI"),
                                    ("mli_paired_pgd", "relu", "smooth activation")):
        part = kkt_bound_part(x, y, method=METHODS.get(method), activation=activation, extra=extra, **settings)
        assert part["status"] == "skipped" and why in part["reason"]


def test_the_kkt_bound_table_labels_controls_and_states_each_instances_verdict():
    from bench_suite.theory import kkt_bound_table

    frame = _kkt_frame([{"n": 20, "d": 10, "repetition": 0},
                        {"n": 12, "d": 2, "width": 4, "width_ratio": 1 / 3, "repetition": 0, "kkt_bound_above_small": 5,
                         "kkt_bound_above_large": 5, "kkt_bound_above_floor": 10, "kkt_bound_r_small": 7.0,
                         "kkt_bound_c_hat": 0.7, "kkt_bound_growth": 10.0}])
    table = kkt_bound_table(frame)
    assert table["scope"].tolist() == ["control (out of scope)", "in scope"]
    assert table["verdict"].iloc[0].startswith("FAIL") and table["growth"].iloc[0] == "10"
    assert table["verdict"].iloc[1].startswith("PASS: no bad KKT points near MLI")
