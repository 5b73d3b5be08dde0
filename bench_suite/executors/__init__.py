"""Scale-out: one grid on several local devices, on a Dask cluster, or as SLURM jobs.

Cells are independent and the result store (on a filesystem every worker sees) is the only
coordination: each worker runs an ordinary :class:`~bench_suite.runner.runner.Runner` on its device
against the same store path, and the store's per-cell claims make workers share the work
(no cell is trained twice) and pick up the cells of a worker that died (none is lost).

What travels to a worker is plain data: the cells as ``Cell.to_dict()`` (task, options,
method, width, activation, repetition, train settings, profile, and the submitter's cell id)
and :class:`WorkerOptions` as a dict. The worker rebuilds the cells and refuses to run them
if its code computes other cell ids (another bench_suite version). Tensors and records never
travel: a worker writes its records to the store; the submitting process reads them there.

- ``--devices cpu,cpu`` / ``--devices 0,1``: one subprocess per device, each given every
  cell (``python -m bench_suite.executors JOBFILE``) and pinned to its GPU
  (``CUDA_VISIBLE_DEVICES``, then ``torch.cuda.set_device``); claims split the work.
- ``--executor dask --scheduler ADDRESS``: one Dask task per (chunk of a) fused group.
- ``--executor slurm``: one SLURM array task per (chunk of a) fused group, via submitit.
  The submitting process follows the jobs with ``squeue`` (``sacct`` only as a fallback:
  accounting is often disabled), prints one line per state change, records the cells of a
  job that died ``lost`` with the job's id and state, and writes what it submitted to
  ``runs/<run_id>/jobs.json`` so that the same command run again collects instead of
  submitting a second time.

Every wait is bounded: a Dask scheduler that goes away, or a SLURM controller that does not
answer for ``cluster_timeout_s``, ends the run with :data:`EXIT_CLUSTER_LOST` (records already
written are kept; the same command later collects what the jobs wrote meanwhile).

Why not plain ``concurrent.futures`` executors (``Client.get_executor()``, submitit's
executor, as benchopt's parallel backends do)? They would replace about twenty lines of the
Dask backend and none of the rest: waiting on a submitit future polls ``sacct`` (it never
returns without accounting), and a future has no job state, no queue to re-attach to and no
bound on an unreachable scheduler, which is most of what this module does. Local workers
need their own environment per device, which a process pool cannot give.

Dask and submitit are optional extras, imported only here and only when asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core import exit_codes
from ..core.errors import exception_line
from ..core.files import atomic_write
from ..core.records import FINISHED, Record
from ..grid import Cell
from ..runner.runner import Runner, RunSummary, describe, group_cells, is_settled, make_record, resolve_device, unique
from ..store.result_store import ResultStore
from ..tasks import DataError, DataUnavailable

# exit code of `run` when the cluster stops answering (sysexits' EX_UNAVAILABLE: a service is down);
# finished records are kept, the jobs may still run, the same command later collects them
EXIT_CLUSTER_LOST = exit_codes.CLUSTER_LOST


class MissingExtra(ModuleNotFoundError):
    """An optional dependency of an executor is not installed (one line: what to install)."""


def require(module: str, extra: str) -> Any:
    """Import ``module`` for ``--executor extra`` or say, in one line, how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"--executor {extra} needs the optional dependency {module!r}: pip install -e \".[{extra}]\""
        ) from None


class CodeMismatch(RuntimeError):
    """A worker's bench_suite computes other cell ids than the submitter's."""


class SubmitError(ValueError):
    """The cluster refused the jobs (sbatch's reason and a hint, one line); nothing was submitted.
    A ValueError, so the command line reports it as a usage error (exit code 2)."""


class ClusterLost(RuntimeError):
    """The scheduler / controller stopped answering while the run waited (exit code 69)."""


class TimeLimitReached(BaseException):
    """Raised in a SLURM job by the time-limit (or preemption) signal.

    A BaseException, like KeyboardInterrupt: the Runner's per-group ``except Exception`` must
    not record it as the group's error and retrain a fused group cell by cell."""


@dataclass
class WorkerOptions:
    """How a worker runs its cells; JSON-safe, shipped as a dict."""

    store: str  # absolute path of the store, the same on every worker
    run_id: str  # the submitting run's id: shared by all its workers (``--force`` semantics)
    devices: list[str] = field(default_factory=lambda: ["auto"])  # more than one: a subprocess each
    data_root: str | None = None  # None: the worker's $BENCH_SUITE_DATA_ROOT
    data_root_seen: bool = False  # the submitting machine sees data_root: a worker that does not is at fault
    cache_dir: str | None = None
    force: bool = False
    fuse: bool = True
    max_group: int | None = None
    threads: int | None = None  # torch intra-op threads per worker (None: the CPUs this process may use)
    plugins: list[str] = field(default_factory=list)  # modules registering tasks/methods
    executor: str = "local"  # recorded in each record's provenance
    poll_s: float = 1.0  # how often a worker re-checks cells another worker holds
    label: str = "worker"  # prefix of the worker's log lines

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the worker side ---------------------------------------------------------------------------


class WorkerRunner(Runner):
    """A Runner on a cluster worker: a ``--data-root`` that the submitting machine sees but
    this worker does not is this worker's fault, an ``error`` naming the path and the worker,
    not the ``skipped`` ("no data anywhere") a local run records. (A task's own fallback
    location, e.g. ``$BENCH_SUITE_CIFAR10`` on the worker, is still looked at first, as in a
    local run; the record's data checksum says what was read.)"""

    def __init__(self, store: ResultStore, *, data_root_seen: bool = False, **kwargs: Any) -> None:
        super().__init__(store, **kwargs)
        self.data_root_seen = data_root_seen

    def _load(self, cell: Cell):
        try:
            return super()._load(cell)
        except DataUnavailable as exc:
            root = self.data_root
            if self.data_root_seen and root is not None and not os.path.exists(root):
                raise DataError(
                    f"--data-root {root} exists on the submitting machine but not on worker {_worker_name()}: "
                    f"put the data on a filesystem every worker mounts at that path ({exc})"
                ) from None
            raise


def _worker_name() -> str:
    where = socket.gethostname()
    if os.environ.get("SLURM_JOB_ID"):
        where += f", SLURM job {_slurm_job_here()}"
    if "distributed" in sys.modules:
        with contextlib.suppress(ValueError, AttributeError):
            where += f", dask worker {sys.modules['distributed'].get_worker().address}"
    return where


def _slurm_job_here() -> str | None:
    """This process's SLURM job as squeue shows it: ``51_0`` for an array task, else ``51``."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def pin_device(device: str) -> None:
    """Make ``device`` this process's current CUDA device.

    CUDA events, a graph's capture stream and the "is capturing" check use the *current*
    device, not the tensors' (issue 13, 2.2: a worker on ``cuda:1`` with current device 0
    captured nothing); local workers are also started with ``CUDA_VISIBLE_DEVICES`` set to
    their GPU alone (:func:`worker_launch`), so they never open a context on another GPU."""
    if device in ("auto", "cpu", "cuda"):
        return
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is not None:
        torch.cuda.set_device(dev)


def default_threads() -> int | None:
    """The CPUs this process may run on (a SLURM job's allocation, a taskset), when fewer than
    torch would use: torch counts the machine's cores, not the process's affinity."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    import torch

    allowed = len(os.sched_getaffinity(0))
    return allowed if 0 < allowed < torch.get_num_threads() else None


def run_cells(cell_dicts: list[dict[str, Any]], options: dict[str, Any], *,
              watch: "_JobWatch | None" = None) -> list[dict[str, Any]]:
    """Run cells (plain dicts) into the store; the function Dask and SLURM workers call.

    Returns one small ``{"cell_id", "status"}`` per cell (the records stay in the store)."""
    opts = WorkerOptions(**options)
    from ..core.registry import load_plugins

    load_plugins(opts.plugins)
    cells = rebuild_cells(cell_dicts)
    if len(opts.devices) > 1:  # e.g. a SLURM job with several GPUs: one subprocess per device
        backend = LocalDevices(opts.devices)
        summary = drive(cells, opts, backend)
        return [{"cell_id": r.cell_id, "status": r.status.value} for r in summary.records]
    pin_device(opts.devices[0])
    threads = opts.threads or default_threads()
    if threads:
        import torch

        torch.set_num_threads(threads)
    store = ResultStore(opts.store)

    def log(record: Record) -> None:
        print(f"[{opts.label}] {describe(record)}", file=sys.stderr, flush=True)

    runner = WorkerRunner(
        store, device=opts.devices[0], data_root=opts.data_root, data_root_seen=opts.data_root_seen,
        cache_dir=opts.cache_dir, force=opts.force, fuse=opts.fuse, max_group=opts.max_group, run_id=opts.run_id,
        executor=opts.executor, poll_s=opts.poll_s, on_record=log,
        on_group_start=watch.group_start if watch is not None else None,
    )
    if watch is not None:
        watch.runner = runner
    summary = runner.run(cells)
    return [{"cell_id": r.cell_id, "status": r.status.value} for r in summary.records]


def _status_of(store: ResultStore, cell: Cell) -> str | None:
    record = store.get(cell.cell_id)
    return None if record is None else record.status.value


def rebuild_cells(cell_dicts: list[dict[str, Any]]) -> list[Cell]:
    cells = []
    for data in cell_dicts:
        cell = Cell.from_dict(data)
        expected = data.get("cell_id")
        if expected and cell.cell_id != expected:
            raise CodeMismatch(
                f"cell {cell.name}: this worker computes id {cell.cell_id}, the submitter {expected}: "
                f"the worker runs other bench_suite code; install the same version on every worker"
            )
        cells.append(cell)
    return cells


def worker_main(argv: list[str] | None = None) -> int:
    """``python -m bench_suite.executors JOBFILE [--device D] [--label L]``: a local worker.

    Exit 0 when every cell has a record (whatever its status: the records say it); anything
    else means the worker itself failed (the submitting process reports it)."""
    parser = argparse.ArgumentParser(prog="python -m bench_suite.executors", description=worker_main.__doc__)
    parser.add_argument("jobfile")
    parser.add_argument("--device", default=None)
    parser.add_argument("--label", default=None)
    args = parser.parse_args(argv)
    job = json.loads(Path(args.jobfile).read_text())
    options = dict(job["options"])
    if args.device:
        options["devices"] = [args.device]
    if args.label:
        options["label"] = args.label
    # inside a multi-GPU SLURM job the step's signals reach every process: the time-limit
    # signal is the parent's to handle (it stops us with SIGINT, we record "interrupted")
    with contextlib.suppress(AttributeError, ValueError):
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    print(f"[{options.get('label', 'worker')}] pid {os.getpid()} on {options['devices'][0]} "
          f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})", file=sys.stderr, flush=True)
    try:
        run_cells(job["cells"], options)
    except KeyboardInterrupt:
        return 130
    return 0


class _JobWatch:
    """What a SLURM job's time-limit handler needs to know: the Runner and its current group."""

    def __init__(self) -> None:
        self.runner: Runner | None = None
        self.group: list[Cell] = []
        self.signalled = False
        self.graceful = False

    def group_start(self, group: list[Cell]) -> None:
        self.group = list(group)

    def on_time_limit(self, signum: int, frame: Any) -> None:
        if self.signalled:  # a second signal while winding down
            return
        self.signalled = True
        # the graceful stop (issue 13): the Runner writes a checkpoint of the group in training at
        # its next segment end and returns from run(); the job then requeues and the requeued job
        # resumes the group from its checkpoint. (A runner without it: training stops right here.)
        stop = getattr(self.runner, "request_stop", None)
        if callable(stop):
            self.graceful = True
            stop(f"the SLURM job's time limit is near ({signal.Signals(signum).name}); the job is requeued")
            return
        raise TimeLimitReached(f"signal {signal.Signals(signum).name}")


class CellsJob:
    """What a SLURM job runs (submitit pickles it): :func:`run_cells`, plus the time limit.

    It follows submitit's checkpointing protocol (``submitit.helpers.Checkpointable``: a
    callable with a ``checkpoint`` method returning the call to make in the requeued job), by
    duck typing so that this module imports without submitit. SLURM signals USR2
    ``signal_delay_s`` (90 s) before the time limit, or on a preemption. submitit's own
    handler would act right there, in the middle of training: for a callable it cannot
    requeue it raises (the Runner then records an ordinary error and retrains a fused group
    cell by cell), else it requeues and exits at once, leaving nothing recorded. So the job
    installs its own handler, which stops the Runner (:class:`_JobWatch`), records the cells
    of the group in training ``interrupted`` with the limit named, then hands over to
    submitit's handler, which calls :meth:`checkpoint`, requeues the job and exits. After
    ``requeues`` time limits submitit refuses to requeue; the unfinished cells are then
    recorded ``error`` with the limit named ("cannot finish within --time-limit").
    """

    def __init__(self, time_limit_min: int, requeues: int) -> None:
        self.time_limit_min = time_limit_min
        self.requeues = requeues
        self.stops = 0  # time-limit / preemption signals so far (kept across requeues: pickled)

    def __call__(self, cell_dicts: list[dict[str, Any]], options: dict[str, Any]) -> list[dict[str, Any]]:
        watch = _JobWatch()
        previous: Any = None
        try:
            previous = signal.getsignal(signal.SIGUSR2)
            signal.signal(signal.SIGUSR2, watch.on_time_limit)
        except (AttributeError, ValueError):  # no USR2 here, or not the main thread (debug executor)
            previous = None
        try:
            out = run_cells(cell_dicts, options, watch=watch)
            if not watch.signalled:
                return out
        except TimeLimitReached:
            pass
        return self._after_signal(watch, previous, cell_dicts, options)

    def checkpoint(self, cell_dicts: list[dict[str, Any]], options: dict[str, Any]) -> Any:
        """The call the requeued job makes: the same cells (finished ones are found in the store;
        with the checkpoints of issue 13 the interrupted group resumes from its checkpoint)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, cell_dicts, options)

    def _after_signal(self, watch: _JobWatch, previous: Any, cell_dicts: list[dict[str, Any]],
                      options: dict[str, Any]) -> list[dict[str, Any]]:
        self.stops += 1  # before checkpoint() pickles us: the requeued job knows how often it was stopped
        opts = WorkerOptions(**options)
        store = ResultStore(opts.store)
        cells = rebuild_cells(cell_dicts)
        job = _slurm_job_here() or f"pid {os.getpid()}"
        limit = f"--time-limit {self.time_limit_min} min"

        def unfinished(candidates: list[Cell]) -> list[Cell]:
            out = []
            for cell in candidates:
                record = store.get(cell.cell_id)
                if record is None or record.status not in FINISHED:
                    out.append(cell)
            return out

        def record_all(candidates: list[Cell], status: str, reason: str, *, skip_ours: bool) -> None:
            with store.claim([c.cell_id for c in candidates]) as claimed:
                for cell in candidates:
                    old = store.get(cell.cell_id)
                    if cell.cell_id not in claimed or (skip_ours and old is not None
                                                       and old.run_id == opts.run_id):
                        continue  # another job holds it, or our Runner recorded it (graceful stop)
                    record = make_record(cell, status, reason=reason, run_id=opts.run_id, executor=opts.executor)
                    record.provenance["time_limit_min"] = self.time_limit_min
                    if store.write(record):
                        store.log_event("finish", cell.cell_id, status=status, run_id=opts.run_id, job=job)

        left = unfinished(cells)
        if not left:  # the signal came after the last cell: nothing to requeue
            return [{"cell_id": c.cell_id, "status": _status_of(store, c)} for c in cells]
        in_training = unfinished(watch.group)
        record_all(in_training, "interrupted",
                   f"time limit: SLURM job {job} was signalled before its time limit ({limit}) while training this "
                   f"cell; the job is requeued and the cell resumes", skip_ours=watch.graceful)
        why = "no submitit job environment here to requeue it"
        if callable(previous):
            try:
                previous(signal.SIGUSR2, None)  # submitit: checkpoint(), `scontrol requeue`, sys.exit
            except Exception as exc:  # noqa: BLE001 - submitit refuses to requeue (timed out too many times)
                why = f"not requeued again, --requeues {self.requeues}; submitit: {_first_line(str(exc))}"
        record_all(unfinished(cells), "error",
                   f"time limit: SLURM job {job} reached its time limit ({limit}) {self.stops} time(s) without "
                   f"finishing this cell ({why}): raise --time-limit, or split fused groups with --max-group",
                   skip_ours=False)
        return [{"cell_id": c.cell_id, "status": _status_of(store, c)} for c in cells]


# --- the submitting side -----------------------------------------------------------------------


def parse_devices(text: str) -> list[str]:
    """``0,1`` -> cuda:0, cuda:1; ``cpu,cpu`` -> two CPU workers; ``cuda:2`` as is."""
    devices = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        devices.append(f"cuda:{part}" if part.isdigit() else part)
    if not devices:
        raise ValueError("--devices needs at least one device, e.g. 0,1 or cpu,cpu")
    for device in devices:
        resolve_device(device)  # one-line error for an unknown or absent device
    return devices


def suggest_max_group(cells: list[Cell], workers: int, *, fuse: bool, max_group: int | None) -> int | None:
    """A ``--max-group`` that would give each of ``workers`` workers a group, when there are
    fewer fused groups than workers (None when there is nothing to suggest). Not applied by
    itself: how cells are fused changes their numbers at float rounding level, and a grid
    should give the same records whatever the executor; cutting groups is the user's call."""
    if max_group is not None or not fuse or workers <= 1:
        return None
    if len(group_cells(cells, fuse=True)) >= workers:
        return None
    return max(1, math.ceil(len(cells) / workers))


def say(line: str) -> None:
    """A status line on stderr that leaves progress bars intact."""
    try:
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        print(line, file=sys.stderr, flush=True)


class Backend:
    """Where the workers run. ``adopt`` takes over cells already in flight, ``start`` launches
    workers for the rest; the driver calls ``poll`` (which may raise :class:`ClusterLost`)
    until ``done``."""

    name = "local"

    def adopt(self, cells: list[Cell], options: WorkerOptions) -> set[str]:
        """Ids of ``cells`` that earlier invocations already submitted and that are still queued
        or running: not submitted again, waited for like this run's own."""
        return set()

    def run_ids(self) -> set[str]:
        """The runs whose records this run collects: its own and those of adopted jobs."""
        return set()

    def start(self, batches: list[list[dict[str, Any]]], cells: list[dict[str, Any]], options: WorkerOptions) -> None:
        raise NotImplementedError

    def poll(self) -> None:
        """Look at the workers / jobs (cheap; called about once a second)."""

    def done(self) -> bool:
        raise NotImplementedError

    def failures(self) -> list[str]:
        """One line per worker / job that failed (not per failed cell: cells have records)."""
        return []

    def lost(self, cell_id: str, failures: list[str]) -> tuple[str, dict[str, Any]]:
        """Why ``cell_id`` has no record once every worker stopped, and what to add to its
        ``lost`` record's provenance (which job it was in)."""
        return ("; ".join(failures) if failures else "no worker recorded it"), {}

    def stop(self) -> None:
        """Ctrl-C: stop the workers (they record their current cells as interrupted)."""

    def close(self) -> None:
        pass

    def workers(self) -> int:
        return 1


def worker_launch(device: str, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The ``--device`` argument and the environment of the local worker for ``device``.

    A ``cuda:N`` worker sees its GPU alone (``CUDA_VISIBLE_DEVICES`` = the N-th GPU this process
    sees: the parent's own list when it has one, e.g. the GPUs SLURM gave a job) and runs on
    ``cuda:0``; a CPU worker sees no GPU. Source: CUDA's device enumeration; our choice."""
    env = dict(env)
    if device.startswith("cuda:"):
        index = int(device.split(":", 1)[1])
        visible = env.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            ids = [v.strip() for v in visible.split(",") if v.strip()]
            if index >= len(ids):
                raise ValueError(f"--devices {device}: this process sees {len(ids)} GPU(s) "
                                 f"(CUDA_VISIBLE_DEVICES={visible!r})")
            env["CUDA_VISIBLE_DEVICES"] = ids[index]
        else:
            env["CUDA_VISIBLE_DEVICES"] = str(index)
        return "cuda:0", env
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return device, env


class LocalDevices(Backend):
    """One subprocess per device, each given every cell; their logs go to ``runs/<run_id>/``."""

    name = "devices"

    def __init__(self, devices: list[str]) -> None:
        self.devices = devices
        self.procs: list[tuple[subprocess.Popen, Path, str]] = []

    def workers(self) -> int:
        return len(self.devices)

    def launches(self, jobfile: Path, env: dict[str, str]) -> list[tuple[list[str], dict[str, str], str]]:
        """(argv, environment, label) of each worker."""
        out = []
        for i, device in enumerate(self.devices):
            arg, worker_env = worker_launch(device, env)
            label = f"{device}#{i}"
            out.append(([sys.executable, "-m", "bench_suite.executors", str(jobfile), "--device", arg,
                         "--label", label], worker_env, label))
        return out

    def start(self, batches, cells, options) -> None:
        run_dir = Path(options.store) / "runs" / options.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        jobfile = run_dir / f"job-{os.getpid()}.json"
        jobfile.write_text(json.dumps({"cells": cells, "options": options.to_dict()}))
        for i, (argv, env, label) in enumerate(self.launches(jobfile, dict(os.environ))):
            log_path = run_dir / f"worker-{os.getpid()}-{i}.log"
            with open(log_path, "w") as log:
                proc = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                    # its own process group: a terminal's Ctrl-C reaches only us, and we forward
                    # one SIGINT (a second one could cut the worker's "interrupted" records short)
                    start_new_session=True,
                )
            self.procs.append((proc, log_path, label))

    def done(self) -> bool:
        return all(proc.poll() is not None for proc, _, _ in self.procs)

    def failures(self) -> list[str]:
        out = []
        for proc, log_path, label in self.procs:
            if proc.returncode not in (0, None):
                out.append(f"worker {label} exited with code {proc.returncode} "
                           f"({_last_line(log_path)}; log: {log_path})")
        return out

    def stop(self) -> None:
        for proc, _, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        for proc, _, _ in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


class DaskBackend(Backend):
    """One Dask task per batch on the cluster at ``scheduler`` (workers: one GPU each).

    A worker that dies is the scheduler's business (it reruns the worker's tasks elsewhere; the
    store's claims make the rerun skip finished cells). A scheduler that goes away takes every
    task with it (the client's futures are cancelled at once): the run ends there,
    :class:`ClusterLost`."""

    name = "dask"

    def __init__(self, scheduler: str, *, close_timeout_s: float = 10.0) -> None:
        distributed = require("distributed", "dask")
        self.address = scheduler
        self.close_timeout_s = close_timeout_s
        try:
            self.client = distributed.Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {exception_line(exc)}") from None
        self.futures: list[Any] = []
        self.cells_of: dict[str, list[str]] = {}  # future key -> its cells
        self.stopped = False
        self.lost = False
        self.run_id = ""

    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def run_ids(self) -> set[str]:
        return {self.run_id}

    def start(self, batches, cells, options) -> None:
        self.run_id = options.run_id
        opts = options.to_dict()
        self.futures = [
            self.client.submit(run_cells, batch, opts, pure=False, key=f"bench_suite-{options.run_id}-{i}")
            for i, batch in enumerate(batches)
        ]
        self.cells_of = {f.key: [c["cell_id"] for c in batch] for f, batch in zip(self.futures, batches)}

    def poll(self) -> None:
        # futures are cancelled by our stop() or by the connection to the scheduler breaking
        cancelled = not self.stopped and any(f.status == "cancelled" for f in self.futures)
        if cancelled or self.client.status not in ("running", "newly-created"):
            self.lost = True
            raise ClusterLost(
                f"lost the Dask scheduler at {self.address} (client {self.client.status}): its tasks are gone; "
                f"finished records are kept: start the scheduler and workers again and re-run the same command"
            )

    def done(self) -> bool:
        self.poll()  # a lost scheduler cancels every future: that is not "done"
        return all(f.done() for f in self.futures)

    def failures(self) -> list[str]:
        out = []
        for future in self.futures:
            if future.status == "error":
                out.append(f"dask task {future.key} failed: {exception_line(future.exception())}")
            elif future.status == "cancelled":
                out.append(f"dask task {future.key} was cancelled")
        return out

    def lost(self, cell_id: str, failures: list[str]) -> tuple[str, dict[str, Any]]:
        key = next((k for k, ids in self.cells_of.items() if cell_id in ids), None)
        mine = [f for f in failures if key is not None and f"dask task {key} " in f]
        return ("; ".join(mine) if mine else f"dask task {key} ended without recording it"), {"dask_task": key}

    def stop(self) -> None:
        self.stopped = True
        with contextlib.suppress(Exception):
            self.client.cancel(self.futures)

    def close(self) -> None:
        if self.lost:
            # the run has said the scheduler is gone, in one line: the client's reconnection
            # attempts, cut short by close(), would log pages of tracebacks from its own thread
            _silence_loggers("distributed")
        with contextlib.suppress(Exception):
            self.client.close(timeout=self.close_timeout_s)


def _silence_loggers(prefix: str) -> None:
    import logging

    for name in [prefix, *logging.root.manager.loggerDict]:
        if name == prefix or name.startswith(prefix + "."):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)


# --- SLURM -------------------------------------------------------------------------------------

# states a job leaves only by ending (squeue / sacct spelling); anything else is still alive
# (PENDING, RUNNING, CONFIGURING, COMPLETING, REQUEUED, SUSPENDED, ...)
SLURM_ENDED = ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
               "BOOT_FAIL", "DEADLINE", "REVOKED", "GONE")
# what an ending state means for the cells the job did not record, and what to do about it
SLURM_STATE_HINTS = {
    "CANCELLED": "by scancel, or an administrator",
    "TIMEOUT": "killed at its time limit: raise --time-limit, or split fused groups with --max-group",
    "OUT_OF_MEMORY": "killed for using more memory than it asked for: raise --mem-gb",
    "NODE_FAIL": "its node failed",
    "FAILED": "its process failed: see the job's log",
    "PREEMPTED": "preempted and not requeued",
    "BOOT_FAIL": "its node did not boot",
    "DEADLINE": "not started before its deadline",
    "COMPLETED": "ended without writing a result: see the job's log",
    "GONE": "left the queue without a result; its final state is unknown (sacct does not answer: accounting "
            "is disabled)",
}


@dataclass
class SlurmParams:
    partition: str | None = None
    gpus_per_job: int | None = None  # None: 1 when a cell's profile asks for a GPU (device "cuda"), else 0
    cpus_per_job: int | None = None
    mem_gb: float | None = None
    time_limit_min: int = 240
    max_jobs: int = 16  # slurm_array_parallelism: array tasks running at once
    requeues: int = 3  # submitit's max_num_timeout: requeues after a time limit (preemptions: unlimited)
    extra: dict[str, Any] = field(default_factory=dict)  # slurm_additional_parameters (account, qos, ...)
    cluster: str | None = None  # submitit cluster: None (detect: slurm), "slurm", "local" or "debug"
    poll_s: float = 10.0  # how often to ask squeue for the jobs' states
    cluster_timeout_s: float = 300.0  # how long an unanswering controller is waited for
    grace_s: float = 15.0  # a job that ended without a result file: how long to wait for the file (or a requeue)


@dataclass
class JobState:
    state: str  # squeue's %T (PENDING, RUNNING, COMPLETED, ...), sacct's first word, or GONE
    reason: str | None = None  # squeue's %r (Priority, Resources, BeginTime, ...)
    node: str | None = None
    raw_id: str | None = None  # squeue's %A: the job's own id (an array task has one too)

    @property
    def ended(self) -> bool:
        return self.state in SLURM_ENDED

    def describe(self) -> str:
        text = self.state
        if self.state == "PENDING" and self.reason and self.reason != "None":
            text += f" ({self.reason})"
        elif self.state == "RUNNING" and self.node:
            text += f" on {self.node}"
        return text


class ControllerError(RuntimeError):
    """squeue / sbatch could not reach the SLURM controller."""


def default_gpus(cells: list[Cell]) -> int:
    """GPUs per job when ``--gpus-per-job`` is not given: 1 when a cell's profile declares
    ``device: cuda``, else 0 (a CPU cell never asks for a GPU; our choice)."""
    for cell in cells:
        profile = cell.task_cls.profiles.get(cell.profile or "", {})
        if profile.get("device") == "cuda":
            return 1
    return 0


def squeue_states(job_ids: list[str], *, timeout_s: float = 60.0) -> dict[str, JobState]:
    """The states of ``job_ids`` (``51`` or ``51_3``) that the controller still knows (ended
    jobs stay listed for its MinJobAge, 300 s by default), one per array task. Raises
    :class:`ControllerError` when the controller does not answer."""
    if not job_ids:
        return {}
    arrays = sorted({j.split("_", 1)[0] for j in job_ids})
    try:
        proc = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(arrays), "-o", "%i|%A|%T|%r|%N"],
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ControllerError(f"squeue did not answer within {timeout_s:.0f} s") from None
    except OSError as exc:
        raise ControllerError(f"squeue: {exc}") from None
    if proc.returncode != 0:
        message = _first_line(proc.stderr) or f"squeue exited with code {proc.returncode}"
        if "invalid job id" in message.lower():  # a single id the controller has forgotten
            return {}
        raise ControllerError(message)
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3:
            continue
        job, raw, state = parts[0], parts[1], parts[2]
        out[job] = JobState(state, parts[3] if len(parts) > 3 else None, (parts[4] or None) if len(parts) > 4 else None,
                            raw)
    return out


def sacct_states(job_ids: list[str], *, timeout_s: float = 60.0) -> dict[str, JobState] | None:
    """Final states from the accounting database, or None when sacct does not answer
    (accounting disabled: "Slurm accounting storage is disabled")."""
    if not job_ids or shutil.which("sacct") is None:
        return None
    try:
        proc = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(job_ids)],
                              capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            out[parts[0]] = JobState(parts[1].split()[0] if parts[1] else "UNKNOWN")
    return out


def controller_answers() -> tuple[bool, str]:
    """``scontrol ping``: whether a SLURM controller answers (instant; sbatch retries ~10 s)."""
    try:
        proc = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, exception_line(exc)
    text = (proc.stdout + proc.stderr).strip()
    return (" is UP" in text), _first_line(text) or f"scontrol ping exited with code {proc.returncode}"


def explain_sbatch_error(message: str, params: SlurmParams, gpus: int | None = None) -> str:
    """sbatch's refusal in one line, with what to change (our wording)."""
    text = message.lower()
    if "generic resource" in text or "gres" in text:
        hint = (f"the partition has no GPUs of that kind: --gpus-per-job 0 for CPU jobs, or a GPU partition with "
                f"--partition (asked: {params.gpus_per_job if gpus is None else gpus} GPU(s) per job)")
    elif "account" in text or "association" in text:
        hint = "pass an account you may use: --slurm-arg account=NAME (`sacctmgr show assoc user=$USER`)"
    elif "partition" in text:
        hint = f"`sinfo -s` lists the partitions; pass one with --partition (asked: {params.partition!r})"
    elif "contact slurm controller" in text or "connection refused" in text or "connect failure" in text:
        hint = "the SLURM controller does not answer: check `scontrol ping` / `sinfo`, or ask the administrators"
    elif "time limit" in text:
        hint = f"--time-limit {params.time_limit_min} exceeds the partition's limit (`sinfo -o '%P %l'`)"
    elif "memory" in text:
        hint = "--mem-gb exceeds what the partition's nodes have (`sinfo -o '%P %m'`)"
    elif "array" in text:
        hint = "too many jobs for one array (MaxArraySize): fuse more cells per job (drop --max-group)"
    else:
        hint = ("check --partition, --gpus-per-job, --cpus-per-job, --mem-gb, --time-limit and --slurm-arg "
                "against `sinfo`")
    return f"sbatch refused the jobs: {message}; {hint}; nothing was submitted"


@dataclass
class TrackedJob:
    job_id: str  # as squeue shows it: 51 or 51_3
    cells: list[str]
    folder: str  # submitit's folder pattern (with %j)
    run_id: str
    state: JobState = field(default_factory=lambda: JobState("SUBMITTED"))
    ended_at: float | None = None  # monotonic time it was first seen ended without a result
    final: bool = False
    outcome: str | None = None  # "result", "error: ..." or "lost"

    def paths(self):
        from submitit.core.utils import JobPaths

        return JobPaths(self.folder, job_id=self.job_id, task_id=0)


def _log_of(job: TrackedJob) -> str:
    path = job.paths().stderr
    return str(path) if path.exists() else "none (the job never started)"


def _jobs_file(store_root: str | os.PathLike, run_id: str) -> Path:
    return Path(store_root) / "runs" / run_id / "jobs.json"


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True), sync=False)


def submitted_jobs(store_root: str | os.PathLike) -> list[TrackedJob]:
    """Every SLURM job this store's runs submitted (``runs/*/jobs.json``), with its last
    recorded state."""
    out = []
    runs = Path(store_root) / "runs"
    for path in sorted(runs.glob("*/jobs.json")) if runs.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            for job_id, job in data["jobs"].items():
                st = job.get("state") or {}
                out.append(TrackedJob(job_id, list(job["cells"]), data["folder"], data["run_id"],
                                      JobState(st.get("state", "SUBMITTED"), st.get("reason"), st.get("node"),
                                               st.get("raw_id"))))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours, or torn by a crash: it only informs
    return out


def in_flight(store_root: str | os.PathLike, cell_ids: list[str] | None = None, *,
              live: bool = True) -> dict[str, TrackedJob]:
    """cell id -> the SLURM job that holds it and is still queued or running (the newest, when
    several do). States come from squeue when ``live`` (else, or when the controller does not
    answer, the last recorded ones); a job with a result file has ended."""
    wanted = None if cell_ids is None else set(cell_ids)
    jobs = [j for j in submitted_jobs(store_root)
            if not j.state.ended and (wanted is None or wanted.intersection(j.cells))]
    try:
        jobs = [j for j in jobs if not j.paths().result_pickle.exists()]
    except ImportError:  # a store copied to a machine without submitit: its jobs are not ours to follow
        return {}
    if live and jobs and shutil.which("squeue"):
        try:
            states = squeue_states([j.job_id for j in jobs])
        except ControllerError:
            states = None
        if states is not None:
            for job in jobs:
                job.state = states.get(job.job_id, JobState("GONE"))
    out: dict[str, TrackedJob] = {}
    for job in jobs:  # oldest run first: a newer submission of the same cell wins
        if job.state.ended:
            continue
        for cell_id in job.cells:
            if wanted is None or cell_id in wanted:
                out[cell_id] = job
    return out


class SlurmBackend(Backend):
    """One SLURM array task per batch, submitted through submitit (jobs write the store).

    submitit submits; the jobs are followed here: result files (cheap, every second), squeue
    every ``poll_s`` (sacct only for a job squeue has forgotten), one line per state change.
    A job that ended without a result is final after ``grace_s`` (a shared filesystem may show
    the file late, and a job being requeued shows an ending state for a moment); its unrecorded
    cells become ``lost`` records naming the job and its state.
    On submitit's ``local``/``debug`` clusters (no SLURM) submitit's own job objects are used."""

    name = "slurm"

    def __init__(self, params: SlurmParams, *, on_message: Callable[[str], None] = say) -> None:
        self.submitit = require("submitit", "slurm")
        if params.cluster is None and self.submitit.AutoExecutor.which() != "slurm":
            # submitit would fall back to running the jobs here; say so instead of surprising
            raise ValueError("--executor slurm: no SLURM found here (no sbatch/srun); submit from a SLURM login "
                             "node, or add --submitit-cluster local to run the jobs on this machine")
        self.params = params
        self.real = params.cluster in (None, "slurm")
        self.say = on_message
        self.jobs: dict[str, TrackedJob] = {}
        self.own: list[str] = []  # job ids this run submitted
        self.adopted: list[str] = []  # job ids of earlier runs this run waits for
        self.handles: dict[str, Any] = {}  # job id -> submitit Job (this run's submissions)
        self.run_id = ""
        self.store = ""
        self._last_query = -math.inf
        self._unreachable_since: float | None = None
        self._sacct_works: bool | None = None

    def workers(self) -> int:
        return self.params.max_jobs

    def run_ids(self) -> set[str]:
        return {self.run_id} | {self.jobs[j].run_id for j in self.adopted}

    def job_ids(self) -> list[str]:
        return list(self.own)

    def adopted_ids(self) -> list[str]:
        return list(self.adopted)

    # -- submitting --------------------------------------------------------------------------

    def _preflight(self) -> None:
        if not self.real or shutil.which("scontrol") is None:  # no scontrol: sbatch will say it
            return
        ok, text = controller_answers()
        if not ok:
            raise SubmitError(f"the SLURM controller does not answer ({text}): check `scontrol ping` / `sinfo`, or "
                              f"ask the administrators; nothing was submitted")

    def adopt(self, cells: list[Cell], options: WorkerOptions) -> set[str]:
        self.run_id, self.store = options.run_id, options.store
        self._preflight()
        if not self.real or options.force:  # --force re-runs: earlier jobs would only skip finished cells
            return set()
        taken = in_flight(options.store, [c.cell_id for c in cells])
        for job in {j.job_id: j for j in taken.values()}.values():
            self.jobs[job.job_id] = job
            self.adopted.append(job.job_id)
            self.say(f"slurm job {job.job_id} (run {job.run_id}) already holds {len(job.cells)} of these cells, "
                     f"{job.state.describe()}: not submitted again")
        return set(taken)

    def start(self, batches, cells, options) -> None:
        self.run_id, self.store = options.run_id, options.store
        if not batches:
            return
        p = self.params
        gpus = p.gpus_per_job
        why = ""
        if gpus is None:
            gpus = default_gpus([Cell.from_dict(c) for c in cells])
            why = (" (no cell's profile runs on cuda; --gpus-per-job G asks for G)" if gpus == 0
                   else " (a cell's profile runs on cuda; --gpus-per-job G to change)")
        run_dir = Path(options.store) / "runs" / options.run_id
        folder = run_dir / "submitit" / "%j"
        existed = run_dir.exists()
        executor = self.submitit.AutoExecutor(folder=folder, cluster=p.cluster, slurm_max_num_timeout=p.requeues,
                                              local_max_num_timeout=p.requeues)
        params: dict[str, Any] = dict(
            name=f"bench_suite-{options.run_id}", timeout_min=p.time_limit_min, cpus_per_task=p.cpus_per_job,
            mem_gb=p.mem_gb, tasks_per_node=1, nodes=1, slurm_partition=p.partition,
            slurm_array_parallelism=p.max_jobs, slurm_additional_parameters=dict(p.extra) or None,
        )
        if gpus:  # never `--gpus-per-node=0`: a partition without GPUs refuses any gres request
            params["gpus_per_node"] = gpus
        executor.update_parameters(**params)
        # a job with several GPUs runs one worker process per GPU (SLURM sets which GPUs)
        devices = [f"cuda:{i}" for i in range(gpus)] if gpus > 1 else (["cuda"] if gpus == 1 else ["cpu"])
        opts = {**options.to_dict(), "devices": devices}
        from submitit.core.utils import FailedSubmissionError, UncompletedJobError

        handles: list[Any] = []
        try:
            # submitit echoes sbatch's stderr before raising it: it is said once, below
            with contextlib.redirect_stderr(io.StringIO()), executor.batch():
                for batch in batches:
                    handles.append(executor.submit(CellsJob(p.time_limit_min, p.requeues), batch, opts))
        except (UncompletedJobError, FailedSubmissionError, OSError, subprocess.SubprocessError) as exc:
            if not existed:  # nothing was submitted: leave no run folder behind
                shutil.rmtree(run_dir, ignore_errors=True)
                for empty in (run_dir.parent, run_dir.parent.parent):
                    with contextlib.suppress(OSError):
                        empty.rmdir()  # only when empty
            raise SubmitError(explain_sbatch_error(_sbatch_message(exc), p, gpus)) from None
        store = ResultStore(options.store)
        for handle, batch in zip(handles, batches):
            job = TrackedJob(handle.job_id, [c["cell_id"] for c in batch], str(folder), options.run_id)
            self.jobs[job.job_id] = job
            self.own.append(job.job_id)
            self.handles[job.job_id] = handle
            for cell in batch:
                store.log_event("submit", cell["cell_id"], run_id=options.run_id, job=job.job_id)
        self._save()
        first = self.own[0].split("_", 1)[0]
        what = f"array job {first} ({len(self.own)} tasks)" if len(self.own) > 1 else f"job {self.own[0]}"
        self.say(f"slurm: submitted {sum(len(b) for b in batches)} cell(s) as {what}, {gpus} GPU(s) each{why}, "
                 f"time limit {p.time_limit_min} min; logs in {run_dir / 'submitit'}")

    def _save(self) -> None:
        """This run's submissions and their last seen states (``runs/<run_id>/jobs.json``)."""
        own = [self.jobs[j] for j in self.own]
        if not own:
            return
        _write_json(_jobs_file(self.store, self.run_id), {
            "executor": "slurm", "run_id": self.run_id, "folder": own[0].folder,
            "time_limit_min": self.params.time_limit_min,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "jobs": {j.job_id: {"cells": j.cells, "state": asdict(j.state), "outcome": j.outcome} for j in own},
        })

    # -- following -----------------------------------------------------------------------------

    def _set_state(self, job: TrackedJob, state: JobState) -> bool:
        changed = (state.state, state.reason, state.node) != (job.state.state, job.state.reason, job.state.node)
        if changed:
            job.state = state
            self.say(f"slurm job {job.job_id}: {state.describe()}")
        return changed

    def poll(self) -> None:
        if not self.real:
            for job_id, handle in self.handles.items():
                job = self.jobs[job_id]
                if not job.final and handle.done():
                    job.final, job.outcome = True, "result"
                    self._set_state(job, JobState("COMPLETED"))
            return
        now = time.monotonic()
        changed = False
        live = [j for j in self.jobs.values() if not j.final]
        for job in live:
            if job.paths().result_pickle.exists():
                job.final, job.outcome = True, "result"
                if not job.state.ended:
                    self._set_state(job, JobState("COMPLETED", raw_id=job.state.raw_id))
                changed = True
        live = [j for j in live if not j.final]
        if live and now - self._last_query >= self.params.poll_s:
            self._last_query = now
            try:
                states = squeue_states([j.job_id for j in live])
            except ControllerError as exc:
                self._unreachable(now, str(exc))
                states = None
            else:
                if self._unreachable_since is not None:
                    self.say("slurm: the controller answers again")
                self._unreachable_since = None
            if states is not None:
                missing = [j.job_id for j in live if j.job_id not in states]
                if missing and self._sacct_works is not False:
                    found = sacct_states(missing)
                    self._sacct_works = found is not None
                    states.update(found or {})
                for job in live:
                    state = states.get(job.job_id, JobState("GONE", raw_id=job.state.raw_id))
                    if state.raw_id is None:
                        state.raw_id = job.state.raw_id
                    changed |= self._set_state(job, state)
                    if not state.ended:
                        job.ended_at = None  # e.g. requeued
                    elif job.ended_at is None:
                        job.ended_at = now
        for job in live:
            if job.ended_at is None:
                continue
            # no ending state is final at once: a job that completed, or that the queue has forgotten,
            # may still have a result file on its way through a shared filesystem, and a job that
            # submitit requeues at its time limit shows FAILED for a moment before it is PENDING
            # again (seen on a real cluster: the requeued cells were counted lost); a later poll
            # within grace_s that finds it alive resets ended_at
            waited = now - job.ended_at
            if waited >= self.params.grace_s:
                if job.paths().result_pickle.exists():
                    job.outcome = "result"
                else:
                    job.outcome = "lost"
                job.final = True
                changed = True
        if changed:
            self._save()

    def _unreachable(self, now: float, message: str) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = now
            self.say(f"slurm: the controller does not answer ({message}); waiting up to "
                     f"{self.params.cluster_timeout_s:.0f} s for it")
        elif now - self._unreachable_since >= self.params.cluster_timeout_s:
            waiting = [j.job_id for j in self.jobs.values() if not j.final]
            raise ClusterLost(
                f"the SLURM controller has not answered for {now - self._unreachable_since:.0f} s ({message}); "
                f"jobs {_id_list(waiting)} may still run and write their records: re-run the same command later to "
                f"collect them (`plan` shows their last known state)"
            )

    def done(self) -> bool:
        return all(job.final for job in self.jobs.values())

    def _error(self, job: TrackedJob) -> str | None:
        """The job's own exception (read from submitit's result file), in one line."""
        if job.outcome != "result":
            return None
        handle = self.handles.get(job.job_id)
        if handle is None:
            handle = self.submitit.SlurmJob(folder=job.folder, job_id=job.job_id)
        try:
            exc = handle.exception()
        except Exception as err:  # noqa: BLE001 - an unreadable result file is itself the failure
            return exception_line(err)
        if exc is None:
            return None
        lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.startswith("---")]
        # submitit wraps the job's traceback: its last line is the exception itself
        trace = [line for line in lines if not line.startswith(("Job (task", "You can check", "or at paths", "- /"))]
        return trace[-1][:300] if trace else exception_line(exc)

    def failures(self) -> list[str]:
        out = []
        for job in self.jobs.values():
            logs = _log_of(job)
            if job.outcome == "lost":
                hint = SLURM_STATE_HINTS.get(job.state.state, "")
                out.append(f"slurm job {job.job_id} ended {job.state.state} without a result"
                           f"{f' ({hint})' if hint else ''}; logs: {logs}")
            else:
                error = self._error(job)
                if error:
                    out.append(f"slurm job {job.job_id} failed: {error}; logs: {logs}")
        return out

    def lost(self, cell_id: str, failures: list[str]) -> tuple[str, dict[str, Any]]:
        job = next((j for j in self.jobs.values() if cell_id in j.cells), None)
        if job is None:
            return super().lost(cell_id, failures)
        state = job.state.state
        hint = SLURM_STATE_HINTS.get(state, "")
        error = self._error(job)
        what = f"failed: {error}" if error else f"ended {state}{f' ({hint})' if hint else ''}"
        prov: dict[str, Any] = {"slurm_job": job.job_id, "slurm_state": state}
        array, _, task = job.job_id.partition("_")
        prov["slurm_job_id"] = job.state.raw_id or job.job_id
        if task:
            prov.update(slurm_array_job_id=array, slurm_array_task_id=task)
        return f"SLURM job {job.job_id} {what} before recording this cell; logs: {_log_of(job)}", prov

    def stop(self) -> None:
        for job_id in self.own:
            handle = self.handles.get(job_id)
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.cancel(check=False)

    def close(self) -> None:
        self._save()


def drive(
    cells: list[Cell],
    options: WorkerOptions,
    backend: Backend,
    *,
    on_record: Callable[[Record], None] | None = None,
    on_plan: Callable[[list[Cell], list[Cell]], None] | None = None,
    wait: bool = True,
) -> RunSummary:
    """Run ``cells`` on ``backend``'s workers; report each cell's record as it lands in the
    store; return the same :class:`RunSummary` a local run gives.

    A cell without a record once every worker has stopped (its worker crashed, its job was
    cancelled) gets a ``lost`` record naming the worker or job and why, so none is lost
    silently; re-running resumes it. ``on_plan(cached, todo)`` is called before starting.
    Raises :class:`ClusterLost` (after reporting the records found so far) when the cluster
    stops answering; nothing is recorded for the cells still out."""
    store = ResultStore(options.store)
    summary = RunSummary(run_id=options.run_id)
    todo = []
    for cell in unique(cells):
        record = store.get(cell.cell_id)
        if is_settled(record, force=options.force, run_id=options.run_id):
            summary.cached += 1
            summary.records.append(record)
            if on_record is not None:
                on_record(record)
        else:
            todo.append(cell)
    if not todo:
        if on_plan is not None:
            on_plan(list(unique(cells)), [])
        backend.close()
        return summary
    reported: set[str] = set()
    stamps: dict[str, Any] = {}
    run_ids = {options.run_id}

    def settled(record: Record | None) -> bool:  # the workers' own test (Runner.is_settled)
        if record is None or record.status not in FINISHED:
            return False
        return not options.force or record.run_id in run_ids

    def sweep(final: bool) -> None:
        for cell in todo:
            if cell.cell_id in reported:
                continue
            stamp = store.stamp(cell.cell_id)
            if not final and stamp == stamps.get(cell.cell_id, "unseen"):
                continue  # unchanged since the last look: no need to parse it again
            stamps[cell.cell_id] = stamp
            record = store.get(cell.cell_id)
            ours = record is not None and record.run_id in run_ids
            # during the run only finished records are final (an interrupted one may be resumed
            # by another worker, or by the requeued job); at the end, whatever this run wrote
            if settled(record) or (final and ours):
                reported.add(cell.cell_id)
                summary.records.append(record)
                if on_record is not None:
                    on_record(record)

    failures: list[str] = []
    try:
        adopted = backend.adopt(todo, options)
        run_ids |= backend.run_ids()
        submit = [c for c in todo if c.cell_id not in adopted]
        if submit:
            batches = [[c.to_dict() for c in group]
                       for group in group_cells(submit, fuse=options.fuse, max_group=options.max_group)]
            backend.start(batches, [c.to_dict() for c in submit], options)  # a refusal ends the run here, in one line
            workers = backend.workers()
            suggestion = suggest_max_group(submit, workers, fuse=options.fuse, max_group=options.max_group)
            if suggestion is not None:
                groups = len(group_cells(submit, fuse=True))
                print(f"note: {groups} fused group(s) for {workers} workers, so some will idle; --max-group "
                      f"{suggestion} would give each one work (fusing fewer cells per group)", file=sys.stderr,
                      flush=True)
        if on_plan is not None:
            todo_ids = {c.cell_id for c in todo}
            on_plan([c for c in unique(cells) if c.cell_id not in todo_ids], todo)
        if not wait:
            return summary
        while True:
            backend.poll()
            sweep(final=False)
            if backend.done():
                break
            time.sleep(min(options.poll_s, 1.0))
        sweep(final=True)
        failures = backend.failures()  # before close(): a closed Dask client cancels its futures
    except (KeyboardInterrupt, TimeLimitReached):
        backend.stop()
        raise
    except ClusterLost:
        sweep(final=False)  # report what did finish; nothing is recorded for the rest
        raise
    finally:
        if wait:
            backend.close()
    lost = [c for c in todo if c.cell_id not in reported]
    if lost:
        with store.claim([c.cell_id for c in lost]) as claimed:
            for cell in lost:
                if cell.cell_id not in claimed:  # another runner holds it right now
                    summary.claimed_elsewhere += 1
                    continue
                record = store.get(cell.cell_id)
                if settled(record):  # another runner finished it just before our claim
                    summary.by_others += 1
                    summary.records.append(record)
                    if on_record is not None:
                        on_record(record)
                    continue
                why, prov = backend.lost(cell.cell_id, failures)
                record = make_record(cell, "lost", reason=f"lost: {why}; re-run to resume", run_id=options.run_id,
                                     executor=options.executor)
                record.provenance.update(prov)
                store.write(record)
                store.log_event("finish", cell.cell_id, status="lost", run_id=options.run_id)
                summary.records.append(record)
                if on_record is not None:
                    on_record(record)
    summary.failures = failures
    order = {c.cell_id: i for i, c in enumerate(unique(cells))}  # the grid's order, as a local run
    summary.records.sort(key=lambda r: order.get(r.cell_id, len(order)))
    return summary


def _sbatch_message(exc: BaseException) -> str:
    """sbatch's error lines, without their "sbatch: error: " prefixes, in one line."""
    lines = []
    for line in str(exc).splitlines():
        line = line.strip()
        for prefix in ("sbatch: error: ", "sbatch: "):
            if line.startswith(prefix):
                line = line[len(prefix):]
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines)[:400] or type(exc).__name__


def _id_list(ids: list[str], limit: int = 8) -> str:
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "") if ids else "none"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip()[:200] if lines else "empty log"



if __name__ == "__main__":
    sys.exit(worker_main())
