"""Expanding a grid: a task's profile (or default grid) with command-line overrides, as the
product of every axis, into cells; its size checked before any cell is built."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from ..core.config import ACTIVATIONS, TrainConfig
from ..methods import METHODS, MethodError
from ..tasks import TASKS
from .cells import Cell
from .profiles import (
    GridError,
    _as_list,
    _axis_sizes,
    _cases,
    _check_spec,
    _product,
    _profile_spec,
    _resolved_values,
    _train_product,
    profile_declares,
    profile_repetitions,
)

# the largest grid `run` and `plan` build (a typo such as --seeds 1000000000 must not exhaust memory)
MAX_CELLS_ENV = "BENCH_SUITE_MAX_CELLS"
MAX_CELLS_DEFAULT = 100_000


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
