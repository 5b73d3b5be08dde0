"""The task contract: data + model shape + loss + reference grids, in one place.

A task is a class registered with ``@register_task``. It declares its option defaults, its
training defaults, its default grid and its named profiles as plain data (readable with
``python -m bench_suite list --profiles``), the shape of its data (:meth:`Task.shape`, known
before any data is read), a check of its option values (:meth:`Task.check_options`) and one
method, ``load``, that returns :class:`TaskData` or raises :class:`DataUnavailable` (reported
as SKIPPED, never a crash). This module does not import torch: ``list``, ``plan``, ``check``
and ``report`` read tasks without it.
"""

from __future__ import annotations

import abc
import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..core.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    import torch


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

    def to(self, device: "torch.device | str") -> "TaskData":
        """Move every tensor to ``device`` once (no-op for tensors already there)."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return TaskData(
            move(self.x_train), move(self.y_train), self.num_outputs, self.classification, self.source,
            move(self.x_test), move(self.y_test), self.checksum, dict(self.info),
        )

    def check(self, task: str) -> "TaskData":
        """The task contract on the data a ``load`` returned: raises :class:`DataError` (one line
        naming the task and what is wrong) for wrong types, shapes, labels or non-finite inputs."""
        import torch

        def bad(what: str) -> DataError:
            return DataError(f"task {task}: its load() returned {what} (the contract: bench_suite/tasks/base.py, "
                             f"TaskData)")

        for name in ("x_train", "y_train"):
            if not isinstance(getattr(self, name), torch.Tensor):
                raise bad(f"{name} of type {type(getattr(self, name)).__name__}, not a tensor")
        if self.x_train.dim() != 2 or self.x_train.shape[0] < 1:
            raise bad(f"x_train of shape {tuple(self.x_train.shape)}, not (n, d) with n >= 1")
        if self.y_train.shape[0] != self.x_train.shape[0]:
            raise bad(f"{self.y_train.shape[0]} targets for {self.x_train.shape[0]} inputs")
        if not isinstance(self.num_outputs, int) or self.num_outputs < 1:
            raise bad(f"num_outputs {self.num_outputs!r}, not an integer >= 1")
        if self.classification and (self.y_train.dtype != torch.int64 or self.y_train.dim() != 1):
            raise bad(f"class labels of dtype {self.y_train.dtype} and shape {tuple(self.y_train.shape)}, "
                      f"not int64 (n,)")
        if self.classification and (int(self.y_train.min()) < 0 or int(self.y_train.max()) >= self.num_outputs):
            raise bad(f"labels outside 0..{self.num_outputs - 1}")
        if not self.classification and (self.y_train.dim() != 2 or self.y_train.shape[1] != self.num_outputs):
            raise bad(f"targets of shape {tuple(self.y_train.shape)}, not (n, num_outputs={self.num_outputs})")
        for name in ("x_train", "x_test"):
            t = getattr(self, name)
            if t is not None and not bool(torch.isfinite(t).all()):
                raise bad(f"non-finite values (NaN or inf) in {name}")
        if self.x_test is not None and (self.x_test.dim() != 2 or self.x_test.shape[1] != self.x_train.shape[1]):
            raise bad(f"x_test of shape {tuple(self.x_test.shape)}, not (n_test, d={self.x_train.shape[1]})")
        return self

    def label_digest(self) -> str:
        """A short hash of the training targets (proves paired comparisons share labels)."""
        return hashlib.sha256(self.y_train.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


class Task(abc.ABC):
    """Base class of a task. Subclasses set the class attributes and implement ``load``
    (and, to be priced by ``plan`` and validated up front, ``shape`` and ``check_options``)."""

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
    # True: labels (cross-entropy and accuracy apply); False: regression targets; None: not declared
    classification: ClassVar[bool | None] = None
    # part of its cells' ids (bench_suite/grid/versions.py): bump it when a change moves the task's
    # data (generation, reading, preprocessing, labels); None: the source of its module is used
    version: ClassVar[int | None] = None

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Validate the resolved option values (type and range) before anything uses them;
        return them (normalized). Raises ``ValueError("option NAME ...")`` naming the option.

        The default checks each value against the type of its default (an int default takes an
        int, a float default a finite number, a bool default true/false; a None default takes
        anything); tasks with ranges override this and call ``super().check_options``."""
        out = dict(options)
        for key, value in options.items():
            default = cls.options.get(key)
            out[key] = _check_like(key, value, default)
        return out

    @classmethod
    def shape(cls, options: dict[str, Any]) -> dict[str, Any] | None:
        """The data's shape from the (checked) options, without reading data:
        ``{"n", "d", "k", "n_test"}`` (training samples, input dimension, outputs, test samples;
        ``"exact": False`` when it is an estimate), or None when it cannot be known in advance."""
        return None

    @abc.abstractmethod
    def load(
        self, options: dict[str, Any], *, data_seed: int, data_root: str | None, cache_dir: str | None
    ) -> TaskData:
        """The task's data for these (checked) options; raises :class:`DataUnavailable` (data
        absent: the message says what to put where) or :class:`DataError` (data present but wrong)."""


def _check_like(key: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of the option's ``default`` (see Task.check_options)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "yes", "false", "no"):
            return value.lower() in ("true", "yes")
        raise ValueError(f"option {key} must be true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"option {key} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"option {key} must be a finite number, got {value!r}")
        return float(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise ValueError(f"option {key} must be a string, got {value!r}")
    return value


TASKS: Registry[type[Task]] = Registry("task")


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: register a :class:`Task` subclass under its ``name``."""
    if not cls.name:
        raise ValueError(f"task class {cls.__name__} needs a non-empty `name`")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise TypeError(f"task {cls.name!r} ({cls.__module__}.{cls.__name__}) does not implement "
                        f"{', '.join(missing)}: see bench_suite/tasks/base.py for the contract")
    TASKS.add(cls.name, cls)
    return cls
