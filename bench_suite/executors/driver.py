"""The one run path: :func:`drive` runs cells on a :class:`Backend` and returns a
:class:`~bench_suite.runner.summary.RunSummary`, whatever the backend (this process, local
devices, Dask, SLURM, a plug-in's).

The contract. A backend starts workers for batches of cells (each batch one fused group, or a
chunk of one); a worker runs an ordinary :class:`~bench_suite.runner.runner.Runner` against the
store at ``WorkerOptions.store`` and writes one record per cell there. The driver then reads
the store: it reports each cell's record as it lands, waits until the backend is ``done``, and
records ``lost`` (through :func:`~bench_suite.runner.runner.record_unfinished`) each cell no
worker recorded, naming the worker or job (``Backend.lost``). A backend that runs the cells in
this process (``reports_found``: the in-process one) hands its records over itself
(``attach``) and its own counts (``outcome``): the driver does not sweep the store for them.

What travels to a worker is plain data: the cells as ``Cell.to_dict()`` and
:class:`WorkerOptions` as a dict. Tensors and records never travel.

This module imports neither torch nor an executor's optional dependency.
"""

from __future__ import annotations

import importlib
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..core.records import Record
from ..grid import Cell
from ..runner.grouping import group_cells, is_settled, plan, unique
from ..runner.summary import RunSummary
from ..store.result_store import ResultStore


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
    """The scheduler / controller stopped answering while the run waited (``exit_codes.CLUSTER_LOST``)."""


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
    checkpoint_every: int | None = None  # epochs between checkpoints (None: every 10 minutes)
    time_budget_s: float | None = None  # stop before this many seconds (the in-process backend only)
    heartbeat_s: float | None = None  # a progress line per group in training this often (None: the default)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Backend:
    """Where the workers run. ``adopt`` takes over cells already in flight, ``start`` launches
    workers for the rest; the driver calls ``poll`` (which may raise :class:`ClusterLost`)
    until ``done``. Only ``start`` and ``done`` must be written; a plug-in backend registers
    itself with :func:`bench_suite.executors.register_executor` (examples/my_executor.py)."""

    name = "local"
    # True: the backend runs every cell in this process, the finished ones included (its Runner
    # compares their data), reports each record through attach() and its counts by outcome()
    reports_found = False

    def attach(self, report: Callable[[Record], None]) -> None:
        """Given before ``start``: the driver's ``report(record)``, for a backend that hands
        records over as they are written (the others' records are read from the store)."""

    def adopt(self, cells: list[Cell], options: WorkerOptions) -> set[str]:
        """Ids of ``cells`` that earlier invocations already submitted and that are still queued
        or running: not submitted again, waited for like this run's own."""
        return set()

    def run_ids(self) -> set[str]:
        """The runs whose records this run collects: its own and those of adopted jobs."""
        return set()

    def start(self, batches: list[list[Cell]], options: WorkerOptions) -> None:
        """Launch workers: one per batch (a fused group, or a chunk of one), or workers that
        share every batch's cells through the store's claims. A backend that ships cells
        elsewhere sends ``Cell.to_dict()`` (the worker's :func:`~bench_suite.executors.worker.
        rebuild_cells` checks their ids) and ``options.to_dict()``."""
        raise NotImplementedError

    def poll(self) -> None:
        """Look at the workers / jobs (cheap; called about once a second)."""

    def done(self) -> bool:
        """Whether every worker has stopped."""
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
        """The run is over (or was interrupted): release the cluster's resources."""

    def workers(self) -> int:
        return 1

    def outcome(self) -> RunSummary | None:
        """The counts of a backend that ran the cells itself (cached, by others, an early
        stop, checkpoints); None: the driver counts from the store."""
        return None


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
    store; return the run's :class:`RunSummary` (records in the grid's order).

    ``on_plan(found, todo)`` is called once, before anything starts: the cells found finished
    in the store and those to run. A cell without a record once every worker has stopped (its
    worker crashed, its job was cancelled, its task failed) gets a ``lost`` record naming the
    worker or job and why, so none is lost silently; re-running resumes it. A run that stopped
    early (``RunSummary.stopped``: a time budget) leaves its unstarted cells without records.
    ``wait=False``: return once the jobs are submitted (their records land later).
    Raises :class:`ClusterLost` (after reporting the records found so far) when the cluster
    stops answering; nothing is recorded for the cells still out."""
    cells = unique(cells)
    store = ResultStore(options.store)
    summary = RunSummary(run_id=options.run_id)
    run_ids = {options.run_id}
    reported: set[str] = set()

    def report(record: Record) -> None:
        if record.cell_id in reported:
            return
        reported.add(record.cell_id)
        summary.records.append(record)
        if on_record is not None:
            on_record(record)

    items = plan(store, cells, force=options.force, run_id=options.run_id)
    found = [i.cell for i in items if not i.will_run]
    todo = [i.cell for i in items if i.will_run]
    if backend.reports_found:
        ship = cells  # its Runner looks at the found ones again (their data) and reports them
    else:
        for item in items:
            if not item.will_run:
                summary.cached += 1
                report(item.record)
        ship = todo
    if on_plan is not None:
        on_plan(found, todo)
    if not ship:
        backend.close()
        return summary
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
            ours = record is not None and record.run_id in run_ids
            # during the run only finished records are final (an interrupted one may be resumed
            # by another worker, or by the requeued job); at the end, whatever this run wrote
            if is_settled(record, force=options.force, run_id=run_ids) or (final and ours):
                report(record)

    failures: list[str] = []
    backend.attach(report)
    try:
        adopted = backend.adopt(ship, options)
        run_ids |= backend.run_ids()
        submit = [c for c in ship if c.cell_id not in adopted]
        if submit:
            batches = group_cells(submit, fuse=options.fuse, max_group=options.max_group)
            workers = backend.workers()
            suggestion = suggest_max_group(submit, workers, fuse=options.fuse, max_group=options.max_group)
            if suggestion is not None:
                groups = len(group_cells(submit, fuse=True))
                say(f"note: {groups} fused group(s) for {workers} workers, so some will idle; --max-group "
                    f"{suggestion} would give each one work (fusing fewer cells per group)")
            backend.start(batches, options)  # a refusal ends the run here, in one line
        if not wait:
            summary.waited = False
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
    own = backend.outcome()
    if own is not None:
        summary.absorb(own)
    lost = [c for c in todo if c.cell_id not in reported]
    if lost and not summary.stopped:
        _record_lost(store, lost, options, backend, failures, run_ids, summary, report)
    summary.failures = failures
    order = {c.cell_id: i for i, c in enumerate(cells)}  # the grid's order, as the cells were given
    summary.records.sort(key=lambda r: order.get(r.cell_id, len(order)))
    return summary


def _record_lost(store: ResultStore, lost: list[Cell], options: WorkerOptions, backend: Backend,
                 failures: list[str], run_ids: set[str], summary: RunSummary,
                 report: Callable[[Record], None]) -> None:
    from ..runner.runner import record_unfinished  # torch: only when some cell was lost

    def why(cell: Cell) -> tuple[str, dict[str, Any]]:
        reason, prov = backend.lost(cell.cell_id, failures)
        return f"lost: {reason}; re-run to resume", prov

    written, kept, held = record_unfinished(
        store, lost, "lost", why, run_id=options.run_id, executor=options.executor,
        keep=lambda record: is_settled(record, force=options.force, run_id=run_ids))
    summary.claimed_elsewhere += len(held)  # another runner holds it right now: not ours to declare lost
    summary.by_others += len(kept)  # another runner finished it just before our claim
    for record in kept + written:
        report(record)


def _id_list(ids: list[str], limit: int = 8) -> str:
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "") if ids else "none"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""
