"""``run`` and ``plan``: the cells of a profile or of axes given on the command line; ``plan``
lists them, which are done and their cost, ``run`` trains them into the store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ..core import exit_codes
from ..core.config import ACTIVATIONS, TrainConfig, check_device_text
from ..core.errors import PathProblem
from ..core.records import Record, Status
from ..executors.driver import say
from ..executors.registry import EXECUTORS
from ..grid import Cell, expand, load_profile_file, profile_declares, profile_names, profiles_of
from ..methods import METHODS
from ..runner import provenance
from ..runner.cost import CostModel, estimate, format_flops, format_seconds
from ..runner.grouping import plan
from ..store.result_store import ResultStore
from ..tasks import TASKS
from .common import (
    _KINDS,
    UsageError,
    _add_store_arg,
    _choice,
    _csv,
    _Deprecated,
    _float,
    _key_value,
    _nonneg_float,
    _nonneg_int,
    _option,
    _positive_float,
    _positive_int,
)
from .progress import _Progress


def register(sub) -> None:
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
                            f"left, exit with code {exit_codes.STOPPED}; the same command continues (this process "
                            f"only, not --devices/--executor)")
        p.add_argument("--yes", action="store_true",
                       help="run without asking when the run needs a confirmation: a profile made for another "
                            "device than this run's, or an estimate over $BENCH_SUITE_CONFIRM_OVER_H hours "
                            "(default 4) per worker (docs/runner.md)")
        p.add_argument("--heartbeat", type=_positive_float, default=None, metavar="SECONDS",
                       help="without a terminal (a log): a progress line per group in training every SECONDS "
                            "(default $BENCH_SUITE_HEARTBEAT_S or 60)")
        _add_scale_out_args(p)
        if name == "plan":
            p.add_argument("--json", action="store_true", help="print the plan as JSON (cells, costs, totals)")
            p.add_argument("--device-name", default=None, metavar="NAME",
                           help="estimate times from earlier runs on this device model (e.g. 'NVIDIA H100 80GB "
                                "HBM3'; default: the --device here)")
        p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    check_scale_out(args)
    cells = cells_from_args(args)
    return cmd_run(args, cells) if args.command == "run" else cmd_plan(args, cells)


RUN_EPILOG = (f"exit codes: {exit_codes.OK} every cell done; {exit_codes.FAILED} a cell errored, diverged, was "
              f"interrupted or lost; {exit_codes.USAGE} bad input, or a run that needs --yes (one line); "
              f"{exit_codes.SKIPPED} cells skipped (no data); {exit_codes.CLUSTER_LOST} the cluster stopped answering "
              f"(finished records kept; the same command collects later); {exit_codes.STOPPED} stopped early by "
              f"--time-budget (checkpointed: run the same command again to continue); {exit_codes.INTERRUPTED} Ctrl-C")

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
    s.add_argument("--executor", default="local", metavar="NAME",
                   help="where the cells run: " + "; ".join(f"{n}: {EXECUTORS.get(n).description}"
                                                            for n in EXECUTORS.names())
                        + " (a plug-in may add more: bench_suite.executors.register_executor)")
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
    EXECUTORS.get(args.executor)  # plug-ins are loaded by now: one line listing the valid names
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


_SUMMARY_METRICS = ("train_loss", "train_acc", "test_acc", "dist_w0")

def _final_rows(records: list[Record]) -> list[dict[str, Any]]:
    """The table `run` prints: one row per cell, the axes that vary among them, status and final
    metrics (columns named as in the results table, ``bench_suite.core.records.COLUMNS``)."""
    flat = [r.flat() for r in records]
    axes = ["task", "method", "width", "activation", "repetition", "task_options", "epochs", "batch_size", "lr_w",
            "lr_v", "momentum", "loss", "eps", "eps_mode", "eval_every", "precision"]
    always = {"task", "method", "width", "activation", "repetition"}
    shown = [a for a in axes if a in always or len({json.dumps(f[a], default=str) for f in flat}) > 1]
    rows = []
    for f in flat:
        row = {a: f[a] for a in shown}
        row["status"] = f["status"]
        row.update({m: f[m] for m in _SUMMARY_METRICS})
        # a fused group's cells share one clock: each cell's part of the group's time
        time_s, size = f["train_time_s"], f.get("group_size")
        row["time_s (share)"] = time_s / size if time_s is not None and size else time_s
        rows.append(row)
    return rows

def _drop_empty_columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = [k for k in rows[0] if any(r[k] is not None for r in rows)]
    return [{k: r[k] for k in keep} for r in rows]

def _values(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)

def _note_ad_hoc(args: argparse.Namespace, cells: list[Cell]) -> None:
    """Say when overrides took cells out of the profile asked for (they are never scored as it)."""
    if not args.profile:
        return
    ad_hoc = [c for c in cells if c.profile is None]
    if ad_hoc:
        why = profile_declares(ad_hoc[0].task, args.profile, ad_hoc[0].config())
        print(f"note: {len(ad_hoc)} of {len(cells)} cell(s) are ad hoc, not profile {args.profile} ({why}): "
              f"stored and reported, never scored against {args.profile}'s reference rows", file=sys.stderr)

def _slurm_settings(args: argparse.Namespace) -> dict[str, Any]:
    """``SlurmParams`` fields from the SLURM flags (--gpus-per-job None: the cells' device decides)."""
    return dict(partition=args.partition, gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job,
                mem_gb=args.mem_gb, time_limit_min=args.time_limit, max_jobs=args.max_jobs, requeues=args.requeues,
                extra=dict(args.slurm_arg), cluster=args.submitit_cluster, poll_s=args.poll_interval,
                cluster_timeout_s=args.cluster_timeout)

def _interactive() -> bool:
    """Someone can answer: stdin and stderr are a terminal (not a batch job, a pipe, CI)."""
    return sys.stdin.isatty() and sys.stderr.isatty()

def _ask(preflight) -> bool:
    """The y/N question of a run that needs a confirmation, when someone is there to answer."""
    if not _interactive():
        return False
    print(f"{'; '.join(preflight.reasons)}\n{preflight.line()}\nrun it anyway? [y/N] ", end="", file=sys.stderr,
          flush=True)  # on stderr: stdout may be a file of results
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")

def _state_estimate(preflight) -> None:
    """Say what a grid will cost before it starts, when that is a minute or more (a run that
    needs a confirmation says it in its question, or its one-line refusal)."""
    est = preflight.estimate
    if not preflight.reasons and est is not None and est.known and est.total_seconds >= 60:
        say(preflight.line())

def cmd_run(args: argparse.Namespace, cells: list[Cell]) -> int:
    """The cells through the library's one run path (executors.session.run_grid); here only
    the flags in, the table and the summary lines out."""
    from ..executors.driver import ClusterLost
    from ..executors.local import parse_devices
    from ..executors.session import RunRequest, run_grid

    _note_ad_hoc(args, cells)
    request = RunRequest(
        store=args.store, executor=args.executor, device=args.device,
        devices=parse_devices(args.devices, check=False) if args.devices else None, threads=args.threads,
        data_root=args.data_root, cache_dir=args.cache_dir, force=args.force, fuse=not args.no_fuse,
        max_group=args.max_group, plugins=list(args.plugin), checkpoint_every=args.checkpoint_every,
        time_budget_s=args.time_budget, heartbeat_s=args.heartbeat, scheduler=args.scheduler,
        slurm=_slurm_settings(args) if args.executor == "slurm" else {}, wait=not args.no_wait,
    )
    quiet = args.quiet or not sys.stderr.isatty()
    progress = _Progress(quiet, CostModel(ResultStore(Path(args.store).expanduser()).records),
                         heartbeat_s=args.heartbeat)
    try:
        summary = run_grid(
            cells, request, confirm=True if args.yes else _ask, confirm_how="add --yes",
            on_estimate=_state_estimate, on_record=progress.record, on_plan=progress.plan, on_epoch=progress.epoch,
            on_group_start=progress.group_start, on_resume=progress.resume, on_message=say,
            store_option="--store", data_root_option="--data-root")
    except ClusterLost as exc:
        progress.close()
        print(f"python -m bench_suite: {exc} (exit code {exit_codes.CLUSTER_LOST})", file=sys.stderr)
        return exit_codes.CLUSTER_LOST
    finally:
        progress.close()
    store = ResultStore(Path(args.store).expanduser())
    if not summary.waited:
        ids, adopted = summary.submitted, summary.adopted
        submitted = f"submitted the cells not yet finished as SLURM job(s) {', '.join(ids)}" if ids else (
            "submitted nothing")
        held = f"; already queued or running: job(s) {', '.join(adopted)}" if adopted else ""
        print(f"{submitted} (run {summary.run_id}){held}; `plan` with the same arguments shows which are queued, "
              f"running or done, the same command collects; logs in {store.runs_dir}")
        return exit_codes.OK
    if summary.records:
        rows = _drop_empty_columns(_final_rows(summary.records))
        print(tabulate(rows, headers="keys", floatfmt=".4g", missingval="-"))
    print(f"\n{summary.count('done')} done, "
          f"{summary.count('diverged')} diverged, {summary.count('error')} error, {summary.count('lost')} lost, "
          f"{summary.count('skipped')} skipped ({summary.cached} of these found finished in the store, "
          f"{summary.by_others} finished by another runner meanwhile, "
          f"{summary.claimed_elsewhere} held by another runner); "
          f"records in {store.records_dir} (run {summary.run_id})")
    for failure in summary.failures:
        print(f"WORKER FAILED: {failure}", file=sys.stderr)
    # one line per distinct (status, reason): a missing dataset skips every cell for one reason
    problems: dict[tuple[str, str], list[str]] = {}
    for record in summary.records:
        if record.status != Status.DONE:
            problems.setdefault((record.status.value, str(record.reason)), []).append(record.name)
    for (status, reason), names in problems.items():
        who = names[0] if len(names) == 1 else f"{len(names)} cells, e.g. {names[0]}"
        print(f"{status.upper()}: {who}: {reason}", file=sys.stderr)
    if summary.stopped:
        print(_stopped_line(summary, len({c.cell_id for c in cells})), file=sys.stderr)
    return summary.exit_code

def _stopped_line(summary, total: int) -> str:
    """One line: why the run stopped early, what is left, how to continue."""
    finished = sum(1 for r in summary.records if r.finished)
    saved = [f"{len(g['cells'])} cell(s) at epoch {g['epoch']}/{g['epochs']}" for g in summary.checkpointed]
    held = sum(len(g["cells"]) for g in summary.checkpointed)
    left = total - finished - held
    return (f"STOPPED ({summary.stopped}): {finished} of {total} cells finished"
            + (f", checkpointed {', '.join(saved)}" if saved else "")
            + f", {left} not started; run the same command again to continue (exit code {summary.exit_code})")

def _will_run(item: dict[str, Any]) -> str:
    """yes / no, or the SLURM job that will run it (`run` collects such cells, it does not resubmit them)."""
    job = item.get("job")
    if item["will_run"] and job:
        state = job["state"] + (f" ({job['reason']})" if job["state"] == "PENDING" and job.get("reason") else "")
        return f"{'running' if job['state'] == 'RUNNING' else 'queued'}: job {job['id']} {state}"
    return "yes" if item["will_run"] else "no"

def cmd_plan(args: argparse.Namespace, cells: list[Cell]) -> int:
    """The cells `run` would do with the same arguments: the same test (grouping.plan), no
    training, no torch.

    Costs: FLOPs per cell as the engine counts them; time per fused group (as `run` would form
    them) from the rate earlier groups of a similar size achieved on this device model."""
    if not str(args.store).strip() or (Path(args.store).expanduser().exists() and not Path(args.store).is_dir()):
        raise PathProblem(f"--store {args.store!r}: not a folder; give the result store's folder")
    store = ResultStore(args.store)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
    device = check_device_text(devices[0] if devices else (args.device or "auto"))
    device = f"cuda:{device}" if device.isdigit() else device
    device_type, probed_name = provenance.probe_device_name(device)
    device_name = args.device_name or probed_name
    costs = CostModel(store.records)
    items = plan(store, cells, force=args.force)
    from ..runner.checkpoints import CheckpointStore

    saved = CheckpointStore(store.root).index()
    # the estimate `run` states before it starts (executors.session.preflight): one cost model
    est = estimate([p.cell for p in items if p.will_run], costs, device_name, fuse=not args.no_fuse,
                   max_group=args.max_group)
    seconds = est.seconds
    # cells earlier `run --executor slurm` invocations submitted that are still queued or running
    from ..executors.slurm_queue import in_flight

    jobs = in_flight(store.root, [p.cell.cell_id for p in items if p.will_run])
    rows_json = []
    for item in items:
        cell = item.cell
        shape = costs.shape(cell)
        job = jobs.get(cell.cell_id)
        rows_json.append({
            "name": cell.name, "cell_id": cell.cell_id, "profile": cell.profile,
            "in_store": item.record.status.value if item.record else None,
            "will_run": item.will_run, "flops": costs.flops(cell), "seconds": seconds.get(cell.cell_id),
            "job": None if job is None else {"executor": "slurm", "id": job.job_id, "state": job.state.state,
                                             "reason": job.state.reason, "run_id": job.run_id},
            "checkpoint": ({"epoch": saved[cell.cell_id]["epoch"], "epochs": saved[cell.cell_id]["epochs"]}
                           if cell.cell_id in saved and item.will_run else None),
            "shape": None if shape is None else {"n": shape.n, "d": shape.d, "k": shape.k, "n_test": shape.n_test,
                                                 "source": shape.source, "exact": shape.exact},
        })
    todo = [i for i in rows_json if i["will_run"]]
    total_flops, unknown_flops = est.total_flops, est.unknown_flops
    total_seconds, unknown_time = est.total_seconds, est.unknown_time
    axes = _axes_text(cells)
    if args.json:
        print(json.dumps({
            "device": device_type, "device_name": device_name, "cells": rows_json, "axes": axes,
            "total": {"cells": len(rows_json), "finished": len(rows_json) - len(todo), "to_run": len(todo),
                      "flops": total_flops, "seconds": total_seconds, "cells_without_flops": unknown_flops,
                      "cells_without_time": unknown_time},
        }, indent=1))
        return 0
    _note_ad_hoc(args, cells)
    rows = [{"cell": i["name"], "id": i["cell_id"], "in store": i["in_store"] or "-",
             "will run": _will_run(i),
             "checkpoint": f"epoch {i['checkpoint']['epoch']}/{i['checkpoint']['epochs']}" if i["checkpoint"] else "-",
             "cost": format_flops(i["flops"]),
             "est. time": format_seconds(i["seconds"]) if i["will_run"] else "-"} for i in rows_json]
    print(tabulate(rows, headers="keys"))
    print(f"\n{len(rows_json)} cells ({axes}): {len(rows_json) - len(todo)} finished in the store, {len(todo)} to run "
          f"on {device_type} ({device_name})")
    if jobs:
        ids = ", ".join(sorted({j.job_id for j in jobs.values()}))
        print(f"{len(jobs)} of them queued or running as SLURM job(s) {ids}: the same `run` collects them")
    if todo:
        workers = len(devices) if devices and len(devices) > 1 else 1
        print(f"estimated cost: {est.cost_text()}; {est.time_text(workers)}")
        for note in est.notes:
            print(f"  rate: {note}")
    return 0

def _axes_text(cells: list[Cell]) -> str:
    """The grid's product, e.g. ``4 methods x 3 eps x 2 repetitions``: the axes with several values."""
    if not cells:
        return "no cells"
    values: dict[str, set] = {"tasks": set(), "methods": set(), "widths": set(), "activations": set(),
                              "repetitions": set()}
    for cell in cells:
        values["tasks"].add(cell.task)
        values["methods"].add(cell.method)
        values["widths"].add(cell.width)
        values["activations"].add(cell.activation)
        values["repetitions"].add(cell.repetition)
        for key, value in cell.config()["train"].items():
            values.setdefault(key, set()).add(json.dumps(value))
        for key, value in cell.options.items():
            values.setdefault(key, set()).add(json.dumps(value, default=str))
    parts = [f"{len(v)} {k}" for k, v in values.items() if len(v) > 1]
    product = 1
    for v in values.values():
        product *= len(v)
    if product != len(cells):  # a union of cases, not one product: say what varies
        return "distinct values: " + ", ".join(parts)
    return " x ".join(parts) or "1 cell"
