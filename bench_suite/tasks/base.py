"""The task contract: data + model shape + loss + reference grids, in one place.

A task is a class registered with ``@register_task``. It declares its option defaults, its
training defaults, its default grid and its named profiles as plain data (readable with
``python -m bench_suite list --profiles``), and one method, ``load``, that returns
:class:`TaskData` or raises :class:`DataUnavailable` (reported as SKIPPED, never a crash).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..registry import Registry


class DataUnavailable(Exception):
    """The task's data is not present; the message says what to put where (reported SKIPPED)."""


class DataError(Exception):
    """The task's data is present but wrong (corrupt, wrong layout or size): one line naming
    the file, what was expected and what to do (reported as an error, non-zero exit)."""


@dataclass
class TaskData:
    x_train: torch.Tensor  # (n, d) float32
    y_train: torch.Tensor  # (n,) int64 labels, or (n, K) float32 regression targets
    num_outputs: int  # K
    classification: bool
    source: str  # human-readable data source, e.g. "CIFAR-10, JPEG re-encoding"
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    checksum: str | None = None  # of the data source (file / folder), when there is one
    info: dict[str, Any] = field(default_factory=dict)  # e.g. class counts

    @property
    def n(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def dim(self) -> int:
        return int(self.x_train.shape[1])

    def to(self, device: torch.device | str) -> "TaskData":
        """Move every tensor to ``device`` once (no-op for tensors already there)."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return TaskData(
            move(self.x_train), move(self.y_train), self.num_outputs, self.classification, self.source,
            move(self.x_test), move(self.y_test), self.checksum, dict(self.info),
        )

    def label_digest(self) -> str:
        """A short hash of the training targets (proves paired comparisons share labels)."""
        return hashlib.sha256(self.y_train.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


class Task:
    """Base class of a task. Subclasses set the class attributes and implement ``load``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # option name -> default (what ``load`` takes: n, d, subset sizes, image size, ...)
    options: ClassVar[dict[str, Any]] = {}
    # TrainConfig field -> default for this task (epochs, batch_size, lr_w, lr_v, loss, eps, ...)
    train_defaults: ClassVar[dict[str, Any]] = {}
    # the grid used when an axis is not given: methods, widths, activations
    grid: ClassVar[dict[str, list]] = {}
    # profile name -> {"description", "device", "methods", "widths", "activations", "seeds",
    #                   "options": {...}, "train": {...}}
    profiles: ClassVar[dict[str, dict[str, Any]]] = {}
    # documented reason why the training defaults are what they are
    defaults_rationale: ClassVar[str] = ""

    def load(
        self, options: dict[str, Any], *, data_seed: int, data_root: str | None, cache_dir: str | None
    ) -> TaskData:
        raise NotImplementedError


TASKS: Registry[type[Task]] = Registry("task")


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: register a :class:`Task` subclass under its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty `name`")
    TASKS.add(cls.name, cls)
    return cls
