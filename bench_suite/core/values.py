"""The numeric settings' kinds (a positive integer, a number >= 0, ...): one check per kind, shared
by the CLI's option parsers (:func:`from_text`: ``--repetitions 0``) and the API's keywords
(:func:`check_number`: ``run(repetitions=0)``), so both refuse the same values.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgument


@dataclass(frozen=True)
class NumberKind:
    """A kind of number: an integer or a finite float, at least ``minimum`` (above it when
    ``strict``); ``wording`` names the kind in messages ("a positive integer"), ``refusal`` is
    what a value out of range "is" (default: ``not <wording>``)."""

    wording: str
    integer: bool
    minimum: float | None = None
    strict: bool = False
    refusal: str | None = None

    def in_range(self, value: float) -> bool:
        if self.minimum is None:
            return True
        return value > self.minimum if self.strict else value >= self.minimum

    @property
    def out_of_range(self) -> str:
        return self.refusal or f"not {self.wording}"


POSITIVE_INT = NumberKind("a positive integer", integer=True, minimum=1)
NONNEG_INT = NumberKind("an integer >= 0", integer=True, minimum=0)
FINITE = NumberKind("a finite number", integer=False)
NONNEG_FLOAT = NumberKind("a number >= 0", integer=False, minimum=0, refusal="negative (expected a number >= 0)")
POSITIVE_FLOAT = NumberKind("a number > 0", integer=False, minimum=0, strict=True)


def from_text(kind: NumberKind, text: str) -> int | float:
    """The number ``text`` spells, of ``kind``. Raises ``ValueError`` with the CLI's wording, which
    quotes the text: ``'0' is not a positive integer``, ``'x' is not a number``, ``'inf' is not a
    finite number``, ``'-1' is negative (expected a number >= 0)``."""
    shown = repr(text.strip())
    if kind.integer:
        try:
            value: int | float = int(text)
        except ValueError:
            raise ValueError(f"{shown} is not {kind.wording}") from None
    else:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{shown} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{shown} is not a finite number")
    if not kind.in_range(value):
        raise ValueError(f"{shown} is {kind.out_of_range}")
    return value


def check_number(name: str, value: Any, kind: NumberKind) -> int | float:
    """``value`` (an API keyword's, named ``name``) as a number of ``kind``: an ``int`` for an
    integer kind (a bool or a float such as 2.0 is refused, not rounded), a finite ``float``
    otherwise. Raises :class:`~bench_suite.core.errors.InvalidArgument`:
    ``repetitions=-2: not a positive integer``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if kind.integer else numbers.Real):
        raise InvalidArgument(f"{name}={value!r}: not {kind.wording}")
    number: int | float = int(value) if kind.integer else float(value)
    if not kind.integer and not math.isfinite(number):
        raise InvalidArgument(f"{name}={value!r}: not a finite number")
    if not kind.in_range(number):
        raise InvalidArgument(f"{name}={value!r}: {kind.out_of_range}")
    return number


def check_optional(name: str, value: Any, kind: NumberKind) -> int | float | None:
    """:func:`check_number`, None passing through (a keyword whose default is None)."""
    return None if value is None else check_number(name, value, kind)


__all__ = ["FINITE", "NONNEG_FLOAT", "NONNEG_INT", "POSITIVE_FLOAT", "POSITIVE_INT", "NumberKind", "check_number",
           "check_optional", "from_text"]
