"""Command line: ``python -m bench_suite list | run | plan | check | report | doctor`` (``--help`` on each)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

from . import __version__
from .config import ACTIVATIONS, EPS_MODES, LOSSES, PRECISIONS
from .grid import Cell, expand, profile_names
from .methods import METHODS
from .registry import UnknownNameError, load_plugins
from .tasks import TASKS

DEFAULT_STORE = "results"
EXIT_USAGE = 2
EXECUTORS = ("local", "dask", "slurm")
EXIT_STOPPED = 75  # runner.EXIT_STOPPED (not imported: the runner imports torch)
RUN_EPILOG = (f"exit codes: 0 every cell done; 1 a cell errored, diverged or was interrupted; 2 bad command line; "
              f"3 cells skipped (no data); {EXIT_STOPPED} stopped early by --time-budget (checkpointed: run the "
              f"same command again to continue); 130 Ctrl-C")


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _int_at_least(minimum: int, wording: str):
    """An argparse type: an integer >= ``minimum``, refused in one line otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {wording}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonneg_int = _int_at_least(0, "an integer >= 0")


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _batch_size(text: str) -> int | None:
    if text.lower() in ("full", "none"):
        return None
    return _positive_int(text)


def _option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    value: Any = raw
    if raw.lower() in ("none", "null"):
        value = None
    else:
        for conv in (int, float):
            try:
                value = conv(raw)
                break
            except ValueError:
                continue
    return key.strip(), value


def _csv(conv):
    def parse(text: str):
        return [conv(part) for part in text.split(",") if part.strip()]

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bench_suite", description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"bench_suite {__version__}")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (it may register tasks/methods); also $BENCH_SUITE_PLUGINS")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p_list = sub.add_parser("list", help="list tasks, methods and profiles")
    p_list.add_argument("--profiles", action="store_true", help="show every task's profiles (the grids as data)")

    for name, helptext in (("run", "run cells of a task (a profile or axes given here) into the result store"),
                           ("plan", "list the cells a run would do, which are done, and their estimated cost")):
        p = sub.add_parser(name, help=helptext, description=helptext, epilog=RUN_EPILOG if name == "run" else None)
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
    p_doc.add_argument("--rate-seconds", type=_float, default=3.0, metavar="S",
                       help="seconds spent measuring the step rate (default 3)")
    for name, helptext in (("check", "compare the store's results with the reference rows in baselines/"),
                           ("report", "write a markdown report (tables, verdicts, plots) from the store")):
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("--out", "--store", dest="out", default=os.environ.get("BENCH_SUITE_STORE", DEFAULT_STORE),
                       help="result store folder; default ./results or $BENCH_SUITE_STORE")
        p.add_argument("--baselines", default=None,
                       help="reference file or folder; default $BENCH_SUITE_BASELINES or the repo's baselines/")
        p.add_argument("--profile", default=None, help="only results and reference rows of this profile")
        p.add_argument("--task", action="append", default=None, help="only this task (repeatable)")
        if name == "report":
            p.add_argument("--reports-dir", default="reports", help="where reports go (default ./reports)")
            p.add_argument("--name", default=None, help="report folder name (default: the profile, or 'all')")
            p.add_argument("--title", default=None, help="report title")
    return parser


def _add_grid_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to run")
    g.add_argument("--task", action="append", default=None, metavar="NAME",
                   help="task name (repeatable; default: every task with the profile, or synthetic_ablation)")
    g.add_argument("--profile", default=None, help="a named grid declared by the task(s): see `list --profiles`")
    g.add_argument("--method", type=_csv(str), action="extend", default=None, metavar="NAME[,NAME]",
                   help="method(s); default: the profile's or the task's grid")
    g.add_argument("--width", type=_csv(_positive_int), action="extend", default=None, metavar="M[,M]",
                   help="hidden width(s) m")
    g.add_argument("--activation", type=_csv(str), action="extend", default=None, metavar="NAME[,NAME]",
                   help=f"activation(s): {', '.join(ACTIVATIONS)}")
    seeds = g.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_csv(_nonneg_int), action="extend", default=None, metavar="R[,R]",
                       help="repetition index(es); seeds derive from (task, repetition)")
    seeds.add_argument("--seeds", type=_positive_int, default=None, metavar="N", help="repetitions 0..N-1")
    g.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="a task option, e.g. n=500 (see `list`)")
    t = p.add_argument_group("training (default: the task's, then the profile's)")
    t.add_argument("--epochs", type=_positive_int, help="epochs (full-batch tasks: GD steps)")
    t.add_argument("--batch-size", type=_batch_size, default=argparse.SUPPRESS, metavar="B|full",
                   help="mini-batch size, or 'full' for full-batch GD")
    t.add_argument("--lr", type=_float, help="learning rate of both layers")
    t.add_argument("--lr-w", type=_float, help="learning rate of the hidden weights W")
    t.add_argument("--lr-v", type=_float, help="learning rate of the output weights V")
    t.add_argument("--momentum", type=_float, help="SGD momentum in [0, 1)")
    t.add_argument("--loss", choices=LOSSES, help="ce (cross-entropy) or mse (mean over samples of the squared error)")
    t.add_argument("--eps", type=_float, help="projection radius of ||W - W0||_F (constrained methods)")
    t.add_argument("--eps-mode", choices=EPS_MODES, help="eps as a multiple of ||W0||_F (relative) or as is")
    t.add_argument("--eval-every", type=_positive_int, help="exact evaluation every k epochs (the last always)")
    t.add_argument("--precision", choices=PRECISIONS, help="fp32 (strict), tf32 (CUDA tensor cores) or bf16")
    r = p.add_argument_group("where")
    r.add_argument("--device", default=None, help="auto (CUDA when present; the default), cpu, cuda or cuda:N")
    r.add_argument("--data-root", default=None,
                   help="dataset location (file or folder); default $BENCH_SUITE_DATA_ROOT")
    r.add_argument("--cache-dir", default=None, help="decoded-data cache; default $BENCH_SUITE_CACHE or ~/.cache")
    r.add_argument("--out", "--store", dest="out", default=os.environ.get("BENCH_SUITE_STORE", DEFAULT_STORE),
                   help="result store folder (JSON records); default ./results or $BENCH_SUITE_STORE")


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
                   help="GPUs per SLURM job (default 1; more: one worker per GPU inside the job; 0: CPU jobs)")
    s.add_argument("--cpus-per-job", type=_positive_int, default=None, metavar="C", help="CPUs per SLURM job")
    s.add_argument("--mem-gb", type=_float, default=None, metavar="GB", help="memory per SLURM job")
    s.add_argument("--time-limit", type=_positive_int, default=None, metavar="MIN",
                   help="SLURM time limit per job in minutes (default 240)")
    s.add_argument("--max-jobs", type=_positive_int, default=None, metavar="N",
                   help="at most N SLURM jobs at once (slurm_array_parallelism; default 16)")
    s.add_argument("--slurm-arg", type=_option, action="append", default=None, metavar="KEY=VALUE",
                   help="extra sbatch setting, e.g. account=myproj or qos=high (repeatable)")
    s.add_argument("--submitit-cluster", choices=("slurm", "local", "debug"), default=None,
                   help="submitit backend (default: slurm when available); local: run the jobs as processes "
                        "here, a dry run of the SLURM path")
    s.add_argument("--no-wait", action="store_true",
                   help="submit the SLURM jobs and return (exit 0); `plan` shows progress, re-run collects")


_SLURM_ONLY = ("partition", "gpus_per_job", "cpus_per_job", "mem_gb", "time_limit", "max_jobs", "slurm_arg",
               "submitit_cluster")


def check_scale_out(args: argparse.Namespace) -> None:
    """Reject flag combinations that cannot mean anything (one line, exit 2); fill defaults."""
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
    if args.executor != "slurm":
        given = [f"--{k.replace('_', '-')}" for k in _SLURM_ONLY if getattr(args, k) not in (None, [])]
        if args.no_wait:
            given.append("--no-wait")
        if given:
            raise UsageError(f"{', '.join(given)}: only with --executor slurm")
    else:
        for key, default in (("gpus_per_job", 1), ("time_limit", 240), ("max_jobs", 16), ("slurm_arg", [])):
            if getattr(args, key) is None:
                setattr(args, key, default)


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.lr is not None:
        out["lr_w"] = out["lr_v"] = args.lr
    for key in ("epochs", "lr_w", "lr_v", "momentum", "loss", "eps", "eps_mode", "eval_every", "precision"):
        value = getattr(args, key)
        if value is not None:
            out[key] = value
    if hasattr(args, "batch_size"):
        out["batch_size"] = args.batch_size
    return out


def cells_from_args(args: argparse.Namespace) -> list[Cell]:
    tasks = args.task
    if not tasks:
        tasks = ([t for t in TASKS.names() if args.profile in TASKS.get(t).profiles] if args.profile
                 else ["synthetic_ablation"])
        if not tasks:
            raise UsageError(f"no task declares profile {args.profile!r}; profiles: {', '.join(profile_names())}")
    for method in args.method or []:
        METHODS.get(method)
    repetitions = args.seed if args.seed else (list(range(args.seeds)) if args.seeds else None)
    cells: list[Cell] = []
    for task in tasks:
        TASKS.get(task)
        cells += expand(
            task, profile=args.profile, methods=args.method, widths=args.width, activations=args.activation,
            repetitions=repetitions, options=dict(args.option), train=_train_overrides(args),
        )
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        load_plugins(args.plugin)
        if args.command == "list":
            from .commands import cmd_list

            return cmd_list(args)
        if args.command in ("run", "plan"):
            check_scale_out(args)
            cells = cells_from_args(args)
            from .commands import cmd_plan, cmd_run

            return cmd_run(args, cells) if args.command == "run" else cmd_plan(args, cells)
        if args.command == "doctor":
            from .commands import cmd_doctor

            return cmd_doctor(args)
        if args.command in ("check", "report"):
            from .commands import cmd_check, cmd_report

            return cmd_check(args) if args.command == "check" else cmd_report(args)
    except (UsageError, UnknownNameError, ValueError, ModuleNotFoundError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; finished cells are saved, re-run the same command to resume",
              file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE
