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
store: no earlier run on that device, no time estimate.
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
        the float32 rate on most devices). None when the store has no such run on that device."""
        samples = self._samples(device_name, trainer, precision)
        if not samples:
            return None
        target = math.log(max(group_step_flops, 1.0))
        nearest = sorted(samples, key=lambda s: abs(math.log(s[0]) - target))[:k]
        low, high = min(s[0] for s in nearest), max(s[0] for s in nearest)
        note = f"{format_flops(low)}..{format_flops(high)} per step" if low != high else f"{format_flops(low)} per step"
        if group_step_flops > EXTRAPOLATION_FACTOR * high:
            note += (f", extrapolated to {format_flops(group_step_flops)} per step: likely an overestimate "
                     f"(larger steps run faster)")
        elif group_step_flops * EXTRAPOLATION_FACTOR < low:
            note += f", extrapolated to {format_flops(group_step_flops)} per step: likely an underestimate"
        return statistics.median(s[1] for s in nearest), len(nearest), note

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
