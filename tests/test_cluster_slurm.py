"""The SLURM executor against a real SLURM cluster (munged + slurmctld + slurmd on this
machine), and every fault of issue 14 a cluster user meets: CPU cells asking for a GPU, sbatch
refusals, a controller that is down or stops while the run waits, jobs that die without
accounting (no sacct), `--no-wait` followed by the same command, the time limit.

The cluster comes from ``$BENCH_SUITE_SLURM_LOCAL``: the path of ``slurm-local.sh`` (CI's
``.ci/run`` sets it to ``../shared/scripts/slurm-local.sh`` and starts the cluster; this module
starts it too if it is down, and stops it again then). Without it, without root or without
the SLURM packages, every test here is skipped with the reason (``-ra`` prints it).
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cluster_helpers import events, no_run_outlives_its_test, run_cli, wait_for  # noqa: F401 - the fixture is autouse

from bench_suite.cli import main
from bench_suite.store.result_store import ResultStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SCRIPT_ENV = "BENCH_SUITE_SLURM_LOCAL"
FAST = ["--task", "synthetic_ablation", "--option", "n=40", "--option", "d=8", "--width", "4", "--epochs", "20",
        "--eval-every", "5", "--lr", "0.3", "--quiet", "--threads", "1"]
# a fused group of two cells that trains for several seconds: long enough to act on a running job
LONG = ["--task", "synthetic_ablation", "--option", "n=40", "--option", "d=8", "--width", "4", "--epochs", "15000",
        "--eval-every", "10000", "--lr", "0.3", "--quiet", "--threads", "1", "--method", "sgd,mli_paired_pgd"]


class Cluster:
    def __init__(self, script: str) -> None:
        self.script = script
        config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
        # restarting the controller must keep the cluster as it is, with or without accounting
        self.accounting = "accounting_storage/slurmdbd" in config
        out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True).stdout.split()
        self.partition = next((p.rstrip("*") for p in out if p.endswith("*")), out[0].rstrip("*"))

    def args(self, store: Path) -> list[str]:
        return ["--executor", "slurm", "--partition", self.partition, "--poll-interval", "1", "--time-limit", "5",
                "--store", str(store)]

    def controller_pid_file(self) -> Path:
        config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
        line = next(line for line in config.splitlines() if line.startswith("SlurmctldPidFile"))
        return Path(line.split("=", 1)[1].strip())

    def stop_controller(self) -> None:
        """Stop slurmctld alone (slurmd and the jobs' processes keep running)."""
        pid = int(self.controller_pid_file().read_text().split()[0])
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "slurmctld"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists():
            assert time.monotonic() < deadline, "slurmctld did not stop"
            time.sleep(0.2)

    def start(self) -> None:
        env = {**os.environ, "SLURM_LOCAL_ACCOUNTING": "1" if self.accounting else "0"}
        subprocess.run([self.script, "start"], capture_output=True, text=True, check=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def slurm():
    script = os.environ.get(SCRIPT_ENV)
    if not script:
        pytest.skip(f"no SLURM test cluster: set {SCRIPT_ENV} to the path of slurm-local.sh "
                    f"(.ci/run sets it to ../shared/scripts/slurm-local.sh)")
    if not os.path.isfile(script):
        pytest.skip(f"{SCRIPT_ENV}={script}: no such file")
    if os.geteuid() != 0:
        pytest.skip("the SLURM test cluster needs root (slurm-local.sh starts slurmd, which runs jobs as their users)")
    missing = [tool for tool in ("sbatch", "squeue", "scontrol", "slurmctld", "slurmd", "munged")
               if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing): apt-get install -y slurm-wlm munge")
    pytest.importorskip("submitit", reason="submitit is not installed: pip install -e '.[slurm]'")
    up = subprocess.run([script, "status"], capture_output=True, text=True).returncode == 0
    if not up:
        started = subprocess.run([script, "start"], capture_output=True, text=True, timeout=120)
        if started.returncode != 0:
            why = " ".join((started.stdout + started.stderr).split())[-600:]
            pytest.skip(f"no SLURM test cluster: {script} start failed: {why}")
    cluster = Cluster(script)
    yield cluster
    if not up:
        subprocess.run([script, "stop"], capture_output=True, timeout=120)


@pytest.fixture
def store(tmp_path):
    """A store whose SLURM jobs are cancelled at the end of the test, whatever happened."""
    path = tmp_path / "store"
    yield path
    ids = submitted(path)
    if ids:
        subprocess.run(["scancel", *{i.split("_")[0] for i in ids}], capture_output=True)


def submitted(store: Path) -> list[str]:
    """The ids of the jobs submitted into ``store`` (submitit makes a folder per job)."""
    ids = [p.name for p in store.glob("runs/*/submitit/*") if re.fullmatch(r"\d+(_\d+)?", p.name)]
    arrays = {i.split("_")[0] for i in ids if "_" in i}  # an array's own folder holds its submission script
    return sorted(i for i in ids if i not in arrays)


def jobs_json(store: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(store.glob("runs/*/jobs.json"))]


def squeue(job: str) -> tuple[str, str] | None:
    out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", job.split("_")[0], "-o", "%i|%T|%r"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        jid, state, reason = line.split("|")
        if jid == job:
            return state, reason
    return None


def test_cpu_cells_run_as_cpu_jobs_whose_ids_and_states_are_shown_and_recorded(slurm, store, tmp_path, capsys):
    args = ["run", *FAST, "--max-group", "2", *slurm.args(store)]
    assert main(args) == 0  # no --gpus-per-job: CPU cells ask for no GPU (was: sbatch refused gres)
    captured = capsys.readouterr()
    assert "4 done" in captured.out
    (submission,) = jobs_json(store)
    job_ids = sorted(submission["jobs"])
    array = job_ids[0].split("_")[0]
    assert job_ids == [f"{array}_0", f"{array}_1"]
    err = captured.err.splitlines()
    assert any(f"as array job {array} (2 tasks), 0 GPU(s) each (no cell's profile runs on cuda" in line for line in err)
    for job in job_ids:  # one line per state change, naming the job
        assert sum(line == f"slurm job {job}: RUNNING on localhost" for line in err) <= 1
        assert sum(line == f"slurm job {job}: COMPLETED" for line in err) == 1
        assert submission["jobs"][job]["state"]["state"] == "COMPLETED"
    scripts = list(store.glob("runs/*/submitit/**/*submission*.sh"))
    assert scripts and not any("gpu" in s.read_text() for s in scripts)
    records = ResultStore(store).records()
    assert len(records) == 4
    for record in records:  # which executor and job produced each record
        prov = record.provenance
        assert prov["executor"] == "slurm" and prov["slurm_array_job_id"] == array
        assert f"{array}_{prov['slurm_array_task_id']}" in job_ids and prov["slurm_job_id"]
        assert record.cell_id in submission["jobs"][f"{array}_{prov['slurm_array_task_id']}"]["cells"]
    assert main(["report", "--store", str(store), "--reports-dir", str(tmp_path / "reports"), "--name", "r"]) == 0
    report = (tmp_path / "reports" / "r" / "report.md").read_text()
    assert re.search(r"\| executor +\| slurm +\|", report)
    assert re.search(rf"\| cluster jobs / workers +\| 2: {array}_0, {array}_1 +\|", report)
    capsys.readouterr()
    assert main(args) == 0  # served from the store: nothing submitted again
    assert "4 of these found finished in the store" in capsys.readouterr().out
    assert len(jobs_json(store)) == 1


def error_lines(stderr: str) -> list[str]:
    """The error of a refused run: one line, the last on stderr, and no traceback (the status
    lines before it, "N cells: ... to run" and notes, are the run's plan, not part of the error)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and lines and lines[-1].startswith("bench-suite: error:"), lines
    return [line for line in lines if "error" in line.lower()]


@pytest.mark.parametrize("extra,needles", [
    (["--gpus-per-job", "1"], ["Invalid generic resource (gres) specification", "--gpus-per-job 0"]),
    (["--partition", "no-such-partition"], ["invalid partition", "sinfo -s"]),
])
def test_an_sbatch_refusal_is_one_line_with_a_hint_exit_2_and_no_run_folder(slurm, store, capsys, extra, needles):
    assert main(["run", *FAST, *slurm.args(store), *extra]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1, err
    assert "sbatch refused the jobs" in err[0] and all(n in err[0] for n in needles), err[0]
    assert not (store / "runs").exists() and not list(store.glob("records/*"))


def test_a_controller_that_is_down_is_one_line_exit_2_and_no_run_folder(slurm, store, capsys):
    slurm.stop_controller()
    try:
        start = time.monotonic()
        assert main(["run", *FAST, *slurm.args(store)]) == 2
        assert time.monotonic() - start < 30
    finally:
        slurm.start()
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "the SLURM controller does not answer" in err[0], err
    assert not (store / "runs").exists()


def test_without_sacct_dead_jobs_are_noticed_and_their_cells_recorded_lost_with_job_and_state(slurm, store, tmp_path):
    # no accounting: sacct fails as it does on a cluster without slurmdbd, whatever this one runs
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "sacct").write_text("#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n")
    (shim / "sacct").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
    # two array tasks held back (BeginTime); the first is let go, then killed while it trains (as the
    # OOM killer would), the second is cancelled while it waits
    proc = run_cli([*LONG, "--seeds", "2", *slurm.args(store), "--slurm-arg", "begin=now+600"], env=env)
    jobs = wait_for(lambda: len(submitted(store)) == 2 and submitted(store), 120, "the jobs are submitted", proc)
    subprocess.run(["scontrol", "update", f"jobid={jobs[0]}", "starttime=now"], check=True)
    (start, *_) = wait_for(lambda: events(store, "start"), 120, "the first job starts training", proc)
    subprocess.run(["scancel", jobs[1]], check=True)
    os.kill(start["pid"], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)  # was: waited forever (submitit polls sacct alone)
    assert proc.returncode == 1, err
    records = ResultStore(store).records()
    assert len(records) == 4 and all(r.status == "lost" for r in records)
    states = collections.Counter()
    for record in records:
        prov = record.provenance
        assert prov["slurm_job"] in jobs and prov["slurm_array_job_id"] == jobs[0].split("_")[0]
        assert f"SLURM job {prov['slurm_job']} ended {prov['slurm_state']} (" in record.reason
        states[prov["slurm_job"], prov["slurm_state"]] += 1
    assert states == {(jobs[0], "FAILED"): 2, (jobs[1], "CANCELLED"): 2}
    assert "ended CANCELLED" in err and "ended FAILED" in err and "Traceback" not in err
    assert "0 done" in out and "4 lost" in out
    (submission,) = jobs_json(store)
    assert {j["outcome"] for j in submission["jobs"].values()} == {"lost"}


def test_no_wait_then_the_same_command_collects_and_plan_shows_the_queued_cells(slurm, store, capsys):
    # the job waits (BeginTime) until the test lets it start
    args = ["run", *FAST, *slurm.args(store), "--slurm-arg", "begin=now+600"]
    assert main([*args, "--no-wait"]) == 0
    out = capsys.readouterr().out
    (submission,) = jobs_json(store)
    (job,) = submission["jobs"]
    assert f"SLURM job(s) {job}" in out
    assert len(submission["jobs"][job]["cells"]) == 4  # what was submitted, per cell, in the store
    assert main(["plan", *FAST, *slurm.args(store)]) == 0
    plan = capsys.readouterr().out
    assert plan.count(f"queued: job {job} PENDING") == 4  # (BeginTime) once the scheduler has looked at it
    assert f"4 of them queued or running as SLURM job(s) {job}" in plan
    assert main(["plan", *FAST, "--store", str(store), "--json"]) == 0
    cells = json.loads(capsys.readouterr().out)["cells"]
    assert {c["job"]["id"] for c in cells} == {job} and {c["job"]["state"] for c in cells} == {"PENDING"}
    assert main([*args, "--no-wait"]) == 0  # the same command: nothing submitted a second time
    out = capsys.readouterr().out
    assert "submitted nothing" in out and f"already queued or running: job(s) {job}" in out
    assert len(jobs_json(store)) == 1
    subprocess.run(["scontrol", "update", f"jobid={job}", "starttime=now"], check=True)
    assert main(args) == 0  # waits for the queued job and collects its records
    captured = capsys.readouterr()
    assert "4 done" in captured.out and "not submitted again" in captured.err
    assert len(jobs_json(store)) == 1
    assert {e["job"] for e in events(store, "submit")} == {job}


def test_a_controller_that_stops_while_the_run_waits_ends_it_in_bounded_time_with_exit_69(slurm, store):
    proc = run_cli([*FAST, *slurm.args(store), "--slurm-arg", "begin=now+600", "--cluster-timeout", "5"])
    (job,) = wait_for(lambda: submitted(store), 120, "the job is submitted", proc)
    time.sleep(2)  # the run is waiting for the pending job
    slurm.stop_controller()
    try:
        stopped = time.monotonic()
        out, err = proc.communicate(timeout=150)  # was: waited forever, without a word
        elapsed = time.monotonic() - stopped
    finally:
        slurm.start()
    assert proc.returncode == 69, err
    assert elapsed < 90, f"{elapsed:.0f} s"
    lines = [line for line in err.splitlines() if line.strip()]
    assert any("slurm: the controller does not answer" in line and "waiting up to 5 s" in line for line in lines)
    assert "has not answered for" in lines[-1] and job in lines[-1] and "exit code 69" in lines[-1]
    assert "Traceback" not in err
    assert squeue(job) == ("PENDING", "BeginTime")  # the job is still there, for a later run to collect


def _signal_time_limit(store: Path, proc: subprocess.Popen) -> str:
    """Send the job the signal SLURM sends before its time limit, once it is training."""
    wait_for(lambda: events(store, "start"), 120, "the job starts training", proc)
    (job,) = submitted(store)
    time.sleep(1)
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    return job


def test_a_time_limit_requeues_the_job_and_its_cells_finish_in_the_requeued_job(slurm, store):
    proc = run_cli([*LONG, *slurm.args(store), "--requeues", "1"])
    job = _signal_time_limit(store, proc)
    # SLURM holds a requeued job back for a while (BeginTime); let it start now
    wait_for(lambda: (squeue(job) or ("", ""))[0] == "PENDING" and any(
        e["event"] == "finish" and e["status"] == "interrupted" for e in events(store)), 120,
        "the job is requeued", proc)
    # slurmd refuses a launch credential made in the same second as the requeue revoked the job's
    # ("Job credential revoked"); SLURM's own BeginTime hold avoids that, this shortcut must wait
    time.sleep(2)
    subprocess.run(["scontrol", "update", f"jobid={job}", "starttime=now"], check=True)
    out, err = proc.communicate(timeout=200)
    assert proc.returncode == 0, err
    records = ResultStore(store).records()
    assert len(records) == 2 and all(r.status == "done" for r in records)
    finishes = [e for e in events(store, "finish")]
    assert sorted(e["status"] for e in finishes) == ["done", "done", "interrupted", "interrupted"]
    starts = collections.Counter(e["cell_id"] for e in events(store, "start"))
    assert set(starts.values()) == {2}  # the fused group started twice: once per run of the job, never cell by cell
    # the signal checkpointed the group (Runner.request_stop) and the requeued job resumed it from
    # there, not from epoch 0
    assert events(store, "checkpoint")
    assert all(r.timing["resumed_at_epochs"] for r in records)
    assert "PENDING" in err and err.count(f"slurm job {job}: RUNNING") == 2


def test_a_cell_that_cannot_finish_within_the_time_limit_is_recorded_with_the_limit_named(slurm, store):
    proc = run_cli([*LONG, *slurm.args(store), "--requeues", "0"])
    job = _signal_time_limit(store, proc)
    out, err = proc.communicate(timeout=200)
    assert proc.returncode == 1, err
    records = ResultStore(store).records()
    assert len(records) == 2 and all(r.status == "error" for r in records)
    for record in records:
        assert record.reason.startswith(f"time limit: SLURM job {job} reached its time limit (--time-limit 5 min)")
        assert "--requeues 0" in record.reason and record.provenance["time_limit_min"] == 5
    # the fused group was stopped, not thrown away and retrained cell by cell
    starts = collections.Counter(e["cell_id"] for e in events(store, "start"))
    assert set(starts.values()) == {1}
    assert "ERROR: 2 cells" in err and "time limit" in err
