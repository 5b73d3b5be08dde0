"""Scale-out: cells shipped as plain data, several local devices, Dask, SLURM via submitit.
Whatever the executor, the store ends with the same records."""

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from bench_suite.cli import main
from bench_suite.executors import (
    Backend,
    CellsJob,
    ClusterLost,
    CodeMismatch,
    LocalDevices,
    SlurmBackend,
    SlurmParams,
    TrackedJob,
    WorkerOptions,
    WorkerRunner,
    default_gpus,
    drive,
    explain_sbatch_error,
    in_flight,
    parse_devices,
    pin_device,
    rebuild_cells,
    run_cells,
    suggest_max_group,
    worker_launch,
)
from bench_suite.grid import Cell, expand
from bench_suite.runner.runner import Runner
from bench_suite.store.result_store import ResultStore

FAST = ["--task", "synthetic_ablation", "--option", "n=40", "--option", "d=8", "--width", "4", "--epochs", "20",
        "--eval-every", "5", "--lr", "0.3", "--quiet", "--threads", "1"]
TINY = dict(options={"n": 40, "d": 8}, widths=[4], train={"epochs": 20, "eval_every": 5, "lr_w": 0.3, "lr_v": 0.3})


def tiny_cells(**kw):
    return expand("synthetic_ablation", **{**TINY, **kw})


def assert_same_results(store_a, store_b, *, executor=None):
    """Same cells, statuses, final metrics, curves (but wall-clock times) and digests."""
    a = {r.cell_id: r for r in ResultStore(store_a).records(with_curves=True)}
    b = {r.cell_id: r for r in ResultStore(store_b).records(with_curves=True)}
    assert a and set(a) == set(b)
    for cell_id, ra in a.items():
        rb = b[cell_id]
        assert (ra.status, ra.name, ra.config, ra.seeds) == (rb.status, rb.name, rb.config,
                                                                          rb.seeds)
        assert ra.final == rb.final
        curves_a = {k: v for k, v in ra.curves.items() if k != "wall_time"}
        assert curves_a == {k: v for k, v in rb.curves.items() if k != "wall_time"}
        assert (ra.label_digest, ra.w0_digest, ra.shape) == (rb.label_digest, rb.w0_digest, rb.shape)
        if executor is not None:
            assert rb.provenance["executor"] == executor


def test_cells_travel_as_plain_data_and_rebuild_to_the_same_id():
    for cell in tiny_cells(repetitions=[0, 3]) + expand("cifar10_random", profile="ci"):
        data = json.loads(json.dumps(cell.to_dict()))  # JSON-safe: no tensors, no objects
        rebuilt = Cell.from_dict(data)
        assert rebuilt.cell_id == cell.cell_id == data["cell_id"]
        assert rebuilt.name == cell.name and rebuilt.profile == cell.profile and rebuilt.options == cell.options
    assert rebuild_cells([cell.to_dict()])[0].cell_id == cell.cell_id


def test_a_worker_with_other_code_refuses_to_run():
    (cell,) = tiny_cells(methods=["sgd"])
    with pytest.raises(CodeMismatch, match="other bench_suite code"):
        rebuild_cells([{**cell.to_dict(), "cell_id": "0" * 16}])


def test_run_cells_is_the_worker_entry_point(store_dir, capsys):
    cells = tiny_cells()
    options = WorkerOptions(store=str(store_dir), run_id="run-1", devices=["cpu"], threads=1, label="w1")
    out = run_cells([c.to_dict() for c in cells], options.to_dict())
    assert sorted(out, key=lambda r: r["cell_id"]) == sorted(
        [{"cell_id": c.cell_id, "status": "done"} for c in cells], key=lambda r: r["cell_id"])
    assert capsys.readouterr().err.count("[w1] [done]") == 4
    assert {r.run_id for r in ResultStore(store_dir).records()} == {"run-1"}


def test_a_max_group_is_suggested_when_workers_would_idle():
    cells = tiny_cells()  # one fused group of 4
    assert suggest_max_group(cells, 1, fuse=True, max_group=None) is None
    assert suggest_max_group(cells, 2, fuse=True, max_group=None) == 2
    assert suggest_max_group(cells, 8, fuse=True, max_group=None) == 1
    assert suggest_max_group(cells, 2, fuse=True, max_group=3) is None  # the user chose
    assert suggest_max_group(tiny_cells(repetitions=[0, 1]), 2, fuse=True, max_group=None) is None


def test_several_local_devices_share_the_grid_through_the_store(tmp_path):
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    cmd = [sys.executable, "-m", "bench_suite", "run", *FAST, "--seeds", "3"]
    proc = subprocess.run([*cmd, "--devices", "cpu,cpu", "--store", str(shared)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "12 done" in proc.stdout and proc.stderr.count("] [done]") == 12
    store = ResultStore(shared)
    finishes = collections.Counter(e["cell_id"] for e in store.events() if e["event"] == "finish")
    assert len(finishes) == 12 and set(finishes.values()) == {1}  # each cell exactly once
    workers = {e["pid"] for e in store.events() if e["event"] == "start"}
    assert 1 <= len(workers) <= 2
    (run_dir,) = store.runs_dir.iterdir()
    logs = sorted(run_dir.glob("worker-*.log"))
    assert len(logs) == 2
    for log in logs:  # the environment each worker got: a CPU worker sees no GPU
        assert "on cpu (CUDA_VISIBLE_DEVICES='')" in log.read_text().splitlines()[0]
    # the workers wrote their cells' curves loose; the submitting run packed them once they were done
    assert [p.name[:5] for p in (shared / "curves").iterdir()] == ["pack-"]
    assert main(["run", *FAST, "--seeds", "3", "--store", str(alone)]) == 0
    assert_same_results(alone, shared, executor="devices")


def test_dask_local_cluster_gives_the_same_records_as_a_local_run(tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    local, remote = tmp_path / "local", tmp_path / "dask"
    assert main(["run", *FAST, "--seeds", "2", "--store", str(local)]) == 0
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        args = ["run", *FAST, "--seeds", "2", "--store", str(remote), "--executor", "dask",
                "--scheduler", cluster.scheduler_address]
        assert main(args) == 0
        assert "8 done" in capsys.readouterr().out
        assert main(args) == 0  # nothing left: everything is found in the store
        assert "8 of these found finished in the store" in capsys.readouterr().out
    assert_same_results(local, remote, executor="dask")
    assert all(r.provenance["dask_worker"] for r in ResultStore(remote).records())
    assert [p.name[:5] for p in (remote / "curves").iterdir()] == ["pack-"]


def test_submitit_local_executor_runs_the_slurm_path(tmp_path, capsys):
    pytest.importorskip("submitit")
    local, jobs = tmp_path / "local", tmp_path / "slurm"
    assert main(["run", *FAST, "--seeds", "2", "--store", str(local)]) == 0
    slurm = ["--executor", "slurm", "--submitit-cluster", "local", "--gpus-per-job", "0", "--time-limit", "5",
             "--partition", "ignored-locally", "--max-jobs", "2", "--store", str(jobs)]
    assert main(["run", *FAST, "--seed", "0", *slurm]) == 0
    captured = capsys.readouterr()
    assert "4 done" in captured.out
    assert "--max-group 2" in captured.err  # one fused group for up to two jobs: a hint, not applied
    (run_dir,) = ResultStore(jobs).runs_dir.iterdir()
    assert list(run_dir.glob("submitit/*/*_log.err"))  # submitit's own job folder and logs
    # --no-wait submits and returns; the records land in the store when the job ends
    assert main(["run", *FAST, "--seed", "1", "--no-wait", *slurm]) == 0
    assert "submitted" in capsys.readouterr().out
    store = ResultStore(jobs)
    deadline = time.monotonic() + 180
    while sum(r.status == "done" for r in store.records()) < 8:
        assert time.monotonic() < deadline, "the --no-wait job did not finish"
        time.sleep(0.5)
    assert main(["run", *FAST, "--seeds", "2", *slurm]) == 0  # collects: all 8 found finished
    assert "8 of these found finished in the store" in capsys.readouterr().out
    assert_same_results(local, jobs, executor="slurm")


class _DeadWorkers(Backend):
    """Workers that die before recording anything."""

    name = "fake"

    def start(self, batches, options):
        self.batches = batches

    def done(self):
        return True

    def failures(self):
        return ["worker 0 exited with code -9"]


def test_cells_of_dead_workers_are_recorded_lost_and_rerun_later(store_dir):
    cells = tiny_cells()
    store = ResultStore(store_dir)
    Runner(store, device="cpu").run(cells[:1])  # one finished before: not shipped, reported as cached
    options = WorkerOptions(store=str(store_dir), run_id="r-dead", executor="fake")
    with store.claim([cells[3].cell_id]):  # another runner holds this one: not ours to declare lost
        summary = drive(cells, options, _DeadWorkers())
    assert summary.cached == 1 and summary.claimed_elsewhere == 1 and summary.exit_code == 1
    lost = [r for r in summary.records if r.status == "lost"]
    assert len(lost) == 2 and all("lost: worker 0 exited with code -9" in r.reason for r in lost)
    assert all(store.get(r.cell_id).status == "lost" for r in lost)
    assert summary.failures == ["worker 0 exited with code -9"]
    assert store.get(cells[3].cell_id) is None
    again = Runner(store, device="cpu").run(cells)  # lost is not finished: re-run resumes
    assert again.cached == 1 and again.count("done") == 4


@pytest.mark.parametrize("args,needle", [
    (["--executor", "dask"], "needs --scheduler"),
    (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler is for --executor dask"),
    (["--partition", "gpu"], "only with --executor slurm"),
    (["--no-wait"], "only with --executor slurm"),
    (["--device", "cpu", "--devices", "cpu,cpu"], "not both"),
    (["--executor", "dask", "--scheduler", "tcp://x:1", "--devices", "cpu"], "local executor"),
    (["--devices", ","], "at least one device"),
])
def test_bad_scale_out_flags_are_one_line_and_exit_2(args, needle, store_dir, capsys):
    assert main(["run", *FAST, *args, "--store", str(store_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_devices_need_the_hardware(store_dir, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["run", *FAST, "--devices", "0,1", "--store", str(store_dir)]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert parse_devices("cpu, cpu") == ["cpu", "cpu"]


@pytest.mark.parametrize("module,executor,extra", [
    ("distributed", ["--executor", "dask", "--scheduler", "tcp://127.0.0.1:1"], "dask"),
    ("submitit", ["--executor", "slurm"], "slurm"),
])
def test_a_missing_extra_says_what_to_install(module, executor, extra, store_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    assert main(["run", *FAST, *executor, "--store", str(store_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f'pip install -e ".[{extra}]"' in err[0]


def test_slurm_without_slurm_says_so(store_dir, capsys):
    submitit = pytest.importorskip("submitit")
    if submitit.AutoExecutor.which() == "slurm":
        pytest.skip("SLURM is available here")
    assert main(["run", *FAST, "--executor", "slurm", "--store", str(store_dir)]) == 2
    assert "--submitit-cluster local" in capsys.readouterr().err


# --- pinning local workers to their device (issue 13, 2.2) ----------------------------------------


def test_each_local_gpu_worker_sees_its_gpu_alone_and_runs_on_cuda_0():
    assert worker_launch("cuda:1", {"PATH": "/bin"}) == ("cuda:0", {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "1"})
    # inside a SLURM job (or a taskset of GPUs) cuda:N is the N-th GPU this process was given
    assert worker_launch("cuda:1", {"CUDA_VISIBLE_DEVICES": "2,3"})[1]["CUDA_VISIBLE_DEVICES"] == "3"
    assert worker_launch("cuda:0", {"CUDA_VISIBLE_DEVICES": "GPU-aa, GPU-bb"})[1]["CUDA_VISIBLE_DEVICES"] == "GPU-aa"
    with pytest.raises(ValueError, match="sees 1 GPU"):
        worker_launch("cuda:1", {"CUDA_VISIBLE_DEVICES": "5"})
    assert worker_launch("cpu", {"CUDA_VISIBLE_DEVICES": "0"}) == ("cpu", {"CUDA_VISIBLE_DEVICES": ""})
    assert worker_launch("cuda", {}) == ("cuda", {})  # one unnamed GPU: whatever is visible


def test_local_devices_start_each_worker_with_its_own_device_and_environment(tmp_path):
    backend = LocalDevices(["cuda:0", "cuda:1", "cpu"])  # built, not started: no GPU needed
    launches = backend.launches(tmp_path / "job.json", {"CUDA_VISIBLE_DEVICES": "4,6", "HOME": "/h"})
    assert [argv[argv.index("--device") + 1] for argv, _, _ in launches] == ["cuda:0", "cuda:0", "cpu"]
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env, _ in launches] == ["4", "6", ""]
    assert [label for _, _, label in launches] == ["cuda:0#0", "cuda:1#1", "cpu#2"]
    assert all(env["HOME"] == "/h" for _, env, _ in launches)


def test_a_worker_makes_its_cuda_device_current(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda dev: calls.append(str(dev)))
    for device in ("cpu", "auto", "cuda", "cuda:0", "cuda:3"):
        pin_device(device)
    assert calls == ["cuda:0", "cuda:3"]


# --- SLURM pieces that need no cluster ------------------------------------------------------------


def test_the_default_gpus_per_job_follow_the_cells_device():
    assert default_gpus(tiny_cells()) == 0  # no profile
    assert default_gpus(expand("synthetic_ablation", profile="smoke")) == 0  # device cpu
    assert default_gpus(expand("synthetic_ablation", profile="paper")) == 0  # device any
    assert default_gpus(expand("cifar10_random", profile="paper")[:1]) == 1  # device cuda


@pytest.mark.parametrize("message,needle", [
    ("Invalid generic resource (gres) specification", "--gpus-per-job 0"),
    ("invalid partition specified: gpu", "sinfo -s"),
    ("Batch job submission failed: Unable to contact slurm controller (connect failure)", "scontrol ping"),
    ("Batch job submission failed: Invalid account or account/partition combination specified", "account=NAME"),
    ("Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)", "--time-limit"),
    ("something new", "against `sinfo`"),
])
def test_an_sbatch_refusal_gets_its_reason_and_a_hint_in_one_line(message, needle):
    text = explain_sbatch_error(message, SlurmParams(partition="gpu", gpus_per_job=1))
    assert "\n" not in text and message in text and needle in text and text.endswith("nothing was submitted")


def _fake_slurm(tmp_path, monkeypatch, *, squeue: str = "", squeue_rc: int = 0, sacct: str | None = None):
    """squeue / sacct / scontrol stand-ins on PATH (the real cluster tests are test_cluster_slurm.py)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    scripts = {
        "squeue": f"cat <<'EOF'\n{squeue}\nEOF\nexit {squeue_rc}" if squeue_rc == 0
        else f"echo '{squeue}' >&2\nexit {squeue_rc}",
        "sacct": "echo 'Slurm accounting storage is disabled' >&2\nexit 1" if sacct is None
        else f"cat <<'EOF'\n{sacct}\nEOF",
        "scontrol": "echo 'Slurmctld(primary) at fake is UP'",
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


class _FakeSubmitted(SlurmBackend):
    """A SLURM backend whose jobs are "submitted" without sbatch: job 51_<i> per batch."""

    def start(self, batches, options):
        self.run_id, self.store = options.run_id, options.store
        folder = str(Path(options.store) / "runs" / options.run_id / "submitit" / "%j")
        for i, batch in enumerate(batches):
            job = TrackedJob(f"51_{i}", [c.cell_id for c in batch], folder, options.run_id)
            self.jobs[job.job_id], _ = job, self.own.append(job.job_id)
        self._save()


@pytest.mark.parametrize("squeue,sacct,state,hint", [
    ("51_0|52|TIMEOUT|TimeLimit|localhost", None, "TIMEOUT", "raise --time-limit"),
    ("51_0|52|OUT_OF_MEMORY|OutOfMemory|localhost", None, "OUT_OF_MEMORY", "raise --mem-gb"),
    ("51_0|52|NODE_FAIL|NodeDown|localhost", None, "NODE_FAIL", "its node failed"),
    ("51_0|52|CANCELLED|None|localhost", None, "CANCELLED", "scancel"),
    ("", None, "GONE", "sacct does not answer"),  # forgotten by the controller, no accounting
    ("", "51_0|NODE_FAIL", "NODE_FAIL", "its node failed"),  # forgotten by the controller, sacct knows
])
def test_a_job_that_died_has_its_state_named_in_its_cells_lost_records(store_dir, tmp_path, monkeypatch, squeue,
                                                                       sacct, state, hint):
    pytest.importorskip("submitit")
    _fake_slurm(tmp_path, monkeypatch, squeue=squeue, sacct=sacct)
    messages = []
    backend = _FakeSubmitted(SlurmParams(cluster="slurm", poll_s=0, grace_s=0), on_message=messages.append)
    options = WorkerOptions(store=str(store_dir), run_id="r-died", executor="slurm", poll_s=0.05)
    summary = drive(tiny_cells(), options, backend)
    assert summary.exit_code == 1 and summary.count("lost") == 4
    for record in summary.records:
        assert record.reason.startswith(f"lost: SLURM job 51_0 ended {state} (") and hint in record.reason
        assert record.provenance["slurm_job"] == "51_0" and record.provenance["slurm_state"] == state
        assert record.provenance["slurm_array_job_id"] == "51"
    assert f"slurm job 51_0: {state}" in messages
    assert summary.failures == [next(f for f in summary.failures if f.startswith(f"slurm job 51_0 ended {state}"))]
    (jobs,) = [json.loads(p.read_text()) for p in store_dir.glob("runs/*/jobs.json")]
    assert jobs["jobs"]["51_0"]["state"]["state"] == state and jobs["jobs"]["51_0"]["outcome"] == "lost"


def test_a_controller_that_does_not_answer_ends_the_wait_after_the_timeout(store_dir, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    _fake_slurm(tmp_path, monkeypatch, squeue="slurm_load_jobs error: Unable to contact slurm controller",
                squeue_rc=1)
    messages = []
    backend = _FakeSubmitted(SlurmParams(cluster="slurm", poll_s=0, cluster_timeout_s=0.3), on_message=messages.append)
    options = WorkerOptions(store=str(store_dir), run_id="r-ctl", executor="slurm", poll_s=0.05)
    with pytest.raises(ClusterLost, match="has not answered for .* jobs 51_0 may still run"):
        drive(tiny_cells(), options, backend)
    assert any("the controller does not answer (slurm_load_jobs error" in m for m in messages)
    assert ResultStore(store_dir).records() == []  # nothing recorded for cells whose job may still run


def test_plan_shows_cells_an_earlier_no_wait_run_submitted(store_dir, tmp_path, monkeypatch, capsys):
    pytest.importorskip("submitit")
    cells = tiny_cells()
    _fake_slurm(tmp_path, monkeypatch, squeue="51_0|52|PENDING|Priority|")
    backend = _FakeSubmitted(SlurmParams(cluster="slurm"), on_message=lambda line: None)
    drive(cells, WorkerOptions(store=str(store_dir), run_id="r-nowait", executor="slurm"), backend, wait=False)
    assert set(in_flight(store_dir)) == {c.cell_id for c in cells}
    assert main(["plan", *FAST, "--store", str(store_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("queued: job 51_0 PENDING (Priority)") == 4 and "4 of them queued or running" in out
    _fake_slurm(tmp_path, monkeypatch, squeue="51_0|52|RUNNING|None|node7")
    assert {j.state.describe() for j in in_flight(store_dir).values()} == {"RUNNING on node7"}
    # a job that wrote its result has ended, whatever the last recorded state says
    result = next(iter(in_flight(store_dir).values())).paths().result_pickle
    result.parent.mkdir(parents=True)
    result.write_bytes(b"")
    assert in_flight(store_dir) == {}


def test_a_worker_that_does_not_see_the_submitters_data_root_records_an_error_naming_it(store_dir, tmp_path,
                                                                                         monkeypatch):
    for var in ("BENCH_SUITE_CIFAR10", "BENCH_SUITE_DATA_ROOT"):  # no fallback location on this "worker"
        monkeypatch.delenv(var, raising=False)
    (cell,) = expand("cifar10_random", profile="smoke", methods=["sgd"], widths=[64], activations=["relu"])
    missing = str(tmp_path / "only-on-the-submitter" / "cifar10.zip")
    options = WorkerOptions(store=str(store_dir), run_id="r-data", devices=["cpu"], data_root=missing,
                            data_root_seen=True, executor="dask")
    assert run_cells([cell.to_dict()], options.to_dict()) == [{"cell_id": cell.cell_id, "status": "error"}]
    reason = ResultStore(store_dir).get(cell.cell_id).reason
    assert reason.startswith(f"DataError: --data-root {missing} exists on the submitting machine but not on worker ")
    # absent everywhere (the submitter did not see it either): skipped, as in a local run
    options = WorkerOptions(store=str(store_dir), run_id="r-data2", devices=["cpu"], data_root=missing)
    assert run_cells([cell.to_dict()], options.to_dict())[0]["status"] == "skipped"


# --- the time limit inside a SLURM job (CellsJob), with submitit's handler stood in for -------------

LONG = dict(options={"n": 40, "d": 8}, widths=[4], methods=["sgd", "mli_paired_pgd"],
            train={"epochs": 400000, "eval_every": 100000, "lr_w": 0.3, "lr_v": 0.3})


def _signal_when_training(store_dir, *, after_s: float = 0.5) -> threading.Thread:
    """Send this process USR2 (SLURM's time-limit warning) once a group has started training."""

    def send():
        store = ResultStore(store_dir)
        deadline = time.monotonic() + 120
        while not any(e["event"] == "start" for e in store.events()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(after_s)
        os.kill(os.getpid(), signal.SIGUSR2)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def submitit_handler():
    """Stands in for submitit's USR2 handler (``SignalHandler.checkpoint_and_try_requeue``):
    calls the job's checkpoint(), then does what the test says (requeue = SystemExit, or refuse)."""
    calls = []

    def install(job, cells, options, outcome):
        def handler(signum, frame):
            calls.append(job.checkpoint(cells, options))
            raise outcome

        return signal.signal(signal.SIGUSR2, handler)

    yield install, calls
    signal.signal(signal.SIGUSR2, signal.SIG_DFL)


def test_a_time_limit_stops_the_fused_group_and_its_cells_get_the_limit_named(store_dir, submitit_handler):
    install, calls = submitit_handler
    cells = [c.to_dict() for c in expand("synthetic_ablation", **LONG)]
    options = WorkerOptions(store=str(store_dir), run_id="r-limit", devices=["cpu"], threads=1,
                            executor="slurm").to_dict()
    job = CellsJob(time_limit_min=7, requeues=2)
    install(job, cells, options, RuntimeError("Job not requeued because: timed-out too many times."))
    _signal_when_training(store_dir)
    out = job(cells, options)  # submitit refused to requeue: the job ends normally, cells recorded
    assert [o["status"] for o in out] == ["error", "error"]
    store = ResultStore(store_dir)
    for cell in cells:
        record = store.get(cell["cell_id"])
        assert record.reason.startswith("time limit: SLURM job pid ") and "(--time-limit 7 min) 1 time(s)" in \
            record.reason
        assert "--requeues 2; submitit: Job not requeued" in record.reason
    starts = collections.Counter(e["cell_id"] for e in store.events() if e["event"] == "start")
    assert set(starts.values()) == {1}  # not retrained cell by cell
    finishes = [e["status"] for e in store.events() if e["event"] == "finish"]
    assert finishes == ["interrupted", "interrupted", "error", "error"]
    (delayed,) = calls  # submitit would pickle this and run it in the requeued job
    assert delayed.function is job and delayed.args == (cells, options) and job.stops == 1


def test_a_requeued_job_leaves_its_group_interrupted_for_the_requeued_run(store_dir, submitit_handler):
    install, calls = submitit_handler
    cells = [c.to_dict() for c in expand("synthetic_ablation", **LONG)]
    options = WorkerOptions(store=str(store_dir), run_id="r-requeue", devices=["cpu"], threads=1,
                            executor="slurm").to_dict()
    job = CellsJob(time_limit_min=7, requeues=2)
    install(job, cells, options, SystemExit(-1))  # submitit: `scontrol requeue`, then sys.exit(-1)
    _signal_when_training(store_dir)
    with pytest.raises(SystemExit):
        job(cells, options)
    for cell in cells:
        record = ResultStore(store_dir).get(cell["cell_id"])
        # the Runner's graceful stop: checkpointed at a segment end, the requeued job resumes from it
        assert record.status == "interrupted" and "time limit is near" in record.reason
        assert "checkpointed, re-run to resume" in record.reason
    assert list((store_dir / "checkpoints").glob("*.pt"))
    assert len(calls) == 1


def test_the_graceful_stop_hook_is_called_instead_of_stopping_training(store_dir, submitit_handler, monkeypatch):
    """Until the Runner has ``request_stop`` (issue 13) the job stops training at once; once
    it has, the handler calls it and lets the Runner return by itself. Here a stand-in hook
    that does not stop: training runs to the end, nothing is raised, nothing requeued."""
    install, calls = submitit_handler
    requested = []
    monkeypatch.setattr(WorkerRunner, "request_stop", lambda self, reason="": requested.append(True), raising=False)
    short = {**LONG, "train": {**LONG["train"], "epochs": 3000, "eval_every": 1000}}
    cells = [c.to_dict() for c in expand("synthetic_ablation", **short)]
    options = WorkerOptions(store=str(store_dir), run_id="r-hook", devices=["cpu"], threads=1,
                            executor="slurm").to_dict()
    job = CellsJob(time_limit_min=7, requeues=2)
    install(job, cells, options, AssertionError("nothing left to requeue: submitit's handler is not called"))
    _signal_when_training(store_dir, after_s=0.0)
    out = job(cells, options)
    assert requested == [True] and calls == []
    assert [o["status"] for o in out] == ["done", "done"]


# --- one run path, the registry, and the paths of issue 19's fault hunt -----------------------------

ROOT = Path(__file__).resolve().parents[1]


def assert_no_attribute_hides_a_method(obj):
    """An instance attribute named like a method of its class hides the method (issue 19: Dask's
    ``self.lost = False`` made ``backend.lost(...)`` a TypeError on the one path no test reached)."""
    methods = {name for klass in type(obj).__mro__ for name, value in vars(klass).items() if callable(value)}
    assert not (set(vars(obj)) & methods), set(vars(obj)) & methods


def test_no_backend_attribute_hides_a_method(tmp_path):
    from bench_suite.executors import InProcess

    backends = [InProcess(), LocalDevices(["cpu", "cpu"])]
    if __import__("importlib").util.find_spec("submitit"):
        backends.append(SlurmBackend(SlurmParams(cluster="local")))
    for backend in backends:
        assert_no_attribute_hides_a_method(backend)
    # and once they have run: attributes set by start() count too
    options = WorkerOptions(store=str(tmp_path), run_id="r-attr", devices=["cpu"], threads=1)
    inprocess = InProcess()
    drive(tiny_cells(methods=["sgd"]), options, inprocess)
    assert_no_attribute_hides_a_method(inprocess)
    for runner in (Runner(ResultStore(tmp_path), device="cpu"), WorkerRunner(ResultStore(tmp_path), device="cpu"),
                   CellsJob(time_limit_min=5, requeues=1)):
        assert_no_attribute_hides_a_method(runner)


def test_workers_checkpoint_as_asked(store_dir):
    # --checkpoint-every reaches the workers of every executor (it used to stop at this process)
    cells = tiny_cells(methods=["sgd"])
    options = WorkerOptions(store=str(store_dir), run_id="r-ckpt", devices=["cpu"], threads=1, checkpoint_every=5)
    run_cells([c.to_dict() for c in cells], options.to_dict())
    epochs = [e["epoch"] for e in ResultStore(store_dir).events() if e["event"] == "checkpoint"]
    assert epochs == [5, 10, 15]  # every 5 epochs of 20, the finished group's last one not needed


def test_the_command_and_the_api_take_the_one_run_path(tmp_path, monkeypatch, capsys):
    import bench_suite as bs
    from bench_suite.executors import session

    seen = []
    real_drive = session.drive

    def spy(cells, options, backend, **kw):
        seen.append(type(backend).__name__)
        return real_drive(cells, options, backend, **kw)

    monkeypatch.setattr(session, "drive", spy)
    assert main(["run", *FAST, "--store", str(tmp_path / "cli")]) == 0
    summary = bs.run("synthetic_ablation", store=tmp_path / "api", options={"n": 40, "d": 8}, widths=[4],
                     train={"epochs": 20, "eval_every": 5, "lr": 0.3}, device="cpu")
    assert summary.exit_code == 0 and summary.count("done") == 4
    assert seen == ["InProcess", "InProcess"]
    assert_same_results(tmp_path / "cli", tmp_path / "api", executor="local")


def test_executors_are_chosen_from_the_registry(store_dir, capsys):
    from bench_suite.cli import build_parser
    from bench_suite.executors import EXECUTORS

    assert {"local", "dask", "slurm"} <= set(EXECUTORS.names())
    run_help = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert all(f"{name}:" in " ".join(run_help.split()) for name in EXECUTORS.names())
    assert main(["run", *FAST, "--executor", "nope", "--store", str(store_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown executor 'nope'" in err[0] and "dask, local, slurm" in err[0]


@pytest.mark.slow
def test_the_example_executor_plugs_in_through_the_registry(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "examples")])}
    env.pop("BENCH_SUITE_PLUGINS", None)
    mine, alone = tmp_path / "mine", tmp_path / "alone"
    proc = subprocess.run([sys.executable, "-m", "bench_suite", "--plugin", "my_executor", "run", *FAST, "--seeds",
                           "2", "--executor", "one_at_a_time", "--store", str(mine)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "8 done" in proc.stdout
    assert len(list((mine / "runs").glob("*/batch-*.log"))) == 2  # one subprocess per fused group
    assert main(["run", *FAST, "--seeds", "2", "--store", str(alone)]) == 0
    assert_same_results(alone, mine, executor="one_at_a_time")


def test_a_local_worker_that_fails_before_recording_gets_its_cells_recorded_lost(store_dir):
    cells = tiny_cells()
    # the worker process cannot import a plug-in the run asks for: it exits before recording anything
    options = WorkerOptions(store=str(store_dir), run_id="r-fail", threads=1, plugins=["bench_suite_absent_plugin"],
                            executor="devices")
    summary = drive(cells, options, LocalDevices(["cpu"]))
    assert summary.exit_code == 1 and summary.count("lost") == 4
    (failure,) = summary.failures
    assert failure.startswith("worker cpu#0 exited with code 1 (") and "bench_suite_absent_plugin" in failure
    for record in summary.records:
        assert record.reason.startswith("lost: worker cpu#0 exited with code 1") and record.reason.endswith(
            "re-run to resume")
        assert ResultStore(store_dir).get(record.cell_id).status == "lost"


def test_a_job_with_several_devices_runs_a_worker_per_device(store_dir):
    cells = tiny_cells(repetitions=[0, 1])
    options = WorkerOptions(store=str(store_dir), run_id="r-multi", devices=["cpu", "cpu"], threads=1,
                            executor="slurm")
    out = run_cells([c.to_dict() for c in cells], options.to_dict())  # as inside a SLURM job with 2 GPUs
    assert sorted(o["status"] for o in out) == ["done"] * 8
    logs = list((store_dir / "runs" / "r-multi").glob("worker-*.log"))
    assert len(logs) == 2
    assert {r.provenance["executor"] for r in ResultStore(store_dir).records()} == {"slurm"}


class _InterruptedOnceTraining(LocalDevices):
    """Ctrl-C in the submitting process once a worker has started training."""

    def poll(self):
        if any(e["event"] == "start" for e in ResultStore(self.store).events()):
            raise KeyboardInterrupt

    def start(self, batches, options):
        self.store = options.store
        super().start(batches, options)


def test_ctrl_c_stops_the_local_workers_and_their_cells_are_recorded_interrupted(store_dir):
    cells = expand("synthetic_ablation", **LONG)
    options = WorkerOptions(store=str(store_dir), run_id="r-int", threads=1, executor="devices")
    backend = _InterruptedOnceTraining(["cpu"])
    with pytest.raises(KeyboardInterrupt):
        drive(cells, options, backend)
    assert all(proc.poll() is not None for proc, _, _ in backend.procs)  # stopped, not orphaned
    records = ResultStore(store_dir).records()
    assert len(records) == 2 and {r.status.value for r in records} == {"interrupted"}
    assert all("re-run to resume" in r.reason for r in records)
