"""Run cells into the store: group them for the fused engine, skip finished ones, record each.

Every cell ends as exactly one record: ``done`` / ``diverged`` (finished: kept, skipped on the
next run), ``error`` (an exception, with its message; the grid goes on), ``skipped`` (the data
is not there; the reason says what to do) or ``interrupted`` (Ctrl-C; re-run to resume).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from . import provenance
from .grid import PROTOCOL_VERSION, Cell
from .methods import METHODS
from .store import ResultStore
from .tasks import DataError, DataUnavailable, TaskData
from .training import CellSpec, train_group

DATA_ROOT_ENV = "BENCH_SUITE_DATA_ROOT"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available; use --device cpu or auto")
    return dev


@dataclass
class RunSummary:
    records: list[dict[str, Any]] = field(default_factory=list)  # the records this run wrote or found
    cached: int = 0  # finished cells found in the store and not re-run
    claimed_elsewhere: int = 0  # cells another runner holds right now

    def count(self, status: str) -> int:
        return sum(1 for r in self.records if r["status"] == status)

    @property
    def exit_code(self) -> int:
        """0 all done; 1 any cell errored, diverged or was interrupted; 3 some skipped (no data)."""
        if any(r["status"] in ("error", "diverged", "interrupted") for r in self.records):
            return 1
        if any(r["status"] == "skipped" for r in self.records):
            return 3
        return 0


def make_record(cell: Cell, status: str, *, reason: str | None = None, result=None, data: TaskData | None = None,
                device: torch.device | None = None) -> dict[str, Any]:
    prov = provenance.collect(device or torch.device("cpu"), cell.train.precision)
    prov.update({
        "protocol": PROTOCOL_VERSION,
        "data_source": data.source if data is not None else None,
        "data_checksum": data.checksum if data is not None else None,
    })
    record: dict[str, Any] = {
        "protocol": PROTOCOL_VERSION,
        "cell_id": cell.cell_id,
        "name": cell.name,
        "profile": cell.profile,
        "status": status,
        "reason": reason,
        "config": cell.config(),
        "seeds": cell.seeds(),
        "provenance": prov,
    }
    if data is not None:
        n, d, k = data.n, data.dim, data.num_outputs
        record["shape"] = {"n": n, "d": d, "m": cell.width, "k": k, "width_ratio": cell.width * d / (2 * n)}
        record["label_digest"] = data.label_digest()
        if data.info:
            record["data_info"] = data.info
    if result is not None:
        record.update({"curves": result.curves, "final": result.final, "timing": result.timing,
                       "w0_digest": result.w0_digest})
    return record


class Runner:
    """Runs cells into a store. ``on_record`` is called with each record written."""

    def __init__(
        self,
        store: ResultStore,
        *,
        device: str = "auto",
        data_root: str | None = None,
        cache_dir: str | None = None,
        force: bool = False,
        fuse: bool = True,
        on_record: Callable[[dict[str, Any]], None] | None = None,
        on_epoch: Callable[[int, int], None] | None = None,
        on_group_start: Callable[[list[Cell]], None] | None = None,
    ) -> None:
        self.store = store
        self.device = resolve_device(device)
        self.data_root = data_root if data_root is not None else os.environ.get(DATA_ROOT_ENV)
        self.cache_dir = cache_dir
        self.force = force
        self.fuse = fuse
        self.on_record = on_record
        self.on_epoch = on_epoch
        self.on_group_start = on_group_start
        self._data: OrderedDict[tuple, TaskData | Exception] = OrderedDict()

    def _emit(self, summary: RunSummary, record: dict[str, Any], *, write: bool = True) -> None:
        if write and not self.store.write(record, force=self.force):
            record = self.store.get(record["cell_id"]) or record  # a finished record stays
        summary.records.append(record)
        if self.on_record is not None:
            self.on_record(record)

    def _load(self, cell: Cell) -> TaskData:
        """Task data for a cell, loaded once per (task, options, repetition) and kept for the
        next groups (only the latest one, so memory holds one dataset at a time)."""
        key = cell.data_key()
        if key not in self._data:
            self._data.clear()
            task = cell.task_cls()
            try:
                self._data[key] = task.load(
                    dict(cell.options), data_seed=cell.seeds()["data"], data_root=self.data_root,
                    cache_dir=self.cache_dir,
                ).to(self.device)
            except (DataUnavailable, DataError, ValueError, OSError) as exc:
                self._data[key] = exc
        value = self._data[key]
        if isinstance(value, Exception):
            raise value
        return value

    def groups(self, cells: list[Cell]) -> list[list[Cell]]:
        """Fused groups in first-seen order (or one group per cell when not fusing)."""
        if not self.fuse:
            return [[c] for c in cells]
        out: OrderedDict[tuple, list[Cell]] = OrderedDict()
        for cell in cells:
            out.setdefault(cell.group_key(), []).append(cell)
        return list(out.values())

    def run(self, cells: list[Cell]) -> RunSummary:
        summary = RunSummary()
        seen: set[str] = set()
        unique = [c for c in cells if not (c.cell_id in seen or seen.add(c.cell_id))]
        for group in self.groups(unique):
            pending = [c for c in group if self.force or not self.store.is_finished(c.cell_id)]
            for cell in group:
                if cell not in pending:
                    summary.cached += 1
                    self._emit(summary, self.store.get(cell.cell_id), write=False)
            if not pending:
                continue
            with self.store.claim([c.cell_id for c in pending]) as claimed:
                mine = [c for c in pending if c.cell_id in claimed]
                summary.claimed_elsewhere += len(pending) - len(mine)
                # another runner may have finished some while we were waiting: re-read
                fresh = [c for c in mine if self.force or not self.store.is_finished(c.cell_id)]
                for cell in mine:
                    if cell not in fresh:
                        summary.cached += 1
                        self._emit(summary, self.store.get(cell.cell_id), write=False)
                if fresh:
                    self._run_group(fresh, summary)
        return summary

    def _run_group(self, group: list[Cell], summary: RunSummary) -> None:
        try:
            data = self._load(group[0])
        except DataUnavailable as exc:
            for cell in group:
                self._emit(summary, make_record(cell, "skipped", reason=str(exc), device=self.device))
            return
        except (DataError, ValueError, OSError) as exc:
            for cell in group:
                self._emit(summary, make_record(cell, "error", reason=_one_line(exc), device=self.device))
            return
        if self.on_group_start is not None:
            self.on_group_start(group)
        seeds = group[0].seeds()
        specs = [CellSpec(METHODS.get(c.method), c.width, c.activation, c.train, seeds["init"]) for c in group]
        try:
            results = train_group(data, specs, order_seed=seeds["order"], device=self.device, on_epoch=self.on_epoch)
        except KeyboardInterrupt:
            for cell in group:
                self._emit(summary, make_record(cell, "interrupted", reason="interrupted (Ctrl-C); re-run to resume",
                                                data=data, device=self.device))
            raise
        except Exception as exc:  # noqa: BLE001 - one failing group must not stop the grid
            if len(group) > 1:  # isolate the failing cell: re-run the group's cells one by one
                for cell in group:
                    self._run_group([cell], summary)
                return
            if os.environ.get("BENCH_SUITE_DEBUG"):
                traceback.print_exc(file=sys.stderr)
            self._emit(summary, make_record(group[0], "error", reason=_one_line(exc), data=data, device=self.device))
            return
        for cell, result in zip(group, results):
            reason = result.reason
            if result.status == "diverged":
                reason = (f"{reason}; lower the learning rates (--lr-w/--lr-v) or use a constrained method "
                          f"(learning rates were lr_w={cell.train.lr_w:g}, lr_v={cell.train.lr_v:g})")
            self._emit(summary, make_record(cell, result.status, reason=reason, result=result, data=data,
                                            device=self.device))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
