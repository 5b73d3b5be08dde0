"""What a cell will cost, known before it runs: its data shape, its FLOPs and a time estimate.

``plan`` uses this to price a grid without loading any data set. The shape (n, d, K and the
test-set size) of a cell's data comes from, first to last:

1. the task's own ``Task.shape(options)``, when it is exact (``{"n", "d", "k", "n_test"}``);
2. an earlier record of the same task and options in the store (measured on the data);
3. the task's estimate (``"exact": False``: Restricted ImageNet's size depends on the images
   present);
4. otherwise unknown: the cell is listed without a cost.

The FLOP count is the training engine's own (``flops.step_flops`` per step, plus 2·d·m per
evaluated sample), so a finished ``done`` record's ``timing.flops`` equals the estimate.
The time is FLOPs / the FLOP rate that earlier runs on the same device model
(``provenance.device_name``) achieved at a similar size (FLOPs per step), read from the
store, of the same trainer where there is one (else another trainer's, and the note says so):
no earlier run on that device, no time estimate. :func:`estimate` is the one estimate every
command shows (``plan``, ``run`` before it starts, ``list --profiles``, ``doctor``).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable

from ..core.flops import step_flops
from ..core.records import Record
from ..grid import Cell
from ..methods import METHODS

# an estimate from earlier groups more than this factor smaller/larger per step says so
EXTRAPOLATION_FACTOR = 4.0


@dataclass(frozen=True)
class Shape:
    n: int  # training samples
    d: int  # input dimension
    k: int  # outputs (classes, or regression targets)
    n_test: int  # test samples (0: no test split)
    source: str  # "task", "store" or "rule"
    exact: bool = True


def _options_key(task: str, options: dict[str, Any]) -> tuple[str, str]:
    return task, json.dumps(options, sort_keys=True, default=str)


class CostModel:
    """Shapes, FLOPs and time estimates for cells, backed by the records already in a store.

    ``records`` is a list or a function returning one (e.g. ``store.records``): a function is
    called only when needed — an approximate or missing shape rule, or a time estimate — so
    pricing built-in tasks does not parse a large store."""

    def __init__(self, records: list[Record] | Callable[[], list[Record]]) -> None:
        self._source = records
        self._loaded: list[Record] | None = None
        self._shapes: dict[tuple[str, str], Shape] = {}
        self._sample_cache: dict[str, list[tuple[float, float]]] = {}

    @property
    def _records(self) -> list[Record]:
        if self._loaded is None:
            self._loaded = list(self._source() if callable(self._source) else self._source)
            for record in self._loaded:
                shape = record.shape
                config = record.config
                if not shape or "task" not in config:
                    continue
                n_test = shape.get("n_test")
                if n_test is None:  # records written before n_test was recorded
                    n_test = (record.data_info or {}).get("n_test", 0)
                key = _options_key(config["task"], config.get("task_options") or {})
                self._shapes[key] = Shape(int(shape["n"]), int(shape["d"]), int(shape["k"]), int(n_test or 0),
                                          "store")
        return self._loaded

    def shape(self, cell: Cell) -> Shape | None:
        """The task's declared shape when exact, else a record's, else the task's estimate."""
        value = cell.task_cls.shape(dict(cell.options))
        declared = None
        if value is not None:
            declared = Shape(int(value["n"]), int(value["d"]), int(value["k"]), int(value.get("n_test") or 0),
                             "task", bool(value.get("exact", True)))
            if declared.exact:
                return declared
        self._records  # noqa: B018 - loads the store's shapes
        return self._shapes.get(_options_key(cell.task, cell.options)) or declared

    def flops(self, cell: Cell) -> float | None:
        """FLOPs of the whole cell (training steps + exact evaluations), as the engine counts."""
        shape = self.shape(cell)
        return None if shape is None else cell_flops(cell, shape)

    def rate(self, device_name: str, group_step_flops: float, k: int = 5,
             trainer: str = "fused", precision: str | None = None) -> tuple[float, int, str] | None:
        """(FLOP/s, records used, how chosen) for a fused group doing ``group_step_flops`` per
        step on ``device_name``: the median rate of the ``k`` earlier ``done`` groups there
        nearest in FLOPs per step (small steps are overhead-bound and run at a fraction of
        the rate of large ones, so a rate measured at another size would mislead), of the same
        ``trainer`` (the reference trainer runs at a fraction of the fused engine's rate) and,
        with ``precision``, of the same word size (:func:`word_size`: fp64 runs at a fraction of
        the float32 rate on most devices); when the device has no run of that trainer, another
        trainer's rate (said in the note). None when the store has no such run on that device."""
        samples = self._samples(device_name, trainer, precision)
        borrowed = None
        if not samples:  # no run of this trainer here: another trainer's rate beats no estimate
            for other in sorted(self._trainers(device_name) - {trainer}):
                samples, borrowed = self._samples(device_name, other, precision), other
                break
        if not samples:
            return None
        target = math.log(max(group_step_flops, 1.0))
        nearest = sorted(samples, key=lambda s: abs(math.log(s[0]) - target))[:k]
        low, high = min(s[0] for s in nearest), max(s[0] for s in nearest)
        note = f"{format_flops(low)}..{format_flops(high)} per step" if low != high else f"{format_flops(low)} per step"
        if borrowed is not None:
            note += f", measured with the {borrowed} trainer (no {trainer}-trainer run on this device yet)"
        if group_step_flops > EXTRAPOLATION_FACTOR * high:
            note += (f", extrapolated to {format_flops(group_step_flops)} per step: likely an overestimate "
                     f"(larger steps run faster)")
        elif group_step_flops * EXTRAPOLATION_FACTOR < low:
            note += f", extrapolated to {format_flops(group_step_flops)} per step: likely an underestimate"
        return statistics.median(s[1] for s in nearest), len(nearest), note

    def _trainers(self, device_name: str) -> set[str]:
        """The trainers of the ``done`` records on ``device_name``."""
        return {(r.timing or {}).get("trainer") or "fused" for r in self._records
                if r.status == "done" and r.provenance.get("device_name") == device_name}

    def _samples(self, device_name: str, trainer: str = "fused",
                 precision: str | None = None) -> list[tuple[float, float]]:
        """(group FLOPs per step, group FLOP/s) of each earlier ``done`` record on the device
        run by ``trainer`` (a fused group's cells share one clock, so its rate is the group's),
        of ``precision``'s word size when given."""
        key = f"{device_name}\0{trainer}\0{None if precision is None else word_size(precision)}"
        if key in self._sample_cache:
            return self._sample_cache[key]
        out = []
        for record in self._records:
            prov, timing = record.provenance, record.timing or {}
            shape, train = record.shape or {}, record.config.get("train") or {}
            if record.status != "done" or prov.get("device_name") != device_name:
                continue
            if (timing.get("trainer") or "fused") != trainer:
                continue
            if precision is not None and word_size(train.get("precision") or "fp32") != word_size(precision):
                continue
            try:
                rate = float(timing["group_tflops_per_s"]) * 1e12
                seconds = float(timing["train_time_s"])
                n, batch = int(shape["n"]), train.get("batch_size") or int(shape["n"])
                steps = int(timing["epochs"]) * math.ceil(n / min(int(batch), n))
            except (KeyError, TypeError, ValueError):
                continue
            if rate > 0 and seconds > 0 and steps > 0 and math.isfinite(rate):
                out.append((rate * seconds / steps, rate))
        self._sample_cache[key] = out
        return out


def word_size(precision: str) -> int:
    """Bytes per number a precision computes with: 8 for fp64, else 4 (fp32, tf32 and bf16 keep
    float32 weights and data; their rates are pooled)."""
    return 8 if precision == "fp64" else 4


@dataclass
class Estimate:
    """What a set of cells will cost on one device model: FLOPs and device seconds per cell
    (None: unknown), and how each rate was chosen. The one estimate ``plan``, ``run``,
    ``list --profiles`` and ``doctor`` show."""

    device_name: str
    flops: dict[str, float | None]  # cell id -> FLOPs
    seconds: dict[str, float | None]  # cell id -> device seconds, from the rate of its fused group
    notes: list[str]  # one line per rate used

    @property
    def total_flops(self) -> float:
        return sum(f for f in self.flops.values() if f is not None)

    @property
    def unknown_flops(self) -> int:
        return sum(f is None for f in self.flops.values())

    @property
    def total_seconds(self) -> float:
        return sum(s for s in self.seconds.values() if s is not None)

    @property
    def unknown_time(self) -> int:
        return sum(s is None for s in self.seconds.values())

    @property
    def known(self) -> bool:
        """Some time is known (a rate of this device and a size for at least one cell)."""
        return bool(self.seconds) and self.unknown_time < len(self.seconds)

    def time_text(self, workers: int = 1) -> str:
        """``about 3.2h of device time`` (+ cells without one), or why it is unknown."""
        if not self.seconds:
            return "nothing to run"
        if not self.known:
            return f"time unknown: no earlier run on this device ({self.device_name}) in the store, or sizes unknown"
        text = f"about {format_seconds(self.total_seconds)} of device time"
        if self.unknown_time:
            text += f" + {self.unknown_time} cell(s) without an estimate"
        if workers > 1:
            text += f" (shared by {workers} workers)"
        return text

    def cost_text(self) -> str:
        return format_flops(self.total_flops) + (f" + {self.unknown_flops} cell(s) of unknown size"
                                                 if self.unknown_flops else "")

    def short(self) -> str:
        """``3.2h`` / ``unknown``: a table cell."""
        if not self.known:
            return "unknown"
        return format_seconds(self.total_seconds) + ("+" if self.unknown_time else "")


def estimate(cells: list[Cell], costs: CostModel, device_name: str, *, fuse: bool = True,
             max_group: int | None = None) -> Estimate:
    """The cost of running ``cells`` on ``device_name``: the cells are grouped as ``run`` would
    group them (fused groups cut by ``max_group``, then by trainer), and each group's time is
    its FLOPs over the rate earlier groups of a similar size achieved on that device model
    (:meth:`CostModel.rate`)."""
    from .grouping import group_cells, trainer_groups

    flops: dict[str, float | None] = {}
    seconds: dict[str, float | None] = {}
    notes: set[str] = set()
    groups = group_cells(cells, fuse=fuse, max_group=max_group)
    for group in (part for g in groups for part in trainer_groups(g)):
        per_step = group_step_flops(group, costs)
        trainer = METHODS.get(group[0].method).trainer
        rate = (costs.rate(device_name, per_step, trainer=trainer, precision=group[0].train.precision)
                if per_step is not None else None)
        if rate is not None:
            notes.add(f"{trainer} trainer: {format_flops(rate[0])}/s (median of {rate[1]} earlier group(s) "
                      f"at {rate[2]})")
        for cell in group:
            flops[cell.cell_id] = costs.flops(cell)
            f = flops[cell.cell_id]
            seconds[cell.cell_id] = f / rate[0] if f is not None and rate is not None else None
    return Estimate(device_name, flops, seconds, sorted(notes))


def group_step_flops(cells: list[Cell], model: CostModel) -> float | None:
    """FLOPs per step of a fused group (its cells' whole-run FLOPs over its steps)."""
    total = 0.0
    for cell in cells:
        shape = model.shape(cell)
        if shape is None:
            return None
        batch = shape.n if cell.train.batch_size is None else min(cell.train.batch_size, shape.n)
        total += cell_flops(cell, shape) / (cell.train.epochs * math.ceil(shape.n / batch))
    return total


def cell_flops(cell: Cell, shape: Shape) -> float:
    """The engine's count (``training.train_group``): every step is charged a full batch."""
    cfg = cell.train
    batch = shape.n if cfg.batch_size is None else min(cfg.batch_size, shape.n)
    steps_per_epoch = math.ceil(shape.n / batch)
    output = METHODS.get(cell.method).output
    training = step_flops(batch, shape.d, cell.width, shape.k, output) * steps_per_epoch * cfg.epochs
    evaluations = cfg.epochs // cfg.eval_every + (1 if cfg.epochs % cfg.eval_every else 0)
    return training + evaluations * 2.0 * (shape.n + shape.n_test) * shape.d * cell.width


def format_flops(value: float | None) -> str:
    if value is None:
        return "?"
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} FLOP"


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.1f}min"
    hours = minutes / 60
    return f"{hours:.1f}h" if hours < 48 else f"{hours / 24:.1f}d"
