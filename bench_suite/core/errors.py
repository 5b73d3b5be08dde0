"""The package's own exceptions and one-line messages: what every stage raises and prints.

Every bad input ends as one line that says what was wrong and what to do (the CLI prints it and
exits 2; the API raises it). :class:`BenchSuiteError` is the base of the package's exceptions,
so a caller can catch them all.
"""

from __future__ import annotations


class BenchSuiteError(Exception):
    """Base of bench_suite's exceptions: the message is one line saying what to do."""


class PathProblem(BenchSuiteError, ValueError):
    """A path to read or write is unusable: one line naming it, why, and what to give instead."""


def one_line(text: object) -> str:
    """``text`` with any whitespace (a wrapped library message's newlines) collapsed to single spaces."""
    return " ".join(str(text).split())


def exception_line(exc: BaseException | None) -> str:
    """``Type: first line of the message`` (``Type`` alone when it has none): how an exception is
    reported in a record's reason or a log line."""
    if exc is None:
        return "unknown error"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
