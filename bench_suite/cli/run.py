"""``run`` and ``plan``: the cells of a profile or of axes given on the command line; ``plan``
lists them, which are done and their cost, ``run`` trains them into the store."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ..core import exit_codes
from ..core.config import ACTIVATIONS, TrainConfig, check_device_text
from ..core.errors import PathProblem
from ..core.files import writable_dir
from ..core.records import Record, Status
from ..grid import Cell, expand, load_profile_file, profile_declares, profile_names, profiles_of
from ..methods import METHODS
from ..runner import provenance
from ..runner.cost import CostModel, format_flops, format_seconds, group_step_flops
from ..runner.grouping import group_cells, plan, trainer_groups
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
                            f"left, exit with code {EXIT_STOPPED}; the same command continues (this process only, "
                            f"not --devices/--executor)")
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


EXECUTORS = ("local", "dask", "slurm")

EXIT_STOPPED = exit_codes.STOPPED

RUN_EPILOG = (f"exit codes: 0 every cell done; 1 a cell errored, diverged, was interrupted or lost; 2 bad input "
              f"(one line); 3 cells skipped (no data); 69 the cluster stopped answering (finished records kept; "
              f"the same command collects later); {EXIT_STOPPED} stopped early by --time-budget (checkpointed: run "
              f"the same command again to continue); 130 Ctrl-C")

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
        row["time_s"] = f["train_time_s"]
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

def _check_data_root(data_root: str | None) -> None:
    """A data location that does not exist is a typo, not "no data": say so before running."""
    from ..runner.runner import DATA_ROOT_ENV

    given, origin = (data_root, "--data-root") if data_root else (os.environ.get(DATA_ROOT_ENV), f"${DATA_ROOT_ENV}")
    if given and not Path(given).expanduser().exists():
        raise PathProblem(f"{origin} {given}: does not exist; give the folder or file that holds the data")

def cmd_run(args: argparse.Namespace, cells: list[Cell]) -> int:
    import torch

    from ..executors import EXIT_CLUSTER_LOST, ClusterLost, WorkerOptions, drive, parse_devices
    from ..runner.runner import Runner, new_run_id

    store = ResultStore(writable_dir(args.store, "--store"))
    _check_data_root(args.data_root)
    _note_ad_hoc(args, cells)
    quiet = args.quiet or not sys.stderr.isatty()
    progress = _Progress(quiet, CostModel(store.records))
    run_id = new_run_id()
    devices = parse_devices(args.devices) if args.devices else None
    in_process = args.executor == "local" and (devices is None or len(devices) == 1)
    try:
        if in_process:
            if args.threads:
                torch.set_num_threads(args.threads)
            runner = Runner(
                store, device=devices[0] if devices else (args.device or "auto"), data_root=args.data_root,
                cache_dir=args.cache_dir, force=args.force, fuse=not args.no_fuse, max_group=args.max_group,
                run_id=run_id, on_record=progress.record, on_epoch=progress.epoch,
                on_group_start=progress.group_start, checkpoint_every=args.checkpoint_every,
                time_budget_s=args.time_budget,
            )
            items = runner.plan(cells)
            progress.plan([p.cell for p in items if not p.will_run], [p.cell for p in items if p.will_run])
            summary = runner.run(cells)
        else:
            backend = _backend(args, devices)
            # paths as absolute ones: workers may start elsewhere (None: each worker's environment)
            data_root = _absolute(args.data_root)
            options = WorkerOptions(
                store=str(store.root.resolve()), run_id=run_id, devices=["auto"], data_root=data_root,
                data_root_seen=data_root is not None and os.path.exists(data_root),
                cache_dir=_absolute(args.cache_dir), force=args.force, fuse=not args.no_fuse, max_group=args.max_group,
                threads=_worker_threads(args.threads, devices), plugins=list(args.plugin), executor=backend.name,
            )
            wait = not args.no_wait
            try:
                summary = drive(cells, options, backend, on_record=progress.record, on_plan=progress.plan, wait=wait)
            except ClusterLost as exc:
                progress.close()
                print(f"python -m bench_suite: {exc} (exit code {EXIT_CLUSTER_LOST})", file=sys.stderr)
                return EXIT_CLUSTER_LOST
            if not wait:
                progress.close()
                ids, adopted = backend.job_ids(), backend.adopted_ids()
                submitted = f"submitted the cells not yet finished as SLURM job(s) {', '.join(ids)}" if ids else (
                    "submitted nothing")
                held = f"; already queued or running: job(s) {', '.join(adopted)}" if adopted else ""
                print(f"{submitted} (run {run_id}){held}; `plan` with the same arguments shows which are queued, "
                      f"running or done, the same command collects; logs in {store.runs_dir}")
                return 0
    finally:
        progress.close()
    from ..api import pack_curves

    problem = pack_curves(store)  # every worker is done: one curves file for the store
    if problem:
        print(f"note: {problem}", file=sys.stderr)
    if summary.records:
        rows = _drop_empty_columns(_final_rows(summary.records))
        print(tabulate(rows, headers="keys", floatfmt=".4g", missingval="-"))
    print(f"\n{summary.count('done')} done, "
          f"{summary.count('diverged')} diverged, {summary.count('error')} error, {summary.count('lost')} lost, "
          f"{summary.count('skipped')} skipped ({summary.cached} of these found finished in the store, "
          f"{summary.by_others} finished by another runner meanwhile, "
          f"{summary.claimed_elsewhere} held by another runner); "
          f"records in {store.records_dir} (run {run_id})")
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

def _absolute(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(os.path.expanduser(path))

def _backend(args: argparse.Namespace, devices: list[str] | None):
    """The executor backend named on the command line (its extra is imported only here)."""
    from ..executors import DaskBackend, LocalDevices, SlurmBackend, SlurmParams

    if args.executor == "dask":
        return DaskBackend(args.scheduler)
    if args.executor == "slurm":
        return SlurmBackend(SlurmParams(
            partition=args.partition, gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job,
            mem_gb=args.mem_gb, time_limit_min=args.time_limit, max_jobs=args.max_jobs, requeues=args.requeues,
            extra=dict(args.slurm_arg), cluster=args.submitit_cluster, poll_s=args.poll_interval,
            cluster_timeout_s=args.cluster_timeout,
        ))
    return LocalDevices(devices or ["auto"])

def _worker_threads(threads: int | None, devices: list[str] | None) -> int | None:
    """Torch threads per worker: as asked, else the cores shared among the CPU workers (so
    two CPU workers do not each start one thread per core)."""
    if threads or not devices:
        return threads
    cpu_workers = sum(1 for d in devices if d == "cpu")
    return max(1, (os.cpu_count() or 1) // cpu_workers) if cpu_workers else None

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
    seconds: dict[str, float | None] = {}
    notes: set[str] = set()
    groups = group_cells([p.cell for p in items if p.will_run], fuse=not args.no_fuse, max_group=args.max_group)
    for group in (part for g in groups for part in trainer_groups(g)):  # as `run` forms them
        per_step = group_step_flops(group, costs)
        trainer = METHODS.get(group[0].method).trainer
        rate = (costs.rate(device_name, per_step, trainer=trainer, precision=group[0].train.precision)
                if per_step is not None else None)
        if rate is not None:
            notes.add(f"{trainer} trainer: {format_flops(rate[0])}/s (median of {rate[1]} earlier group(s) "
                      f"at {rate[2]})")
        for cell in group:
            flops = costs.flops(cell)
            seconds[cell.cell_id] = flops / rate[0] if flops is not None and rate is not None else None
    # cells earlier `run --executor slurm` invocations submitted that are still queued or running
    from ..executors import in_flight

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
    total_flops = sum(i["flops"] for i in todo if i["flops"] is not None)
    unknown_flops = sum(i["flops"] is None for i in todo)
    total_seconds = sum(i["seconds"] for i in todo if i["seconds"] is not None)
    unknown_time = sum(i["seconds"] is None for i in todo)
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
        cost = format_flops(total_flops) + (f" + {unknown_flops} cell(s) of unknown size" if unknown_flops else "")
        if unknown_time == len(todo):
            time_text = "time unknown: no earlier run on this device in the store (or sizes unknown)"
        else:
            time_text = (f"about {format_seconds(total_seconds)} of device time"
                         + (f" + {unknown_time} cell(s) without an estimate" if unknown_time else ""))
        if devices and len(devices) > 1 and unknown_time < len(todo):
            time_text += f" (shared by {len(devices)} workers)"
        print(f"estimated cost: {cost}; {time_text}")
        for note in sorted(notes):
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
