"""``list``: the tasks, methods and profiles (profiles also as TOML, to edit and load)."""

from __future__ import annotations

import argparse
from typing import Any

from tabulate import tabulate

from ..grid import expand, export_profiles, load_profile_file, profile_repetitions, profiles_of
from ..methods import METHODS
from ..tasks import TASKS
from .common import _add_store_arg


def register(sub) -> None:
    p_list = sub.add_parser("list", help="list tasks, methods and profiles")
    p_list.add_argument("--profiles", action="store_true", help="show every task's profiles (the grids as data)")
    p_list.add_argument("--export", action="store_true",
                        help="with --profiles: print them as TOML, to edit and load with --profile-file")
    p_list.add_argument("--task", action="append", default=None, metavar="NAME", help="only this task (repeatable)")
    p_list.add_argument("--profile-file", action="append", default=[], metavar="PATH",
                        help="also list the profiles of this TOML file (repeatable)")
    p_list.add_argument("--device", default="auto",
                        help="with --profiles: estimate each profile's time on this device (default auto)")
    _add_store_arg(p_list, "with --profiles: the store whose earlier runs give the time estimates")
    p_list.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    for path in args.profile_file:
        load_profile_file(path)
    return cmd_list(args)


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
        from ..core.config import check_device_text
        from ..runner.cost import CostModel, estimate
        from ..runner.provenance import probe_device_name
        from ..store.result_store import ResultStore

        # the estimate `plan` and `run` give for the whole profile (runner/cost.py: one cost model)
        device_type, device_name = probe_device_name(check_device_text(args.device))
        costs = CostModel(ResultStore(args.store).records)
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
                    estimate(expand(name, profile=prof, runtime_checks=False), costs, device_name).short(),
                    spec.get("description", ""),
                ))
        print(tabulate(rows, headers=["task", "profile", "device", "repetitions", "methods", "widths", "activations",
                                      "settings", f"est. time ({device_type})", "description"]))
        print(f"\n(est. time: on {device_type} ({device_name}), from the earlier runs in {args.store}; `plan "
              f"--profile NAME` shows how; unknown: no earlier run on this device there)")
    else:
        print("\n(`list --profiles` shows each task's profiles; task options:)")
        for name in TASKS.names():
            opts = " ".join(f"{k}={v}" for k, v in TASKS.get(name).options.items())
            print(f"  {name}: {opts or '(none)'}")
    return 0


def _values(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
