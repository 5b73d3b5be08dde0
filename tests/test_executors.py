"""Scale-out: cells shipped as plain data, several local devices, Dask, SLURM via submitit.
Whatever the executor, the store ends with the same records."""

import collections
import json
import subprocess
import sys
import time

import pytest
import torch

from bench_suite.cli import main
from bench_suite.executors import (
    Backend,
    CodeMismatch,
    WorkerOptions,
    drive,
    parse_devices,
    rebuild_cells,
    run_cells,
    suggest_max_group,
)
from bench_suite.grid import Cell, expand
from bench_suite.runner import Runner
from bench_suite.store import ResultStore

FAST = ["--task", "synthetic_ablation", "--option", "n=40", "--option", "d=8", "--width", "4", "--epochs", "20",
        "--eval-every", "5", "--lr", "0.3", "--quiet", "--threads", "1"]
TINY = dict(options={"n": 40, "d": 8}, widths=[4], train={"epochs": 20, "eval_every": 5, "lr_w": 0.3, "lr_v": 0.3})


def tiny_cells(**kw):
    return expand("synthetic_ablation", **{**TINY, **kw})


def assert_same_results(store_a, store_b, *, executor=None):
    """Same cells, statuses, final metrics, curves (but wall-clock times) and digests."""
    a = {r.cell_id: r for r in ResultStore(store_a).records()}
    b = {r.cell_id: r for r in ResultStore(store_b).records()}
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
    assert len(list(run_dir.glob("worker-*.log"))) == 2
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

    def start(self, batches, cells, options):
        self.batches = batches

    def done(self):
        return True

    def failures(self):
        return ["worker 0 exited with code -9"]


def test_cells_of_dead_workers_are_recorded_as_lost_errors_and_rerun_later(store_dir):
    cells = tiny_cells()
    store = ResultStore(store_dir)
    Runner(store, device="cpu").run(cells[:1])  # one finished before: not shipped, reported as cached
    options = WorkerOptions(store=str(store_dir), run_id="r-dead", executor="fake")
    with store.claim([cells[3].cell_id]):  # another runner holds this one: not ours to declare lost
        summary = drive(cells, options, _DeadWorkers())
    assert summary.cached == 1 and summary.claimed_elsewhere == 1 and summary.exit_code == 1
    lost = [r for r in summary.records if r.status == "error"]
    assert len(lost) == 2 and all("lost: worker 0 exited with code -9" in r.reason for r in lost)
    assert summary.failures == ["worker 0 exited with code -9"]
    assert store.get(cells[3].cell_id) is None
    again = Runner(store, device="cpu").run(cells)  # an error is not finished: re-run resumes
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
