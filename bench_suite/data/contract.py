"""The data contract: what a task's ``load`` returns (:class:`TaskData`) and the two ways it
fails: :class:`DataUnavailable` (the data is not there; reported SKIPPED with what to put where)
and :class:`DataError` (present but wrong; reported as an error, one line naming the file and
the fix). Readers, tasks and trainers import it; it imports none of them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.errors import BenchSuiteError, one_line

if TYPE_CHECKING:  # pragma: no cover
    import torch


class DataUnavailable(BenchSuiteError):
    """The task's data is not present; the message says what to put where (reported SKIPPED)."""


class DataError(BenchSuiteError):
    """Data that is present but unusable (corrupt, truncated, wrong layout, wrong counts or sizes).

    What the runner catches and records as an error. Raise it with one message
    (``DataError("...")``), or with (where, problem, fix) so every reader writes the same line:
    its message is one line: ``<file>: <what is wrong>; <what was expected / what to do>``, so a
    runner can put it in a record's ``reason`` as is. Absent data raises
    :class:`bench_suite.tasks.base.DataUnavailable` instead (a skip, not an error).
    """

    def __init__(self, where: str | os.PathLike, problem: str | None = None, fix: str | None = None) -> None:
        if problem is None:  # one message
            self.where, self.problem, self.fix = None, one_line(where), None
            super().__init__(self.problem)
            return
        self.where = os.fspath(where)
        self.problem = one_line(problem)
        self.fix = one_line(fix or "")
        super().__init__(one_line(f"{self.where}: {self.problem}" + (f"; {self.fix}" if self.fix else "")))

    def __reduce__(self):  # picklable across processes despite the structured constructor
        return (type(self), (self.where, self.problem, self.fix) if self.where is not None else (self.problem,))


class OtherDataset(DataUnavailable):
    """The location holds a different known data set (e.g. CIFAR-10's class folders where MNIST
    was looked for): not this reader's data, so the search goes on (and ends in a skip, not an
    error). The message says what was found there."""


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

    def to(self, device: "torch.device | str", dtype: "torch.dtype | None" = None) -> "TaskData":
        """Move every tensor to ``device`` once (no-op for tensors already there); with ``dtype``
        (a floating dtype) the inputs and regression targets are cast to it too (labels stay
        int64)."""
        def move(t):
            if t is None:
                return None
            return t.to(device, dtype) if dtype is not None and t.is_floating_point() else t.to(device)
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
