"""Run cells into the store: group them for the fused engine, skip finished ones, record each.

Every cell ends as exactly one record: ``done`` / ``diverged`` (finished: kept, skipped on the
next run), ``error`` (an exception, with its message; the grid goes on), ``skipped`` (the data
is not there; the reason says what to do), ``interrupted`` (Ctrl-C; re-run to resume) or, written
by a parallel executor, ``lost`` (the worker or cluster job died before recording it).

Several runners may share one store (other terminals, ``--devices``, Dask or SLURM workers):
a runner trains a cell only while holding its claim (``ResultStore.claim``), re-reads the
store after claiming, and, once its own share is done, waits for the cells other runners
hold, so a cell whose runner dies (its claim is released by the OS) is picked up, not lost.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import uuid
from collections import OrderedDict
from typing import Any, Callable

import torch

from .. import theory
from ..core.config import check_device_text
from ..core.curves import tail_statistics, thin_curves
from ..core.env import DEBUG_ENV, env_flag
from ..core.errors import exception_line
from ..core.records import PROTOCOL_VERSION, Record, Status
from ..grid import Cell
from ..methods import METHODS
from ..store.result_store import ResultStore
from ..tasks import DataError, DataUnavailable, TaskData
from ..train import CellSpec, Checkpointing, TrainingStopped
from ..train.dispatch import train_cells
from . import provenance
from .checkpoints import CheckpointStore
from .grouping import PlanItem, describe, group_cells, is_settled, plan, trainer_groups, unique  # noqa: F401
from .heartbeat import resume_line
from .summary import RunSummary

DATA_ROOT_ENV = "BENCH_SUITE_DATA_ROOT"

# checkpoints of a group in training: every this many seconds unless told otherwise (docs/runner.md)
CHECKPOINT_EVERY_S = 600.0
# a budget stop leaves room for the next segment times this, plus the last checkpoint write
BUDGET_SAFETY = 1.25


def resolve_device(device: str) -> torch.device:
    """The torch device that ``device`` names; ``ValueError`` (one line, the valid forms) for a
    string torch does not take or a device this machine does not have."""
    device = check_device_text(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps was asked for, but MPS is not available here; use --device cpu or auto")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available; use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return dev


def new_run_id() -> str:
    """Names one invocation; every worker of it records the same id (``record["run_id"]``)."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]


def make_record(cell: Cell, status: str, *, reason: str | None = None, result=None, data: TaskData | None = None,
                device: torch.device | None = None, run_id: str | None = None,
                executor: str = "local") -> Record:
    prov = provenance.collect(device or torch.device("cpu"), cell.train.precision)
    prov.update({
        "protocol": PROTOCOL_VERSION,
        "code_version": cell.code_version(),
        "executor": executor,
        "data_source": data.source if data is not None else None,
        "data_checksum": data.checksum if data is not None else None,
    })
    record = Record(cell_id=cell.cell_id, name=cell.name, status=Status(status), config=cell.config(),
                    seeds=cell.seeds(), provenance=prov, protocol=PROTOCOL_VERSION, profile=cell.profile,
                    reason=reason, run_id=run_id)
    if data is not None:
        n, d, k = data.n, data.dim, data.num_outputs
        n_test = 0 if data.x_test is None else int(data.x_test.shape[0])
        record.shape = {"n": n, "d": d, "m": cell.width, "k": k, "width_ratio": cell.width * d / (2 * n),
                        "n_test": n_test}
        record.label_digest = data.label_digest()
        if data.info:
            record.data_info = data.info
    if result is not None:
        # the tail statistics come from the full curves; the record keeps them thinned (the storage rule)
        record.final = {**result.final, **tail_statistics(result.curves)}
        record.curves, record.timing = thin_curves(result.curves), result.timing
        record.w0_digest = result.w0_digest
    elif cell.method in METHODS:  # an error or skipped cell still names the trainer it was (or would be) on
        record.timing = {"trainer": METHODS.get(cell.method).trainer}
    return record


def write_record(store: ResultStore, record: Record, **event: Any) -> Record:
    """Write a record this process produced and journal it (a ``finish`` event, with
    ``event``'s fields). When the store keeps the finished record it holds instead (a failed
    re-run under ``--force``, a result of other data), the returned record's reason says so."""
    if not store.write(record):
        kept = store.get(record.cell_id)
        kept_status = kept.status if kept is not None else "finished"
        record = record.replace(reason=f"{record.reason} (the earlier {kept_status} record was kept)")
    store.log_event("finish", record.cell_id, status=record.status.value, run_id=record.run_id, **event)
    return record


def record_unfinished(store: ResultStore, cells: list[Cell], status: str,
                      why: Callable[[Cell], tuple[str, dict[str, Any]]], *, run_id: str, executor: str,
                      keep: Callable[[Record | None], bool],
                      event: dict[str, Any] | None = None) -> tuple[list[Record], list[Record], list[Cell]]:
    """Record ``status`` (``lost``, ``interrupted``, ``error``) for cells this process did not
    train and no runner recorded: a parallel run's cells whose worker died, a SLURM job's
    cells at its time limit. Each cell is claimed first: one another runner holds is left
    alone; one whose stored record ``keep(record)`` accepts (finished meanwhile, say) stands.
    ``why(cell)`` gives the reason and what to add to the record's provenance (the job).

    Returns ``(written, kept, held)``: the records written, the records found and kept, the
    cells another runner holds."""
    written: list[Record] = []
    kept: list[Record] = []
    held: list[Cell] = []
    with store.claim([c.cell_id for c in cells]) as claimed:
        for cell in cells:
            if cell.cell_id not in claimed:
                held.append(cell)
                continue
            old = store.get(cell.cell_id)
            if old is not None and keep(old):
                kept.append(old)
                continue
            reason, prov = why(cell)
            record = make_record(cell, status, reason=reason, run_id=run_id, executor=executor)
            record.provenance.update(prov)
            written.append(write_record(store, record, **(event or {})))
    return written, kept, held


class Runner:
    """Runs cells into a store. ``on_record`` is called with each cell's record (written or
    found), ``on_epoch(done, total)`` inside a group, ``on_group_start(cells)`` before one,
    ``on_resume(cells, epoch, epochs)`` when a group resumes from its checkpoint (default: a
    line on stderr)."""

    def __init__(
        self,
        store: ResultStore,
        *,
        device: str = "auto",
        data_root: str | None = None,
        cache_dir: str | None = None,
        force: bool = False,
        fuse: bool = True,
        max_group: int | None = None,
        run_id: str | None = None,
        executor: str = "local",
        wait_for_others: bool = True,
        poll_s: float = 1.0,
        on_record: Callable[[Record], None] | None = None,
        on_epoch: Callable[[int, int], None] | None = None,
        on_group_start: Callable[[list[Cell]], None] | None = None,
        on_resume: Callable[[list[Cell], int, int], None] | None = None,
        checkpoint_every: int | None = None,
        checkpoint_every_s: float | None = CHECKPOINT_EVERY_S,
        time_budget_s: float | None = None,
        stop_on_data_error: bool = False,
    ) -> None:
        """``checkpoint_every``: checkpoint a group in training every N epochs (0: only when it
        stops early); default: every ``checkpoint_every_s`` seconds. ``time_budget_s``: stop
        before this many seconds have passed since ``run`` began (checkpointing the group in
        training; ``RunSummary.stopped``, exit code 75)."""
        # a plain run stops at data that is present but unusable (a bad --data-root: one message,
        # exit 2, no error records); a worker records it per cell, its run goes on
        self.stop_on_data_error = stop_on_data_error
        # the commit is the code that starts running (imported now), asked once: a checkout
        # edited or committed to during a long run must not relabel its later records
        provenance.git_state()
        self.store = store
        self.device = resolve_device(device)
        self.data_root = data_root if data_root is not None else os.environ.get(DATA_ROOT_ENV)
        self.cache_dir = cache_dir
        self.force = force
        self.fuse = fuse
        if max_group is not None and max_group < 1:
            raise ValueError(f"max_group must be >= 1, got {max_group}")
        self.max_group = max_group
        self.run_id = run_id or new_run_id()
        self.executor = executor
        self.wait_for_others = wait_for_others
        self.poll_s = poll_s
        self.on_record = on_record
        self.on_epoch = on_epoch
        self.on_group_start = on_group_start
        self.on_resume = on_resume
        self._data: OrderedDict[tuple, TaskData | Exception] = OrderedDict()
        if checkpoint_every is not None and checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every}")
        if time_budget_s is not None and not time_budget_s > 0:
            raise ValueError(f"time_budget_s must be > 0, got {time_budget_s}")
        self.checkpoints = CheckpointStore(store.root)
        self.checkpoint_every = checkpoint_every
        self.checkpoint_every_s = None if checkpoint_every is not None else checkpoint_every_s
        self.time_budget_s = time_budget_s
        self._deadline: float | None = None
        self._stop_reason: str | None = None
        self._stopping = False
        self._group_cost_s = 0.0  # longest set-up + first segment of a group seen in this run
        self._save_s = 0.0  # longest checkpoint write seen

    def request_stop(self, reason: str = "a stop was requested") -> None:
        """Ask ``run`` to stop gracefully, from anywhere (a signal handler, another thread: it
        only sets an attribute). The group in training saves a checkpoint at its next segment
        end (within max(one epoch, 64 steps)) and its cells are recorded ``interrupted``; no
        further group starts; ``run`` returns with ``RunSummary.stopped = reason`` (exit code
        75). The next ``run`` of the same cells resumes from the checkpoint, bit for bit. Meant
        for preemption handlers, e.g. a SLURM job's USR2 signal before its time limit, which
        then requeues the job."""
        self._stop_reason = reason

    def _stop_check(self, next_segment_s: float) -> str | None:
        """Called by the engine at segment ends: a reason to stop now, or None."""
        if self._stop_reason:
            return self._stop_reason
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= BUDGET_SAFETY * next_segment_s + 2 * self._save_s + 1.0:
                return f"time budget of {self.time_budget_s:g} s"
        return None

    def _stop_before_group(self) -> str | None:
        """Whether to stop before starting another group (at least one ran in this call)."""
        if self._stop_reason:
            return self._stop_reason
        if self._deadline is not None and self._group_cost_s > 0:
            if self._deadline - time.monotonic() <= BUDGET_SAFETY * self._group_cost_s + 1.0:
                return f"time budget of {self.time_budget_s:g} s"
        return None

    # --- what counts as finished -------------------------------------------------------------

    def is_settled(self, record: Record | None) -> bool:
        return is_settled(record, force=self.force, run_id=self.run_id)

    def plan(self, cells: list[Cell]) -> list[PlanItem]:
        """What :meth:`run` would do now, cell by cell (the same predicate, nothing run)."""
        return plan(self.store, cells, force=self.force, run_id=self.run_id)

    def groups(self, cells: list[Cell]) -> list[list[Cell]]:
        """Fused groups, each cut by trainer (a reference-trainer cell runs alone)."""
        return [part for group in group_cells(cells, fuse=self.fuse, max_group=self.max_group)
                for part in trainer_groups(group)]

    # --- running -----------------------------------------------------------------------------

    def run(self, cells: list[Cell]) -> RunSummary:
        summary = RunSummary(run_id=self.run_id)
        self.store.remove_stale_temp()
        self.checkpoints.remove_stale_temp()
        self._stopping = False
        if self.time_budget_s is not None:
            self._deadline = time.monotonic() + self.time_budget_s
        todo = unique(cells)
        # cell id -> its record file's stamp when we first found another runner holding it:
        # a later change means that runner wrote the cell's record (taken as is, unless it
        # says "interrupted", which we resume)
        waiting: dict[str, tuple | None] = {}
        while todo:
            held: list[Cell] = []
            for group in self.groups(todo):
                pending = [c for c in group if not self._take_existing(c, summary, waiting)]
                if not pending:
                    continue
                reason = self._stop_before_group()
                if reason is not None:
                    summary.stopped = reason
                    return summary
                stamps = {c.cell_id: self.store.stamp(c.cell_id) for c in pending}  # before claiming
                with self.store.claim([c.cell_id for c in pending]) as claimed:
                    taken = set(claimed)
                    for cell in pending:
                        if cell.cell_id not in taken:
                            held.append(cell)
                            waiting.setdefault(cell.cell_id, stamps[cell.cell_id])
                    # another runner may have written some between our look and our claim
                    fresh = [c for c in pending if c.cell_id in taken and not self._take_existing(c, summary, waiting)]
                    if fresh:
                        self._run_group(fresh, summary)
                if self._stopping:
                    return summary
            if not held:
                break
            if not self.wait_for_others:
                summary.claimed_elsewhere = len(held)
                break
            time.sleep(self.poll_s)
            todo = held
        return summary

    def _take_existing(self, cell: Cell, summary: RunSummary, waiting: dict[str, tuple | None]) -> bool:
        """Report the store's record instead of running the cell, when it settles the cell."""
        record = self.store.get(cell.cell_id)
        if record is None:
            return False
        was_held = cell.cell_id in waiting
        written_while_held = (was_held and self.store.stamp(cell.cell_id) != waiting[cell.cell_id]
                              and record.status != Status.INTERRUPTED)
        if not (self.is_settled(record) or written_while_held):
            return False
        if record.finished and record.data_checksum and not self._same_data(cell, record, summary):
            return True  # refused (reported as an error); the store's record stays as it is
        if was_held:
            summary.by_others += 1
        else:
            summary.cached += 1
        self._report(summary, record)
        return True

    def _same_data(self, cell: Cell, record: Record, summary: RunSummary) -> bool:
        """Whether ``record`` was computed from the data at hand (its checksum): a finished
        result of other data is not this cell's result. On a mismatch the cell is refused with
        one line (the store keeps what it holds; --force replaces it); data that cannot be
        loaded now cannot contradict the record, which is then kept."""
        try:
            data = self._load(cell)
        except Exception:  # noqa: BLE001 - absent/broken data: nothing to compare with
            return True
        if data.checksum is None or data.checksum == record.data_checksum:
            return True
        if self.force:
            return False  # is_settled already refused it unless this run wrote it
        why = (f"the store holds this cell's result computed from other data (checksum {record.data_checksum}, "
               f"{record.provenance.get('data_source')}); the data at hand has checksum {data.checksum}: use another "
               f"--store for this data, or --force to replace the stored result")
        self._emit(summary, self._record(cell, "error", reason=why, data=data))
        return False

    def _report(self, summary: RunSummary, record: Record) -> None:
        summary.records.append(record)
        if self.on_record is not None:
            self.on_record(record)

    def _emit(self, summary: RunSummary, record: Record) -> None:
        """Write a record this runner produced, journal it and report it."""
        self._report(summary, write_record(self.store, record))

    def _record(self, cell: Cell, status: str, **kwargs: Any) -> Record:
        return make_record(cell, status, device=self.device, run_id=self.run_id, executor=self.executor, **kwargs)

    def _load(self, cell: Cell) -> TaskData:
        """Task data for a cell, loaded once per (task, options, repetition) and kept for the
        next groups (only the latest one, so memory holds one dataset at a time)."""
        key = cell.data_key()
        if key not in self._data:
            self._data.clear()
            task = cell.task_cls()
            try:
                try:
                    loaded = task.load(dict(cell.options), data_seed=cell.seeds()["data"], data_root=self.data_root,
                                       cache_dir=self.cache_dir)
                except DataError as exc:  # the reader's word on the data at hand (not a contract breach)
                    exc.from_reader = True
                    raise
                if not isinstance(loaded, TaskData):
                    raise DataError(f"task {cell.task}: its load() returned {type(loaded).__name__}, not TaskData "
                                    f"(the contract: bench_suite/tasks/base.py)")
                self._data[key] = loaded.check(cell.task).to(self.device)
            except Exception as exc:  # noqa: BLE001 - any loader fault (a plug-in's too) is this data's error
                if env_flag(DEBUG_ENV):
                    traceback.print_exc(file=sys.stderr)
                self._data[key] = exc
        value = self._data[key]
        if isinstance(value, Exception):
            raise value
        return value

    def _run_group(self, group: list[Cell], summary: RunSummary, fallback: str | None = None) -> None:
        """Train one fused group and record its cells. If the fused engine fails (an exception,
        a CUDA out-of-memory included), say so once on stderr and train the cells one by one;
        their records say it (``timing.engine`` starts with ``alone/``, ``timing.fallback``)."""
        try:
            data = self._load(group[0])
        except DataUnavailable as exc:
            for cell in group:
                self._emit(summary, self._record(cell, "skipped", reason=str(exc)))
            return
        except DataError as exc:
            if self.stop_on_data_error and getattr(exc, "from_reader", False):
                raise DataError(f"{exc} (task {group[0].task}: nothing was trained on it; finished results are "
                                f"kept)") from None
            for cell in group:
                self._emit(summary, self._record(cell, "error", reason=exception_line(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - a plug-in loader's own exception, ...
            for cell in group:
                self._emit(summary, self._record(cell, "error", reason=exception_line(exc)))
            return
        if self.on_group_start is not None:
            self.on_group_start(group)
        for cell in group:
            self.store.log_event("start", cell.cell_id, run_id=self.run_id, device=str(self.device),
                                 group_size=len(group))
        seeds = group[0].seeds()
        ids = [c.cell_id for c in group]
        state, problem = self.checkpoints.load(ids)
        if problem is not None:
            print(f"warning: ignoring {problem}; the group restarts from scratch", file=sys.stderr, flush=True)
        elif state is not None and state.get("epoch") is not None:
            epoch, epochs = int(state["epoch"]), int(state.get("epochs") or group[0].train.epochs)
            if self.on_resume is not None:
                self.on_resume(group, epoch, epochs)
            else:
                print(resume_line(group, epoch, epochs), file=sys.stderr, flush=True)
        started = time.monotonic()

        def save(st: dict[str, Any]) -> None:
            t0 = time.monotonic()
            self.checkpoints.save(ids, st)
            self._save_s = max(self._save_s, time.monotonic() - t0)
            for cell_id in ids:
                self.store.log_event("checkpoint", cell_id, run_id=self.run_id, epoch=st["epoch"])

        first_segment = [True]

        def stop(next_segment_s: float) -> str | None:
            if first_segment[0]:  # set-up and first segment of this group: what starting a group costs
                first_segment[0] = False
                self._group_cost_s = max(self._group_cost_s, time.monotonic() - started)
            return self._stop_check(next_segment_s)

        def invalid(message: str) -> None:
            print(f"warning: ignoring the checkpoint {self.checkpoints.path(ids)}: {message}; the group restarts "
                  f"from scratch", file=sys.stderr, flush=True)

        hooks = Checkpointing(resume=state, save=save, every_epochs=self.checkpoint_every,
                              every_seconds=self.checkpoint_every_s, stop=stop, invalid=invalid)
        try:
            specs = [CellSpec(METHODS.get(c.method), c.width, c.activation, c.train, seeds["init"]) for c in group]
            # the initial and final weights travel back only for cells small enough for the theory section
            keep = any(theory.wants_section(data.n, c.width, data.dim, data.num_outputs) for c in group)
            # the fused engine or the reference trainer, by method (bench_suite/train/dispatch.py)
            results = train_cells(data, specs, order_seed=seeds["order"], device=self.device, on_epoch=self.on_epoch,
                                  checkpoint=hooks, keep_weights=keep)
        except TrainingStopped as stopped:
            self._group_cost_s = max(self._group_cost_s, time.monotonic() - started)
            for cell in group:
                self._emit(summary, self._record(
                    cell, "interrupted", data=data,
                    reason=f"stopped at epoch {stopped.epoch}/{stopped.epochs} ({stopped.reason}); checkpointed, "
                           f"re-run to resume"))
            summary.stopped = stopped.reason
            summary.checkpointed.append({"cells": ids, "epoch": stopped.epoch, "epochs": stopped.epochs})
            self._stopping = True
            return
        except KeyboardInterrupt:
            for cell in group:
                self._emit(summary, self._record(cell, "interrupted", reason="interrupted (Ctrl-C); re-run to resume",
                                                 data=data))
            raise
        except Exception as exc:  # noqa: BLE001 - one failing group must not stop the grid
            if len(group) > 1:  # isolate the failing cell: re-run the group's cells one by one
                if env_flag(DEBUG_ENV):
                    traceback.print_exc(file=sys.stderr)
                message = (f"the fused group of {len(group)} cells ({group[0].task}, rep {group[0].repetition}) "
                           f"failed: {exception_line(exc)}; its cells were trained one by one")
                print(f"warning: {message}", file=sys.stderr, flush=True)
                for cell in group:
                    if self._stopping:
                        break
                    self._run_group([cell], summary, fallback=message)
                return
            if env_flag(DEBUG_ENV):
                traceback.print_exc(file=sys.stderr)
            self._emit(summary, self._record(group[0], "error", reason=exception_line(exc), data=data))
            return
        self.checkpoints.remove(ids)
        self.checkpoints.remove_containing(ids)
        interrupted: BaseException | None = None
        for cell, result in zip(group, results):
            if fallback is not None:
                result.timing["fallback"] = fallback
            reason = result.reason
            if result.status == "diverged":
                method = METHODS.get(cell.method)
                own = [f for f in ("train_step", "projection", "lr_schedule") if callable(getattr(method, f, None))]
                hint = ("lower the learning rates (--lr-w/--lr-v)" if method.constrained
                        else "lower the learning rates (--lr-w/--lr-v) or use a constrained method")
                if own:
                    hint += f", or check the method's own {' and '.join(own)}"
                reason = (f"{reason}; {hint} (learning rates were lr_w={cell.train.lr_w:g}, "
                          f"lr_v={cell.train.lr_v:g})")
            record = self._record(cell, result.status, reason=reason, result=result, data=data)
            method = METHODS.get(cell.method)
            if interrupted is not None:  # Ctrl-C in an earlier cell's measurements: record, do not measure
                record.theory = {"jacobian": {"status": "skipped", "reason": "interrupted (Ctrl-C) before the theory "
                                                                           "section was computed"}}
            else:
                try:  # the measurements of the theory section never cost a cell its record
                    record.theory = theory.record_section(
                        data.x_train, data.y_train, method=method, width=cell.width, outputs=data.num_outputs,
                        activation=cell.activation, loss=cell.train.loss, extra=result.extra if keep else None,
                        radius=result.final.get("radius"), finished=result.status == "done",
                        parts=cell.task_cls.theory_parts(dict(cell.options)))
                except KeyboardInterrupt as exc:  # nor does Ctrl-C: the group's training is kept
                    interrupted = exc
                    record.theory = {"jacobian": {"status": "skipped", "reason": "interrupted (Ctrl-C) while the "
                                                                               "theory section was computed"}}
                except Exception as exc:  # noqa: BLE001 - e.g. an SVD of non-finite data
                    record.theory = {"jacobian": {"status": "error", "reason": exception_line(exc)}}
            self._emit(summary, record)
        if interrupted is not None:
            raise interrupted
