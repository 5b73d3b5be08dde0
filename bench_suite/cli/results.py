"""``check``, ``report``, ``export`` and ``compare``: read a store, score it against the reference
rows, write reports and tables, compare two stores."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

from ..core.files import writable_dir
from ..grid import load_profile_file, profiles_of
from ..store import existing_store
from ..tasks import TASKS
from .common import _add_store_arg


def register(sub) -> None:
    for name, helptext in (("check", "compare the store's results with the reference rows in baselines/"),
                           ("report", "write the store's report: report.md (a summary), report.html (the whole "
                                      "report, one self-contained page), the verdicts and the results table")):
        p = sub.add_parser(name, help=helptext, description=helptext, epilog=(
            "exit codes: 0 nothing failed unexpectedly (every verdict PASS, OUT_OF_SCOPE, a known deviation's "
            "expected FAIL, INCONCLUSIVE or SKIPPED: `run && check && report` goes on); 1 an unexpected FAIL; "
            "2 bad input (one line); 3 with --strict only: nothing failed but something INCONCLUSIVE or SKIPPED "
            "(docs/checks.md)") if name == "check" else (
            "where: --dir DIR, or --reports-dir DIR/--name NAME (DIR/NAME), else STORE/report. A folder holding "
            "a report of another store, files report did not write, or files git tracks (a committed report) is "
            "refused unless --overwrite."))
        _add_scoring_args(p)
        if name == "check":
            p.add_argument("--save", default=None, metavar="DIR",
                           help="also write the verdicts as DIR/verdicts.json and DIR/verdicts.csv")
            p.add_argument("--stale", choices=("ok", "warn", "error"), default="ok",
                           help="what to do when the store holds records of older code: ok (leave them out, "
                                "say so; the default), warn (also a STALE line), error (exit 2)")
            p.add_argument("--strict", action="store_true",
                           help="exit 3 when nothing failed but some verdict is INCONCLUSIVE or SKIPPED (or there "
                                "was nothing to check); without it those exit 0, with a note")
            p.add_argument("-v", "--verbose", action="store_true",
                           help="one line per verdict group and every note (by default a claim whose groups all "
                                "PASS, or all lie out of scope, is one line)")
            p.set_defaults(handler=_with_profile_files(cmd_check))
        else:
            p.add_argument("--dir", default=None, metavar="DIR",
                           help="the report's folder (default: STORE/report, beside the records it reads)")
            p.add_argument("--reports-dir", default=None, metavar="DIR",
                           help="write into DIR/NAME instead (NAME: --name, default the profile or 'all')")
            p.add_argument("--name", default=None, help="report folder name inside --reports-dir")
            p.add_argument("--title", default=None, help="report title")
            p.add_argument("--format", choices=("both", "md", "html"), default="both",
                           help="report.md (the summary), report.html (the whole report, self-contained) or both "
                                "(the default)")
            p.add_argument("--figure-format", choices=("svg", "pdf", "png"), default="svg",
                           help="file format of the summary's figures, in DIR/figures/ (default svg; pdf for a "
                                "paper); the HTML page always inlines SVG")
            p.add_argument("--overwrite", action="store_true",
                           help="replace what the folder holds even if report did not write it from this store "
                                "(another store's report, git-tracked files): said on stderr")
            p.add_argument("--section", choices=("ablation",), default=None,
                           help="write only this section: 'ablation', the synthetic ablation study's tables "
                                "(docs/ablation.md; every ablation_* profile in the store, or --profile's), "
                                "as markdown into STORE/report/ablation/report.md (or --dir DIR/report.md)")
            p.set_defaults(handler=_with_profile_files(cmd_report))
    p_export = sub.add_parser("export", help="write the store's results and curves as CSV and parquet",
                              description="write the store's results (one row per record) and curves (long form) "
                                          "as DIR/results.{csv,parquet} and DIR/curves.{csv,parquet}")
    _add_store_arg(p_export, "result store folder to read")
    p_export.add_argument("--dir", required=True, metavar="DIR", help="where to write the files")
    p_export.add_argument("--overwrite", action="store_true",
                          help="replace such files even if export did not write them from this store (or git "
                               "tracks them)")
    p_export.set_defaults(handler=cmd_export)
    helptext = "what moved between two stores: verdicts, metrics of matching cells, cells on one side"
    p_cmp = sub.add_parser("compare", help=helptext, description=helptext + (
        ". A is the reference (a store, or a report folder holding store/, e.g. reports/ci), B the other; "
        "differences are B - A with a confidence interval, paired by cell id where both hold the cell."),
        epilog="exit codes: 0 no verdict got worse; 1 some verdict got worse (PASS -> INCONCLUSIVE or FAIL, "
               "INCONCLUSIVE -> FAIL); 2 bad input (one line)")
    p_cmp.add_argument("a", metavar="A", help="the reference store (or a report folder with store/)")
    p_cmp.add_argument("b", metavar="B", help="the store compared with it")
    p_cmp.add_argument("--baselines", default=None,
                       help="reference file or folder; default $BENCH_SUITE_BASELINES or the repo's baselines/")
    p_cmp.add_argument("--profile", default=None, help="only reference rows and cells of this profile")
    p_cmp.add_argument("--profile-file", action="append", default=[], metavar="PATH",
                       help="profiles from this TOML file, for rows that name them (repeatable)")
    p_cmp.add_argument("--task", action="append", default=None, help="only this task (repeatable)")
    p_cmp.add_argument("--include-old-code", action="store_true", help="also score records of older code")
    p_cmp.add_argument("--all", action="store_true", help="list every metric that moved (default: the 20 largest)")
    p_cmp.add_argument("--save", default=None, metavar="DIR",
                       help="also write DIR/compare.json, claims.csv, metrics.csv and cells_only.csv")
    p_cmp.set_defaults(handler=_with_profile_files(cmd_compare))


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
    from ..scoring import describe_left_out, exit_code, save_verdicts
    from .check_text import render, terminal_width

    scoring = _scoring(args)
    strict = bool(getattr(args, "strict", False))
    if not scoring.references:
        from ..scoring.references import load_references

        with_rows = sorted({r.profile for r in load_references(args.baselines)})
        print(f"no reference rows for profile={args.profile}, task={args.task}; profiles with rows: "
              f"{', '.join(with_rows)}: nothing to check", file=sys.stderr)
        return exit_code(None, strict=strict)
    verdicts = scoring.verdicts
    width = terminal_width()
    for line in render(verdicts, scored=scoring.scored, records=scoring.records, store=str(scoring.store.root),
                       profile=args.profile, references=scoring.references, width=width,
                       verbose=bool(getattr(args, "verbose", False))):
        print(line)
    for line in (describe_left_out(scoring.left_out), _code_line(verdicts)):
        if line:
            print(textwrap.fill(line + (" (details: `check --save DIR`, DIR/verdicts.json)" if line.startswith("left")
                                        else ""), width=width, subsequent_indent="  "))
    undecided = verdicts.loc[verdicts["verdict"] == "INCONCLUSIVE", "id"]
    if len(undecided):
        ids = list(dict.fromkeys(str(i) for i in undecided))
        print(textwrap.fill(f"INCONCLUSIVE: {len(undecided)} verdict(s) of {len(ids)} claim(s) undecided at these "
                            f"repetitions: {', '.join(ids)}", width=width, subsequent_indent="  "), file=sys.stderr)
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
    code = exit_code(verdicts, strict=strict)
    print(textwrap.fill(_exit_line(verdicts, code, strict), width=width, subsequent_indent="  "))
    return code

def _exit_line(verdicts, code: int, strict: bool) -> str:
    from ..scoring import INCONCLUSIVE, SKIPPED, summary

    counts = summary(verdicts)
    open_ = ", ".join(f"{counts[v]} {v}" for v in (INCONCLUSIVE, SKIPPED) if counts[v])
    if code == 1:
        return "exit 1: an unexpected FAIL (a FAIL, or a known deviation whose row no longer fails)"
    if code == 3:
        return f"exit 3 (--strict): nothing failed, but not every row is decided ({open_ or 'nothing checked'})"
    if open_ and not strict:
        return f"exit 0: nothing failed unexpectedly; {open_} are not failures (--strict exits 3 for them)"
    return "exit 0: nothing failed unexpectedly"

def _context(args: argparse.Namespace, scoring) -> dict[str, Any]:
    return {"store": str(scoring.store.root), "profile": args.profile, "tasks": args.task,
            "include_old_code": bool(args.include_old_code), "current_code": dict(sorted(scoring.current_code.items())),
            "records": len(scoring.records), "left_out": len(scoring.left_out)}

def _report_folder(args: argparse.Namespace):
    """--dir, --reports-dir/--name, or None (the API's default: STORE/report)."""
    from pathlib import Path

    if args.dir is not None and args.reports_dir is not None:
        raise ValueError("--dir and --reports-dir: give one (--dir DIR is the folder itself)")
    if args.reports_dir is not None:
        return Path(args.reports_dir).expanduser() / (args.name or args.profile or "all"), "--reports-dir"
    if args.name is not None:
        raise ValueError("--name: a folder name inside --reports-dir; give --reports-dir too (or --dir DIR)")
    return (None if args.dir is None else Path(args.dir).expanduser()), "--dir"


def cmd_report(args: argparse.Namespace) -> int:
    from ..api import write_report_of

    _check_selection(args)
    existing_store(args.store)  # in the command line's words
    folder, option = _report_folder(args)
    if getattr(args, "section", None) == "ablation":  # only the ablation study's tables
        return _report_study(args, folder, option)
    formats = ("md", "html") if args.format == "both" else (args.format,)
    written = write_report_of(args.store, folder, profile=args.profile, tasks=args.task, title=args.title,
                              formats=formats, figure_format=args.figure_format, overwrite=args.overwrite,
                              baselines=args.baselines, include_old_code=args.include_old_code, option=option)
    for message in written.messages:
        print(message, file=sys.stderr)
    pages = ", ".join(str(p) for p in written.paths if p.name in ("report.md", "report.html"))
    print(f"report written to {pages} (with figures/, verdicts.json/.csv and results.csv/.parquet; "
          f"the curves: `export`)")
    return 0


def _report_study(args: argparse.Namespace, folder, option: str) -> int:
    from pathlib import Path

    from ..reporting import output
    from ..reporting.ablation import write_study

    store = existing_store(args.store)
    if folder is None:
        folder = output.default_folder(Path(store.root)) / "ablation"
    elif option == "--reports-dir" and not args.name:
        folder = folder.parent / "ablation"
    claimed = output.claim(folder, store.root, ["report.md"], overwrite=args.overwrite, option=option)
    for message in claimed.messages:
        print(message, file=sys.stderr)
    writable_dir(folder, option)
    path = write_study(store.records(with_curves=True), folder, profiles=[args.profile] if args.profile else None,
                       **({"title": args.title} if args.title else {}))
    output.finish(claimed, [path])
    print(f"report written to {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..api import export

    existing_store(args.store)  # before creating --dir
    writable_dir(args.dir, "--dir")
    paths = export(args.store, args.dir, overwrite=args.overwrite)  # what --overwrite replaced: a warning line
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ..api import _store_or_report, compare
    from ..reporting.compare import describe, save

    for label, side in (("A", args.a), ("B", args.b)):
        existing_store(_store_or_report(side), label)
    for name in args.task or []:
        TASKS.get(name)
    cmp = compare(args.a, args.b, profile=args.profile, tasks=args.task, baselines=args.baselines,
                  include_old_code=args.include_old_code)
    for line in describe(cmp, limit=0 if args.all else 20):
        print(line)
    if args.save:
        out = writable_dir(args.save, "--save")
        paths = save(cmp, out)
        print("written: " + ", ".join(str(p) for p in paths))
    return cmp.exit_code
