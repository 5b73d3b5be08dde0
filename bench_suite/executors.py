"""Scale-out: one grid on several local devices, on a Dask cluster, or as SLURM jobs.

Cells are independent and the result store (on a filesystem every worker sees) is the only
coordination: each worker runs an ordinary :class:`~bench_suite.runner.Runner` on its device
against the same store path, and the store's per-cell claims make workers share the work
(no cell is trained twice) and pick up the cells of a worker that died (none is lost).

What travels to a worker is plain data: the cells as ``Cell.to_dict()`` (task, options,
method, width, activation, repetition, train settings, profile, and the submitter's cell id)
and :class:`WorkerOptions` as a dict. The worker rebuilds the cells and refuses to run them
if its code computes other cell ids (another bench_suite version). Tensors and records never
travel: a worker writes its records to the store; the submitting process reads them there.

- ``--devices cpu,cpu`` / ``--devices 0,1``: one subprocess per device, each given every
  cell (``python -m bench_suite.executors JOBFILE``); claims split the work.
- ``--executor dask --scheduler ADDRESS``: one Dask task per (chunk of a) fused group.
- ``--executor slurm``: one SLURM array task per (chunk of a) fused group, via submitit.

Dask and submitit are optional extras, imported only here and only when asked for.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .grid import Cell
from .records import Record
from .runner import Runner, RunSummary, describe, group_cells, is_settled, make_record, resolve_device, unique
from .store import ResultStore


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


@dataclass
class WorkerOptions:
    """How a worker runs its cells; JSON-safe, shipped as a dict."""

    store: str  # absolute path of the store, the same on every worker
    run_id: str  # the submitting run's id: shared by all its workers (``--force`` semantics)
    devices: list[str] = field(default_factory=lambda: ["auto"])  # more than one: a subprocess each
    data_root: str | None = None  # None: the worker's $BENCH_SUITE_DATA_ROOT
    cache_dir: str | None = None
    force: bool = False
    fuse: bool = True
    max_group: int | None = None
    threads: int | None = None  # torch intra-op threads per worker (None: torch's default)
    plugins: list[str] = field(default_factory=list)  # modules registering tasks/methods
    executor: str = "local"  # recorded in each record's provenance
    poll_s: float = 1.0  # how often a worker re-checks cells another worker holds
    label: str = "worker"  # prefix of the worker's log lines

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the worker side ---------------------------------------------------------------------------


def run_cells(cell_dicts: list[dict[str, Any]], options: dict[str, Any]) -> list[dict[str, Any]]:
    """Run cells (plain dicts) into the store; the function Dask and SLURM workers call.

    Returns one small ``{"cell_id", "status"}`` per cell (the records stay in the store)."""
    opts = WorkerOptions(**options)
    from .registry import load_plugins

    load_plugins(opts.plugins)
    cells = rebuild_cells(cell_dicts)
    if len(opts.devices) > 1:  # e.g. a SLURM job with several GPUs: one subprocess per device
        backend = LocalDevices(opts.devices)
        summary = drive(cells, opts, backend)
        return [{"cell_id": r.cell_id, "status": r.status.value} for r in summary.records]
    if opts.threads:
        import torch

        torch.set_num_threads(opts.threads)
    store = ResultStore(opts.store)

    def log(record: Record) -> None:
        print(f"[{opts.label}] {describe(record)}", file=sys.stderr, flush=True)

    runner = Runner(
        store, device=opts.devices[0], data_root=opts.data_root, cache_dir=opts.cache_dir, force=opts.force,
        fuse=opts.fuse, max_group=opts.max_group, run_id=opts.run_id, executor=opts.executor, poll_s=opts.poll_s,
        on_record=log,
    )
    summary = runner.run(cells)
    return [{"cell_id": r.cell_id, "status": r.status.value} for r in summary.records]


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
    try:
        run_cells(job["cells"], options)
    except KeyboardInterrupt:
        return 130
    return 0


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


class Backend:
    """Where the workers run. ``start`` launches them; the driver polls ``done``."""

    name = "local"

    def start(self, batches: list[list[dict[str, Any]]], cells: list[dict[str, Any]], options: WorkerOptions) -> None:
        raise NotImplementedError

    def done(self) -> bool:
        raise NotImplementedError

    def failures(self) -> list[str]:
        """One line per worker / job that failed (not per failed cell: cells have records)."""
        return []

    def stop(self) -> None:
        """Ctrl-C: stop the workers (they record their current cells as interrupted)."""

    def close(self) -> None:
        pass

    def workers(self) -> int:
        return 1


class LocalDevices(Backend):
    """One subprocess per device, each given every cell; their logs go to ``runs/<run_id>/``."""

    name = "devices"

    def __init__(self, devices: list[str]) -> None:
        self.devices = devices
        self.procs: list[tuple[subprocess.Popen, Path, str]] = []

    def workers(self) -> int:
        return len(self.devices)

    def start(self, batches, cells, options) -> None:
        run_dir = Path(options.store) / "runs" / options.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        jobfile = run_dir / f"job-{os.getpid()}.json"
        jobfile.write_text(json.dumps({"cells": cells, "options": options.to_dict()}))
        for i, device in enumerate(self.devices):
            label = f"{device}#{i}"
            log_path = run_dir / f"worker-{os.getpid()}-{i}.log"
            with open(log_path, "w") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "bench_suite.executors", str(jobfile), "--device", device,
                     "--label", label],
                    stdout=log, stderr=subprocess.STDOUT,
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
    """One Dask task per batch on the cluster at ``scheduler`` (workers: one GPU each)."""

    name = "dask"

    def __init__(self, scheduler: str) -> None:
        distributed = require("distributed", "dask")
        try:
            self.client = distributed.Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {_one_line(exc)}") from None
        self.futures: list[Any] = []

    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def start(self, batches, cells, options) -> None:
        opts = options.to_dict()
        self.futures = [
            self.client.submit(run_cells, batch, opts, pure=False, key=f"bench_suite-{options.run_id}-{i}")
            for i, batch in enumerate(batches)
        ]

    def done(self) -> bool:
        return all(f.done() for f in self.futures)

    def failures(self) -> list[str]:
        out = []
        for future in self.futures:
            if future.status == "error":
                out.append(f"dask task {future.key} failed: {_one_line(future.exception())}")
            elif future.status == "cancelled":
                out.append(f"dask task {future.key} was cancelled")
        return out

    def stop(self) -> None:
        self.client.cancel(self.futures)

    def close(self) -> None:
        self.client.close()


@dataclass
class SlurmParams:
    partition: str | None = None
    gpus_per_job: int = 1
    cpus_per_job: int | None = None
    mem_gb: float | None = None
    time_limit_min: int = 240
    max_jobs: int = 16  # slurm_array_parallelism: array tasks running at once
    extra: dict[str, Any] = field(default_factory=dict)  # slurm_additional_parameters (account, qos, ...)
    cluster: str | None = None  # submitit cluster: None (detect: slurm), "slurm", "local" or "debug"


class SlurmBackend(Backend):
    """One SLURM array task per batch, submitted through submitit (jobs write the store)."""

    name = "slurm"

    def __init__(self, params: SlurmParams) -> None:
        self.submitit = require("submitit", "slurm")
        if params.cluster is None and self.submitit.AutoExecutor.which() != "slurm":
            # submitit would fall back to running the jobs here; say so instead of surprising
            raise ValueError("--executor slurm: no SLURM found here (no sbatch/srun); submit from a SLURM login "
                             "node, or add --submitit-cluster local to run the jobs on this machine")
        self.params = params
        self.jobs: list[Any] = []

    def workers(self) -> int:
        return self.params.max_jobs

    def start(self, batches, cells, options) -> None:
        p = self.params
        folder = Path(options.store) / "runs" / options.run_id / "submitit" / "%j"
        executor = self.submitit.AutoExecutor(folder=folder, cluster=p.cluster)
        executor.update_parameters(
            name=f"bench_suite-{options.run_id}", timeout_min=p.time_limit_min, gpus_per_node=p.gpus_per_job,
            cpus_per_task=p.cpus_per_job, mem_gb=p.mem_gb, tasks_per_node=1, nodes=1,
            slurm_partition=p.partition, slurm_array_parallelism=p.max_jobs,
            slurm_additional_parameters=dict(p.extra) or None,
        )
        # a job with several GPUs runs one worker process per GPU (SLURM sets which GPUs)
        devices = [f"cuda:{i}" for i in range(p.gpus_per_job)] if p.gpus_per_job > 1 else (
            ["cuda"] if p.gpus_per_job == 1 else ["cpu"])
        opts = {**options.to_dict(), "devices": devices}
        with executor.batch():
            for batch in batches:
                self.jobs.append(executor.submit(run_cells, batch, opts))

    def job_ids(self) -> list[str]:
        return [job.job_id for job in self.jobs]

    def done(self) -> bool:
        return all(job.done() for job in self.jobs)

    def failures(self) -> list[str]:
        out = []
        for job in self.jobs:
            exc = job.exception()
            if exc is not None:
                out.append(f"slurm job {job.job_id} failed: {_one_line(exc)} (logs: {job.paths.stderr})")
        return out

    def stop(self) -> None:
        for job in self.jobs:
            job.cancel(check=False)


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

    A cell without a record for this run once every worker has stopped (its worker crashed,
    a job hit its time limit) gets an ``error`` record naming the failure, so none is lost
    silently; re-running resumes it. ``on_plan(cached, todo)`` is called before starting."""
    store = ResultStore(options.store)

    def settled(record: Record | None) -> bool:  # the workers' own test (Runner.is_settled)
        return is_settled(record, force=options.force, run_id=options.run_id)

    summary = RunSummary(run_id=options.run_id)
    todo = []
    for cell in unique(cells):
        record = store.get(cell.cell_id)
        if settled(record):
            summary.cached += 1
            summary.records.append(record)
            if on_record is not None:
                on_record(record)
        else:
            todo.append(cell)
    if on_plan is not None:
        todo_ids = {c.cell_id for c in todo}
        on_plan([c for c in unique(cells) if c.cell_id not in todo_ids], todo)
    if not todo:
        backend.close()
        return summary
    workers = backend.workers()
    suggestion = suggest_max_group(todo, workers, fuse=options.fuse, max_group=options.max_group)
    if suggestion is not None:
        groups = len(group_cells(todo, fuse=True))
        print(f"note: {groups} fused group(s) for {workers} workers, so some will idle; --max-group {suggestion} "
              f"would give each one work (fusing fewer cells per group)", file=sys.stderr, flush=True)
    batches = [[c.to_dict() for c in group]
               for group in group_cells(todo, fuse=options.fuse, max_group=options.max_group)]
    reported: set[str] = set()
    stamps: dict[str, Any] = {}

    def sweep(final: bool) -> None:
        for cell in todo:
            if cell.cell_id in reported:
                continue
            stamp = store.stamp(cell.cell_id)
            if not final and stamp == stamps.get(cell.cell_id, "unseen"):
                continue  # unchanged since the last look: no need to parse it again
            stamps[cell.cell_id] = stamp
            record = store.get(cell.cell_id)
            ours = record is not None and record.run_id == options.run_id
            # during the run only finished records are final (an interrupted one may be resumed
            # by another worker); at the end, whatever this run wrote
            if settled(record) or (final and ours):
                reported.add(cell.cell_id)
                summary.records.append(record)
                if on_record is not None:
                    on_record(record)

    try:
        backend.start(batches, [c.to_dict() for c in todo], options)
        if not wait:
            return summary
        while not backend.done():
            sweep(final=False)
            time.sleep(min(options.poll_s, 1.0))
        sweep(final=True)
        failures = backend.failures()  # before close(): a closed Dask client cancels its futures
    except KeyboardInterrupt:
        backend.stop()
        raise
    finally:
        if wait:
            backend.close()
    why = "; ".join(failures) if failures else "no worker recorded it"
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
                record = make_record(cell, "error", reason=f"lost: {why}; re-run to resume", run_id=options.run_id,
                                     executor=options.executor)
                store.write(record)
                store.log_event("finish", cell.cell_id, status="error", run_id=options.run_id)
                summary.records.append(record)
                if on_record is not None:
                    on_record(record)
    summary.failures = failures
    order = {c.cell_id: i for i, c in enumerate(unique(cells))}  # the grid's order, as a local run
    summary.records.sort(key=lambda r: order.get(r.cell_id, len(order)))
    return summary


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip()[:200] if lines else "empty log"


def _one_line(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


if __name__ == "__main__":
    sys.exit(worker_main())
