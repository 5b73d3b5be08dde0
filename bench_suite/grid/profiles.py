"""Profiles: a task's named grids as declarations (its own, and those of loaded profile files),
how their values resolve (defaults < task < method < profile < command line), their cases, and
whether a cell's configuration is one a profile declares (what ``check`` scores against the
profile's reference rows)."""

from __future__ import annotations

from typing import Any

from ..core.config import TrainConfig
from ..core.errors import BenchSuiteError
from ..methods import METHODS
from ..tasks import TASKS
from .cells import _fmt

PROFILE_KEYS = ("description", "device", "repetitions", "seeds", "methods", "widths", "activations", "options", "train",
                "cases")  # "seeds": the old name of "repetitions" (a count), still read
# a case of a profile: a grid of its own, on top of the profile's values (a profile with cases is
# the union of their grids, e.g. a width sweep whose radius eps grows with the width)
CASE_KEYS = ("methods", "widths", "activations", "options", "train")

# profiles loaded from TOML files (--profile-file): task -> profile name -> declaration
_FILE_PROFILES: dict[str, dict[str, dict[str, Any]]] = {}


class GridError(BenchSuiteError, ValueError):
    """A grid that cannot be built (unknown profile, bad axis value, too many cells): one line."""


def profiles_of(task: str) -> dict[str, dict[str, Any]]:
    """The task's profiles: its own declaration, then those of loaded profile files (which win)."""
    return {**TASKS.get(task).profiles, **_FILE_PROFILES.get(task, {})}


def profile_names() -> list[str]:
    names: set[str] = set()
    for task in TASKS.names():
        names.update(profiles_of(task))
    return sorted(names)



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
