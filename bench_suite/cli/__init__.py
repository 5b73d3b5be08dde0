"""Command line: ``python -m bench_suite list | run | plan | check | report | export`` (``--help`` on each).

Parsing only; the work is in :mod:`bench_suite.cli.commands`. No torch import here or in what
``--help``, ``list``, ``plan``, ``check``, ``report`` and ``export`` import: the training
settings' flags are made from :class:`bench_suite.core.config.TrainConfig`'s fields.

Every bad input ends in one line on stderr and exit code 2 (``EXIT_USAGE``); an unexpected
internal error too, with its traceback only under ``--debug`` or ``BENCH_SUITE_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import sys
import traceback
import warnings
from typing import Any

from .. import __version__
from ..core import exit_codes
from ..core.config import ACTIVATIONS, TrainConfig, check_device_text
from ..core.registry import PluginError, UnknownNameError, load_plugins
from ..grid import Cell, GridError, expand, load_profile_file, profile_names, profiles_of
from ..methods import METHODS
from ..tasks import TASKS

DEFAULT_STORE = "results"
STORE_ENV = "BENCH_SUITE_STORE"
DEBUG_ENV = "BENCH_SUITE_DEBUG"
EXIT_USAGE = exit_codes.USAGE
EXECUTORS = ("local", "dask", "slurm")
EXIT_STOPPED = exit_codes.STOPPED
RUN_EPILOG = (f"exit codes: 0 every cell done; 1 a cell errored, diverged, was interrupted or lost; 2 bad input "
              f"(one line); 3 cells skipped (no data); 69 the cluster stopped answering (finished records kept; "
              f"the same command collects later); {EXIT_STOPPED} stopped early by --time-budget (checkpointed: run "
              f"the same command again to continue); 130 Ctrl-C")


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        message = message.removeprefix("argument ")
        if message.startswith("unrecognized arguments") and any(
                w in message.split() for w in ("--plugin", "--debug")):  # the global options
            message += "; --plugin and --debug go before the command: python -m bench_suite --plugin MODULE run ..."
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


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
# value parsers: each refuses a bad element by name ("--eps: 'x' is not a number")
# ------------------------------------------------------------------------------------------
def _int_at_least(minimum: int, wording: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text.strip()!r} is not {wording}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text.strip()!r} is not {wording}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonneg_int = _int_at_least(0, "an integer >= 0")


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text.strip()!r} is not a finite number")
    return value


def _nonneg_float(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text.strip()!r} is negative (expected a number >= 0)")
    return value


def _positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text.strip()!r} is not a number > 0")
    return value


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bench_suite",
                     description="bench_suite: run, check and report the experiments of 'When Expressivity Meets "
                                 "Trainability: Fewer than n Neurons Can Work' (NeurIPS 2021).")
    parser.add_argument("--version", action="version", version=f"bench_suite {__version__}")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (it may register tasks/methods); also $BENCH_SUITE_PLUGINS")
    parser.add_argument("--debug", action="store_true",
                        help=f"print the traceback of an internal error (also ${DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p_list = sub.add_parser("list", help="list tasks, methods and profiles")
    p_list.add_argument("--profiles", action="store_true", help="show every task's profiles (the grids as data)")
    p_list.add_argument("--export", action="store_true",
                        help="with --profiles: print them as TOML, to edit and load with --profile-file")
    p_list.add_argument("--task", action="append", default=None, metavar="NAME", help="only this task (repeatable)")
    p_list.add_argument("--profile-file", action="append", default=[], metavar="PATH",
                        help="also list the profiles of this TOML file (repeatable)")

    for name, helptext in (("run", "run cells of a task (a profile or axes given here) into the result store"),
                           ("plan", "list the cells a run would do, which are done, and their estimated cost")):
        p = sub.add_parser(name, help=helptext, description=helptext + ". Every training setting and "
                           "task option takes a comma-separated list: the grid is the product of all axes.",
                           epilog=RUN_EPILOG if name == "run" else None)
        _add_grid_args(p)
        p.add_argument("--force", action="store_true", help="re-run cells that are already finished")
        p.add_argument("--no-fuse", action="store_true",
                       help="train each cell alone instead of fusing cells that share data and batch order")
        p.add_argument("--max-group", type=_positive_int, default=None, metavar="N",
                       help="fuse at most N cells per group (and per Dask task / SLURM job); default: "
                            "whole groups, cut smaller only to give every worker work")
        # plan takes every run argument, so one command line works with either verb
        p.add_argument("--quiet", action="store_true", help="no progress bars: one line per finished cell")
        p.add_argument("--checkpoint-every", type=_nonneg_int, default=None, metavar="N",
                       help="checkpoint the group in training every N epochs into <store>/checkpoints (0: only "
                            "when stopping early); default: every 10 minutes of training. A re-run resumes "
                            "from the checkpoint with the same numbers as an uninterrupted run")
        p.add_argument("--time-budget", type=_positive_float, default=None, metavar="SECONDS",
                       help=f"stop before SECONDS have passed: checkpoint the group in training, say what is "
                            f"left, exit with code {EXIT_STOPPED}; the same command continues (this process only, "
                            f"not --devices/--executor)")
        _add_scale_out_args(p)
        if name == "plan":
            p.add_argument("--json", action="store_true", help="print the plan as JSON (cells, costs, totals)")
            p.add_argument("--device-name", default=None, metavar="NAME",
                           help="estimate times from earlier runs on this device model (e.g. 'NVIDIA H100 80GB "
                                "HBM3'; default: the --device here)")
    p_doc = sub.add_parser("doctor", help="check this device (engine = plain autograd, folds, CUDA graphs, "
                                          "precisions) and estimate each profile's time here",
                           description="One line per check, a summary; exit 1 on any mismatch (about a minute).")
    p_doc.add_argument("--device", default="auto", help="auto (CUDA when present; the default), cpu, cuda or cuda:N")
    p_doc.add_argument("--rate-seconds", type=_positive_float, default=3.0, metavar="S",
                       help="seconds spent measuring the step rate (default 3)")
    p_pc = sub.add_parser("plugin-check", help="train a plug-in's methods and tasks on a tiny problem and check "
                                               "the records, determinism and seed pairing",
                          description="Import MODULE, train what it registers on a tiny problem (twice, into "
                                      "temporary stores) and check the contract: records pass the schema and end "
                                      "done, a second run is identical, seeds pair with the built-in methods "
                                      "(bench_suite/testing.py). Exit 1 on any failed check.")
    p_pc.add_argument("module", metavar="MODULE", help="the plug-in's module name (importable, e.g. on PYTHONPATH)")
    p_pc.add_argument("--device", default="cpu", help="cpu (the default), auto, cuda or cuda:N")
    for name, helptext in (("check", "compare the store's results with the reference rows in baselines/"),
                           ("report", "write a markdown report (tables, verdicts, plots) and the results as "
                                      "CSV/parquet from the store")):
        p = sub.add_parser(name, help=helptext, description=helptext, epilog=(
            "exit codes: 0 every verdict PASS (or FAIL only as a documented known deviation); 1 an unexpected FAIL; "
            "2 bad input (one line); 3 nothing failed but something INCONCLUSIVE or SKIPPED (docs/checks.md)")
            if name == "check" else None)
        _add_scoring_args(p)
        if name == "check":
            p.add_argument("--save", default=None, metavar="DIR",
                           help="also write the verdicts as DIR/verdicts.json and DIR/verdicts.csv")
            p.add_argument("--stale", choices=("ok", "warn", "error"), default="ok",
                           help="what to do when the store holds records of older code: ok (leave them out, "
                                "say so; the default), warn (also a STALE line), error (exit 2)")
        else:
            p.add_argument("--reports-dir", default="reports", metavar="DIR",
                           help="where reports go (default ./reports)")
            p.add_argument("--name", default=None, help="report folder name (default: the profile, or 'all')")
            p.add_argument("--title", default=None, help="report title")
            p.add_argument("--section", choices=("ablation",), default=None,
                           help="write only this section: 'ablation', the synthetic ablation study's tables "
                                "(docs/ablation.md; every ablation_* profile in the store, or --profile's), "
                                "into REPORTS_DIR/ablation/report.md (or --name)")
    p_export = sub.add_parser("export", help="write the store's results and curves as CSV and parquet",
                              description="write the store's results (one row per record) and curves (long form) "
                                          "as DIR/results.{csv,parquet} and DIR/curves.{csv,parquet}")
    _add_store_arg(p_export, "result store folder to read")
    p_export.add_argument("--dir", required=True, metavar="DIR", help="where to write the files")
    p_store = sub.add_parser("store", help="maintain a result store: migrate old records, pack curves, prune",
                             description="maintain a result store (docs/runner.md): `migrate` rewrites records of "
                                         "schema 2 computed by version-1 code as schema 3 (verified first); `pack` "
                                         "merges the loose curve files into one; `prune --status skipped` removes "
                                         "records that are not results (never done or diverged ones)")
    p_store.add_argument("action", choices=("migrate", "pack", "prune"))
    _add_store_arg(p_store, "result store folder")
    p_store.add_argument("--status", type=_csv(str), action="extend", default=None, metavar="STATUS[,STATUS]",
                         help="prune: the statuses to remove (error, skipped, interrupted, lost)")
    p_store.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    return parser


def _add_scoring_args(p: argparse.ArgumentParser) -> None:
    _add_store_arg(p, "result store folder to read")
    p.add_argument("--baselines", default=None,
                   help="reference file or folder; default $BENCH_SUITE_BASELINES or the repo's baselines/")
    p.add_argument("--profile", default=None, help="only reference rows of this profile")
    p.add_argument("--profile-file", action="append", default=[], metavar="PATH",
                   help="profiles from this TOML file, for rows that name them (repeatable)")
    p.add_argument("--task", action="append", default=None, help="only this task (repeatable)")
    p.add_argument("--include-old-code", action="store_true",
                   help="also score records computed by older code (by default only the current code's: "
                        "docs/checks.md)")


def _add_grid_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to run")
    g.add_argument("--task", type=_csv(str), action="extend", default=None, metavar="NAME[,NAME]",
                   help="task(s) (default: every task with the profile, or synthetic_ablation)")
    g.add_argument("--profile", default=None, help="a named grid declared by the task(s): see `list --profiles`")
    g.add_argument("--profile-file", action="append", default=[], metavar="PATH",
                   help="load profiles from a TOML file (the format `list --profiles --export` writes)")
    g.add_argument("--method", type=_csv(str), action="extend", default=None, metavar="NAME[,NAME]",
                   help="method(s); default: the profile's or the task's grid")
    g.add_argument("--width", type=_csv(_positive_int), action="extend", default=None, metavar="M[,M]",
                   help="hidden width(s) m")
    g.add_argument("--activation", type=_csv(str), action="extend", default=None, metavar="NAME[,NAME]",
                   help=f"activation(s): {', '.join(ACTIVATIONS)}")
    reps = g.add_mutually_exclusive_group()
    reps.add_argument("--repetition", dest="repetition", type=_csv(_nonneg_int), action="extend", default=None,
                      metavar="R[,R]", help="repetition index(es); the seeds derive from (task, repetition)")
    reps.add_argument("--repetitions", dest="repetitions", type=_positive_int, default=None, metavar="N",
                      help="repetitions 0..N-1 (default: the profile's)")
    reps.add_argument("--seed", dest="repetition", type=_csv(_nonneg_int), action=_Deprecated, new="--repetition",
                      help=argparse.SUPPRESS)
    reps.add_argument("--seeds", dest="repetitions", type=_positive_int, action=_Deprecated, new="--repetitions",
                      help=argparse.SUPPRESS)
    g.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE[,VALUE]",
                   help="a task option, e.g. n=500 or n=500,1000 (an axis); see `list`")
    t = p.add_argument_group("training settings (default: the task's, then the profile's; each V[,V] is an axis)")
    t.add_argument("--lr", type=_csv(_nonneg_float), default=None, metavar="LR[,LR]",
                   help="learning rate of both layers (one axis: lr_w = lr_v)")
    for f in TrainConfig.settings():
        meta = f.metadata
        kind = _choice(meta["choices"]) if meta["kind"] == "choice" else _KINDS[meta["kind"]]
        flag = "--" + f.name.replace("_", "-")
        t.add_argument(flag, dest=f.name, type=_csv(kind), default=None,
                       metavar=meta.get("metavar", f.name.upper()) + "[,...]",
                       help=meta["help"] + (f" ({', '.join(meta['choices'])})" if meta["kind"] == "choice" else ""))
    r = p.add_argument_group("where")
    r.add_argument("--device", default=None,
                   help="auto (CUDA when present; the default), cpu, cuda, cuda:N or mps")
    r.add_argument("--data-root", default=None,
                   help="dataset location (file or folder); default $BENCH_SUITE_DATA_ROOT or the task's variable")
    r.add_argument("--cache-dir", default=None, help="decoded-data cache; default $BENCH_SUITE_CACHE or ~/.cache")
    _add_store_arg(r, "result store folder (JSON records)")


def _add_scale_out_args(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("scale-out (docs/runner.md): the store is the only coordination")
    s.add_argument("--devices", default=None, metavar="D[,D]",
                   help="one worker process per device, sharing the cells through the store: 0,1 (cuda:0, "
                        "cuda:1), cuda:2, or cpu,cpu")
    s.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="torch threads per worker (default: torch's; with --devices cpu,...: cores / CPU workers)")
    s.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local (this machine; --devices for several), dask (--scheduler) or slurm (submitit)")
    s.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler address, e.g. tcp://10.0.0.1:8786 (--executor dask)")
    s.add_argument("--partition", default=None, help="SLURM partition (--executor slurm)")
    s.add_argument("--gpus-per-job", type=_nonneg_int, default=None, metavar="G",
                   help="GPUs per SLURM job (default: 1 when the cells' profile runs on cuda, else 0; more than 1: "
                        "one worker per GPU inside the job)")
    s.add_argument("--cpus-per-job", type=_positive_int, default=None, metavar="C", help="CPUs per SLURM job")
    s.add_argument("--mem-gb", type=_float, default=None, metavar="GB", help="memory per SLURM job")
    s.add_argument("--time-limit", type=_positive_int, default=None, metavar="MIN",
                   help="SLURM time limit per job in minutes (default 240)")
    s.add_argument("--max-jobs", type=_positive_int, default=None, metavar="N",
                   help="at most N SLURM jobs at once (slurm_array_parallelism; default 16)")
    s.add_argument("--requeues", type=_nonneg_int, default=None, metavar="N",
                   help="requeue a SLURM job that reaches its time limit at most N times (default 3); then its "
                        "unfinished cells are recorded as errors naming the limit")
    s.add_argument("--poll-interval", type=_positive_float, default=None, metavar="S",
                   help="ask squeue for the SLURM jobs' states every S seconds (default 10)")
    s.add_argument("--cluster-timeout", type=_positive_float, default=None, metavar="S",
                   help="give up after S seconds without an answer from the SLURM controller (default 300; a lost "
                        "Dask scheduler ends the run at once): exit code 69, finished records kept, re-run later "
                        "to collect")
    s.add_argument("--slurm-arg", type=_key_value, action="append", default=None, metavar="KEY=VALUE",
                   help="extra sbatch setting, e.g. account=myproj or qos=high (repeatable)")
    s.add_argument("--submitit-cluster", choices=("slurm", "local", "debug"), default=None,
                   help="submitit backend (default: slurm when available); local: run the jobs as processes "
                        "here, a dry run of the SLURM path")
    s.add_argument("--no-wait", action="store_true",
                   help="submit the SLURM jobs and return (exit 0); `plan` shows them queued/running, the same "
                        "command again collects (it does not submit cells already queued or running)")


_SLURM_ONLY = ("partition", "gpus_per_job", "cpus_per_job", "mem_gb", "time_limit", "max_jobs", "slurm_arg",
               "submitit_cluster", "requeues", "poll_interval")


def check_scale_out(args: argparse.Namespace) -> None:
    """Reject flag combinations that cannot mean anything (one line, exit 2); fill defaults."""
    if args.device is not None:
        check_device_text(args.device)
    if args.devices is not None:
        devices = [d.strip() for d in args.devices.split(",") if d.strip()]
        if not devices:
            raise UsageError("--devices needs at least one device, e.g. 0,1 or cpu,cpu")
        for device in devices:
            check_device_text(f"cuda:{device}" if device.isdigit() else device, "--devices")
    if args.devices and args.device:
        raise UsageError("give --device (one, in this process) or --devices (a worker per device), not both")
    if args.executor != "dask" and args.scheduler:
        raise UsageError("--scheduler is for --executor dask")
    if args.executor == "dask" and not args.scheduler:
        raise UsageError("--executor dask needs --scheduler ADDRESS (e.g. tcp://host:8786, as printed by "
                         "`dask scheduler`)")
    if getattr(args, "time_budget", None) and (args.executor != "local" or (args.devices and "," in args.devices)):
        raise UsageError("--time-budget is for a run in this process (one device); with several workers, give "
                         "each its own limit (e.g. the SLURM time limit)")
    if args.executor != "local" and (args.devices or args.device):
        raise UsageError(f"--device/--devices are for the local executor; {args.executor} workers use their own GPU")
    if args.executor == "local" and args.cluster_timeout is not None:
        raise UsageError("--cluster-timeout: only with --executor dask or slurm")
    if args.executor != "slurm":
        given = [f"--{k.replace('_', '-')}" for k in _SLURM_ONLY if getattr(args, k) not in (None, [])]
        if args.no_wait:
            given.append("--no-wait")
        if given:
            raise UsageError(f"{', '.join(given)}: only with --executor slurm")
    else:  # --gpus-per-job stays None: the cells' device decides (executors.default_gpus)
        for key, default in (("time_limit", 240), ("max_jobs", 16), ("slurm_arg", []), ("requeues", 3),
                             ("poll_interval", 10.0)):
            if getattr(args, key) is None:
                setattr(args, key, default)
    if args.cluster_timeout is None:
        args.cluster_timeout = 300.0


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The training settings given on the command line: field -> value or list of values (an axis)."""
    out: dict[str, Any] = {}
    if args.lr is not None:
        if args.lr_w is not None or args.lr_v is not None:
            raise UsageError("give --lr (both layers) or --lr-w/--lr-v, not both")
        out["lr"] = _scalar_or_list(args.lr)
    for name in TrainConfig.field_names():
        value = getattr(args, name, None)
        if value is not None:
            out[name] = _scalar_or_list(value)
    return out


def _scalar_or_list(values: list) -> Any:
    return values[0] if len(values) == 1 else values


def option_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in args.option:
        if key in out:
            raise UsageError(f"--option {key} given twice; give one list instead: --option {key}=V1,V2")
        out[key] = value
    return out


def cells_from_args(args: argparse.Namespace) -> list[Cell]:
    for path in args.profile_file:
        load_profile_file(path)
    tasks = args.task
    if not tasks:
        tasks = ([t for t in TASKS.names() if args.profile in profiles_of(t)] if args.profile
                 else ["synthetic_ablation"])
        if not tasks:
            raise UsageError(f"no task declares profile {args.profile!r}; profiles: {', '.join(profile_names())}")
    for method in args.method or []:
        METHODS.get(method)
    # a range, not a list: an absurd count is refused by its size before anything is built
    repetitions = args.repetition if args.repetition else (range(args.repetitions) if args.repetitions else None)
    train, options = train_overrides(args), option_overrides(args)
    cells: list[Cell] = []
    for task in tasks:
        TASKS.get(task)
        cells += expand(task, profile=args.profile, methods=args.method, widths=args.width,
                        activations=args.activation, repetitions=repetitions, options=options, train=train)
    return cells


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a parse error (already printed, in one line)
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    debug = args.debug or bool(os.environ.get(DEBUG_ENV))
    saved_show = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        load_plugins(args.plugin)
        from . import commands

        if args.command == "list":
            for path in args.profile_file:
                load_profile_file(path)
            return commands.cmd_list(args)
        if args.command in ("run", "plan"):
            check_scale_out(args)
            cells = cells_from_args(args)
            return commands.cmd_run(args, cells) if args.command == "run" else commands.cmd_plan(args, cells)
        if args.command == "doctor":
            return commands.cmd_doctor(args)
        if args.command == "plugin-check":
            return commands.cmd_plugin_check(args)
        if args.command == "store":
            return commands.cmd_store(args)
        if args.command in ("check", "report", "export"):
            for path in getattr(args, "profile_file", []):
                load_profile_file(path)
            return {"check": commands.cmd_check, "report": commands.cmd_report,
                    "export": commands.cmd_export}[args.command](args)
        parser.error(f"unknown command {args.command!r}")
    except (UsageError, UnknownNameError, GridError, PluginError, ValueError) as exc:
        if debug:
            traceback.print_exc()
        print(f"{parser.prog}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `... | head`: the reader left; no message, the shell's SIGPIPE code
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return exit_codes.BROKEN_PIPE
    except OSError as exc:
        if debug:
            traceback.print_exc()
        print(f"{parser.prog}: error: {_os_error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; finished cells are saved, re-run the same command to resume",
              file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - an internal error must not exit with a verdict's code
        if debug:
            traceback.print_exc()
        print(f"{parser.prog}: internal error: {type(exc).__name__}: {_one_line(exc)} (re-run with --debug or "
              f"{DEBUG_ENV}=1 for the traceback, and please report it)", file=sys.stderr)
        return EXIT_USAGE
    finally:
        warnings.showwarning = saved_show
    return EXIT_USAGE
