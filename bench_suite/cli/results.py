"""``check``, ``report`` and ``export``: read a store, score it against the reference rows,
write reports and tables."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tabulate import tabulate

from ..core.files import writable_dir
from ..grid import load_profile_file, profile_declares, profiles_of
from ..store import existing_store
from ..tasks import TASKS
from .common import _add_store_arg


def register(sub) -> None:
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
            p.set_defaults(handler=_with_profile_files(cmd_check))
        else:
            p.add_argument("--reports-dir", default="reports", metavar="DIR",
                           help="where reports go (default ./reports)")
            p.add_argument("--name", default=None, help="report folder name (default: the profile, or 'all')")
            p.add_argument("--title", default=None, help="report title")
            p.add_argument("--section", choices=("ablation",), default=None,
                           help="write only this section: 'ablation', the synthetic ablation study's tables "
                                "(docs/ablation.md; every ablation_* profile in the store, or --profile's), "
                                "into REPORTS_DIR/ablation/report.md (or --name)")
            p.set_defaults(handler=_with_profile_files(cmd_report))
    p_export = sub.add_parser("export", help="write the store's results and curves as CSV and parquet",
                              description="write the store's results (one row per record) and curves (long form) "
                                          "as DIR/results.{csv,parquet} and DIR/curves.{csv,parquet}")
    _add_store_arg(p_export, "result store folder to read")
    p_export.add_argument("--dir", required=True, metavar="DIR", help="where to write the files")
    p_export.set_defaults(handler=cmd_export)


def _with_profile_files(command):
    def handle(args: argparse.Namespace) -> int:
        for path in args.profile_file:
            load_profile_file(path)
        return command(args)

    return handle


def _add_scoring_args(p: argparse.ArgumentParser) -> None:
    _add_store_arg(p, "result store folder to read")
    p.add_argument("--baselines", default=None,
                   help="reference file or folder; default $BENCH_SUITE_BASELINES, else the rows shipped in the "
                        "package (baselines/)")
    p.add_argument("--profile", default=None, help="only reference rows of this profile")
    p.add_argument("--profile-file", action="append", default=[], metavar="PATH",
                   help="profiles from this TOML file, for rows that name them (repeatable)")
    p.add_argument("--task", action="append", default=None, help="only this task (repeatable)")
    p.add_argument("--include-old-code", action="store_true",
                   help="also score records computed by older code (by default only the current code's: "
                        "docs/checks.md)")


def _scoring(args: argparse.Namespace):
    from ..api import score

    _check_selection(args)
    existing_store(args.store)  # in the command line's words

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
    from ..scoring.checks import describe_left_out, exit_code, save_verdicts, summary

    scoring = _scoring(args)
    if not scoring.references:
        from ..scoring.references import load_references

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
    from ..core.records import to_frame
    from ..reporting.markdown import write_report
    from ..scoring.checks import describe_left_out, save_verdicts

    if getattr(args, "section", None) == "ablation":  # only the ablation study's tables
        _check_selection(args)
        from ..reporting.ablation import write_study

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
