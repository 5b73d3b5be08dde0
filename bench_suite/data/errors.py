"""The exception types of the data readers: bad data on disk said in one line, and "another data set is here"."""

from __future__ import annotations

import os

from ..tasks.base import DataError as TaskDataError
from ..tasks.base import DataUnavailable


def one_line(text: object) -> str:
    """Collapse any whitespace (newlines from a wrapped library error included) to single spaces."""
    return " ".join(str(text).split())


class DataError(TaskDataError):
    """Data that is present but unusable (corrupt, truncated, wrong layout, wrong counts or sizes).

    A subclass of the task contract's ``DataError`` (what the runner catches and records as an
    error), with a structured constructor so every reader writes the same one-line message.

    Its message is one line: ``<file>: <what is wrong>; <what was expected / what to do>``, so a
    runner can put it in a record's ``reason`` as is. Absent data raises
    :class:`bench_suite.tasks.base.DataUnavailable` instead (a skip, not an error).
    """

    def __init__(self, where: str | os.PathLike, problem: str, fix: str) -> None:
        self.where = os.fspath(where)
        self.problem = one_line(problem)
        self.fix = one_line(fix)
        super().__init__(one_line(f"{self.where}: {self.problem}; {self.fix}"))

    def __reduce__(self):  # picklable across processes despite the 3-argument constructor
        return (type(self), (self.where, self.problem, self.fix))


class OtherDataset(DataUnavailable):
    """The location holds a different known data set (e.g. CIFAR-10's class folders where MNIST
    was looked for): not this reader's data, so the search goes on (and ends in a skip, not an
    error). The message says what was found there."""
