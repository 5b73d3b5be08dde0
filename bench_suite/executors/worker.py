"""The worker side of every parallel executor: a Runner over cells that arrived as plain data.

:func:`run_cells` is what a Dask task or a SLURM job calls; :func:`worker_main` is a local
worker process (``python -m bench_suite.executors JOBFILE --device D``). A worker rebuilds its
cells and refuses them when its code computes other cell ids (another bench_suite version);
it writes its records to the store and returns only their statuses.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..grid import Cell
from ..runner.grouping import describe
from ..runner.heartbeat import Heartbeat
from ..runner.runner import Runner
from ..store.result_store import ResultStore
from ..tasks import DataError, DataUnavailable
from .driver import CodeMismatch, WorkerOptions, drive

if TYPE_CHECKING:  # pragma: no cover
    from .slurm import _JobWatch


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
        from .local import LocalDevices

        summary = drive(cells, opts, LocalDevices(opts.devices))
        return [{"cell_id": r.cell_id, "status": r.status.value} for r in summary.records]
    pin_device(opts.devices[0])
    threads = opts.threads or default_threads()
    if threads:
        import torch

        torch.set_num_threads(threads)
    store = ResultStore(opts.store)

    def line(text: str) -> None:
        print(f"[{opts.label}] {text}", file=sys.stderr, flush=True)

    beat = Heartbeat(line, opts.heartbeat_s)  # a worker's log is a file: progress lines, not bars

    def group_start(group: list[Cell]) -> None:
        beat.group_start(group)
        if watch is not None:
            watch.group_start(group)

    runner = WorkerRunner(
        store, device=opts.devices[0], data_root=opts.data_root, data_root_seen=opts.data_root_seen,
        cache_dir=opts.cache_dir, force=opts.force, fuse=opts.fuse, max_group=opts.max_group, run_id=opts.run_id,
        executor=opts.executor, poll_s=opts.poll_s, on_record=lambda record: line(describe(record)),
        on_group_start=group_start, on_epoch=beat.epoch, on_resume=beat.resume,
        checkpoint_every=opts.checkpoint_every, time_budget_s=opts.time_budget_s,
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
    # the driver stops us with SIGINT; a run started in the background by a shell (`&`) hands its
    # children SIGINT ignored, which Python keeps: take Python's handler back
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"[{options.get('label', 'worker')}] pid {os.getpid()} on {options['devices'][0]} "
          f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})", file=sys.stderr, flush=True)
    try:
        run_cells(job["cells"], options)
    except KeyboardInterrupt:
        return 130
    return 0
