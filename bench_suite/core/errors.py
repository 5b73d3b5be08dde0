"""The package's own exceptions and one-line messages: what every stage raises and prints.

Every bad input ends as one line that says what was wrong and what to do (the CLI prints it and
exits 2; the API raises it). :class:`BenchSuiteError` is the base of the package's exceptions,
so a caller can catch them all.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


class BenchSuiteError(Exception):
    """Base of bench_suite's exceptions: the message is one line saying what to do."""


class PathProblem(BenchSuiteError, ValueError):
    """A path to read or write is unusable: one line naming it, why, and what to give instead."""


class InvalidArgument(BenchSuiteError, ValueError):
    """An argument's value is not one the function takes: one line naming the argument."""


class UnknownArgument(BenchSuiteError, TypeError):
    """A keyword the function does not take: one line naming it and the valid ones."""


def checked_arguments(func: F, *, aliases: dict[str, str] | None = None) -> F:
    """``func`` with its keywords checked first: an unknown keyword raises :class:`UnknownArgument`
    naming it, the closest valid one, and all valid ones (instead of a bare ``TypeError``).
    ``aliases``: other names a caller may guess (the command line's ``dir`` for ``out``) -> the
    keyword to suggest, when no valid one is close in spelling; they are still refused."""
    signature = inspect.signature(func)
    params = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    valid = [n for n, p in params.items() if p.kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                            inspect.Parameter.VAR_KEYWORD)]

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if not takes_any:
            unknown = [k for k in kwargs if k not in params]
            if unknown:
                raise UnknownArgument(_unknown_line(func.__name__, unknown, valid, aliases or {}))
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:  # too many positional arguments, a missing one, one given twice
            raise UnknownArgument(f"{func.__name__}(): {exc}; its arguments: {', '.join(valid)}") from None
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _unknown_line(name: str, unknown: list[str], valid: list[str], aliases: dict[str, str]) -> str:
    hints = []
    for word in unknown:
        close = difflib.get_close_matches(word, valid, n=1) or ([aliases[word]] if word in aliases else [])
        hints.append(f"{word!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    noun = "an unknown argument" if len(unknown) == 1 else "unknown arguments"
    return f"{name}() got {noun} {', '.join(hints)}; its arguments: {', '.join(valid)}"


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
