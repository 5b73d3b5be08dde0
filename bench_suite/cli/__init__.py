"""Command line: ``bench-suite`` or ``python -m bench_suite`` with a subcommand (``--help`` on each).

One file per group of subcommands, each with its ``register(sub)`` (its options) and the work
behind them: ``info`` (list), ``run`` (run, plan), ``results`` (check, report, export, compare),
``tools`` (doctor, plugin-check, store); ``common`` holds the shared option parsers and the
one-line errors. No library module imports this package. No torch import in what ``--help``,
``list``, ``plan``, ``check``, ``report`` and ``export`` import: the training settings' flags
are made from :class:`bench_suite.core.config.TrainConfig`'s fields.

Every bad input ends in one line on stderr and exit code 2 (``exit_codes.USAGE``); an unexpected
internal error too, with its traceback only under ``--debug`` or ``BENCH_SUITE_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import traceback
import warnings

from ..core import exit_codes
from ..core.env import EnvVarError, check_flags, env_flag
from ..core.errors import BenchSuiteError
from ..core.registry import PluginError, UnknownNameError, load_plugins
from ..core.version import __version__
from ..grid import GridError
from . import info, results, run, tools
from .common import DEBUG_ENV, UsageError, _one_line, _os_error_line, _Parser, _show_warning

ENTRY_POINT = "bench-suite"  # [project.scripts] in pyproject.toml
MODULE_PROG = "python -m bench_suite"  # bench_suite/__main__.py


def build_parser(prog: str = ENTRY_POINT) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog,
                     description="bench_suite: run, check and report the experiments of 'When Expressivity Meets "
                                 "Trainability: Fewer than n Neurons Can Work' (NeurIPS 2021).")
    parser.add_argument("--version", action="version", version=f"bench_suite {__version__}")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (it may register tasks/methods); also $BENCH_SUITE_PLUGINS")
    parser.add_argument("--debug", action="store_true",
                        help=f"print the traceback of an internal error (also ${DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for group in (info, run, results, tools):
        group.register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, ``kill``, a container's stop) while a command runs: it stops as
    Ctrl-C does (cells in training recorded ``interrupted``, checkpointed), exit code 143."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None, prog: str = ENTRY_POINT) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code. ``prog``
    is the program's name in help and errors: the ``bench-suite`` entry point calls this with
    the default, ``python -m bench_suite`` (``__main__.py``) with its own."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a parse error (already printed, in one line)
        return int(exc.code or 0) if not isinstance(exc.code, str) else exit_codes.USAGE
    try:
        check_flags()  # a junk switch ($BENCH_SUITE_DEBUG=maybe) stops here, once, before any work
        debug = args.debug or env_flag(DEBUG_ENV)
    except EnvVarError as exc:
        print(f"{parser.prog}: error: {_one_line(exc)}", file=sys.stderr)
        return exit_codes.USAGE
    saved_show = warnings.showwarning
    warnings.showwarning = _show_warning
    saved_term = None  # only where SIGTERM would otherwise kill us outright (not under an embedding app)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        saved_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        load_plugins(args.plugin)
        return args.handler(args)
    except (BenchSuiteError, UsageError, UnknownNameError, GridError, PluginError, ValueError) as exc:
        if debug:
            traceback.print_exc()
        print(f"{parser.prog}: error: {_one_line(exc)}", file=sys.stderr)
        return exit_codes.USAGE
    except BrokenPipeError:  # `... | head`: the reader left; no message, the shell's SIGPIPE code
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return exit_codes.BROKEN_PIPE
    except OSError as exc:
        if debug:
            traceback.print_exc()
        print(f"{parser.prog}: error: {_os_error_line(exc)}", file=sys.stderr)
        return exit_codes.USAGE
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"{parser.prog}: {what}; finished cells are saved, re-run the same command to resume",
              file=sys.stderr)
        return exit_codes.TERMINATED if isinstance(exc, Terminated) else exit_codes.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - an internal error must not exit with a verdict's code
        if debug:
            traceback.print_exc()
        print(f"{parser.prog}: internal error: {type(exc).__name__}: {_one_line(exc)} (re-run with --debug or "
              f"{DEBUG_ENV}=1 for the traceback, and please report it)", file=sys.stderr)
        return exit_codes.USAGE
    finally:
        warnings.showwarning = saved_show
        if saved_term is not None:
            signal.signal(signal.SIGTERM, saved_term)
    return exit_codes.USAGE
