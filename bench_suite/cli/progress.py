"""What `run` shows while it works: a bar over the cells and one over the epochs of the group in
training; without a terminal (or with --quiet), one line per finished cell and a heartbeat line
per group in training every minute or so (runner.heartbeat), for logs."""

from __future__ import annotations

import sys

from ..core.records import FAILED, Record
from ..grid import Cell
from ..runner.cost import CostModel
from ..runner.grouping import describe
from ..runner.heartbeat import Heartbeat, resume_line


class _Progress:
    """A bar over the cells to run (done / cached / to run, ETA) and one over the epochs of the
    group in training; in quiet mode (or without a terminal) one line per finished cell.

    The cell bar advances by each cell's estimated FLOPs (when every size is known) and within
    a group by its epochs, so the ETA follows the work left, not a count of unequal cells."""

    def __init__(self, quiet: bool, costs: CostModel | None = None, *, heartbeat_s: float | None = None) -> None:
        self.quiet = quiet
        self.heartbeat = Heartbeat(self._line, heartbeat_s) if quiet else None
        self.costs = costs
        self.cells = None
        self.epochs = None
        self.weights: dict[str, float] = {}
        self.credited: dict[str, float] = {}
        self.group: list[Cell] = []
        self.n_todo = self.n_cached = self.n_finished = self.n_failed = 0
        self._last_reason: str | None = None

    def plan(self, cached: list[Cell], todo: list[Cell]) -> None:
        self.n_cached, self.n_todo = len(cached), len(todo)
        flops = [self.costs.flops(c) if self.costs is not None else None for c in todo]
        known = all(f is not None and f > 0 for f in flops)
        self.weights = {c.cell_id: (f if known else 1.0) for c, f in zip(todo, flops)}
        if self.quiet:
            print(f"{len(cached) + len(todo)} cells: {len(cached)} finished in the store, {len(todo)} to run",
                  file=sys.stderr, flush=True)
            return
        from tqdm import tqdm

        self._tqdm = tqdm
        self.cells = tqdm(total=sum(self.weights.values()) or 1.0, desc="cells", position=0,
                          bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
        self._describe()

    def _describe(self) -> None:
        if self.cells is not None:
            self.cells.set_description_str(f"cells: {self.n_finished}/{self.n_todo} run, {self.n_failed} failed, "
                                           f"{self.n_cached} cached;")

    def _credit(self, cell_id: str, amount: float) -> None:
        if self.cells is None or cell_id not in self.weights:
            return
        amount = min(amount, self.weights[cell_id] - self.credited.get(cell_id, 0.0))
        if amount > 0:
            self.credited[cell_id] = self.credited.get(cell_id, 0.0) + amount
            self.cells.update(amount)

    @staticmethod
    def _line(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def resume(self, group: list[Cell], epoch: int, epochs: int) -> None:
        if self.heartbeat is not None:
            self.heartbeat.resume(group, epoch, epochs)
        elif self.cells is not None:
            self._tqdm.write(resume_line(group, epoch, epochs), file=sys.stderr)
        else:
            self._line(resume_line(group, epoch, epochs))

    def group_start(self, group: list[Cell]) -> None:
        self.group = group
        if self.heartbeat is not None:
            self.heartbeat.group_start(group)
        if self.quiet or self.cells is None:
            return
        if self.epochs is not None:
            self.epochs.close()
        label = f"{group[0].task} rep {group[0].repetition} ({len(group)} fused)"
        self.epochs = self._tqdm(total=group[0].train.epochs, desc=label, unit="ep", position=1, leave=False)

    def epoch(self, done: int, total: int) -> None:
        if self.heartbeat is not None:
            self.heartbeat.epoch(done, total)
        if self.epochs is not None:
            self.epochs.update(done - self.epochs.n)
        for cell in self.group:
            target = self.weights.get(cell.cell_id, 0.0) * done / total
            self._credit(cell.cell_id, target - self.credited.get(cell.cell_id, 0.0))

    def record(self, record: Record) -> None:
        cell_id = record.cell_id
        if cell_id not in self.weights:  # found finished in the store: counted by plan()
            return
        self.n_finished += 1
        if record.status in FAILED:
            self.n_failed += 1
        if self.quiet:
            line = describe(record)
            if record.reason and record.reason == self._last_reason:  # one fault, said once
                line = line.replace(f" ({record.reason})", " (the same reason as above)")
            self._last_reason = record.reason
            print(f"[{self.n_finished}/{self.n_todo}] {line}", file=sys.stderr, flush=True)
            return
        self._credit(cell_id, float("inf"))
        self._describe()

    def close(self) -> None:
        for bar in (self.epochs, self.cells):
            if bar is not None:
                bar.close()
        self.epochs = self.cells = None
