"""The work behind each CLI command (argument parsing lives in :mod:`bench_suite.cli`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ..core.config import check_device_text
from ..core.records import FAILED, Record, Status
from ..grid import Cell, export_profiles, profile_declares, profile_repetitions, profiles_of
from ..methods import METHODS
from ..run import provenance
from ..run.cost import CostModel, format_flops, format_seconds, group_step_flops
from ..run.grouping import describe, group_cells, plan, trainer_groups
from ..store.result_store import ResultStore
from ..tasks import TASKS


class PathProblem(ValueError):
    """A path the command must write or read is unusable: one line naming it, why, and the option."""


def writable_dir(path: str | os.PathLike, option: str) -> Path:
    """``path`` as a folder this process can write (created if needed), or :class:`PathProblem`."""
    if not str(path).strip():
        raise PathProblem(f"{option}: an empty path; give a folder")
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise PathProblem(f"{option} {p}: exists and is not a folder; give a folder path")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PathProblem(f"{option} {p}: cannot create it ({exc.strerror or exc}); give a writable folder") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise PathProblem(f"{option} {p}: not writable by this user; give a writable folder")
    return p


def existing_store(path: str | os.PathLike) -> ResultStore:
    """The store to read (``check``, ``report``, ``export``): it must exist (a typo must not pass CI)."""
    if not str(path).strip():
        raise PathProblem("--store: an empty path; give the folder of a result store")
    p = Path(path).expanduser()
    if not p.exists():
        raise PathProblem(f"--store {p}: no such result store (run `python -m bench_suite run --store {p}` first, "
                          f"or give the folder that holds records/)")
    if not p.is_dir():
        raise PathProblem(f"--store {p}: not a folder")
    if not (p / "records").is_dir():
        raise PathProblem(f"--store {p}: not a result store (it has no records/ folder)")
    return ResultStore(p)


def cmd_list(args: argparse.Namespace) -> int:
    for name in args.task or []:
        TASKS.get(name)  # an unknown name: one line listing the valid ones
    if args.export:
        if not args.profiles:
            raise ValueError("--export goes with --profiles: `list --profiles --export > my_profiles.toml`")
        print(export_profiles(args.task), end="")
        return 0
    rows = [(name, TASKS.get(name).description) for name in TASKS.names()]
    print("Tasks:")
    print(tabulate(rows, headers=["task", "description"]))
    print("\nMethods:")
    print(tabulate([(m, METHODS.get(m).description, METHODS.get(m).rationale, METHODS.get(m).trainer)
                    for m in METHODS.names()], headers=["method", "description", "why", "trainer"]))
    if args.profiles:
        print("\nProfiles:")
        rows = []
        for name in args.task or TASKS.names():
            task = TASKS.get(name)
            for prof, spec in sorted(profiles_of(name).items()):
                grid = {k: spec.get(k, task.grid.get(k)) for k in ("methods", "widths", "activations")}
                settings = " ".join(f"{k}={_values(v)}" for k, v in {**(spec.get("options") or {}),
                                                                     **(spec.get("train") or {})}.items())
                if spec.get("cases"):
                    settings += f" + {len(spec['cases'])} cases"
                rows.append((
                    name, prof, spec.get("device", "any"), profile_repetitions(spec), _values(grid["methods"]),
                    _values(grid["widths"]), _values(grid["activations"]), settings.strip(),
                    spec.get("description", ""),
                ))
        print(tabulate(rows, headers=["task", "profile", "device", "repetitions", "methods", "widths", "activations",
                                      "settings", "description"]))
    else:
        print("\n(`list --profiles` shows each task's profiles; task options:)")
        for name in TASKS.names():
            opts = " ".join(f"{k}={v}" for k, v in TASKS.get(name).options.items())
            print(f"  {name}: {opts or '(none)'}")
    return 0


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
    from ..run.runner import DATA_ROOT_ENV

    given, origin = (data_root, "--data-root") if data_root else (os.environ.get(DATA_ROOT_ENV), f"${DATA_ROOT_ENV}")
    if given and not Path(given).expanduser().exists():
        raise PathProblem(f"{origin} {given}: does not exist; give the folder or file that holds the data")


def cmd_run(args: argparse.Namespace, cells: list[Cell]) -> int:
    import torch

    from ..executors import EXIT_CLUSTER_LOST, ClusterLost, WorkerOptions, drive, parse_devices
    from ..run.runner import Runner, new_run_id

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
    from ..run.checkpoints import CheckpointStore

    saved = CheckpointStore(store.root).index()
    seconds: dict[str, float | None] = {}
    notes: set[str] = set()
    groups = group_cells([p.cell for p in items if p.will_run], fuse=not args.no_fuse, max_group=args.max_group)
    for group in (part for g in groups for part in trainer_groups(g)):  # as `run` forms them
        per_step = group_step_flops(group, costs)
        trainer = METHODS.get(group[0].method).trainer
        rate = costs.rate(device_name, per_step, trainer=trainer) if per_step is not None else None
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


class _Progress:
    """A bar over the cells to run (done / cached / to run, ETA) and one over the epochs of the
    group in training; in quiet mode (or without a terminal) one line per finished cell.

    The cell bar advances by each cell's estimated FLOPs (when every size is known) and within
    a group by its epochs, so the ETA follows the work left, not a count of unequal cells."""

    def __init__(self, quiet: bool, costs: CostModel | None = None) -> None:
        self.quiet = quiet
        self.costs = costs
        self.cells = None
        self.epochs = None
        self.weights: dict[str, float] = {}
        self.credited: dict[str, float] = {}
        self.group: list[Cell] = []
        self.n_todo = self.n_cached = self.n_finished = self.n_failed = 0

    def plan(self, cached: list[Cell], todo: list[Cell]) -> None:
        self.n_cached, self.n_todo = len(cached), len(todo)
        flops = [self.costs.flops(c) if self.costs is not None else None for c in todo]
        known = all(f is not None and f > 0 for f in flops)
        self.weights = {c.cell_id: (f if known else 1.0) for c, f in zip(todo, flops)}
        if self.quiet:
            print(f"{len(cached) + len(todo)} cells: {len(cached)} finished in the store, {len(todo)} to run",
                  file=sys.stderr, flush=True)
            return
        from tqdm import tqdm

        self._tqdm = tqdm
        self.cells = tqdm(total=sum(self.weights.values()) or 1.0, desc="cells", position=0,
                          bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
        self._describe()

    def _describe(self) -> None:
        if self.cells is not None:
            self.cells.set_description_str(f"cells: {self.n_finished}/{self.n_todo} run, {self.n_failed} failed, "
                                           f"{self.n_cached} cached;")

    def _credit(self, cell_id: str, amount: float) -> None:
        if self.cells is None or cell_id not in self.weights:
            return
        amount = min(amount, self.weights[cell_id] - self.credited.get(cell_id, 0.0))
        if amount > 0:
            self.credited[cell_id] = self.credited.get(cell_id, 0.0) + amount
            self.cells.update(amount)

    def group_start(self, group: list[Cell]) -> None:
        self.group = group
        if self.quiet or self.cells is None:
            return
        if self.epochs is not None:
            self.epochs.close()
        label = f"{group[0].task} rep {group[0].repetition} ({len(group)} fused)"
        self.epochs = self._tqdm(total=group[0].train.epochs, desc=label, unit="ep", position=1, leave=False)

    def epoch(self, done: int, total: int) -> None:
        if self.epochs is not None:
            self.epochs.update(done - self.epochs.n)
        for cell in self.group:
            target = self.weights.get(cell.cell_id, 0.0) * done / total
            self._credit(cell.cell_id, target - self.credited.get(cell.cell_id, 0.0))

    def record(self, record: Record) -> None:
        cell_id = record.cell_id
        if cell_id not in self.weights:  # found finished in the store: counted by plan()
            return
        self.n_finished += 1
        if record.status in FAILED:
            self.n_failed += 1
        if self.quiet:
            print(f"[{self.n_finished}/{self.n_todo}] {describe(record)}", file=sys.stderr, flush=True)
            return
        self._credit(cell_id, float("inf"))
        self._describe()

    def close(self) -> None:
        for bar in (self.epochs, self.cells):
            if bar is not None:
                bar.close()
        self.epochs = self.cells = None


def _scoring(args: argparse.Namespace):
    from ..api import score

    _check_selection(args)

    return score(args.store, profile=args.profile, tasks=args.task, baselines=args.baselines,
                 include_old_code=args.include_old_code)


def _check_selection(args: argparse.Namespace) -> None:
    """``--profile`` / ``--task`` of check and report must name things that exist: a typo is an
    error (exit 2), not an empty selection."""
    for name in args.task or []:
        TASKS.get(name)
    if args.profile and args.profile not in set().union(*(profiles_of(t) for t in TASKS.names())):
        known = sorted(set().union(*(profiles_of(t) for t in TASKS.names())))
        raise ValueError(f"--profile {args.profile!r}: no task declares it; profiles: {', '.join(known)}")
    name = getattr(args, "name", None)
    if name is not None and (not name.strip() or "/" in name or "\\" in name or name in (".", "..")):
        raise ValueError(f"--name {name!r}: a folder name inside --reports-dir, without path separators")


def _stale_line(scoring) -> str | None:
    stale = scoring.stale()
    if not stale:
        return None
    from ..grid.versions import why_not_current

    reasons = sorted({why_not_current(r) for r in stale})
    profiles = sorted({str(r.profile) for r in stale})
    return (f"STALE: {len(stale)} record(s) of profile(s) {', '.join(profiles)} in {scoring.store.root} were computed "
            f"by other code ({'; '.join(reasons)}); re-run them (e.g. `nox -s reproduce`) to score them, or pass "
            f"--include-old-code")


def _code_line(verdicts) -> str:
    versions = sorted({d for ds in verdicts["code_versions"] for d in (ds or [])}) if len(verdicts) else []
    return f"code version(s) scored: {'; '.join(versions) if versions else 'none'}"


def cmd_check(args: argparse.Namespace) -> int:
    from ..check.scoring import describe_left_out, exit_code, save_verdicts, summary

    scoring = _scoring(args)
    if not scoring.references:
        from ..check.references import load_references

        with_rows = sorted({r.profile for r in load_references(args.baselines)})
        print(f"no reference rows for profile={args.profile}, task={args.task}; profiles with rows: "
              f"{', '.join(with_rows)}", file=sys.stderr)
        return 3
    verdicts = scoring.verdicts
    cols = ["id", "width", "activation", "metric", "reference", "ours", "ci_low", "ci_high", "n", "verdict", "note"]
    print(tabulate(verdicts[cols].to_dict("records"), headers="keys", floatfmt=".4g", missingval="-"))
    counts = summary(verdicts)
    print("\n" + ", ".join(f"{v} {k}" for k, v in counts.items()) + f" (store: {scoring.store.root})")
    print(_code_line(verdicts))
    left = describe_left_out(scoring.left_out)
    if left:
        print(f"{left} (details: `check --save DIR`, DIR/verdicts.json)")
    if counts["INCONCLUSIVE"]:
        ids = sorted({str(i) for i in verdicts.loc[verdicts["verdict"] == "INCONCLUSIVE", "id"]})
        print(f"INCONCLUSIVE: {counts['INCONCLUSIVE']} row(s) undecided at these repetitions: {', '.join(ids)}",
              file=sys.stderr)
    if args.save:
        out = writable_dir(args.save, "--save")
        save_verdicts(verdicts, out, left_out=scoring.left_out, context=_context(args, scoring))
        print(f"verdicts written to {out / 'verdicts.json'} and {out / 'verdicts.csv'}")
    for line in scoring.store.verify_curves():  # the curves do not enter a verdict: said, not fatal
        print(f"warning: {line}", file=sys.stderr)
    stale = _stale_line(scoring)
    if stale and args.stale == "error":
        print(stale, file=sys.stderr)
        return 2
    if stale and args.stale == "warn":
        print(stale, file=sys.stderr)
    return exit_code(verdicts)


def _context(args: argparse.Namespace, scoring) -> dict[str, Any]:
    return {"store": str(scoring.store.root), "profile": args.profile, "tasks": args.task,
            "include_old_code": bool(args.include_old_code), "current_code": dict(sorted(scoring.current_code.items())),
            "records": len(scoring.records), "left_out": len(scoring.left_out)}


def cmd_report(args: argparse.Namespace) -> int:
    from ..api import curves_frame, write_tables
    from ..check.scoring import describe_left_out, save_verdicts
    from ..core.records import to_frame
    from ..report.markdown import write_report

    if getattr(args, "section", None) == "ablation":  # only the ablation study's tables
        _check_selection(args)
        from ..report.ablation import write_study

        path = write_study(existing_store(args.store).records(with_curves=True),
                           writable_dir(args.reports_dir, "--reports-dir")
                           / (args.name or "ablation"), profiles=[args.profile] if args.profile else None,
                           **({"title": args.title} if args.title else {}))
        print(f"report written to {path}")
        return 0
    scoring = _scoring(args)
    reports_dir = writable_dir(args.reports_dir, "--reports-dir")
    records = scoring.records
    if args.task:
        records = [r for r in records if r.task in args.task]
    if args.profile:  # the cells the profile declares (whatever profile first ran them), and those run as it
        records = [r for r in records if r.profile == args.profile
                   or profile_declares(r.task, args.profile, r.config) is None]
    records = scoring.store.attach_curves(records)  # the plots, the ablation tables at T steps, curves.csv
    df = to_frame(records)
    notes = []
    devices = sorted({str(d) for d in df["device"].dropna()})
    if "cpu" in devices:
        notes.append("CPU-scale results are not comparable with Table 3: these runs used the CPU "
                     "(scaled-down profiles); Table 3 rows are checked only against `paper`-profile results.")
    if df.empty:
        notes.append(f"The store {scoring.store.root} holds no results for this selection.")
    stale = _stale_line(scoring)
    if stale:
        notes.insert(0, stale)
    left = describe_left_out(scoring.left_out)
    if left:
        notes.append(f"{left[0].upper()}{left[1:]}: see the section 'Records not scored'.")
    notes.append(_code_line(scoring.verdicts)[0].upper() + _code_line(scoring.verdicts)[1:] + ".")
    name = args.name or args.profile or "all"
    out_dir = reports_dir / name
    path = write_report(df, records, scoring.verdicts, out_dir, title=args.title or f"bench_suite report: {name}",
                        note_lines=notes, left_out=scoring.left_out)
    save_verdicts(scoring.verdicts, out_dir, left_out=scoring.left_out, context=_context(args, scoring))
    write_tables(df, curves_frame(records), out_dir)
    print(f"report written to {path} (with verdicts.json/.csv, results and curves as CSV/parquet)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..api import export

    existing_store(args.store)  # before creating --dir
    out = writable_dir(args.dir, "--dir")
    paths = export(args.store, out)
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    """``store migrate|pack|prune``: bench_suite/store/migrate.py and the store's pack."""
    from ..store.migrate import migrate_store, prune_store

    store = existing_store(args.store)
    if args.action == "migrate":
        for line in migrate_store(store.root, dry_run=args.dry_run).lines():
            print(line + (" (dry run)" if args.dry_run else ""))
    elif args.action == "pack":
        result = store.pack()
        print(f"packed {result.cells} cell(s) into {result.pack}" if result.pack else "nothing to pack")
    else:
        if not args.status:
            raise ValueError("store prune needs --status (e.g. --status skipped)")
        removed = prune_store(store.root, args.status, dry_run=args.dry_run)
        print(f"{'would remove' if args.dry_run else 'removed'} {len(removed)} record(s) of status "
              f"{', '.join(args.status)}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """``doctor``: the checks live in :mod:`bench_suite.diagnostics.doctor`."""
    from ..diagnostics.doctor import main as doctor_main

    return doctor_main(args.device, rate_seconds=args.rate_seconds)


def cmd_plugin_check(args: argparse.Namespace) -> int:
    """``plugin-check``: the contract lives in :mod:`bench_suite.testing`."""
    from ..testing import main as plugin_check_main

    return plugin_check_main(args.module, device=check_device_text(args.device))
