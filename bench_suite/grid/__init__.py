"""Cells and grids: what one run of one configuration is, its canonical name and its id.

A cell is (task, task options, method, width, activation, TrainConfig, repetition). Values
resolve in this order, later winning: ``TrainConfig`` defaults < the task's ``train_defaults``
< the method's ``train_defaults`` (e.g. ``adam``'s lr 1e-3) < the profile's ``train`` <
command-line overrides (the same for task options, without the method's layer, and for the
method/width/activation axes, which fall back to the task's ``grid``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.config import ACTIVATIONS, TrainConfig
from ..core.records import PROTOCOL_VERSION, compute_cell_id
from ..core.seeds import seeds_for
from ..methods import METHODS, MethodError
from ..tasks import TASKS, Task
from .versions import code_version


@dataclass(frozen=True)
class Cell:
    task: str
    method: str
    width: int
    activation: str
    repetition: int
    train: TrainConfig
    # options take part in ==, not in hash (a dict is unhashable); the profile in neither: a
    # cell reached through a profile or through the same axes on the command line is one cell
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    profile: str | None = field(default=None, hash=False, compare=False)

    @property
    def task_cls(self) -> type[Task]:
        return TASKS.get(self.task)

    def seeds(self) -> dict[str, int]:
        return seeds_for(self.task, self.repetition)

    def config(self) -> dict[str, Any]:
        """The resolved configuration, as stored in the record."""
        return {
            "task": self.task,
            "task_options": dict(sorted(self.options.items())),
            "method": self.method,
            "width": self.width,
            "activation": self.activation,
            "repetition": self.repetition,
            "train": asdict(self.train),
        }

    def code_version(self) -> dict[str, Any]:
        """The versions of the code that computes it (``versions.code_version``)."""
        return code_version(self.task, self.method, self.activation)

    @property
    def name(self) -> str:
        """``task[method=…,width=…,activation=…,rep=…,<values that differ from the task's defaults>]``."""
        task_cls = self.task_cls
        parts = [f"method={self.method}", f"width={self.width}", f"activation={self.activation}",
                 f"rep={self.repetition}"]
        base_train = asdict(TrainConfig(**task_cls.train_defaults))
        for key, value in asdict(self.train).items():
            if value != base_train[key]:
                parts.append(f"{key}={_fmt(value)}")
        for key, value in sorted(self.options.items()):
            if task_cls.options.get(key) != value:
                parts.append(f"{key}={_fmt(value)}")
        return f"{self.task}[{','.join(parts)}]"

    @property
    def cell_id(self) -> str:
        """A hash of what it computes: config, seeds, code version and protocol (docs/design.md,
        "What identifies a result")."""
        return compute_cell_id(self.config(), self.seeds(), self.code_version(), PROTOCOL_VERSION)

    def to_dict(self) -> dict[str, Any]:
        """The cell as plain data (JSON-safe): its resolved :meth:`config` plus the profile, what
        executors ship to workers, which rebuild it with :meth:`from_dict`. ``cell_id`` travels
        along so a worker can tell when its code differs from the submitter's (the ids differ)."""
        return {**self.config(), "profile": self.profile, "cell_id": self.cell_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cell":
        """Rebuild a cell from :meth:`to_dict` (``cell_id``, if present, is not trusted here)."""
        return cls(
            data["task"], data["method"], int(data["width"]), data["activation"], int(data["repetition"]),
            TrainConfig(**data["train"]), dict(data.get("task_options") or {}), data.get("profile"),
        )

    def group_key(self) -> tuple:
        """Cells with equal keys share data and batch order, so the engine can fuse them."""
        return (self.task, json.dumps(self.options, sort_keys=True), self.repetition, self.train.schedule_key())

    def data_key(self) -> tuple:
        return (self.task, json.dumps(self.options, sort_keys=True), self.repetition)


def _fmt(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# the largest grid `run` and `plan` build (a typo such as --seeds 1000000000 must not exhaust memory)
MAX_CELLS_ENV = "BENCH_SUITE_MAX_CELLS"
MAX_CELLS_DEFAULT = 100_000
PROFILE_KEYS = ("description", "device", "repetitions", "seeds", "methods", "widths", "activations", "options", "train",
                "cases")  # "seeds": the old name of "repetitions" (a count), still read
# a case of a profile: a grid of its own, on top of the profile's values (a profile with cases is
# the union of their grids, e.g. a width sweep whose radius eps grows with the width)
CASE_KEYS = ("methods", "widths", "activations", "options", "train")

# profiles loaded from TOML files (--profile-file): task -> profile name -> declaration
_FILE_PROFILES: dict[str, dict[str, dict[str, Any]]] = {}


class GridError(ValueError):
    """A grid that cannot be built (unknown profile, bad axis value, too many cells): one line."""


def profiles_of(task: str) -> dict[str, dict[str, Any]]:
    """The task's profiles: its own declaration, then those of loaded profile files (which win)."""
    return {**TASKS.get(task).profiles, **_FILE_PROFILES.get(task, {})}


def profile_names() -> list[str]:
    names: set[str] = set()
    for task in TASKS.names():
        names.update(profiles_of(task))
    return sorted(names)


def load_profile_file(path: str | Path) -> list[tuple[str, str]]:
    """Read profiles from a TOML file (the format ``list --profiles --export`` writes) and make them
    available to ``run``/``plan``/``check``; returns the (task, profile) pairs it declared.

    Layout: one table per task and profile, ``[TASK.PROFILE]``, with the keys of a task's
    ``profiles`` declaration (``PROFILE_KEYS``); any training setting or task option may be a
    list (an axis). ``"none"`` stands for None in options, ``"full"`` for a full batch.
    Raises :class:`GridError` naming the file and what is wrong."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise GridError(f"--profile-file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GridError(f"--profile-file {path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"--profile-file {path}: not valid TOML ({exc})") from None
    declared = []
    for task, profiles in data.items():
        if task not in TASKS:
            raise GridError(f"--profile-file {path}: unknown task {task!r}; valid: {', '.join(TASKS.names())}")
        if not isinstance(profiles, dict):
            raise GridError(f"--profile-file {path}: [{task}] must hold tables [{task}.PROFILE]")
        for name, spec in profiles.items():
            if not isinstance(spec, dict):
                raise GridError(f"--profile-file {path}: {task}.{name} must be a table")
            unknown = sorted(set(spec) - set(PROFILE_KEYS))
            if unknown:
                raise GridError(f"--profile-file {path}: {task}.{name}: unknown key(s) {', '.join(unknown)}; "
                                f"valid: {', '.join(PROFILE_KEYS)}")
            builtin = TASKS.get(task).profiles.get(name)
            if builtin is not None:  # its reference rows were set for the built-in one
                if _is_exported_copy(spec, builtin):
                    continue  # an unchanged copy from `list --profiles --export`: the built-in stays
                raise GridError(f"--profile-file {path}: {task}.{name} is a built-in profile, changed here (its "
                                f"reference rows in baselines/ were set for the built-in one): give yours another "
                                f"name, e.g. [{task}.my_{name}]")
            spec = dict(spec)
            spec["options"] = {k: _from_toml(v) for k, v in (spec.get("options") or {}).items()}
            spec["train"] = {k: _from_toml(v, full=k == "batch_size") for k, v in (spec.get("train") or {}).items()}
            for case in spec.get("cases") or []:
                if isinstance(case, dict):
                    for key in ("options", "train"):
                        if key in case:
                            case[key] = {k: _from_toml(v, full=k == "batch_size") for k, v in case[key].items()}
            try:  # the declaration must build: bad values are reported now, naming the file
                _expand_spec(task, name, spec, {})
            except (GridError, ValueError) as exc:
                raise GridError(f"--profile-file {path}: {task}.{name}: {exc}") from None
            _FILE_PROFILES.setdefault(task, {})[name] = spec
            declared.append((task, name))
    return declared


def _from_toml(value: Any, *, full: bool = False) -> Any:
    if isinstance(value, list):
        return [_from_toml(v, full=full) for v in value]
    if isinstance(value, str) and (value.lower() == "none" or (full and value.lower() == "full")):
        return None
    return value


def _to_toml(value: Any, *, full: bool = False) -> Any:
    if isinstance(value, list):
        return [_to_toml(v, full=full) for v in value]
    if value is None:
        return "full" if full else "none"
    return value


def export_profiles(tasks: list[str] | None = None) -> str:
    """The tasks' profiles as TOML (the format :func:`load_profile_file` reads)."""
    import tomli_w

    out: dict[str, Any] = {}
    for task in tasks or TASKS.names():
        for name, spec in sorted(profiles_of(task).items()):
            out.setdefault(task, {})[name] = _toml_entry(spec)
    return tomli_w.dumps(out)


def _toml_entry(spec: dict[str, Any]) -> dict[str, Any]:
    """One profile as the table ``export_profiles`` writes for it."""
    entry = {k: spec[k] for k in PROFILE_KEYS if k in spec and k not in ("options", "train", "seeds", "cases")}
    entry["repetitions"] = profile_repetitions(spec)  # the current name of the old "seeds"
    if spec.get("options"):
        entry["options"] = {k: _to_toml(v) for k, v in spec["options"].items()}
    if spec.get("train"):
        entry["train"] = {k: _to_toml(v, full=k == "batch_size") for k, v in spec["train"].items()}
    if spec.get("cases"):
        entry["cases"] = [{k: ({kk: _to_toml(vv, full=kk == "batch_size") for kk, vv in v.items()}
                               if k in ("options", "train") else v) for k, v in case.items()}
                          for case in spec["cases"]]
    return entry


def _is_exported_copy(spec: dict[str, Any], builtin: dict[str, Any]) -> bool:
    """Whether a file's table is the built-in profile as `list --profiles --export` wrote it."""
    import tomli_w

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(tomli_w.dumps({"p": _toml_entry(builtin)}))["p"] == spec


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _product(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the dict's list values (scalars are one-element axes), in key order."""
    combos: list[dict[str, Any]] = [{}]
    for key, value in values.items():
        combos = [{**c, key: v} for c in combos for v in _as_list(value)]
    return combos


def _train_product(train: dict[str, Any]) -> list[dict[str, Any]]:
    """The training settings' product; ``lr`` is one axis setting lr_w = lr_v together."""
    train = dict(train)
    joint = train.pop("lr", None)
    combos = _product(train)
    if joint is None:
        return combos
    return [{**c, "lr_w": v, "lr_v": v} for c in combos for v in _as_list(joint)]


def _axis_sizes(values: dict[str, Any]) -> dict[str, int]:
    return {k: len(_as_list(v)) for k, v in values.items() if len(_as_list(v)) != 1}


def max_cells() -> int:
    raw = os.environ.get(MAX_CELLS_ENV, "").strip()
    if not raw:
        return MAX_CELLS_DEFAULT
    try:
        value = int(raw)
    except ValueError:
        raise GridError(f"${MAX_CELLS_ENV}={raw!r} is not an integer") from None
    if value < 1:
        raise GridError(f"${MAX_CELLS_ENV} must be >= 1, got {value}")
    return value


def _profile_spec(task: str, profile: str | None) -> dict[str, Any]:
    if profile is None:
        return {}
    profiles = profiles_of(task)
    if profile not in profiles:
        raise GridError(f"task {task!r} has no profile {profile!r}; its profiles: {', '.join(sorted(profiles))}")
    return profiles[profile]


def _check_spec(spec: dict[str, Any]) -> None:
    device = spec.get("device", "any")
    if device not in ("cpu", "cuda", "any"):
        raise GridError(f"a profile's device must be cpu, cuda or any, got {device!r}")
    for key in ("methods", "widths", "activations"):
        if key in spec and isinstance(spec[key], list) and not spec[key]:
            raise GridError(f"a profile's {key} list is empty")
    for section in ("options", "train"):
        for key, value in (spec.get(section) or {}).items():
            if isinstance(value, list) and not value:
                raise GridError(f"a profile's {section}.{key} list is empty (an axis with no value has no cells)")


def profile_repetitions(spec: dict[str, Any]) -> int:
    """How many repetitions a profile declares (``repetitions``, or its old name ``seeds``; default 1)."""
    value = spec.get("repetitions", spec.get("seeds", 1))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GridError(f"a profile's repetitions must be an integer >= 1, got {value!r}")
    return value


def _cases(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The profile as a list of plain specs: one per case (each merged onto the profile), or itself."""
    cases = spec.get("cases")
    if not cases:
        return [spec]
    if not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases):
        raise GridError("a profile's `cases` must be a list of tables")
    out = []
    for case in cases:
        unknown = sorted(set(case) - set(CASE_KEYS))
        if unknown:
            raise GridError(f"unknown key(s) {', '.join(unknown)} in a profile case; valid: {', '.join(CASE_KEYS)}")
        merged = {k: v for k, v in spec.items() if k != "cases"}
        for key in ("methods", "widths", "activations"):
            if key in case:
                merged[key] = case[key]
        for key in ("options", "train"):
            if key in case:
                merged[key] = {**(spec.get(key) or {}), **case[key]}
        out.append(merged)
    return out


def _resolved_values(task: str, spec: dict[str, Any], overrides: dict[str, Any],
                     method: str | None = None) -> tuple[dict, dict, dict]:
    """(axes, options, train): each value a list (an axis) or a scalar, defaults < profile <
    overrides; for ``method``, its ``train_defaults`` sit between the task's and the profile's."""
    task_cls = TASKS.get(task)
    axes = {
        "methods": overrides.get("methods") or spec.get("methods") or task_cls.grid["methods"],
        "activations": overrides.get("activations") or spec.get("activations") or task_cls.grid["activations"],
        "widths": overrides.get("widths") or spec.get("widths") or task_cls.grid["widths"],
    }
    options = {**task_cls.options, **(spec.get("options") or {}), **(overrides.get("options") or {})}
    unknown = sorted(set(options) - set(task_cls.options))
    if unknown:
        raise GridError(f"unknown option(s) {', '.join(unknown)} for task {task!r}; "
                        f"valid: {', '.join(sorted(task_cls.options)) or '(none)'}")
    train: dict[str, Any] = {}
    method_layer = METHODS.get(method).train_defaults if method is not None and method in METHODS else {}
    for layer in ({f: getattr(TrainConfig(), f) for f in TrainConfig.field_names()}, task_cls.train_defaults,
                  method_layer, spec.get("train") or {}, overrides.get("train") or {}):
        if "lr" in layer and ({"lr_w", "lr_v"} & set(layer)):
            raise GridError("give lr (both layers, one axis) or lr_w / lr_v, not both")
        if "lr" in layer:
            train.pop("lr_w", None)
            train.pop("lr_v", None)
        elif {"lr_w", "lr_v"} & set(layer) and "lr" in train:  # split the joint axis
            joint = train.pop("lr")
            train["lr_w"] = train["lr_v"] = joint
        train.update(layer)
    unknown = sorted(set(train) - set(TrainConfig.field_names()) - {"lr"})
    if unknown:
        valid = ", ".join(["lr", *TrainConfig.field_names()])
        raise GridError(f"unknown training setting(s) {', '.join(unknown)}; valid: {valid}")
    return axes, options, train


def profile_declares(task: str, profile: str, config: dict[str, Any]) -> str | None:
    """None when ``config`` (a cell's resolved config, ``Cell.config()``) is one of the
    configurations ``profile`` declares (any repetition); else why not, e.g.
    ``"epochs=3 (profile ci declares 2000)"``. What decides whether a record is scored against
    the profile's reference rows (``check``)."""
    try:
        specs = _cases(_profile_spec(task, profile))
    except (GridError, KeyError):  # KeyError: the task is not registered here (a plug-in not loaded)
        return f"task {task} has no profile {profile} here"
    reasons = [_case_declares(task, profile, spec, config) for spec in specs]
    if any(r is None for r in reasons):
        return None
    return reasons[0] if len(reasons) == 1 else min(reasons, key=lambda r: r.count(";"))


def _case_declares(task: str, profile: str, spec: dict[str, Any], config: dict[str, Any]) -> str | None:
    axes, options, train = _resolved_values(task, spec, {}, method=config.get("method"))
    diffs = []
    for key, axis in (("method", "methods"), ("activation", "activations"), ("width", "widths")):
        if config.get(key) not in _as_list(axes[axis]):
            diffs.append(f"{key}={config.get(key)} (profile {profile} declares {_fmt_list(axes[axis])})")
    cell_options = config.get("task_options") or {}
    for key, value in sorted(options.items()):
        if cell_options.get(key, TASKS.get(task).options.get(key)) not in _as_list(value):
            diffs.append(f"{key}={_fmt(cell_options.get(key))} (profile {profile} declares {_fmt_list(value)})")
    cell_train = config.get("train") or {}
    if "lr" in train:
        joint = _as_list(train.pop("lr"))
        if not (cell_train.get("lr_w") == cell_train.get("lr_v") and cell_train.get("lr_w") in joint):
            diffs.append(f"lr_w={_fmt(cell_train.get('lr_w'))}, lr_v={_fmt(cell_train.get('lr_v'))} "
                         f"(profile {profile} declares lr_w = lr_v in {_fmt_list(joint)})")
    for key, value in train.items():
        if cell_train.get(key) not in _as_list(value):
            diffs.append(f"{key}={_fmt(cell_train.get(key))} (profile {profile} declares {_fmt_list(value)})")
    return "; ".join(diffs) or None


def _fmt_list(value: Any) -> str:
    values = _as_list(value)
    return _fmt(values[0]) if len(values) == 1 else "{" + ", ".join(_fmt(v) for v in values) + "}"


def expand(
    task: str,
    *,
    profile: str | None = None,
    methods: list[str] | None = None,
    widths: list[int] | None = None,
    activations: list[str] | None = None,
    repetitions: list[int] | None = None,
    options: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    runtime_checks: bool = True,
) -> list[Cell]:
    """The cells of one task: its profile (or default grid) with overrides, as the product of
    every axis: methods x activations x widths x each task option and training setting given as
    a list x repetitions. Raises :class:`GridError` (one line) for an unknown profile, option or
    setting, a bad value, or a grid over ``max_cells()`` cells.

    A cell keeps the profile's name only when its resolved configuration is one the profile
    declares (:func:`profile_declares`); an override that leaves the declaration (e.g.
    ``--profile ci --epochs 3``) makes it an ad-hoc cell (profile None): stored and reported,
    never scored against that profile's reference rows. ``runtime_checks=False`` skips the
    methods' torch-side checks (``Method.check_runtime``): enough to price a grid without torch
    (``list --profiles``), not to run it."""
    overrides = {"methods": methods, "widths": widths, "activations": activations, "options": options or {},
                 "train": train or {}}
    spec = _profile_spec(task, profile)
    return _expand_spec(task, profile, spec, overrides, repetitions, runtime_checks)


def _expand_spec(task: str, profile: str | None, spec: dict[str, Any], overrides: dict[str, Any],
                 repetitions: list[int] | None = None, runtime_checks: bool = True) -> list[Cell]:
    cases = _cases(spec)
    for case in cases:
        _check_spec(case)
    sizes = [grid_size_from(task, case, overrides, repetitions) for case in cases]
    total, limit = sum(t for t, _ in sizes), max_cells()
    if total > limit:
        shape = " x ".join(f"{k} {v:,}" for k, v in sizes[0][1].items()) if len(cases) == 1 else f"{len(cases)} cases"
        raise GridError(f"the grid of {task} has {total:,} cells ({shape}), over the limit of {limit:,} "
                        f"(${MAX_CELLS_ENV}): cut an axis (e.g. fewer --repetitions or values)")
    cells: list[Cell] = []
    for case in _cases(spec):
        cells += _expand_case(task, case, overrides, repetitions, runtime_checks)
    cells = list({c.cell_id: c for c in cells}.values())  # cases may overlap: each cell once
    if not cells:
        raise GridError(f"the grid of {task} has no cells (an axis with no values)")
    if profile is not None:
        cells = [replace(c, profile=profile) if profile_declares(task, profile, c.config()) is None else c
                 for c in cells]
    return cells


def _expand_case(task: str, spec: dict[str, Any], overrides: dict[str, Any],
                 repetitions: list[int] | None, runtime_checks: bool = True) -> list[Cell]:
    task_cls = TASKS.get(task)
    axes, options, _ = _resolved_values(task, spec, overrides)  # train: per method, below
    if repetitions is None:
        repetitions = range(profile_repetitions(spec))
    for rep in repetitions:
        if isinstance(rep, bool) or not isinstance(rep, int) or rep < 0:
            raise GridError(f"repetition indexes must be integers >= 0, got {rep!r}")
    option_sets = [task_cls.check_options(o) for o in _product(options)]
    cells = []
    for method in _as_list(axes["methods"]):
        method_obj = METHODS.get(method)
        # the method's own training defaults (a layer of the train settings) and its torch-side checks
        configs = [TrainConfig(**t) for t in _train_product(_resolved_values(task, spec, overrides, method)[2])]
        if task_cls.classification is False and any(c.loss == "ce" for c in configs):
            raise GridError(f"loss ce (cross-entropy) needs class labels; {task} has regression targets: "
                            f"use --loss mse")
        try:
            if runtime_checks:
                method_obj.check_runtime()
        except MethodError as exc:
            raise GridError(str(exc)) from None
        for activation in _as_list(axes["activations"]):
            if activation not in ACTIVATIONS:
                raise GridError(f"unknown activation {activation!r}; valid choices: {', '.join(ACTIVATIONS)}")
            for width in _as_list(axes["widths"]):
                for config in configs:
                    try:
                        method_obj.check_cell(width, config)
                    except MethodError as exc:
                        raise GridError(str(exc)) from None
                for opts in option_sets:
                    for config in configs:
                        for rep in repetitions:
                            cells.append(Cell(task, method, width, activation, rep, config, opts, None))
    return cells


def grid_size_from(task: str, spec: dict[str, Any], overrides: dict[str, Any],
                   repetitions: list[int] | None) -> tuple[int, dict[str, int]]:
    axes, options, train = _resolved_values(task, spec, overrides)
    reps = repetitions if repetitions is not None else range(profile_repetitions(spec))
    sizes = {"methods": len(_as_list(axes["methods"])), "activations": len(_as_list(axes["activations"])),
             "widths": len(_as_list(axes["widths"])), "repetitions": len(reps)}
    sizes.update(_axis_sizes(options))
    sizes.update(_axis_sizes(train))
    total = 1
    for size in sizes.values():
        total *= size
    return total, {k: v for k, v in sizes.items() if v != 1 or k in ("methods", "repetitions")}
