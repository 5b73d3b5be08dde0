"""What ``run`` (the command) and :func:`bench_suite.run` both call: :func:`run_grid`.

One path: the store is opened, the run is priced (:func:`preflight`: the estimate ``plan``
shows) and, when it asks for it, confirmed; the backend of the executor asked for is built
from the registry; :func:`~bench_suite.executors.driver.drive` runs the cells; the store's
curves are packed at the end. The callers only turn their arguments into a
:class:`RunRequest` and print (or return) the :class:`~bench_suite.runner.summary.RunSummary`.

The confirmation rule (docs/runner.md "Long runs ask first"): a run needs a confirmation when
a cell's profile is made for another device than the one it would run on (a ``cuda`` profile
on a CPU), or when its estimate passes ``$BENCH_SUITE_CONFIRM_OVER_H`` hours of device time per
worker (default :data:`DEFAULT_CONFIRM_OVER_H`). Without one, :class:`ConfirmationNeeded`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.errors import PathProblem
from ..core.records import Record
from ..grid import Cell, profiles_of
from ..runner.cost import CostModel, Estimate, estimate, format_seconds
from ..runner.grouping import plan
from ..runner.summary import RunSummary
from ..store.result_store import ResultStore
from .driver import WorkerOptions, drive
from .registry import EXECUTORS, ExecutorRequest

CONFIRM_ENV = "BENCH_SUITE_CONFIRM_OVER_H"
DEFAULT_CONFIRM_OVER_H = 4.0  # past this many hours of device time per worker, a run asks first
DATA_ROOT_ENV = "BENCH_SUITE_DATA_ROOT"


@dataclass
class RunRequest:
    """How to run a grid: the ``run`` command's options, ``bench_suite.run``'s keywords."""

    store: str | os.PathLike = "results"
    executor: str = "local"  # a name in executors.registry.EXECUTORS
    device: str | None = None  # this process's device (local executor); None: auto
    devices: list[str] | None = None  # local: a worker process per device when several
    threads: int | None = None
    data_root: str | None = None
    cache_dir: str | None = None
    force: bool = False
    fuse: bool = True
    max_group: int | None = None
    plugins: list[str] = field(default_factory=list)
    checkpoint_every: int | None = None
    time_budget_s: float | None = None
    heartbeat_s: float | None = None
    scheduler: str | None = None  # dask
    slurm: dict[str, Any] = field(default_factory=dict)  # slurm: SlurmParams fields
    executor_options: dict[str, Any] = field(default_factory=dict)  # a plug-in executor's own settings
    wait: bool = True  # False: submit and return (slurm's --no-wait)
    run_id: str | None = None


@dataclass
class Preflight:
    """What a run will cost before it starts, and why it needs a confirmation (if it does)."""

    cells: int  # cells to run (not found finished)
    device_type: str | None  # cpu / cuda / mps; None: the workers' own (a cluster)
    estimate: Estimate | None
    workers: int
    reasons: list[str]  # empty: no confirmation needed

    def line(self) -> str:
        """``run``'s statement before it starts: cells, FLOPs, time, device."""
        where = f"on {self.device_type} ({self.estimate.device_name})" if self.estimate else "on the workers' devices"
        cost = f"{self.estimate.cost_text()}, {self.estimate.time_text(self.workers)}" if self.estimate else "?"
        return f"estimate: {self.cells} cell(s) to run {where}: {cost}"

    def refusal(self, how: str) -> str:
        """One line: the estimate, why the run was not started, and ``how`` to confirm."""
        return (f"not started: {'; '.join(self.reasons)} ({self.line()}); {how} to run it anyway, or see the "
                f"cells and their cost with `plan`")


class ConfirmationNeeded(ValueError):
    """A run that needs a confirmation (:func:`preflight`) was not confirmed; nothing ran. The
    message says why, the estimate and how to confirm; ``.preflight`` holds them."""

    def __init__(self, message: str, preflight: Preflight) -> None:
        super().__init__(message)
        self.preflight = preflight


def confirm_over_hours() -> float:
    """``$BENCH_SUITE_CONFIRM_OVER_H`` (default :data:`DEFAULT_CONFIRM_OVER_H`); one-line
    ``ValueError`` for a value that is not a positive number."""
    text = os.environ.get(CONFIRM_ENV, "").strip()
    if not text:
        return DEFAULT_CONFIRM_OVER_H
    try:
        hours = float(text)
    except ValueError:
        hours = math.nan
    if not (hours > 0 and math.isfinite(hours)):
        raise ValueError(f"${CONFIRM_ENV}={text!r}: give a positive number of hours, e.g. 4")
    return hours


def _run_device(request: RunRequest, cells: list[Cell]) -> tuple[str | None, str | None]:
    """(device type, device model) the cells would run on, where this process can tell."""
    from ..runner.provenance import probe_device_name

    if request.executor == "local":
        device = (request.devices or [request.device or "auto"])[0]
        device = f"cuda:{device}" if device.isdigit() else device
        if device not in ("auto", "cpu"):  # a device this machine lacks is the first thing to say
            from ..runner.runner import resolve_device

            resolve_device(device)
        return probe_device_name(device)
    if request.executor == "slurm":
        from .slurm_queue import default_gpus

        gpus = request.slurm.get("gpus_per_job")
        return ("cuda" if (default_gpus(cells) if gpus is None else gpus) else "cpu"), None
    return None, None


def preflight(cells: list[Cell], request: RunRequest, costs: CostModel | None = None) -> Preflight:
    """Price the cells ``run`` would run (those not finished in the store) on the device they
    would run on, and say what needs a confirmation. Torch-free, reads the store only."""
    limit = confirm_over_hours()  # a bad value is refused whatever the grid
    store = ResultStore(Path(request.store).expanduser())
    costs = costs if costs is not None else CostModel(store.records)
    todo = [p.cell for p in plan(store, cells, force=request.force) if p.will_run]
    device_type, device_name = _run_device(request, todo)
    workers = len(request.devices) if request.executor == "local" and request.devices else 1
    est = (estimate(todo, costs, device_name, fuse=request.fuse, max_group=request.max_group)
           if device_name is not None else None)
    reasons = []
    if device_type is not None:
        made_for: dict[str, set[str]] = {}
        for cell in todo:
            wanted = (profiles_of(cell.task).get(cell.profile or "") or {}).get("device")
            if wanted in ("cpu", "cuda") and wanted != device_type:
                made_for.setdefault(wanted, set()).add(f"{cell.task} {cell.profile}")
        for wanted, which in sorted(made_for.items()):
            reasons.append(f"profile {', '.join(sorted(which))} is made for {wanted}, this run is on {device_type}")
    if est is not None and est.known:
        hours = est.total_seconds / workers / 3600
        if hours > limit:
            reasons.append(f"about {format_seconds(est.total_seconds / workers)} per worker is over "
                           f"${CONFIRM_ENV} = {limit:g} h")
    return Preflight(len(todo), device_type, est, workers, reasons)


def check_data_root(data_root: str | None, option: str = "--data-root") -> None:
    """A data location that does not exist is a typo, not "no data": say so before running."""
    given, origin = (data_root, option) if data_root else (os.environ.get(DATA_ROOT_ENV), f"${DATA_ROOT_ENV}")
    if given and not Path(given).expanduser().exists():
        raise PathProblem(f"{origin} {given}: does not exist; give the folder or file that holds the data")


def pack_curves(store: ResultStore) -> str | None:
    """Pack the store's curves at the end of a run (``ResultStore.pack``). Returns None, or one
    line saying why they were not packed (the loose files stay: nothing is lost, the next run
    packs them)."""
    import filelock

    try:
        store.pack(timeout_s=30.0)
    except filelock.Timeout:
        return (f"another process is packing the curves of {store.root}; this run's stay loose until the next run "
                f"packs them")
    except (OSError, ValueError) as exc:
        return f"packing the curves of {store.root} failed ({exc}); they stay loose until the next run packs them"
    return None


def _absolute(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def _worker_threads(threads: int | None, devices: list[str] | None) -> int | None:
    """Torch threads per local worker: as asked, else the cores shared among the CPU workers (so
    two CPU workers do not each start one thread per core)."""
    if threads or not devices or len(devices) < 2:
        return threads
    cpu_workers = sum(1 for d in devices if d == "cpu")
    return max(1, (os.cpu_count() or 1) // cpu_workers) if cpu_workers else None


def run_grid(cells: list[Cell], request: RunRequest, *, confirm: bool | Callable[[Preflight], bool] = False,
             confirm_how: str = "pass confirm=True", on_estimate: Callable[[Preflight], None] | None = None,
             on_record: Callable[[Record], None] | None = None,
             on_plan: Callable[[list[Cell], list[Cell]], None] | None = None,
             on_epoch: Callable[[int, int], None] | None = None,
             on_group_start: Callable[[list[Cell]], None] | None = None,
             on_resume: Callable[[list[Cell], int, int], None] | None = None,
             on_message: Callable[[str], None] | None = None,
             store_option: str = "store", data_root_option: str = "data_root") -> RunSummary:
    """Run ``cells`` as ``request`` says; the records land in ``request.store``.

    ``confirm``: True runs whatever the preflight says; a function is asked (the command's
    y/N prompt) when the run needs a confirmation; False refuses such a run with
    :class:`ConfirmationNeeded` (its message ends with ``confirm_how``). ``on_estimate`` gets
    the :class:`Preflight` first. The callbacks are those of :func:`drive` and of the
    in-process backend. ``store_option``/``data_root_option`` name the arguments in messages.
    Raises ``ValueError`` / :class:`~bench_suite.core.errors.PathProblem` (one line) for bad
    input, :class:`~bench_suite.executors.driver.ClusterLost` when a cluster stops answering."""
    from ..core.files import writable_dir
    from ..core.registry import load_plugins
    from ..runner.runner import new_run_id

    load_plugins(request.plugins)
    entry = EXECUTORS.get(request.executor)  # an unknown name: one line listing the valid ones
    path = Path(request.store).expanduser()
    if not str(request.store).strip() or (path.exists() and not path.is_dir()):
        writable_dir(request.store, store_option)  # its one-line refusal (an empty path is not ".")
    check_data_root(request.data_root, data_root_option)
    pre = preflight(cells, request)  # reads the store, writes nothing: a refused run leaves no trace
    if on_estimate is not None:
        on_estimate(pre)
    if pre.reasons and confirm is not True and not (callable(confirm) and confirm(pre)):
        raise ConfirmationNeeded(pre.refusal(confirm_how), pre)
    store = ResultStore(writable_dir(path, store_option))
    if request.executor == "local":
        from ..runner.runner import resolve_device

        for device in request.devices or [request.device or "auto"]:
            resolve_device(device)  # one line for a device this machine does not have, before anything runs
    backend = entry.backend(ExecutorRequest(
        devices=request.devices, scheduler=request.scheduler, slurm=dict(request.slurm),
        options=dict(request.executor_options), on_epoch=on_epoch, on_group_start=on_group_start,
        on_resume=on_resume, on_message=on_message))
    in_process = backend.reports_found
    if request.time_budget_s is not None and not in_process:
        backend.close()
        raise ValueError(f"a time budget is for a run in this process (one device), not for the {backend.name} "
                         f"executor's workers: give each its own limit (e.g. the SLURM time limit)")
    data_root = request.data_root if in_process else _absolute(request.data_root)  # workers may start elsewhere
    options = WorkerOptions(
        store=str(store.root if in_process else store.root.resolve()), run_id=request.run_id or new_run_id(),
        devices=[(request.devices or [request.device or "auto"])[0]] if in_process else ["auto"],
        data_root=data_root, data_root_seen=data_root is not None and os.path.exists(data_root),
        cache_dir=request.cache_dir if in_process else _absolute(request.cache_dir), force=request.force,
        fuse=request.fuse, max_group=request.max_group,
        threads=request.threads if in_process else _worker_threads(request.threads, request.devices),
        plugins=list(request.plugins), executor=backend.name, checkpoint_every=request.checkpoint_every,
        time_budget_s=request.time_budget_s, heartbeat_s=request.heartbeat_s,
    )
    summary = drive(cells, options, backend, on_record=on_record, on_plan=on_plan, wait=request.wait)
    summary.submitted = list(getattr(backend, "job_ids", list)())
    summary.adopted = list(getattr(backend, "adopted_ids", list)())
    if summary.waited:
        problem = pack_curves(store)  # every worker is done: one curves file for the store
        if problem and on_message is not None:
            on_message(f"note: {problem}")
        elif problem:
            import warnings

            warnings.warn(problem, RuntimeWarning, stacklevel=3)
    return summary
