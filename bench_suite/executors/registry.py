"""Executors by name: what ``run --executor NAME`` and ``bench_suite.run(executor=NAME)`` pick.

An executor is a name and a function that builds its :class:`~bench_suite.executors.driver.Backend`
from an :class:`ExecutorRequest`. The built-ins are named by ``"module:function"`` strings, so
listing them (``--help``, ``plan``) imports neither torch nor an optional extra. Adding one is
one file and one call, from outside the package too (examples/my_executor.py)::

    from bench_suite.executors import Backend, register_executor

    class Threads(Backend): ...
    register_executor("threads", lambda request: Threads(**request.options), "a thread per fused group")
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..core.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from ..grid import Cell
    from .driver import Backend


@dataclass
class ExecutorRequest:
    """What a backend is built from: ``run``'s scale-out flags or ``bench_suite.run``'s keywords."""

    devices: list[str] | None = None  # local: one worker process per device when several
    scheduler: str | None = None  # dask: the scheduler's address
    slurm: dict[str, Any] = field(default_factory=dict)  # slurm: SlurmParams fields
    options: dict[str, Any] = field(default_factory=dict)  # a plug-in executor's own settings
    # progress inside a group (a backend that trains in this process calls them)
    on_epoch: Callable[[int, int], None] | None = None
    on_group_start: Callable[[list["Cell"]], None] | None = None
    on_resume: Callable[[list["Cell"], int, int], None] | None = None
    on_message: Callable[[str], None] | None = None  # status lines (cluster job states); None: stderr


@dataclass(frozen=True)
class Executor:
    name: str
    build: str | Callable[[ExecutorRequest], "Backend"]  # "module:function", imported when used
    description: str = ""

    def backend(self, request: ExecutorRequest) -> "Backend":
        build = self.build
        if isinstance(build, str):
            module, _, attr = build.partition(":")
            build = getattr(importlib.import_module(module), attr)
        return build(request)


EXECUTORS: Registry[Executor] = Registry("executor")


def register_executor(name: str, build: str | Callable[[ExecutorRequest], "Backend"], description: str = "", *,
                      replace: bool = False) -> Executor:
    """Make ``run --executor NAME`` build a backend with ``build(request)``; returns the entry."""
    entry = Executor(name, build, description)
    EXECUTORS.add(name, entry, replace=replace)
    return entry


def build_backend(name: str, request: ExecutorRequest) -> "Backend":
    """The backend of the executor ``name`` (``UnknownNameError`` listing the valid names)."""
    return EXECUTORS.get(name).backend(request)


register_executor("local", "bench_suite.executors.local:build",
                  "this machine: this process, or one worker process per device with --devices")
register_executor("dask", "bench_suite.executors.dask_cluster:build", "a Dask cluster (--scheduler)")
register_executor("slurm", "bench_suite.executors.slurm:build", "SLURM jobs through submitit")
