"""Progress for logs: where there is no terminal (a batch job's log, a worker's, a pipe),
a line per fused group in training every so often, and a line when a group resumes from
its checkpoint. Torch-free.

The interval is ``$BENCH_SUITE_HEARTBEAT_S`` seconds (default :data:`DEFAULT_HEARTBEAT_S`), or
what the caller gives (``WorkerOptions.heartbeat_s``).
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable

from ..grid import Cell
from .cost import format_seconds

HEARTBEAT_ENV = "BENCH_SUITE_HEARTBEAT_S"
DEFAULT_HEARTBEAT_S = 60.0  # a line a minute: a stalled run shows within minutes, a long one stays readable


def heartbeat_interval(value: float | None = None) -> float:
    """Seconds between two progress lines: ``value`` when given, else ``$BENCH_SUITE_HEARTBEAT_S``,
    else :data:`DEFAULT_HEARTBEAT_S`. ``ValueError`` (one line) for a value that is not a
    positive number."""
    origin = "heartbeat_s"
    if value is None:
        text = os.environ.get(HEARTBEAT_ENV, "").strip()
        if not text:
            return DEFAULT_HEARTBEAT_S
        origin = f"${HEARTBEAT_ENV}"
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{origin}={text!r}: give a number of seconds, e.g. 60") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{origin}={value!r}: give a positive number of seconds, e.g. 60")
    return float(value)


def group_label(cells: list[Cell]) -> str:
    """``cifar10_random rep 0 (4 fused)``: a fused group in one phrase."""
    return f"{cells[0].task} rep {cells[0].repetition} ({len(cells)} fused)"


def resume_line(cells: list[Cell], epoch: int, epochs: int) -> str:
    """What a run says when a group resumes from its checkpoint."""
    return (f"resuming {len(cells)} cell(s) from the checkpoint at epoch {epoch}/{epochs} "
            f"({cells[0].task} rep {cells[0].repetition})")


class Heartbeat:
    """Feeds on a Runner's ``on_group_start``, ``on_epoch`` and ``on_resume`` and emits, at most
    once per ``interval_s``, ``<group>: epoch E/T, <elapsed> elapsed, about <left> left``. The
    time left is the group's pace so far (epochs trained in this process, a resumed group's
    earlier epochs excluded) times the epochs to go. ``clock`` is injectable for tests."""

    def __init__(self, emit: Callable[[str], None], interval_s: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.emit = emit
        self.interval_s = heartbeat_interval(interval_s)
        self.clock = clock
        self.label = ""
        self.started = self.last = clock()
        self.from_epoch = 0

    def group_start(self, cells: list[Cell]) -> None:
        self.label = group_label(cells)
        self.started = self.last = self.clock()
        self.from_epoch = 0

    def resume(self, cells: list[Cell], epoch: int, epochs: int) -> None:
        self.from_epoch = epoch
        self.emit(resume_line(cells, epoch, epochs))

    def epoch(self, done: int, total: int) -> None:
        now = self.clock()
        if now - self.last < self.interval_s:
            return
        self.last = now
        elapsed = now - self.started
        trained = done - self.from_epoch
        left = elapsed / trained * (total - done) if trained > 0 else None
        self.emit(f"{self.label or 'group'}: epoch {done}/{total}, {format_seconds(elapsed)} elapsed, "
                  f"about {format_seconds(left)} left")
