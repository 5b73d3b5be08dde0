"""What every subcommand shares: one-line errors, the value parsers of its options, the store option."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import Any

from ..core import exit_codes
from ..core.env import DEBUG_ENV  # noqa: F401 - the CLI names it in --debug's help
from ..core.values import FINITE, NONNEG_FLOAT, NONNEG_INT, POSITIVE_FLOAT, POSITIVE_INT, NumberKind, from_text

DEFAULT_STORE = "results"
STORE_ENV = "BENCH_SUITE_STORE"


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        message = message.removeprefix("argument ")
        if message.startswith("unrecognized arguments") and any(
                w in message.split() for w in ("--plugin", "--debug")):  # the global options
            # argparse reports unrecognized arguments from the top parser: self.prog is the program
            message += f"; --plugin and --debug go before the command: {self.prog} --plugin MODULE run ..."
        self.exit(exit_codes.USAGE, f"{self.prog}: error: {message} (see --help)\n")

class _Deprecated(argparse.Action):
    """An old spelling, kept for one version: it works, and says once what to write instead."""

    def __init__(self, *args: Any, new: str, target: argparse.Action | None = None, **kwargs: Any) -> None:
        self.new = new
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"note: {option_string} is deprecated and will be removed; use {self.new}", file=sys.stderr)
        if isinstance(getattr(namespace, self.dest, None), list) and isinstance(values, list):
            values = getattr(namespace, self.dest) + values
        setattr(namespace, self.dest, values)


# ------------------------------------------------------------------------------------------
# value parsers: each refuses a bad element by name ("--eps: 'x' is not a number"); the checks
# themselves are bench_suite.core.values', which the API's keywords use too
# ------------------------------------------------------------------------------------------
def _parser(kind: NumberKind):
    def parse(text: str) -> Any:
        try:
            return from_text(kind, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


_positive_int = _parser(POSITIVE_INT)
_nonneg_int = _parser(NONNEG_INT)
_float = _parser(FINITE)
_nonneg_float = _parser(NONNEG_FLOAT)
_positive_float = _parser(POSITIVE_FLOAT)


def _batch_size(text: str) -> int | None:
    if text.strip().lower() in ("full", "none"):
        return None
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text.strip()!r} is not a positive integer or 'full'") from None


def _choice(choices):
    def parse(text: str) -> str:
        if text.strip() not in choices:
            raise argparse.ArgumentTypeError(f"{text.strip()!r} is not one of {', '.join(choices)}")
        return text.strip()


    return parse


_KINDS = {"positive_int": _positive_int, "batch": _batch_size, "float": _float, "nonneg_float": _nonneg_float,
          "positive_float": _positive_float}


def _option_value(raw: str) -> Any:
    """A task option's value from text: none, true/false, an integer, a number, else the text."""
    text = raw.strip()
    if text.lower() in ("none", "null"):
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            continue
    return text


def _option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` or ``KEY=V1,V2`` (an axis)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (or KEY=V1,V2), got {text!r}")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if "=" in raw:
        raise argparse.ArgumentTypeError(f"{text!r}: give each option its own --option (KEY=V1,V2 lists one "
                                         f"option's values)")
    values = [_option_value(part) for part in raw.split(",")] if "," in raw else _option_value(raw)
    return key.strip(), values


def _csv(conv):
    """A comma-separated list, each element parsed by ``conv`` (its message names the element)."""


    def parse(text: str) -> list:
        parts = text.split(",")
        if any(not part.strip() for part in parts):
            raise argparse.ArgumentTypeError(f"{text!r} has an empty value (give V or V1,V2,...)")
        return [conv(part) for part in parts]


    return parse


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    return key.strip(), _option_value(raw)


# ------------------------------------------------------------------------------------------
# the parser
# ------------------------------------------------------------------------------------------
def _add_store_arg(p: argparse.ArgumentParser, helptext: str) -> None:
    default = os.environ.get(STORE_ENV, DEFAULT_STORE)
    p.add_argument("--store", dest="store", default=default, metavar="DIR",
                   help=f"{helptext}; default ./{DEFAULT_STORE} or ${STORE_ENV}")
    p.add_argument("--out", dest="store", action=_Deprecated, new="--store", help=argparse.SUPPRESS)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _os_error_line(exc: OSError) -> str:
    """An OSError as one line naming the path, the reason and what to change."""
    path = exc.filename or ""
    reason = exc.strerror or _one_line(exc)
    hint = {errno.ENOSPC: "free space or write elsewhere", errno.EACCES: "choose a writable location",
            errno.EROFS: "choose a writable location", errno.ENOTDIR: "a path component is a file, not a folder",
            errno.EEXIST: "remove it or choose another path"}.get(exc.errno or -1, "check the path")
    where = f" ({path})" if path else ""
    return f"{reason}{where}: {hint} (--store, --cache-dir, --reports-dir or --dir); finished records are kept"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each: ``warning: <message>``."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)
