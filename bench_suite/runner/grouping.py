"""What a run would do, without torch: which records settle a cell, how cells group, one-line summaries.

``plan`` (which must not import torch) and :class:`bench_suite.runner.runner.Runner` share these, so
``plan`` applies the same test as ``run``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Collection

from ..core.records import FINISHED, Record
from ..grid import Cell
from ..methods import METHODS
from ..store.result_store import ResultStore


def is_settled(record: Record | None, *, force: bool, run_id: str | Collection[str]) -> bool:
    """Whether a run keeps ``record`` rather than re-running its cell: a finished record does;
    under ``force`` only one written by this very run (by any of its workers), so ``--force``
    re-runs each cell once, not once per worker. ``run_id`` may be several ids: a run that
    collects the jobs of earlier runs (``--executor slurm``) counts their records as its own.
    (The data the record was computed from is compared with the data at hand when the cell's
    group is loaded: :meth:`Runner.run`.)"""
    if record is None or record.status not in FINISHED:
        return False
    if not force:
        return True
    return record.run_id == run_id if isinstance(run_id, str) else record.run_id in run_id


@dataclass
class PlanItem:
    cell: Cell
    record: Record | None  # what the store holds for the cell now
    will_run: bool


def plan(store: ResultStore, cells: list[Cell], *, force: bool = False, run_id: str = "") -> list[PlanItem]:
    """What a run would do now, cell by cell (the same predicate as :class:`Runner`, nothing run).
    The data checksum is compared only by ``run`` (after loading the data)."""
    return [PlanItem(cell, record := store.get(cell.cell_id), not is_settled(record, force=force, run_id=run_id))
            for cell in unique(cells)]


def describe(record: Record) -> str:
    """One line per finished cell (quiet mode, worker logs)."""
    final = record.final or {}
    bits = [f"{k}={final[k]:.4g}" for k in ("train_loss", "train_acc", "test_acc")
            if isinstance(final.get(k), (int, float))]
    line = f"[{record.status}] {record.name} {' '.join(bits)}".rstrip()
    if record.status not in FINISHED and record.reason:
        line += f" ({record.reason})"
    return line


def group_cells(cells: list[Cell], *, fuse: bool = True, max_group: int | None = None) -> list[list[Cell]]:
    """Fused groups in first-seen order (one group per cell when not fusing), each cut into
    chunks of at most ``max_group`` cells, so that several workers can share one group.
    Deterministic: every worker given the same cells forms the same groups."""
    if not fuse:
        return [[c] for c in cells]
    out: OrderedDict[tuple, list[Cell]] = OrderedDict()
    for cell in cells:
        out.setdefault(cell.group_key(), []).append(cell)
    if max_group is None:
        return list(out.values())
    return [group[i : i + max_group] for group in out.values() for i in range(0, len(group), max_group)]


def trainer_groups(group: list[Cell]) -> list[list[Cell]]:
    """A fused group cut by trainer (``Method.trainer``): its fused cells stay one group, each
    reference-trainer cell is a group of its own (that trainer trains one cell at a time)."""
    fused = [c for c in group if METHODS.get(c.method).trainer == "fused"]
    return ([fused] if fused else []) + [[c] for c in group if METHODS.get(c.method).trainer != "fused"]


def unique(cells: list[Cell]) -> list[Cell]:
    """The cells without repeats (same id), first occurrence kept."""
    seen: set[str] = set()
    return [c for c in cells if not (c.cell_id in seen or seen.add(c.cell_id))]
