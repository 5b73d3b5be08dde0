"""The Dask executor against real processes: a `dask scheduler` and `dask worker`s on
localhost, started here, and the faults a cluster user meets (issue 14): a worker killed in
the middle of the grid, the scheduler killed in the middle of the run, a worker that does not
see the data."""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cluster_helpers import events, no_run_outlives_its_test, run_cli, wait_for  # noqa: F401 - the fixture is autouse

from bench_suite.store.result_store import ResultStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
distributed = pytest.importorskip("distributed", reason="Dask is not installed: pip install -e '.[dask]'")

# cells of a few seconds each on one CPU thread: long enough to kill something in the middle
CELLS = ["--task", "synthetic_ablation", "--option", "n=40", "--option", "d=8", "--width", "4", "--epochs", "8000",
         "--eval-every", "2000", "--lr", "0.3", "--quiet", "--max-group", "1"]


class DaskProcesses:
    """A scheduler and workers as real OS processes (no nanny: killing a worker kills it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.file = folder / "scheduler.json"
        # workers find data only where the run says (a CIFAR-10 location in the environment
        # would be the task's fallback when --data-root is missing)
        self.env = {k: v for k, v in os.environ.items() if k not in ("BENCH_SUITE_CIFAR10", "BENCH_SUITE_DATA_ROOT")}
        self.env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.scheduler = self._spawn("scheduler", [sys.executable, "-m", "distributed.cli.dask_scheduler",
                                                   "--scheduler-file", str(self.file), "--host", "127.0.0.1",
                                                   "--port", "0", "--no-dashboard"])
        deadline = time.monotonic() + 60
        while not self.file.exists():
            assert time.monotonic() < deadline, f"dask scheduler did not start: {self.log('scheduler')}"
            assert self.scheduler.poll() is None, f"dask scheduler died: {self.log('scheduler')}"
            time.sleep(0.2)
        time.sleep(0.3)  # the file is written before it is complete on some versions
        self.address = json.loads(self.file.read_text())["address"]
        self.workers: list[subprocess.Popen] = []

    def _spawn(self, name: str, argv: list[str], prefix: list[str] | None = None) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "w")
        return subprocess.Popen([*(prefix or []), *argv], stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                start_new_session=True)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-2000:]

    def add_worker(self, prefix: list[str] | None = None) -> subprocess.Popen:
        name = f"worker{len(self.workers)}"
        proc = self._spawn(name, [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                  str(self.file), "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", name],
                           prefix)
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, n: int) -> None:
        with distributed.Client(self.address, timeout="30s") as client:
            client.wait_for_workers(n, timeout=120)

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


@pytest.fixture
def dask_processes(tmp_path):
    cluster = DaskProcesses(tmp_path / "dask")
    yield cluster
    cluster.close()


def test_a_worker_killed_mid_grid_loses_no_cell_and_trains_none_twice(dask_processes, tmp_path):
    for _ in range(2):
        dask_processes.add_worker()
    dask_processes.wait_for_workers(2)
    store = tmp_path / "store"
    proc = run_cli([*CELLS, "--executor", "dask", "--scheduler", dask_processes.address, "--store", str(store)])
    pids = {p.pid: p for p in dask_processes.workers}
    # kill -9 the first worker seen training a cell (its claim goes with it)
    started = wait_for(lambda: [e for e in events(store, "start") if e["pid"] in pids], 120, "a worker starts a cell",
                       proc)
    victim = started[0]
    os.kill(victim["pid"], signal.SIGKILL)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert "4 done" in out
    finishes = collections.Counter(e["cell_id"] for e in events(store, "finish"))
    assert len(finishes) == 4 and set(finishes.values()) == {1}, finishes  # each cell finished exactly once
    records = {r.cell_id: r for r in ResultStore(store).records()}
    assert all(r.status == "done" and r.provenance["executor"] == "dask" for r in records.values())
    # the killed worker's cell was taken over by the surviving worker and finished there
    survivor = next(p for p in pids if p != victim["pid"])
    assert records[victim["cell_id"]].provenance["pid"] == survivor
    assert [e["pid"] for e in events(store, "start") if e["cell_id"] == victim["cell_id"]][-1] == survivor


def test_the_scheduler_killed_mid_run_ends_it_in_one_line_with_exit_69(dask_processes, tmp_path):
    for _ in range(2):
        dask_processes.add_worker()
    dask_processes.wait_for_workers(2)
    store = tmp_path / "store"
    proc = run_cli([*CELLS, "--seeds", "2", "--executor", "dask", "--scheduler", dask_processes.address,
                    "--store", str(store)])
    wait_for(lambda: events(store, "finish"), 180, "a first cell finishes", proc)
    dask_processes.scheduler.kill()
    killed = time.monotonic()
    out, err = proc.communicate(timeout=120)
    elapsed = time.monotonic() - killed
    assert proc.returncode == 69, err
    assert elapsed < 60, f"the run took {elapsed:.0f} s to notice the scheduler was gone"
    problems = [line for line in err.splitlines() if line.strip() and not line.startswith(("[", "note:", "8 cells"))]
    assert len(problems) == 1, err  # one line, no traceback, no logging noise
    assert "lost the Dask scheduler" in problems[0] and "exit code 69" in problems[0]
    assert "Traceback" not in err
    # what finished before is kept; nothing was recorded for the cells still out
    records = ResultStore(store).records()
    assert records and all(r.status in ("done", "interrupted") for r in records)
    assert sum(r.status == "done" for r in records) >= 1


def _can_hide_paths() -> str | None:
    """Why a worker cannot be given its own view of the filesystem here (None: it can)."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "needs unshare and mount (util-linux)"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -m is not permitted here ({probe.stderr.strip() or probe.returncode}; it needs root)"
    return None


def test_a_worker_without_the_data_records_an_error_naming_the_path(dask_processes, tmp_path):
    why = _can_hide_paths()
    if why:
        pytest.skip(f"a worker without the data is simulated with a private mount namespace: {why}")
    hidden = tmp_path / "data-only-here"
    hidden.mkdir()
    data = hidden / "cifar10-jpeg.zip"
    data.write_bytes(b"the submitting machine sees this file; the worker does not")
    # the worker's filesystem has an empty folder where the data is, as on a node without the mount
    dask_processes.add_worker(prefix=["unshare", "-m", "--propagation", "private", "sh", "-c",
                                      f"mount -t tmpfs tmpfs {hidden} && exec \"$0\" \"$@\""])
    dask_processes.wait_for_workers(1)
    store = tmp_path / "store"
    proc = run_cli(["--task", "cifar10_random", "--profile", "smoke", "--method", "sgd", "--quiet",
                    "--data-root", str(data), "--executor", "dask", "--scheduler", dask_processes.address,
                    "--store", str(store)])
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err  # an error, not the "skipped" (exit 3) of data absent everywhere
    records = ResultStore(store).records()
    assert records and all(r.status == "error" for r in records)
    for record in records:
        assert str(data) in record.reason and "not on worker" in record.reason
        assert "dask worker tcp://" in record.reason
    assert "ERROR: " in err and str(data) in err


def test_a_task_that_fails_without_recording_its_cells_gives_lost_records_and_a_summary(dask_processes, tmp_path):
    """Issue 19: the path no test reached. A Dask task that ends in error before recording its
    cells (here: a plug-in the submitting machine has and the worker does not; a code mismatch
    or a KilledWorker end the same way) makes the driver ask the backend why each cell is lost,
    which raised ``TypeError: 'bool' object is not callable`` while an attribute hid the method."""
    dask_processes.add_worker()
    dask_processes.wait_for_workers(1)
    plugin_dir = tmp_path / "only-on-the-submitter"
    plugin_dir.mkdir()
    (plugin_dir / "submitter_only_plugin.py").write_text("# registers nothing; the workers cannot import it\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")])}
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "bench_suite", "--plugin", "submitter_only_plugin", "run", *CELLS,
                             "--epochs", "20", "--eval-every", "10", "--executor", "dask", "--scheduler",
                             dask_processes.address, "--store", str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err  # a cell lost: exit 1, not a crash (2) or success
    assert "Traceback" not in err and "TypeError" not in err
    assert "4 lost" in out  # the summary line
    assert err.count("WORKER FAILED: dask task bench_suite-") == 4  # one per task (--max-group 1)
    assert "submitter_only_plugin" in err and "cannot be found" in err
    records = ResultStore(store).records()
    assert len(records) == 4 and all(r.status == "lost" for r in records)
    for record in records:
        assert record.reason.startswith(f"lost: dask task {record.provenance['dask_task']} failed: PluginError: ")
        assert record.provenance["executor"] == "dask"


def test_the_dask_backend_keeps_its_methods(dask_processes):
    from bench_suite.executors import DaskBackend

    dask_processes.add_worker()
    backend = DaskBackend(dask_processes.address)
    try:
        methods = {name for klass in type(backend).__mro__ for name, value in vars(klass).items() if callable(value)}
        assert not (set(vars(backend)) & methods)
        assert callable(backend.lost)
    finally:
        backend.close()
