"""Cells and grids: what one run of one configuration is, its canonical name and its id.

A cell is (task, task options, method, width, activation, TrainConfig, repetition). Values
resolve in this order, later winning: ``TrainConfig`` defaults < the task's ``train_defaults``
< the profile's ``train`` < command-line overrides (the same for task options and for the
method/width/activation axes, which fall back to the task's ``grid``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .config import ACTIVATIONS, TrainConfig, check_width
from .methods import METHODS
from .seeds import seeds_for
from .tasks import TASKS, Task

PROTOCOL_VERSION = 1

# the modules whose source decides the numbers a cell computes (plus the task's own module)
_COMPUTE_MODULES = ("config.py", "model.py", "training.py", "engine/__init__.py", "engine/layout.py", "engine/step.py",
                    "engine/epochs.py", "methods.py", "seeds.py", "tasks/base.py")


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
        payload = {
            "config": self.config(),
            "seeds": self.seeds(),
            "code": code_digest(self.task),
            "protocol": PROTOCOL_VERSION,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

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


@lru_cache(maxsize=None)
def code_digest(task: str) -> str:
    """Hash of the source that computes a cell of ``task``: changed code makes a new cell."""
    root = Path(__file__).parent
    files = [root / rel for rel in _COMPUTE_MODULES]
    files.append(Path(inspect.getsourcefile(TASKS.get(task))))
    files += sorted((root / "data").glob("*.py"))
    h = hashlib.sha256()
    for path in dict.fromkeys(files):  # de-duplicated, order kept
        if path.exists():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def profile_names() -> list[str]:
    names: set[str] = set()
    for task in TASKS.names():
        names.update(TASKS.get(task).profiles)
    return sorted(names)


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
) -> list[Cell]:
    """The cells of one task: its profile (or default grid) with command-line overrides."""
    task_cls = TASKS.get(task)
    prof: dict[str, Any] = {}
    if profile is not None:
        if profile not in task_cls.profiles:
            raise ValueError(
                f"task {task!r} has no profile {profile!r}; its profiles: {', '.join(sorted(task_cls.profiles))}"
            )
        prof = task_cls.profiles[profile]
    methods = methods or prof.get("methods") or task_cls.grid["methods"]
    widths = widths or prof.get("widths") or task_cls.grid["widths"]
    activations = activations or prof.get("activations") or task_cls.grid["activations"]
    if repetitions is None:
        repetitions = list(range(int(prof.get("seeds", 1))))
    resolved_options = {**task_cls.options, **prof.get("options", {}), **(options or {})}
    unknown = sorted(set(resolved_options) - set(task_cls.options))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for task {task!r}; valid: {', '.join(sorted(task_cls.options))}"
        )
    resolved_options = task_cls.check_options(resolved_options)
    train_values = {**task_cls.train_defaults, **prof.get("train", {}), **(train or {})}
    unknown = sorted(set(train_values) - set(TrainConfig.field_names()))
    if unknown:
        valid = ", ".join(TrainConfig.field_names())
        raise ValueError(f"unknown training setting(s) {', '.join(unknown)}; valid: {valid}")
    config = TrainConfig(**train_values)
    cells = []
    for method in methods:
        method_obj = METHODS.get(method)
        for activation in activations:
            if activation not in ACTIVATIONS:
                raise ValueError(f"unknown activation {activation!r}; valid choices: {', '.join(ACTIVATIONS)}")
            for width in widths:
                check_width(width, method_obj.output, method_obj.init)
                for rep in repetitions:
                    if not isinstance(rep, int) or rep < 0:
                        raise ValueError(f"repetitions (seeds) must be integers >= 0, got {rep!r}")
                    cells.append(Cell(task, method, width, activation, rep, config, resolved_options, profile))
    return cells
