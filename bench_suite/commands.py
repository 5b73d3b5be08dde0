"""The work behind each CLI command (argument parsing lives in :mod:`bench_suite.cli`)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tabulate import tabulate

from .grid import Cell
from .methods import METHODS
from .runner import Runner, resolve_device
from .store import ResultStore
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
    progress = _Progress(len(cells), quiet)
    runner = Runner(
        store, device=args.device, data_root=args.data_root, cache_dir=args.cache_dir, force=args.force,
        fuse=not args.no_fuse, on_record=progress.record, on_epoch=progress.epoch,
        on_group_start=progress.group_start,
    )
    try:
        summary = runner.run(cells)
    finally:
        progress.close()
    if summary.records:
        rows = _drop_empty_columns([_final_row(r) for r in summary.records])
        print(tabulate(rows, headers="keys", floatfmt=".4g", missingval="-"))
    print(f"\n{summary.count('done')} done, "
          f"{summary.count('diverged')} diverged, {summary.count('error')} error, "
          f"{summary.count('skipped')} skipped ({summary.cached} of these found finished in the store, "
          f"{summary.claimed_elsewhere} held by another runner); "
          f"records in {store.records_dir}")
    for record in summary.records:
        if record["status"] != "done":
            print(f"{record['status'].upper()}: {record['name']}: {record.get('reason')}", file=sys.stderr)
    return summary.exit_code


def cmd_plan(args: argparse.Namespace, cells: list[Cell]) -> int:
    store = ResultStore(args.out)
    device = resolve_device(args.device)
    rows = []
    for cell in cells:
        record = store.get(cell.cell_id)
        rows.append({"cell": cell.name, "id": cell.cell_id,
                     "in store": record["status"] if record else "-",
                     "will run": "no" if record and record["status"] in ("done", "diverged") else "yes"})
    print(tabulate(rows, headers="keys"))
    todo = sum(r["will run"] == "yes" for r in rows)
    print(f"\n{len(rows)} cells: {len(rows) - todo} finished in the store, {todo} to run on {device}")
    return 0


class _Progress:
    """tqdm bars over cells and epochs; in quiet mode (or without a terminal) one line per cell."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.quiet = quiet
        self.cells = None
        self.epochs = None
        if not quiet:
            from tqdm import tqdm

            self._tqdm = tqdm
            self.cells = tqdm(total=total, desc="cells", unit="cell", position=0)

    def group_start(self, group: list[Cell]) -> None:
        if self.quiet:
            return
        if self.epochs is not None:
            self.epochs.close()
        label = f"{group[0].task} rep {group[0].repetition} ({len(group)} fused)"
        self.epochs = self._tqdm(total=group[0].train.epochs, desc=label, unit="ep", position=1, leave=False)

    def epoch(self, done: int, total: int) -> None:
        if self.epochs is not None:
            self.epochs.update(done - self.epochs.n)

    def record(self, record: dict[str, Any]) -> None:
        if self.quiet:
            final = record.get("final") or {}
            bits = [f"{k}={final[k]:.4g}" for k in ("train_loss", "train_acc", "test_acc")
                    if isinstance(final.get(k), (int, float))]
            print(f"[{record['status']}] {record['name']} {' '.join(bits)}", file=sys.stderr, flush=True)
        elif self.cells is not None:
            self.cells.update(1)
            self.cells.set_postfix_str(record["status"])

    def close(self) -> None:
        for bar in (self.epochs, self.cells):
            if bar is not None:
                bar.close()


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
