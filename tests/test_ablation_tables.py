"""The ablation study's tables (bench_suite/reporting/ablation.py): their definitions on small
hand-made records, and the whole path run -> store -> report on the tiny ``ablation_smoke``."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench_suite.core.records import Record, Status
from bench_suite.reporting.ablation import (
    StudyError,
    auto_labels,
    best_table,
    detail_table,
    format_losses,
    ordering_columns,
    study_frame,
    summary_table,
)

METHODS = ("mli_paired_pgd", "sgd", "constraint_only", "no_mirroring")
ORDER_COL = "ours < (sgd, c_only, no_mirr)"


def rec(method, rep, loss, *, lr=0.1, lr_v=None, eps=1.0, status="done", width=20, d=100, n=1000, dist=1.0,
        proj=0.9, curve=None, epochs=100, eval_every=50):
    """A record as the store holds it (no file, no id check): only what the tables read."""
    constrained = method != "sgd"
    train = {"epochs": epochs, "eval_every": eval_every, "lr_w": lr, "lr_v": lr if lr_v is None else lr_v,
             "eps": eps, "eps_mode": "absolute", "batch_size": None, "loss": "mse", "momentum": 0.0,
             "precision": "fp32"}
    config = {"task": "synthetic_ablation", "task_options": {"n": n, "d": d}, "method": method, "width": width,
              "activation": "tanh", "repetition": rep, "train": train}
    final = {"train_loss": loss, "dist_w0": dist, "radius": eps if constrained else None,
             "proj_active_frac": proj if constrained else None}
    curves = None
    if curve is not None:  # {step: (loss, dist, proj)}
        curves = {"eval_epoch": list(curve), "eval_train_loss": [v[0] for v in curve.values()],
                  "dist_w0": [v[1] for v in curve.values()], "proj_active_frac": [v[2] for v in curve.values()]}
    return Record(cell_id=f"{method}-{rep}-{lr}-{lr_v}-{eps}-{width}", name=f"{method}[rep={rep},lr={lr},eps={eps}]",
                  status=Status(status), config=config, seeds={},
                  provenance={"code_version": {"engine": 1}}, final=final,
                  curves=curves)


# ------------------------------------------------------------------------------------------
# formatting and ordering counts
# ------------------------------------------------------------------------------------------
def test_format_losses_mean_sd_and_diverged_counts():
    assert format_losses([0.1, 0.2, 0.3]) == f"{0.2:.3g} ± {statistics.stdev([0.1, 0.2, 0.3]):.2g}"
    assert format_losses([0.5]) == "0.5 ± 0"
    assert format_losses([0.1, math.inf, 0.3]) == f"0.2 ± {statistics.stdev([0.1, 0.3]):.2g} (1 div)"
    assert format_losses([math.inf, math.inf, math.inf]) == "diverged (3/3)"
    assert format_losses([]) == "—"


def test_ordering_counts_strict_and_diverged_is_infinitely_bad():
    inf = math.inf
    losses = {
        "mli_paired_pgd": {0: 0.1, 1: 0.5, 2: 0.3, 3: inf},
        "sgd": {0: 0.2, 1: 0.4, 2: inf, 3: inf},  # rep 2: sgd diverged, ours wins; rep 3: both diverged, a tie
        "constraint_only": {0: 0.3, 1: 0.6, 2: 0.3, 3: 0.9},  # rep 2: a tie is not a win
        "no_mirroring": {0: 0.4, 1: 0.7, 2: 0.8, 3: 1.0},
    }
    cols = ordering_columns(losses, METHODS)
    assert cols == {"ordering holds": "1/4", ORDER_COL: "2, 2, 3"}


def test_ordering_pairs_by_repetition_over_the_repetitions_every_method_has():
    losses = {"mli_paired_pgd": {0: 0.1, 1: 0.1, 2: 0.1}, "sgd": {0: 0.2, 1: 0.2},
              "constraint_only": {0: 0.3, 1: 0.3, 2: 0.0}, "no_mirroring": {0: 0.4, 1: 0.4, 2: 0.0}}
    assert ordering_columns(losses, METHODS) == {"ordering holds": "2/2", ORDER_COL: "2, 2, 2"}
    assert ordering_columns({"sgd": {0: 1.0}}, METHODS) == {}  # no mli_paired_pgd: no counts


def test_the_methods_variants_count_in_ours_below_but_not_in_the_ordering_of_the_ablations():
    # the study's claim is ours below the paper's three ablations; a variant of ours (V frozen,
    # per-unit balls) that beats it does not make the ordering fail, it shows in its own count
    losses = {"mli_paired_pgd": {0: 0.3, 1: 0.3}, "sgd": {0: 0.4, 1: 0.2}, "constraint_only": {0: 0.5, 1: 0.5},
              "no_mirroring": {0: 0.6, 1: 0.6}, "mli_paired_pgd_fixed_v": {0: 0.1, 1: 0.9},
              "mli_paired_pgd_per_neuron": {0: 0.2, 1: 0.2}}
    methods = [*METHODS, "mli_paired_pgd_fixed_v", "mli_paired_pgd_per_neuron"]
    assert ordering_columns(losses, methods) == {"ordering holds": "1/2",
                                                 "ours < (sgd, c_only, no_mirr, fixed_v, per_neuron)": "1, 2, 2, 1, 0"}
    only_variants = {k: losses[k] for k in ("mli_paired_pgd", "mli_paired_pgd_per_neuron")}
    assert ordering_columns(only_variants, methods)["ordering holds"] == "0/2"  # no ablation: against the others


losses_st = st.lists(st.one_of(st.floats(0, 2, allow_nan=False), st.just(math.inf)), min_size=4, max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(losses_st, min_size=1, max_size=6))
def test_ordering_holds_is_ours_below_the_minimum_of_the_others(per_rep):
    losses = {m: {r: v[i] for r, v in enumerate(per_rep)} for i, m in enumerate(METHODS)}
    cols = ordering_columns(losses, METHODS)
    wins = sum(v[0] < min(v[1:]) for v in per_rep)
    beats = [sum(v[0] < v[i] for v in per_rep) for i in (1, 2, 3)]
    assert cols["ordering holds"] == f"{wins}/{len(per_rep)}"
    assert cols[ORDER_COL] == ", ".join(map(str, beats))
    assert wins <= min(beats)


# ------------------------------------------------------------------------------------------
# tables from records
# ------------------------------------------------------------------------------------------
def _grid(values, **kw):
    """Records of the four methods x repetitions from ``values[method] = [loss per rep]``."""
    return [rec(m, r, loss, **kw) for m, losses in values.items() for r, loss in enumerate(losses)]


def test_summary_table_excludes_diverged_from_mean_and_counts_it_in_the_ordering():
    records = _grid({"mli_paired_pgd": [0.3, 0.4, 0.5], "sgd": [1e-6, math.nan, 2e-6],
                     "constraint_only": [0.6, 0.7, 0.8], "no_mirroring": [0.7, 0.8, 0.9]}, eps=1.0)
    records[4] = rec("sgd", 1, math.nan, status="diverged")  # sgd diverged in repetition 1
    records += _grid({"mli_paired_pgd": [0.9, 0.9, 0.9], "sgd": [1e-6, 1e-6, 1e-6],
                      "constraint_only": [0.8, 1.0, 1.0], "no_mirroring": [1.0, 1.0, 1.0]}, eps=0.1)
    table = summary_table(study_frame(records, ("eps",)))
    assert list(table["eps"]) == [0.1, 1.0]  # sorted by value
    row = table[table["eps"] == 1.0].iloc[0]
    assert row["sgd"] == f"{statistics.mean([1e-6, 2e-6]):.3g} ± {statistics.stdev([1e-6, 2e-6]):.2g} (1 div)"
    assert row["mli_paired_pgd"] == f"0.4 ± {statistics.stdev([0.3, 0.4, 0.5]):.2g}"
    assert row["ordering holds"] == "1/3" and row[ORDER_COL] == "1, 3, 3"
    row = table[table["eps"] == 0.1].iloc[0]
    assert row["ordering holds"] == "0/3" and row[ORDER_COL] == "0, 2, 3"


def test_a_done_cell_with_a_non_finite_loss_counts_as_diverged():
    records = _grid({"mli_paired_pgd": [0.3], "sgd": [math.inf], "constraint_only": [0.6], "no_mirroring": [0.7]})
    row = summary_table(study_frame(records, ("eps",))).iloc[0]
    assert row["sgd"] == "diverged (1/1)" and row["ordering holds"] == "1/1"


def test_a_done_cell_whose_weights_blew_up_counts_as_diverged():
    """The engine may record a cell done with its loss at the zero predictor's (finite) while
    ||W - W0|| is NaN: the weights are not finite, so the tables count it as diverged."""
    from bench_suite.reporting.ablation import unflagged_blowups

    records = _grid({"mli_paired_pgd": [0.92], "sgd": [0.5], "constraint_only": [0.6], "no_mirroring": [0.7]})
    records[0] = rec("mli_paired_pgd", 0, 0.92, dist=math.nan, curve={50: (0.92, math.nan, 1.0)})
    assert unflagged_blowups(records) == [records[0]]
    row = summary_table(study_frame(records, ("eps",))).iloc[0]
    assert row["mli_paired_pgd"] == "diverged (1/1)" and row["ordering holds"] == "0/1"
    at = summary_table(study_frame(records[:1], ("eps",), at_steps=(50,))).iloc[0]
    assert at["mli_paired_pgd"] == "diverged (1/1)"
    assert unflagged_blowups([rec("sgd", 0, 0.5, dist=None)]) == []  # not measured is not a blow-up


def test_joint_lr_label_and_automatic_labels():
    records = [rec(m, 0, 0.5, lr=lr) for m in METHODS for lr in (0.01, 0.1)]
    assert auto_labels(records) == ("lr",)
    table = summary_table(study_frame(records, auto_labels(records)))
    assert list(table["lr"]) == [0.01, 0.1]
    split = [rec(m, 0, 0.5, lr=0.1, lr_v=lv) for m in METHODS for lv in (0.1, 1.0)]
    assert auto_labels(split) == ("lr_v",)
    assert auto_labels([rec(m, 0, 0.5) for m in METHODS]) == ("m",)  # nothing varies: one row


def test_best_table_takes_each_methods_own_best_per_repetition():
    values = {  # lr -> method -> loss per repetition
        0.01: {"mli_paired_pgd": [0.2, 0.3], "sgd": [0.5, 0.6], "constraint_only": [0.9, 0.9],
               "no_mirroring": [math.nan, math.nan]},
        0.1: {"mli_paired_pgd": [0.4, 0.1], "sgd": [0.001, 0.002], "constraint_only": [0.8, 0.95],
              "no_mirroring": [0.7, 0.7]},
    }
    records = []
    for lr, per_method in values.items():
        for m, losses in per_method.items():
            for r, loss in enumerate(losses):
                status = "diverged" if math.isnan(loss) else "done"
                records.append(rec(m, r, loss, lr=lr, status=status))
    table = best_table(study_frame(records, ("lr",)), ("lr",))
    assert len(table) == 1
    row = table.iloc[0]
    assert row["tuned over"] == "lr"
    # mli: rep 0 at 0.01 (0.2), rep 1 at 0.1 (0.1): a tie in choices -> the earliest repetition's
    assert row["mli_paired_pgd"] == f"{statistics.mean([0.2, 0.1]):.3g} ± {statistics.stdev([0.2, 0.1]):.2g} [0.01]"
    assert row["sgd"].endswith("[0.1]")
    assert row["constraint_only"] == f"0.85 ± {statistics.stdev([0.8, 0.9]):.2g} [0.1]"
    assert row["no_mirroring"] == "0.7 ± 0 [0.1]"  # a diverged cell is never the best when another is not
    assert row["ordering holds"] == "0/2" and row[ORDER_COL] == "0, 2, 2"


def test_best_table_groups_by_the_other_labels():
    records = [rec(m, 0, loss, lr=lr, eps=eps) for m in METHODS for lr in (0.01, 0.1) for eps in (0.5, 1.0)
               for loss in [lr * eps]]
    table = best_table(study_frame(records, ("eps", "lr")), ("lr",))
    assert list(table["eps"]) == [0.5, 1.0]
    assert all(v.endswith("[0.01]") for v in table["sgd"])
    with pytest.raises(StudyError, match="cannot tune over"):
        best_table(study_frame(records, ("eps",)), ("lr",))


def test_loss_after_T_steps_is_read_off_the_evaluation_curve():
    curve = {50: (0.9, 0.5, 0.2), 100: (0.4, 1.0, 0.6)}
    records = [rec(m, 0, 0.4, curve=curve) for m in METHODS]
    # mli diverged after step 50: its curve stops there
    records[0] = rec("mli_paired_pgd", 0, math.nan, status="diverged", curve={50: (0.3, 0.7, 0.1)})
    frame = study_frame(records, ("eps",), at_steps=(50, 100))
    assert list(frame.columns[:2]) == ["eps", "steps"]
    table = summary_table(frame)
    assert list(table["steps"]) == [50, 100]
    at50, at100 = table.iloc[0], table.iloc[1]
    assert at50["mli_paired_pgd"] == "0.3 ± 0" and at50["sgd"] == "0.9 ± 0" and at50["ordering holds"] == "1/1"
    assert at100["mli_paired_pgd"] == "diverged (1/1)" and at100["ordering holds"] == "0/1"
    detail = detail_table(frame)
    sgd50 = detail[(detail["steps"] == 50) & (detail["method"] == "sgd")].iloc[0]
    assert sgd50["‖W−W0‖_F"] == 0.5 and math.isnan(sgd50["radius"])
    c50 = detail[(detail["steps"] == 50) & (detail["method"] == "constraint_only")].iloc[0]
    assert (c50["radius"], c50["proj. active (frac. of steps)"]) == (1.0, 0.2)
    assert not ((detail["steps"] == 100) & (detail["method"] == "mli_paired_pgd")).any()  # diverged: no detail
    with pytest.raises(StudyError, match="step 75 is not an evaluation point"):
        study_frame(records[1:], ("eps",), at_steps=(75,))


def test_detail_table_means_over_the_done_repetitions():
    records = [rec("constraint_only", r, 0.5, dist=dist, proj=proj) for r, (dist, proj) in
               enumerate([(1.0, 0.8), (0.8, 1.0)])]
    records.append(rec("constraint_only", 2, math.nan, status="diverged", dist=50.0, proj=0.0))
    records.append(rec("sgd", 0, 1e-6, dist=4.2))
    detail = detail_table(study_frame(records, ("eps",)))
    c = detail[detail["method"] == "constraint_only"].iloc[0]
    assert c["‖W−W0‖_F"] == pytest.approx(0.9) and c["proj. active (frac. of steps)"] == pytest.approx(0.9)
    assert list(detail["method"]) == ["sgd", "constraint_only"]  # the study's method order


def test_records_that_are_not_measurements_are_refused():
    with pytest.raises(StudyError, match="not a measurement"):
        study_frame([rec("sgd", 0, math.nan, status="error")], ("eps",))
    with pytest.raises(StudyError, match="unknown table label"):
        study_frame([rec("sgd", 0, 0.1)], ("learning_rate",))


# ------------------------------------------------------------------------------------------
# run -> store -> report, on the tiny ablation_smoke profile
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory):
    from bench_suite.cli import main

    store = tmp_path_factory.mktemp("ablation") / "store"
    args = ["run", "--task", "synthetic_ablation", "--profile", "ablation_smoke", "--store", str(store), "--quiet",
            "--threads", "1"]
    assert main(args) == 0
    return store


def _section_of(text: str, profile: str) -> str:
    start = text.index(f"### `{profile}`")
    end = text.find("\n### ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_ablation_smoke_run_then_report_section(smoke_store, tmp_path):
    import bench_suite as bs
    from bench_suite.cli import main

    reports = tmp_path / "reports"
    assert main(["report", "--section", "ablation", "--store", str(smoke_store), "--reports-dir", str(reports)]) == 0
    path = reports / "ablation" / "report.md"
    text = path.read_text()
    assert "## Synthetic ablation study" in text
    part = _section_of(text, "ablation_smoke")
    assert "24 of the profile's 24 cells have a result (24 done)." in part
    # the method's variants (issue 10) are columns of the study's tables, counted in "ours < (…)"
    header = next(line for line in part.splitlines() if line.startswith("|   eps |"))
    assert "mli_paired_pgd_fixed_v" in header and "mli_paired_pgd_per_neuron" in header
    assert "ours < (sgd, c_only, no_mirr, fixed_v, per_neuron)" in header
    assert "Training loss after T steps (mean ± sd over 2 repetitions)" in part
    assert "Each method at its own best eps" in part and "proj. active" in part
    # a table entry, recomputed from the results table: mli_paired_pgd at eps 1 after its last step (50)
    df = bs.load_results(smoke_store)
    mli = df[(df["method"] == "mli_paired_pgd") & (df["eps"] == 1.0)].sort_values("repetition")["train_loss"]
    expected = f"{mli.mean():.3g} ± {mli.std(ddof=1):.2g}"
    row = next(line for line in part.splitlines() if line.startswith("|   1   |      50 |"))
    assert row.split("|")[3].strip() == expected
    # ... and after 25 steps, from the curves
    curves = bs.load_curves(smoke_store)
    ids = set(df.loc[(df["method"] == "mli_paired_pgd") & (df["eps"] == 1.0), "cell_id"])
    at25 = curves[curves["cell_id"].isin(ids) & (curves["metric"] == "eval_train_loss") & (curves["epoch"] == 25)]
    row = next(line for line in part.splitlines() if line.startswith("|   1   |      25 |"))
    assert row.split("|")[3].strip() == f"{at25['value'].mean():.3g} ± {at25['value'].std(ddof=1):.2g}"
    # deterministic: same store, same bytes
    assert main(["report", "--section", "ablation", "--store", str(smoke_store), "--reports-dir", str(reports)]) == 0
    assert path.read_text() == text
    # the full report: report.md points to the study, report.html carries its tables and a figure
    assert main(["report", "--store", str(smoke_store), "--reports-dir", str(reports)]) == 0
    full = (reports / "all" / "report.md").read_text()
    assert "## Synthetic ablation study" in full and "1 sweep(s) (ablation_smoke)" in full
    page = (reports / "all" / "report.html").read_text()
    assert "<strong><code>ablation_smoke</code>:" in page and "ordering holds" in page
    assert 'id="fig-study__synthetic_ablation__ablation_smoke"' in page  # loss against eps, per method


def test_selection_leaves_out_old_code_and_failed_cells_and_names_the_missing(smoke_store):
    from bench_suite.reporting.ablation import profile_section, select
    from bench_suite.store.result_store import ResultStore

    records = ResultStore(smoke_store).records(with_curves=True)
    sel = select(records, "ablation_smoke")
    assert (len(sel.used), sel.expected, sel.missing, sel.old_code) == (24, 24, 0, 0)
    older = {**records[0].provenance["code_version"], "engine": 0}
    old = records[0].replace(cell_id="0" * 16, provenance={**records[0].provenance, "code_version": older})
    failed = records[1].replace(status=Status.ERROR, reason="boom")
    rest = records[2:]
    sel = select([old, failed, *rest], "ablation_smoke")
    assert (len(sel.used), sel.missing, sel.old_code, len(sel.not_measured)) == (22, 2, 1, 1)
    text = "\n".join(profile_section([old, failed, *rest], "ablation_smoke"))
    assert "22 of the profile's 24 cells have a result (22 done); 2 have none yet" in text
    assert "1 record(s) of this profile computed by other code are left out" in text
    assert f"Left out, not measurements: {failed.name} (error)." in text
    blown = rest[0].replace(final={**rest[0].final, "dist_w0": math.nan})
    text = "\n".join(profile_section([blown, *rest[1:]], "ablation_smoke"))
    assert "Counted as diverged: 1 cell(s) recorded done whose final ‖W − W0‖_F is not finite" in text
    assert blown.name in text
    # another profile's records are not this one's
    assert select(records, "ablation_eps").used == []


def test_records_whose_curves_could_not_be_loaded_are_left_out_of_the_tables_at_T_steps(smoke_store):
    from bench_suite.reporting.ablation import profile_section
    from bench_suite.store.result_store import ResultStore

    records = ResultStore(smoke_store).records(with_curves=True)
    refused = records[0].replace(curves=None)  # e.g. its stored curves do not match its digest
    text = "\n".join(profile_section([refused, *records[1:]], "ablation_smoke"))
    assert f"Left out of the tables at T steps, their curves could not be loaded: {refused.name}." in text
    assert "Training loss after T steps" in text  # the others' tables are still there
    with pytest.raises(StudyError, match="no curves in memory.*with_curves=True"):
        study_frame([refused], ("eps",), at_steps=(25,))


def test_a_users_own_ablation_profile_from_a_toml_file(tmp_path, monkeypatch):
    from bench_suite.cli import main
    from bench_suite.grid import profiles as grid  # where the loaded profile files are held

    monkeypatch.setattr(grid, "_FILE_PROFILES", {})
    profile = tmp_path / "mine.toml"
    profile.write_text('[synthetic_ablation.ablation_mine]\ndescription = "my joint-lr sweep"\nseeds = 1\n'
                       'widths = [4]\n[synthetic_ablation.ablation_mine.options]\nn = 32\nd = 8\n'
                       '[synthetic_ablation.ablation_mine.train]\nlr = [0.05, 0.1]\nepochs = 10\neval_every = 5\n')
    store = tmp_path / "store"
    assert main(["run", "--profile-file", str(profile), "--task", "synthetic_ablation", "--profile", "ablation_mine",
                 "--store", str(store), "--quiet", "--threads", "1"]) == 0
    monkeypatch.setattr(grid, "_FILE_PROFILES", {})  # a new process: the file is not loaded
    reports = tmp_path / "reports"
    assert main(["report", "--section", "ablation", "--store", str(store), "--reports-dir", str(reports)]) == 0
    text = (reports / "ablation" / "report.md").read_text()
    assert "Not declared here (load their --profile-file to build their tables): ablation_mine." in text
    assert main(["report", "--section", "ablation", "--profile-file", str(profile), "--store", str(store),
                 "--reports-dir", str(reports)]) == 0
    part = _section_of((reports / "ablation" / "report.md").read_text(), "ablation_mine")
    assert "### `ablation_mine`: my joint-lr sweep" in part and "8 of the profile's 8 cells" in part
    assert "|   lr |" in part  # the axis that varies, as the joint lr


def test_report_section_of_an_unknown_profile_is_one_line(smoke_store, tmp_path, capsys):
    from bench_suite.cli import main

    rc = main(["report", "--section", "ablation", "--profile", "ablation_nope", "--store", str(smoke_store),
               "--reports-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "'ablation_nope': no task declares it" in err and len(err.strip().splitlines()) == 1
