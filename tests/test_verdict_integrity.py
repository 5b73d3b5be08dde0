"""A verdict is computed only from records that belong to the claim (issue: verdicts you can trust).

Each test is one kind of fault: records of an overridden profile, of older code, of other data,
a record file of another cell, infinite metrics, a store mixing profiles, an internal error, and
verdicts that must be saved. A small task registered here keeps every run to seconds.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from data_fixtures import SMALL_COUNTS, write_cifar_image_folder

from bench_suite import api
from bench_suite.cli import main
from bench_suite.core.records import Record, code_version_text, compute_cell_id
from bench_suite.scoring.checks import FAIL, INCONCLUSIVE, PASS, SKIPPED, run_checks
from bench_suite.scoring.references import loads_references
from bench_suite.store.result_store import ResultStore
from bench_suite.tasks import Task, TaskData, register_task


@register_task
class IntegrityTask(Task):
    """Gaussian inputs with targets a fixed linear function (so every method learns): a tiny task
    whose `ci` profile takes a second."""

    name = "integrity_task"
    description = "test task for the verdict-integrity tests"
    options = {"n": 40, "d": 8}
    train_defaults = {"epochs": 20, "batch_size": None, "lr_w": 0.3, "lr_v": 0.3, "loss": "mse", "eps": 1.0,
                      "eps_mode": "absolute", "eval_every": 5}
    grid = {"methods": ["mli_paired_pgd", "sgd"], "widths": [4], "activations": ["tanh"]}
    profiles = {"ci": {"description": "test", "seeds": 2}}

    @classmethod
    def shape(cls, options):
        return {"n": options["n"], "d": options["d"], "k": 1, "n_test": 0}

    def load(self, options, *, data_seed, data_root=None, cache_dir=None):
        g = torch.Generator().manual_seed(data_seed)
        x = torch.randn(options["n"], options["d"], generator=g)
        return TaskData(x, x[:, :1] * 0.5, 1, False, "integrity: x ~ N(0, I), y = x_1 / 2")


BASELINES = """
protocol = 1
[[reference]]
id = "integrity/at-most"
kind = "threshold"
task = "integrity_task"
profile = "ci"
method = "sgd"
metric = "train_loss"
direction = "at_most"
bound = 1.0
"""


@pytest.fixture
def baselines(tmp_path):
    path = tmp_path / "refs.toml"
    path.write_text(BASELINES)
    return str(path)


def run(store, *extra):
    return main(["run", "--task", "integrity_task", "--quiet", "--store", str(store), *extra])


def check(store, baselines, *extra):
    return main(["check", "--store", str(store), "--baselines", baselines, *extra])


def test_an_overridden_profile_run_is_ad_hoc_stored_reported_and_never_scored(tmp_path, baselines, capsys):
    store = tmp_path / "store"
    assert run(store, "--profile", "ci") == 0
    assert check(store, baselines, "--profile", "ci") == 0
    before = capsys.readouterr().out
    assert "1 PASS" in before and "left out" not in before
    # a 3-step run "of profile ci": ad hoc, said when it runs, stored, never scored as ci
    assert run(store, "--profile", "ci", "--epochs", "3") == 0
    err = capsys.readouterr().err
    assert "4 of 4 cell(s) are ad hoc, not profile ci (epochs=3 (profile ci declares 20))" in err
    records = ResultStore(store).records()
    assert len(records) == 8 and sum(r.profile is None for r in records) == 4
    verdicts = api.check(store, profile="ci", baselines=baselines)
    (row,) = verdicts.itertuples()
    assert row.n == 2 and len(row.cells) == 2  # only the two real ci runs of sgd
    assert all(ResultStore(store).get(c).config["train"]["epochs"] == 20 for c in row.cells)
    left = verdicts.attrs["left_out"]
    assert len(left) == 4 and set(left["why"]) == {"ad hoc"}
    assert check(store, baselines, "--profile", "ci") == 0
    assert "left out 4 record(s) not scored: 4 ad hoc" in capsys.readouterr().out


def test_a_record_labelled_with_a_profile_that_no_longer_declares_it_is_left_out(tmp_path, baselines, monkeypatch):
    store = tmp_path / "store"
    assert run(store, "--profile", "ci") == 0
    monkeypatch.setitem(IntegrityTask.profiles, "ci", {"description": "test", "seeds": 2, "train": {"epochs": 30}})
    verdicts = api.check(store, profile="ci", baselines=baselines)
    assert verdicts.verdict.tolist() == [SKIPPED]
    left = verdicts.attrs["left_out"]
    assert len(left) == 4 and all("epochs=20 (profile ci declares 30)" in d for d in left["detail"])


def _as_older_code(record: Record, **changes) -> Record:
    """The same cell as an older code version would have recorded it (its own id)."""
    prov = {**record.provenance, "code_version": {**record.code_version, "engine": 0}}
    old = record.replace(provenance=prov, **changes)
    old.cell_id = compute_cell_id(old.config, old.seeds, old.code_version, old.protocol)
    return old


def test_records_of_older_code_are_left_out_by_default_and_named_when_included(tmp_path, baselines, capsys):
    store = tmp_path / "store"
    assert run(store, "--profile", "ci") == 0
    st = ResultStore(store)
    sgd = [r for r in st.records() if r.method == "sgd"]
    for r in sgd:  # an older engine made these cells diverge
        st.write(_as_older_code(r, status=r.status.DIVERGED, reason="old engine blew up",
                                final={**r.final, "train_loss": math.inf}))
    verdicts = api.check(store, profile="ci", baselines=baselines)
    assert verdicts.verdict.tolist() == [PASS]  # the diverged old records do not make it FAIL
    current = sorted({code_version_text(r) for r in sgd})
    assert verdicts.iloc[0]["code_versions"] == current
    left = verdicts.attrs["left_out"]
    from bench_suite.grid.versions import ENGINE_VERSION

    assert len(left) == 2 and set(left["why"]) == {"older code"}
    assert f"engine 0 -> {ENGINE_VERSION}" in left["detail"].iloc[0]
    with_old = api.check(store, profile="ci", baselines=baselines, include_old_code=True)
    assert with_old.verdict.tolist() == [FAIL]
    assert any("engine 0" in v for v in with_old.iloc[0]["code_versions"])
    assert check(store, baselines, "--profile", "ci") == 0
    out = capsys.readouterr().out
    assert "code version(s) scored: " + current[0] in out and "2 older code" in out
    # a committed store that holds older code is STALE: CI can make that an error
    assert check(store, baselines, "--profile", "ci", "--stale", "error") == 2
    assert "STALE: 2 record(s) of profile(s) ci" in capsys.readouterr().err


@pytest.fixture
def two_cifar_copies(tmp_path, monkeypatch):
    monkeypatch.setattr("bench_suite.data.cifar10.CIFAR10_COUNTS", dict(SMALL_COUNTS))
    first = write_cifar_image_folder(tmp_path / "first")
    second = tmp_path / "second"
    shutil.copytree(first, second)
    image = sorted((second / "train").rglob("*.png"))[0]
    from PIL import Image

    Image.new("RGB", (32, 32), (1, 2, 3)).save(image)  # one training image changed
    return first, second


def test_results_computed_from_other_data_are_not_taken_as_finished(tmp_path, two_cifar_copies, capsys):
    first, second = two_cifar_copies
    store, cache = tmp_path / "store", tmp_path / "cache"
    args = ["--task", "cifar10_random", "--method", "sgd", "--width", "8", "--activation", "relu", "--epochs", "1",
            "--cache-dir", str(cache)]
    assert main(["run", *args, "--quiet", "--store", str(store), "--data-root", str(first)]) == 0
    kept = ResultStore(store).records()
    capsys.readouterr()
    assert main(["run", *args, "--quiet", "--store", str(store), "--data-root", str(second)]) == 1
    err = capsys.readouterr().err
    assert "computed from other data" in err and kept[0].data_checksum in err
    assert ResultStore(store).records() == kept  # the first copy's result is kept, not overwritten
    assert main(["run", *args, "--quiet", "--store", str(store), "--data-root", str(first)]) == 0  # same data: cached
    assert main(["run", *args, "--quiet", "--store", str(store), "--data-root", str(second), "--force"]) == 0
    (now,) = ResultStore(store).records()
    assert now.data_checksum != kept[0].data_checksum


INF_REFS = """
protocol = 1
[[reference]]
id = "t/loss"
kind = "threshold"
task = "integrity_task"
profile = "ci"
method = "sgd"
metric = "test_loss"
direction = "at_most"
bound = 1.0
"""


def _frame(values, metric="test_loss"):
    rows = [{"task": "integrity_task", "profile": "ci", "protocol": 1, "method": "sgd", "width": 4,
             "activation": "tanh", "repetition": i, "status": "done", metric: v} for i, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_an_infinite_metric_is_a_value_not_a_missing_one():
    refs = loads_references(INF_REFS)
    (row,) = run_checks(_frame([0.5, math.inf, 0.6, 0.55]), refs).itertuples()
    assert row.verdict == FAIL and row.ours == math.inf and "infinite" in row.note
    (row,) = run_checks(_frame([math.inf, math.inf]), refs).itertuples()
    assert row.verdict == FAIL and row.n == 2
    (row,) = run_checks(_frame([0.5, None, 0.6]), refs).itertuples()  # None: not recorded
    assert row.verdict in (PASS, INCONCLUSIVE) and row.n == 2 and "not recorded for repetition(s) [1]" in row.note


def test_a_store_mixing_runs_with_and_without_a_profile_checks_and_reports(tmp_path, baselines, capsys):
    store = tmp_path / "store"
    assert run(store, "--profile", "ci") == 0
    assert run(store, "--width", "6") == 0  # no profile
    assert check(store, baselines) in (0, 3)
    assert main(["report", "--store", str(store), "--baselines", baselines, "--reports-dir",
                 str(tmp_path / "reports")]) == 0
    text = (tmp_path / "reports" / "all" / "report.md").read_text()
    assert "integrity_task" in text and "record(s) not scored: ad hoc" in text


def test_an_internal_error_exits_2_in_one_line_not_with_a_verdict_code(tmp_path, baselines, monkeypatch, capsys):
    store = tmp_path / "store"
    assert run(store, "--profile", "ci") == 0
    capsys.readouterr()

    def broken(*args, **kwargs):
        raise TypeError("'<' not supported between instances of 'float' and 'str'")

    monkeypatch.setattr("bench_suite.scoring.run_checks", broken)
    assert check(store, baselines) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench-suite: internal error: TypeError")
    assert "--debug" in err[0]


def test_verdicts_are_saved_as_json_and_csv_with_the_records_and_code_versions(tmp_path, baselines):
    store = tmp_path / "store"
    assert run(store, "--profile", "ci") == 0
    assert check(store, baselines, "--save", str(tmp_path / "v")) == 0
    payload = json.loads((tmp_path / "v" / "verdicts.json").read_text())
    (row,) = payload["verdicts"]
    assert row["verdict"] == PASS and len(row["cells"]) == 2 and len(row["code_versions"]) == 1
    assert payload["summary"]["PASS"] == 1 and payload["exit_code"] == 0
    csv = pd.read_csv(tmp_path / "v" / "verdicts.csv")
    assert csv.loc[0, "id"] == "integrity/at-most" and ";" in csv.loc[0, "cells"]
    assert main(["report", "--store", str(store), "--baselines", baselines, "--profile", "ci",
                 "--reports-dir", str(tmp_path / "r")]) == 0
    for name in ("report.md", "report.html", "verdicts.json", "verdicts.csv", "results.csv", "results.parquet"):
        assert (tmp_path / "r" / "ci" / name).is_file(), name
    # the same inputs give the same bytes
    first = (tmp_path / "v" / "verdicts.json").read_bytes()
    assert check(store, baselines, "--save", str(tmp_path / "v")) == 0
    assert (tmp_path / "v" / "verdicts.json").read_bytes() == first


def test_check_and_report_of_a_store_that_does_not_exist_are_errors(tmp_path):
    for cmd in (["check"], ["report", "--reports-dir", str(tmp_path / "r")], ["export", "--dir", str(tmp_path / "e")]):
        proc = subprocess.run([sys.executable, "-m", "bench_suite", *cmd, "--store", str(tmp_path / "no_such_store")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (cmd, proc.stdout, proc.stderr)
        assert "no such result store" in proc.stderr and "Traceback" not in proc.stderr
        assert "report written" not in proc.stdout


def test_a_plug_in_tasks_fingerprint_ignores_docstrings_comments_and_declarations_but_not_code():
    from bench_suite.grid.versions import code_only as _code_only

    source = '''
class T(Task):
    """A task."""
    name = "t"
    profiles = {"ci": {"repetitions": 1}}  # which cells exist
    defaults_rationale = "why"

    def load(self, options, *, data_seed, data_root=None, cache_dir=None):
        """Load it."""
        return data_seed + 1
'''
    same = (source.replace('"repetitions": 1', '"repetitions": 3').replace('"why"', '"because"')
            .replace('"""Load it."""', '"""Load the data."""').replace("# which cells exist", "# edited"))
    assert _code_only(source) == _code_only(same)
    assert _code_only(source) != _code_only(source.replace("data_seed + 1", "data_seed + 2"))
    assert _code_only(source) != _code_only(source.replace('name = "t"', 'name = "u"'))


def test_skipped_rows_of_a_store_with_unscorable_records_explain_themselves(tmp_path):
    # a newcomer's store: width_threshold smoke records only; `check --profile ci` crashed with a
    # TypeError (pandas' NaN in the 'versus' column of non-comparison rows) instead of saying why
    import bench_suite as bs

    bs.run("width_threshold", profile="smoke", train={"epochs": 3, "eval_every": 3}, store=tmp_path / "s",
           device="cpu")
    verdicts = bs.check(tmp_path / "s", profile="ci")  # every task's rows, comparisons or not
    assert set(verdicts["verdict"]) == {"SKIPPED"}
    assert verdicts["note"].str.contains("no record the row may score").any()


# --------------------------------------------------------------------------------------------
# fewer repetitions than the profile declares; check's terminal text and exit codes
# --------------------------------------------------------------------------------------------
COMMITTED = Path(__file__).resolve().parents[1] / "reports" / "ci" / "store"


@pytest.fixture
def main_job_store(tmp_path):
    """The README's main job (`run --task synthetic_ablation`: the `ci` configuration, one
    repetition): its four cells are repetition 0 of the committed ci store's ablation cells (the
    same cell ids), written as the main job leaves them, with no profile label."""
    src = ResultStore(COMMITTED)
    cells = [r for r in src.records() if r.task == "synthetic_ablation" and r.seeds["repetition"] == 0]
    if len(cells) != 4:
        pytest.skip("the committed ci store lacks the synthetic ablation's repetition 0")
    store = ResultStore(tmp_path / "main")
    for record in src.attach_curves(cells):
        assert store.write(record.replace(profile=None))
    return tmp_path / "main"


def test_the_readme_main_job_checked_against_the_ci_rows_is_partial_not_a_plain_verdict(main_job_store, capsys):
    verdicts = api.check(main_job_store, profile="ci", tasks=["synthetic_ablation"])
    assert len(verdicts) == 3 and set(verdicts.verdict) == {INCONCLUSIVE}  # never a plain PASS or FAIL
    assert set(verdicts.n) == {1} and set(verdicts.n_declared) == {5}
    assert all(n.startswith("partial: 1 of the 5 repetitions profile ci declares (4 missing: 1, 2, 3, 4)")
               for n in verdicts.note)
    assert main(["check", "--store", str(main_job_store), "--profile", "ci", "--task", "synthetic_ablation"]) == 0
    out = capsys.readouterr().out
    assert "n=1/5" in out and "partial: 1 of the 5" in out and "exit 0: nothing failed unexpectedly" in out
    assert main(["check", "--store", str(main_job_store), "--profile", "ci", "--task", "synthetic_ablation",
                 "--strict"]) == 3


def test_check_prints_a_summary_first_the_tasks_present_then_one_line_for_the_absent_within_the_width(
        main_job_store, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["check", "--store", str(main_job_store), "--profile", "ci"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert all(len(line) <= 80 for line in lines + captured.err.splitlines()), max(lines, key=len)
    head = " ".join(line.strip() for line in lines[:3])  # the summary comes first
    assert head.startswith(f"check {main_job_store} (profile ci):") and "scored 4 (synthetic_ablation 4)" in head
    assert any(line.startswith("verdicts: 0 PASS, 0 FAIL, 3 INCONCLUSIVE") for line in lines[:4])
    first_task = next(i for i, line in enumerate(lines) if line.startswith("synthetic_ablation: 4 record(s)"))
    absent = [i for i, line in enumerate(lines) if line.startswith("no records in the store for ")]
    assert len(absent) == 1 and absent[0] > first_task  # the tasks the store holds first, the others folded
    assert "width_threshold" in " ".join(lines[absent[0]:absent[0] + 8]) and "SKIPPED" in captured.out
    assert not any(line.startswith("theory/") for line in lines)  # no line per absent row


def test_exit_codes_of_check_fail_only_on_an_unexpected_fail(tmp_path, capsys):
    rows = BASELINES.replace('task = "integrity_task"', 'task = "synthetic_ablation"')  # sgd's loss <= 1.0 ...

    def check_committed(text, *extra):
        path = tmp_path / "refs.toml"
        path.write_text(text)
        return main(["check", "--store", str(COMMITTED), "--baselines", str(path), *extra])

    assert check_committed(rows) == 0
    assert check_committed(rows.replace("bound = 1.0", "bound = -1.0")) == 1  # ... <= -1: an unexpected FAIL
    assert "exit 1: an unexpected FAIL" in capsys.readouterr().out
    known = rows.replace("bound = 1.0", 'bound = -1.0\nknown_deviation = "a write-up"')  # the FAIL written up
    assert check_committed(known) == 0 and check_committed(known, "--strict") == 0
    assert "FAIL (expected)" in capsys.readouterr().out
    absent = rows.replace('task = "synthetic_ablation"', 'task = "mnist"')  # no records: SKIPPED, no failure
    assert check_committed(absent) == 0 and check_committed(absent, "--strict") == 3
    assert "no records in the store for mnist" in capsys.readouterr().out
