"""The work behind each CLI command (argument parsing lives in :mod:`bench_suite.cli`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import torch
from tabulate import tabulate

from . import provenance
from .cost import CostModel, format_flops, format_seconds, group_step_flops
from .executors import DaskBackend, LocalDevices, SlurmBackend, SlurmParams, WorkerOptions, drive, parse_devices
from .grid import Cell
from .methods import METHODS
from .runner import FAILED, Runner, describe, new_run_id
from .store import FINISHED, ResultStore
from .tasks import TASKS


def cmd_list(args: argparse.Namespace) -> int:
    rows = [(name, TASKS.get(name).description) for name in TASKS.names()]
    print("Tasks:")
    print(tabulate(rows, headers=["task", "description"]))
    print("\nMethods:")
    print(tabulate([(m, METHODS.get(m).description) for m in METHODS.names()], headers=["method", "description"]))
    if args.profiles:
        print("\nProfiles:")
        rows = []
        for name in TASKS.names():
            task = TASKS.get(name)
            for prof, spec in sorted(task.profiles.items()):
                grid = {k: spec.get(k, task.grid.get(k)) for k in ("methods", "widths", "activations")}
                rows.append((
                    name, prof, spec.get("device", "any"), spec.get("seeds", 1),
                    ",".join(map(str, grid["methods"])), ",".join(map(str, grid["widths"])),
                    ",".join(grid["activations"]),
                    " ".join(f"{k}={v}" for k, v in {**spec.get("options", {}), **spec.get("train", {})}.items()),
                    spec.get("description", ""),
                ))
        print(tabulate(rows, headers=["task", "profile", "device", "seeds", "methods", "widths", "activations",
                                      "settings", "description"]))
    else:
        print("\n(`list --profiles` shows each task's profiles; task options:)")
        for name in TASKS.names():
            opts = " ".join(f"{k}={v}" for k, v in TASKS.get(name).options.items())
            print(f"  {name}: {opts or '(none)'}")
    return 0


def _final_row(record: dict[str, Any]) -> dict[str, Any]:
    config = record["config"]
    final = record.get("final") or {}
    timing = record.get("timing") or {}
    return {
        "task": config["task"],
        "method": config["method"],
        "width": config["width"],
        "act": config["activation"],
        "rep": config["repetition"],
        "status": record["status"],
        "train_loss": final.get("train_loss"),
        "train_acc": final.get("train_acc"),
        "test_acc": final.get("test_acc"),
        "‖W−W0‖": final.get("dist_w0"),
        "time_s": timing.get("train_time_s"),
    }


def _drop_empty_columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = [k for k in rows[0] if any(r[k] is not None for r in rows)]
    return [{k: r[k] for k in keep} for r in rows]


def cmd_run(args: argparse.Namespace, cells: list[Cell]) -> int:
    store = ResultStore(args.out)
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
            plan = runner.plan(cells)
            progress.plan([p.cell for p in plan if not p.will_run], [p.cell for p in plan if p.will_run])
            summary = runner.run(cells)
        else:
            backend = _backend(args, devices)
            # paths as absolute ones: workers may start elsewhere (None: each worker's environment)
            options = WorkerOptions(
                store=str(store.root.resolve()), run_id=run_id, devices=["auto"], data_root=_absolute(args.data_root),
                cache_dir=_absolute(args.cache_dir), force=args.force, fuse=not args.no_fuse, max_group=args.max_group,
                threads=_worker_threads(args.threads, devices), plugins=list(args.plugin), executor=backend.name,
            )
            wait = not args.no_wait
            summary = drive(cells, options, backend, on_record=progress.record, on_plan=progress.plan, wait=wait)
            if not wait:
                progress.close()
                ids = ", ".join(backend.job_ids()) or "none"
                print(f"submitted the cells not yet finished as SLURM job(s) {ids} (run {run_id}); "
                      f"`plan` with the same arguments shows which are done; logs in {store.runs_dir / run_id}")
                return 0
    finally:
        progress.close()
    if summary.records:
        rows = _drop_empty_columns([_final_row(r) for r in summary.records])
        print(tabulate(rows, headers="keys", floatfmt=".4g", missingval="-"))
    print(f"\n{summary.count('done')} done, "
          f"{summary.count('diverged')} diverged, {summary.count('error')} error, "
          f"{summary.count('skipped')} skipped ({summary.cached} of these found finished in the store, "
          f"{summary.by_others} finished by another runner meanwhile, "
          f"{summary.claimed_elsewhere} held by another runner); "
          f"records in {store.records_dir} (run {run_id})")
    for failure in summary.failures:
        print(f"WORKER FAILED: {failure}", file=sys.stderr)
    # one line per distinct (status, reason): a missing dataset skips every cell for one reason
    problems: dict[tuple[str, str], list[str]] = {}
    for record in summary.records:
        if record["status"] != "done":
            problems.setdefault((record["status"], str(record.get("reason"))), []).append(record["name"])
    for (status, reason), names in problems.items():
        who = names[0] if len(names) == 1 else f"{len(names)} cells, e.g. {names[0]}"
        print(f"{status.upper()}: {who}: {reason}", file=sys.stderr)
    if summary.stopped:
        print(_stopped_line(summary, len({c.cell_id for c in cells})), file=sys.stderr)
    return summary.exit_code


def _stopped_line(summary, total: int) -> str:
    """One line: why the run stopped early, what is left, how to continue."""
    finished = sum(1 for r in summary.records if r["status"] in FINISHED)
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
    if args.executor == "dask":
        return DaskBackend(args.scheduler)
    if args.executor == "slurm":
        return SlurmBackend(SlurmParams(
            partition=args.partition, gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job,
            mem_gb=args.mem_gb, time_limit_min=args.time_limit, max_jobs=args.max_jobs,
            extra=dict(args.slurm_arg), cluster=args.submitit_cluster,
        ))
    return LocalDevices(devices or ["auto"])


def _worker_threads(threads: int | None, devices: list[str] | None) -> int | None:
    """Torch threads per worker: as asked, else the cores shared among the CPU workers (so
    two CPU workers do not each start one thread per core)."""
    if threads or not devices:
        return threads
    cpu_workers = sum(1 for d in devices if d == "cpu")
    return max(1, (os.cpu_count() or 1) // cpu_workers) if cpu_workers else None


def cmd_plan(args: argparse.Namespace, cells: list[Cell]) -> int:
    """The cells `run` would do with the same arguments: the same test (Runner.plan), no training.

    Costs: FLOPs per cell as the engine counts them; time per fused group (as `run` would form
    them) from the rate earlier groups of a similar size achieved on this device model."""
    store = ResultStore(args.out)
    devices = parse_devices(args.devices) if args.devices else None
    runner = Runner(store, device=devices[0] if devices else (args.device or "auto"), force=args.force,
                    fuse=not args.no_fuse, max_group=args.max_group)
    device_name = args.device_name or provenance.device_name(runner.device)
    costs = CostModel(store.records)
    plan = runner.plan(cells)
    saved = runner.checkpoints.index()
    seconds: dict[str, float | None] = {}
    notes: set[str] = set()
    for group in runner.groups([p.cell for p in plan if p.will_run]):
        per_step = group_step_flops(group, costs)
        rate = costs.rate(device_name, per_step) if per_step is not None else None
        if rate is not None:
            notes.add(f"{format_flops(rate[0])}/s (median of {rate[1]} earlier group(s) at {rate[2]})")
        for cell in group:
            flops = costs.flops(cell)
            seconds[cell.cell_id] = flops / rate[0] if flops is not None and rate is not None else None
    items = []
    for item in plan:
        cell = item.cell
        shape = costs.shape(cell)
        items.append({
            "name": cell.name, "cell_id": cell.cell_id, "in_store": item.record["status"] if item.record else None,
            "will_run": item.will_run, "flops": costs.flops(cell), "seconds": seconds.get(cell.cell_id),
            "checkpoint": ({"epoch": saved[cell.cell_id]["epoch"], "epochs": saved[cell.cell_id]["epochs"]}
                           if cell.cell_id in saved and item.will_run else None),
            "shape": None if shape is None else {"n": shape.n, "d": shape.d, "k": shape.k, "n_test": shape.n_test,
                                                 "source": shape.source, "exact": shape.exact},
        })
    todo = [i for i in items if i["will_run"]]
    total_flops = sum(i["flops"] for i in todo if i["flops"] is not None)
    unknown_flops = sum(i["flops"] is None for i in todo)
    total_seconds = sum(i["seconds"] for i in todo if i["seconds"] is not None)
    unknown_time = sum(i["seconds"] is None for i in todo)
    if args.json:
        print(json.dumps({
            "device": str(runner.device), "device_name": device_name, "cells": items,
            "total": {"cells": len(items), "finished": len(items) - len(todo), "to_run": len(todo),
                      "flops": total_flops, "seconds": total_seconds, "cells_without_flops": unknown_flops,
                      "cells_without_time": unknown_time},
        }, indent=1))
        return 0
    rows = [{"cell": i["name"], "id": i["cell_id"], "in store": i["in_store"] or "-",
             "will run": "yes" if i["will_run"] else "no",
             "checkpoint": f"epoch {i['checkpoint']['epoch']}/{i['checkpoint']['epochs']}" if i["checkpoint"] else "-",
             "cost": format_flops(i["flops"]),
             "est. time": format_seconds(i["seconds"]) if i["will_run"] else "-"} for i in items]
    print(tabulate(rows, headers="keys"))
    print(f"\n{len(items)} cells: {len(items) - len(todo)} finished in the store, {len(todo)} to run "
          f"on {runner.device} ({device_name})")
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

    def record(self, record: dict[str, Any]) -> None:
        cell_id = record["cell_id"]
        if cell_id not in self.weights:  # found finished in the store: counted by plan()
            return
        self.n_finished += 1
        if record["status"] in FAILED:
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


def _scoring_inputs(args: argparse.Namespace):
    """The store's results and the reference rows, both narrowed to --profile / --task."""
    from .baselines import load_references

    store = ResultStore(args.out)
    df = store.to_dataframe()
    records = store.records()
    refs = load_references(args.baselines)
    if args.profile:
        df = df[df["profile"] == args.profile]
        records = [r for r in records if r.get("profile") == args.profile]
        refs = [r for r in refs if r.profile == args.profile]
    if args.task:
        df = df[df["task"].isin(args.task)]
        records = [r for r in records if r["config"]["task"] in args.task]
        refs = [r for r in refs if r.task in args.task]
    return store, df, records, refs


def cmd_check(args: argparse.Namespace) -> int:
    from .check import exit_code, run_checks, summary

    store, df, _, refs = _scoring_inputs(args)
    if not refs:
        print(f"no reference rows match (profile={args.profile}, task={args.task})", file=sys.stderr)
        return 3
    verdicts = run_checks(df, refs)
    cols = ["id", "width", "activation", "metric", "reference", "ours", "ci_low", "ci_high", "n", "verdict", "note"]
    print(tabulate(verdicts[cols].to_dict("records"), headers="keys", floatfmt=".4g", missingval="-"))
    counts = summary(verdicts)
    print("\n" + ", ".join(f"{v} {k}" for k, v in counts.items()) + f" (store: {store.root})")
    return exit_code(verdicts)


def cmd_report(args: argparse.Namespace) -> int:
    from .check import run_checks
    from .report import write_report

    store, df, records, refs = _scoring_inputs(args)
    verdicts = run_checks(df, refs)
    notes = []
    devices = sorted({str(d) for d in df["device"].dropna()})
    if "cpu" in devices:
        notes.append("CPU-scale results are not comparable with Table 3: these runs used the CPU "
                     "(scaled-down profiles); Table 3 rows are checked only against `paper`-profile results.")
    if df.empty:
        notes.append(f"The store {store.root} holds no results for this selection.")
    name = args.name or args.profile or "all"
    path = write_report(df, records, verdicts, os.path.join(args.reports_dir, name),
                        title=args.title or f"bench_suite report: {name}", note_lines=notes)
    print(f"report written to {path}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """``doctor``: the checks live in :mod:`bench_suite.doctor`."""
    from .doctor import main as doctor_main

    return doctor_main(args.device, rate_seconds=args.rate_seconds)
