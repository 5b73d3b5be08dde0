"""``doctor``, ``plugin-check`` and ``store``: checks of this device and of a plug-in, and a
store's maintenance."""

from __future__ import annotations

import argparse

from ..core.config import check_device_text
from ..store import existing_store
from .common import _add_store_arg, _csv, _positive_float


def register(sub) -> None:
    p_doc = sub.add_parser("doctor", help="check this device (engine = plain autograd, folds, CUDA graphs, "
                                          "precisions) and estimate each profile's time here",
                           description="One line per check, a summary; exit 1 on any mismatch (about a minute).")
    p_doc.add_argument("--device", default="auto", help="auto (CUDA when present; the default), cpu, cuda or cuda:N")
    p_doc.add_argument("--rate-seconds", type=_positive_float, default=3.0, metavar="S",
                       help="seconds spent measuring the step rate (default 3)")
    _add_store_arg(p_doc, "the store whose earlier runs give the time estimates (as `plan` and `list --profiles`)")
    p_doc.set_defaults(handler=cmd_doctor)
    p_pc = sub.add_parser("plugin-check", help="train a plug-in's methods and tasks on a tiny problem and check "
                                               "the records, determinism and seed pairing",
                          description="Import MODULE, train what it registers on a tiny problem (twice, into "
                                      "temporary stores) and check the contract: records pass the schema and end "
                                      "done, a second run is identical, seeds pair with the built-in methods "
                                      "(bench_suite/testing.py). Exit 1 on any failed check.")
    p_pc.add_argument("module", metavar="MODULE", help="the plug-in's module name (importable, e.g. on PYTHONPATH)")
    p_pc.add_argument("--device", default="cpu", help="cpu (the default), auto, cuda or cuda:N")
    p_pc.set_defaults(handler=cmd_plugin_check)
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
    p_store.set_defaults(handler=cmd_store)


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

    return doctor_main(args.device, rate_seconds=args.rate_seconds, store=args.store)

def cmd_plugin_check(args: argparse.Namespace) -> int:
    """``plugin-check``: the contract lives in :mod:`bench_suite.testing`."""
    from ..testing import main as plugin_check_main

    return plugin_check_main(args.module, device=check_device_text(args.device))
