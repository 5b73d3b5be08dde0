"""The task contract: data + model shape + loss + reference grids, in one place.

A task is a class registered with ``@register_task``. It declares its option defaults, its
training defaults, its default grid and its named profiles as plain data (readable with
``python -m bench_suite list --profiles``), the shape of its data (:meth:`Task.shape`, known
before any data is read), a check of its option values (:meth:`Task.check_options`) and one
method, ``load``, that returns :class:`TaskData` or raises :class:`DataUnavailable` (reported
as SKIPPED, never a crash). This module does not import torch: ``list``, ``plan``, ``check``
and ``report`` read tasks without it.
"""

from __future__ import annotations

import abc
import math
from typing import TYPE_CHECKING, Any, ClassVar

from ..core.registry import Registry
from ..data.contract import DataError, DataUnavailable, TaskData  # noqa: F401 - the contract tasks implement

if TYPE_CHECKING:  # pragma: no cover
    pass


class Task(abc.ABC):
    """Base class of a task. Subclasses set the class attributes and implement ``load``
    (and, to be priced by ``plan`` and validated up front, ``shape`` and ``check_options``)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # option name -> default (what ``load`` takes: n, d, subset sizes, image size, ...)
    options: ClassVar[dict[str, Any]] = {}
    # TrainConfig field -> default for this task (epochs, batch_size, lr_w, lr_v, loss, eps, ...)
    train_defaults: ClassVar[dict[str, Any]] = {}
    # the grid used when an axis is not given: methods, widths, activations
    grid: ClassVar[dict[str, list]] = {}
    # profile name -> {"description", "device", "methods", "widths", "activations", "seeds",
    #                   "options": {...}, "train": {...}}
    profiles: ClassVar[dict[str, dict[str, Any]]] = {}
    # documented reason why the training defaults are what they are
    defaults_rationale: ClassVar[str] = ""
    # True: labels (cross-entropy and accuracy apply); False: regression targets; None: not declared
    classification: ClassVar[bool | None] = None
    # the report sections it wants (names registered in bench_suite/reporting/sections.py, e.g.
    # "accuracy", "ordering", "threshold", "eps", "study"; a plug-in may register its own);
    # None: the defaults for its kind ("accuracy" for a classification task). Sections every task
    # gets (the training curves, the rank of J) need no name here.
    report_sections: ClassVar[tuple[str, ...] | None] = None
    # part of its cells' ids (bench_suite/grid/versions.py): bump it when a change moves the task's
    # data (generation, reading, preprocessing, labels); None: the source of its module is used
    version: ClassVar[int | None] = None

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Validate the resolved option values (type and range) before anything uses them;
        return them (normalized). Raises ``ValueError("option NAME ...")`` naming the option.

        The default checks each value against the type of its default (an int default takes an
        int, a float default a finite number, a bool default true/false; a None default takes
        anything); tasks with ranges override this and call ``super().check_options``."""
        out = dict(options)
        for key, value in options.items():
            default = cls.options.get(key)
            out[key] = _check_like(key, value, default)
        return out

    @classmethod
    def theory_parts(cls, options: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Parts of the record's theory section this task's cells ask for beyond the standard
        ones, by name with their settings (``bench_suite.theory.record_section`` computes them
        from the cell's data and initial weights): e.g. ``{"kkt_bound": {...}}`` for Theorem 2's
        KKT study (``tasks/kkt_bound.py``). Default: none."""
        return {}

    @classmethod
    def shape(cls, options: dict[str, Any]) -> dict[str, Any] | None:
        """The data's shape from the (checked) options, without reading data:
        ``{"n", "d", "k", "n_test"}`` (training samples, input dimension, outputs, test samples;
        ``"exact": False`` when it is an estimate), or None when it cannot be known in advance."""
        return None

    @abc.abstractmethod
    def load(
        self, options: dict[str, Any], *, data_seed: int, data_root: str | None, cache_dir: str | None
    ) -> TaskData:
        """The task's data for these (checked) options; raises :class:`DataUnavailable` (data
        absent: the message says what to put where) or :class:`DataError` (data present but wrong)."""


def _check_like(key: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of the option's ``default`` (see Task.check_options)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "yes", "false", "no"):
            return value.lower() in ("true", "yes")
        raise ValueError(f"option {key} must be true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"option {key} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"option {key} must be a finite number, got {value!r}")
        return float(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise ValueError(f"option {key} must be a string, got {value!r}")
    return value


TASKS: Registry[type[Task]] = Registry("task")


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: register a :class:`Task` subclass under its ``name``."""
    if not cls.name:
        raise ValueError(f"task class {cls.__name__} needs a non-empty `name`")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise TypeError(f"task {cls.name!r} ({cls.__module__}.{cls.__name__}) does not implement "
                        f"{', '.join(missing)}: see bench_suite/tasks/base.py for the contract")
    TASKS.add(cls.name, cls)
    return cls
