"""What a long run says (issue 23): its estimate before it starts and the confirmation rule
(a profile made for another device, an estimate over the threshold), a heartbeat per fused
group in logs, resumes announced, each cell's share of its group's time, and one cost model
behind `list --profiles`, `plan`, `run` and `doctor`."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import bench_suite as bs
from bench_suite.cli import main
from bench_suite.core import exit_codes
from bench_suite.executors.session import CONFIRM_ENV, ConfirmationNeeded, RunRequest, confirm_over_hours, preflight
from bench_suite.grid import expand
from bench_suite.runner.cost import CostModel, estimate
from bench_suite.runner.heartbeat import HEARTBEAT_ENV, Heartbeat, heartbeat_interval
from bench_suite.runner.provenance import probe_device_name
from bench_suite.store.result_store import ResultStore

FAST = ["--task", "synthetic_ablation", "--option", "n=40", "--option", "d=8", "--width", "4", "--epochs", "20",
        "--eval-every", "5", "--lr", "0.3", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A store with earlier runs on this device (their rates price later grids)."""
    store = tmp_path_factory.mktemp("measured")
    assert main(["run", *FAST, "--store", str(store)]) == 0
    return store


# --- the confirmation rule ----------------------------------------------------------------------


def test_a_paper_grid_on_a_cpu_refuses_in_one_line_with_the_estimate(tmp_path):
    store = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-m", "bench_suite", "run", "--profile", "paper", "--task",
                           "cifar10_random", "--device", "cpu", "--store", str(store)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert proc.returncode == exit_codes.USAGE
    (line,) = proc.stderr.strip().splitlines()
    assert "profile cifar10_random paper is made for cuda, this run is on cpu" in line
    assert "estimate: 18 cell(s) to run on cpu" in line and "PFLOP" in line and "add --yes" in line
    assert not store.exists()  # refused before anything was written


def test_an_estimate_over_the_threshold_asks_first_and_yes_runs_it(measured, tmp_path, monkeypatch, capsys):
    store = tmp_path / "store"
    for record in ResultStore(measured).records():  # the earlier runs' rates, in this store too
        ResultStore(store).write(record)
    monkeypatch.setenv(CONFIRM_ENV, "1e-9")  # hours: any known estimate is over it
    args = ["run", *FAST, "--width", "6", "--store", str(store)]
    assert main(args) == exit_codes.USAGE
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"is over ${CONFIRM_ENV} = 1e-09 h" in line and "of device time" in line and "add --yes" in line
    assert main([*args, "--yes"]) == exit_codes.OK
    monkeypatch.setenv(CONFIRM_ENV, "soon")
    assert main(args) == exit_codes.USAGE
    assert f"${CONFIRM_ENV}='soon': give a positive number of hours" in capsys.readouterr().err


@pytest.mark.parametrize("answer,code", [("y", exit_codes.OK), ("", exit_codes.USAGE), ("no", exit_codes.USAGE)])
def test_on_a_terminal_the_run_asks(measured, tmp_path, monkeypatch, capsys, answer, code):
    import bench_suite.cli.run as cli_run

    store = tmp_path / "store"
    for record in ResultStore(measured).records():
        ResultStore(store).write(record)
    monkeypatch.setenv(CONFIRM_ENV, "1e-9")
    monkeypatch.setattr(cli_run, "_interactive", lambda: True)
    monkeypatch.setattr("builtins.input", lambda: answer)
    assert main(["run", *FAST, "--width", "6", "--store", str(store)]) == code
    err = capsys.readouterr().err
    assert err.count("run it anyway? [y/N] ") == 1 and "is over $BENCH_SUITE_CONFIRM_OVER_H" in err


def test_the_api_takes_confirm_and_raises_in_its_own_words(tmp_path):
    with pytest.raises(ConfirmationNeeded, match=r"made for cuda, this run is on cpu.*pass confirm=True") as info:
        bs.run("cifar10_random", profile="paper", store=tmp_path / "s", device="cpu")
    assert isinstance(info.value, ValueError) and info.value.preflight.cells == 18
    assert "--yes" not in str(info.value)


def test_the_rule_in_the_library(measured, monkeypatch):
    cpu = RunRequest(store=measured, device="cpu")
    assert preflight(expand("synthetic_ablation", profile="smoke"), cpu).reasons == []  # made for cpu
    paper = preflight(expand("cifar10_random", profile="paper"), cpu)
    assert paper.reasons[0] == "profile cifar10_random paper is made for cuda, this run is on cpu"
    assert paper.reasons[1:] == [f"about {paper.estimate.short()} per worker is over ${CONFIRM_ENV} = 4 h"]
    # a cluster's workers use their own device: only what this process can tell is checked
    dask = preflight(expand("cifar10_random", profile="paper"), RunRequest(store=measured, executor="dask"))
    assert dask.reasons == [] and dask.estimate is None
    slurm_cpu = RunRequest(store=measured, executor="slurm", slurm={"gpus_per_job": 0})
    assert "this run is on cpu" in preflight(expand("cifar10_random", profile="paper"), slurm_cpu).reasons[0]
    monkeypatch.delenv(CONFIRM_ENV, raising=False)
    assert confirm_over_hours() == 4.0


# --- one cost model -------------------------------------------------------------------------------


def test_list_plan_and_doctor_give_the_same_estimate(measured, monkeypatch, capsys):
    from bench_suite.diagnostics import doctor

    device_type, device_name = probe_device_name("cpu")
    est = estimate(expand("synthetic_ablation", profile="ci"), CostModel(ResultStore(measured).records), device_name)
    assert est.known
    expected = est.short()
    assert main(["list", "--profiles", "--task", "synthetic_ablation", "--device", "cpu", "--store",
                 str(measured)]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if re.match(r"synthetic_ablation\s+ci\s", line)]
    assert f" {expected} " in row
    assert main(["plan", "--task", "synthetic_ablation", "--profile", "ci", "--device", "cpu", "--store",
                 str(measured)]) == 0
    assert f"about {expected} of device time" in capsys.readouterr().out
    monkeypatch.setattr(doctor, "measure_rate", lambda device, seconds: (1e9, "stand-in"))
    checks = doctor.check_rate(doctor._device("cpu"), 0.0, str(measured))
    (line,) = [c.detail for c in checks if c.name == "estimated time, profile ci"]
    assert f"synthetic_ablation {expected};" in line


def test_a_rate_of_the_other_trainer_beats_no_estimate(measured, capsys):
    # the measured runs are all fused-engine ones; a reference-trainer method is priced from them
    reference = [m for m in bs.methods.METHODS.names() if bs.methods.METHODS.get(m).trainer == "reference"]
    assert reference, "a built-in method on the reference trainer"
    assert main(["plan", *FAST, "--method", reference[0], "--device", "cpu", "--store", str(measured)]) == 0
    out = capsys.readouterr().out
    assert "time unknown" not in out and "measured with the fused trainer" in out


def test_profile_descriptions_state_no_times():
    from bench_suite.grid import profiles_of
    from bench_suite.tasks import TASKS

    for task in TASKS.names():
        for name, spec in profiles_of(task).items():
            text = spec.get("description", "")
            assert not re.search(r"\b(seconds?|minutes?|hours?|days?)\b", text), (task, name, text)


# --- progress in logs -----------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_the_heartbeat_says_epoch_elapsed_and_time_left_at_its_interval():
    cells = expand("synthetic_ablation", options={"n": 40, "d": 8}, widths=[4])
    clock, lines = FakeClock(), []
    beat = Heartbeat(lines.append, 60, clock=clock)
    beat.group_start(cells)
    for epoch in range(1, 11):
        clock.now += 25  # 25 s an epoch: a line every third epoch (60 s apart at least)
        beat.epoch(epoch, 100)
    assert lines == [
        "synthetic_ablation rep 0 (4 fused): epoch 3/100, 1.2min elapsed, about 40.4min left",
        "synthetic_ablation rep 0 (4 fused): epoch 6/100, 2.5min elapsed, about 39.2min left",
        "synthetic_ablation rep 0 (4 fused): epoch 9/100, 3.8min elapsed, about 37.9min left",
    ]
    # a resumed group: announced, and its pace counts only the epochs trained in this process
    lines.clear()
    beat.group_start(cells)
    beat.resume(cells, 50, 100)
    clock.now += 120
    beat.epoch(52, 100)
    assert lines == ["resuming 4 cell(s) from the checkpoint at epoch 50/100 (synthetic_ablation rep 0)",
                     "synthetic_ablation rep 0 (4 fused): epoch 52/100, 2.0min elapsed, about 48.0min left"]


def test_the_heartbeat_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(HEARTBEAT_ENV, raising=False)
    assert heartbeat_interval() == 60.0 and heartbeat_interval(5) == 5.0
    monkeypatch.setenv(HEARTBEAT_ENV, "15")
    assert heartbeat_interval() == 15.0
    for junk in ("often", "0", "-3", "nan"):
        monkeypatch.setenv(HEARTBEAT_ENV, junk)
        with pytest.raises(ValueError, match=re.escape(f"${HEARTBEAT_ENV}=")):
            heartbeat_interval()


def test_a_run_in_a_log_prints_heartbeats_and_announces_a_resume(tmp_path, capsys):
    run = ["run", "--task", "synthetic_ablation", "--option", "n=60", "--option", "d=12", "--width", "6", "--epochs",
           "40", "--batch-size", "8", "--eval-every", "10", "--threads", "1", "--store", str(tmp_path)]
    assert main([*run, "--time-budget", "0.001"]) == exit_codes.STOPPED  # checkpointed part-way
    capsys.readouterr()
    assert main([*run, "--heartbeat", "1e-9"]) == exit_codes.OK  # stderr is not a terminal here
    err = capsys.readouterr().err.splitlines()
    (resume,) = [line for line in err if line.startswith("resuming ")]
    epoch = int(re.search(r"at epoch (\d+)/40", resume).group(1))
    assert resume == f"resuming 4 cell(s) from the checkpoint at epoch {epoch}/40 (synthetic_ablation rep 0)"
    beats = [line for line in err if "(4 fused): epoch " in line]
    assert beats and beats[-1].startswith("synthetic_ablation rep 0 (4 fused): epoch 40/40, ")
    assert all(" elapsed, about " in line and line.endswith(" left") for line in beats)


def test_the_run_table_shows_each_cells_share_of_its_groups_time(tmp_path, capsys):
    assert main(["run", *FAST, "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    header = out[0]
    assert header.split()[-2:] == ["time_s", "(share)"] and header.count("time_s") == 1
    records = ResultStore(tmp_path).records()
    group_time = records[0].timing["train_time_s"]
    assert {r.timing["group_size"] for r in records} == {4}
    shares = [float(line.split()[-1]) for line in out[2:6]]
    assert shares == pytest.approx([group_time / 4] * 4, rel=1e-3)


def test_a_worker_log_gets_heartbeats(tmp_path, capsys):
    from bench_suite.executors import WorkerOptions, run_cells

    cells = expand("synthetic_ablation", options={"n": 40, "d": 8}, widths=[4], train={"epochs": 20})
    options = WorkerOptions(store=str(tmp_path), run_id="r-beat", devices=["cpu"], threads=1, label="w9",
                            heartbeat_s=1e-9)
    run_cells([c.to_dict() for c in cells], options.to_dict())  # what a Dask task / SLURM job calls
    assert "[w9] synthetic_ablation rep 0 (4 fused): epoch 20/20, " in capsys.readouterr().err


def test_list_and_plan_import_no_torch(measured):
    code = ("import sys; from bench_suite.cli import main; "
            f"main(['list', '--profiles', '--store', {str(measured)!r}]); "
            f"main(['plan', '--profile', 'ci', '--store', {str(measured)!r}]); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'pandas'}), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "[]"
