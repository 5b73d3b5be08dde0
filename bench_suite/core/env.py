"""Environment variables read as on/off switches, parsed one way everywhere.

``0``, ``false``, ``no``, ``off`` and the empty string mean off; ``1``, ``true``, ``yes`` and
``on`` mean on (any case, surrounding spaces ignored); anything else is an
:class:`EnvVarError` naming the variable and the values it takes. An unset variable is its
default. :data:`FLAGS` lists every switch the package reads, so the command line can check them
all once, before any work (:func:`check_flags`), and a junk value gives one message, not one
per cell.
"""

from __future__ import annotations

import os

from .errors import BenchSuiteError

ON = ("1", "true", "yes", "on")
OFF = ("0", "false", "no", "off", "")

DEBUG_ENV = "BENCH_SUITE_DEBUG"

# every BENCH_SUITE_* variable read as a switch, and what it turns on
FLAGS = {
    "BENCH_SUITE_DEBUG": "print the traceback of an internal error (the CLI's --debug)",
    "BENCH_SUITE_CUDA_GRAPHS": "replay each epoch of a fused group as a CUDA graph (CUDA only)",
    "BENCH_SUITE_GIT_DIRTY": "the tree named by BENCH_SUITE_GIT_COMMIT has uncommitted changes",
    "BENCH_SUITE_UPDATE_GOLDEN": "tests/test_golden.py rewrites the golden numbers instead of comparing",
}


class EnvVarError(BenchSuiteError, ValueError):
    """An environment variable holds a value the package cannot read: one line naming it."""


def parse_flag(name: str, text: str) -> bool:
    """``text`` (the value of the variable ``name``) as a boolean, or :class:`EnvVarError`."""
    value = text.strip().lower()
    if value in ON:
        return True
    if value in OFF:
        return False
    raise EnvVarError(f"${name}={text!r} is not a switch: give 1, true, yes or on (on); 0, false, no, off or "
                      f"empty (off)")


def env_flag(name: str, default: bool = False) -> bool:
    """The switch ``$name``: its value parsed by :func:`parse_flag`, ``default`` when unset.
    Raises :class:`EnvVarError` for a value that is neither on nor off."""
    text = os.environ.get(name)
    return default if text is None else parse_flag(name, text)


def env_flag_or_none(name: str) -> bool | None:
    """The switch ``$name``, or None when it is unset (the caller decides). Raises
    :class:`EnvVarError` for a value that is neither on nor off."""
    text = os.environ.get(name)
    return None if text is None else parse_flag(name, text)


def check_flags(names=None) -> None:
    """Parse every switch in ``names`` (default: :data:`FLAGS`) that is set, so that a junk
    value stops a command at its start with one line (:class:`EnvVarError`)."""
    for name in FLAGS if names is None else names:
        env_flag_or_none(name)
