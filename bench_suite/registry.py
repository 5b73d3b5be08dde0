"""Name -> object registries for tasks and methods.

Registration is by decorator, so a user registers a task or method from their own module
(``--plugin mymodule`` on the command line, or the ``BENCH_SUITE_PLUGINS`` environment
variable, or the ``bench_suite.plugins`` entry-point group) without editing this package.
"""

from __future__ import annotations

import importlib
import os
from importlib import metadata
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name; its message lists the valid choices."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class PluginError(Exception):
    """A plug-in that cannot be loaded (missing, or it raised on import): one line naming it."""


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            choices = ", ".join(sorted(self._items)) or "(none registered)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid choices: {choices}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


PLUGIN_ENV = "BENCH_SUITE_PLUGINS"
ENTRY_POINT_GROUP = "bench_suite.plugins"
_loaded_plugins: set[str] = set()


def load_plugins(modules: list[str] | None = None) -> None:
    """Import plugin modules (which register tasks/methods as a side effect of import).

    Sources: the explicit ``modules`` (``--plugin``), the comma-separated ``BENCH_SUITE_PLUGINS``
    variable, and installed packages' ``bench_suite.plugins`` entry points. A plug-in that is
    missing or raises on import raises :class:`PluginError`, naming where it was asked for.
    """
    wanted = [(m, f"--plugin {m}") for m in modules or []]
    wanted += [(m.strip(), f"${PLUGIN_ENV} (= {os.environ.get(PLUGIN_ENV)!r})")
               for m in os.environ.get(PLUGIN_ENV, "").split(",") if m.strip()]
    for name, origin in wanted:
        if name not in _loaded_plugins:
            _import_plugin(name, origin, lambda n=name: importlib.import_module(n))
            _loaded_plugins.add(name)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.value not in _loaded_plugins:
            dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
            _import_plugin(ep.value, f"the {ENTRY_POINT_GROUP} entry point {ep.name!r} of {dist}", ep.load)
            _loaded_plugins.add(ep.value)


def _import_plugin(name: str, origin: str, load: Callable[[], object]) -> None:
    try:
        load()
    except ModuleNotFoundError as exc:
        missing = exc.name or name
        if missing == name or name.startswith(missing + "."):
            raise PluginError(f"plug-in module {name!r} (from {origin}) cannot be found: is it installed or on "
                              f"PYTHONPATH? Fix or remove it") from None
        raise PluginError(f"plug-in module {name!r} (from {origin}) needs the module {missing!r}, which is not "
                          f"installed") from None
    except Exception as exc:  # noqa: BLE001 - a plug-in's own fault, reported in one line
        text = " ".join(str(exc).split())
        raise PluginError(f"plug-in module {name!r} (from {origin}) raised on import: {type(exc).__name__}: "
                          f"{text} (run with --debug for the traceback)") from exc
