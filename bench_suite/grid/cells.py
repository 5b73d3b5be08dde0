"""A cell: one run of one configuration (task, task options, method, width, activation,
TrainConfig, repetition), its canonical name and its id (what ``grid.versions`` and the
protocol make of it). Grids of cells are built from profiles (``grid.expand``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.config import TrainConfig
from ..core.records import PROTOCOL_VERSION, compute_cell_id
from ..core.seeds import seeds_for
from ..tasks import TASKS, Task
from .versions import code_version


@dataclass(frozen=True)
class Cell:
    task: str
    method: str
    width: int
    activation: str
    repetition: int
    train: TrainConfig
    # options take part in ==, not in hash (a dict is unhashable); the profile in neither: a
    # cell reached through a profile or through the same axes on the command line is one cell
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    profile: str | None = field(default=None, hash=False, compare=False)

    @property
    def task_cls(self) -> type[Task]:
        return TASKS.get(self.task)

    def seeds(self) -> dict[str, int]:
        return seeds_for(self.task, self.repetition)

    def config(self) -> dict[str, Any]:
        """The resolved configuration, as stored in the record."""
        return {
            "task": self.task,
            "task_options": dict(sorted(self.options.items())),
            "method": self.method,
            "width": self.width,
            "activation": self.activation,
            "repetition": self.repetition,
            "train": asdict(self.train),
        }

    def code_version(self) -> dict[str, Any]:
        """The versions of the code that computes it (``versions.code_version``)."""
        return code_version(self.task, self.method, self.activation)

    @property
    def name(self) -> str:
        """``task[method=…,width=…,activation=…,rep=…,<values that differ from the task's defaults>]``."""
        task_cls = self.task_cls
        parts = [f"method={self.method}", f"width={self.width}", f"activation={self.activation}",
                 f"rep={self.repetition}"]
        base_train = asdict(TrainConfig(**task_cls.train_defaults))
        for key, value in asdict(self.train).items():
            if value != base_train[key]:
                parts.append(f"{key}={_fmt(value)}")
        for key, value in sorted(self.options.items()):
            if task_cls.options.get(key) != value:
                parts.append(f"{key}={_fmt(value)}")
        return f"{self.task}[{','.join(parts)}]"

    @property
    def cell_id(self) -> str:
        """A hash of what it computes: config, seeds, code version and protocol (docs/design.md,
        "What identifies a result")."""
        return compute_cell_id(self.config(), self.seeds(), self.code_version(), PROTOCOL_VERSION)

    def to_dict(self) -> dict[str, Any]:
        """The cell as plain data (JSON-safe): its resolved :meth:`config` plus the profile, what
        executors ship to workers, which rebuild it with :meth:`from_dict`. ``cell_id`` travels
        along so a worker can tell when its code differs from the submitter's (the ids differ)."""
        return {**self.config(), "profile": self.profile, "cell_id": self.cell_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cell":
        """Rebuild a cell from :meth:`to_dict` (``cell_id``, if present, is not trusted here)."""
        return cls(
            data["task"], data["method"], int(data["width"]), data["activation"], int(data["repetition"]),
            TrainConfig(**data["train"]), dict(data.get("task_options") or {}), data.get("profile"),
        )

    def group_key(self) -> tuple:
        """Cells with equal keys share data and batch order, so the engine can fuse them."""
        return (self.task, json.dumps(self.options, sort_keys=True), self.repetition, self.train.schedule_key())

    def data_key(self) -> tuple:
        return (self.task, json.dumps(self.options, sort_keys=True), self.repetition)


def _fmt(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)

