"""Name -> object registries for tasks and methods.

Registration is by decorator, so a user registers a task or method from their own module
(``--plugin mymodule`` on the command line, or the ``BENCH_SUITE_PLUGINS`` environment
variable, or the ``bench_suite.plugins`` entry-point group) without editing this package.
"""

from __future__ import annotations

import importlib
import os
import re
from importlib import metadata
from typing import Callable, Generic, Iterator, TypeVar

from .errors import BenchSuiteError, InvalidArgument

T = TypeVar("T")


class UnknownNameError(BenchSuiteError, KeyError, ValueError):
    """An unknown registry name; its message lists the valid choices."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class PluginError(BenchSuiteError):
    """A plug-in that cannot be loaded (missing, or it raised on import): one line naming it."""


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._origin: dict[str, str | None] = {}  # the plug-in module whose import registered each name

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T, *, replace: bool = False) -> None:
        """Register ``obj`` as ``name`` (ValueError for a taken name unless ``replace``, e.g. a
        re-run notebook cell; for a name the command line could not select; for an object whose
        own ``name`` differs)."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidArgument(f"{self.kind} name {name!r}: use letters, digits, '_', '-' and '.' only "
                             f"(it is written in --{self.kind} lists and cell names)")
        own = getattr(obj, "name", None)
        if isinstance(own, str) and own and own != name:
            raise InvalidArgument(f"{self.kind} {name!r}: the object is named {own!r}; register it under its own name")
        if name in self._items and self._items[name] is not obj and not replace:
            by = self._origin.get(name)
            raise InvalidArgument(f"{self.kind} {name!r} is already registered ({'by ' + by if by else 'built in'}): "
                             f"choose another name (or add(..., replace=True) to replace your own)")
        self._items[name] = obj
        self._origin.setdefault(name, _importing[-1] if _importing else None)

    def origin(self, name: str) -> str | None:
        """The plug-in module whose import registered ``name`` (None: built in, or added
        outside a plug-in import)."""
        return self._origin.get(name)

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


_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_importing: list[str] = []  # the plug-in modules being imported now (innermost last)

PLUGIN_ENV = "BENCH_SUITE_PLUGINS"
ENTRY_POINT_GROUP = "bench_suite.plugins"
_loaded_plugins: set[str] = set()


def load_plugins(modules: list[str] | None = None, option: str = "--plugin") -> None:
    """Import plugin modules (which register tasks/methods as a side effect of import).

    Sources: the explicit ``modules`` (given by ``option``: the CLI's ``--plugin``, the API's
    ``plugins``), the comma-separated ``BENCH_SUITE_PLUGINS`` variable, and installed packages'
    ``bench_suite.plugins`` entry points. A plug-in that is missing or raises on import raises
    :class:`PluginError`, naming where it was asked for.
    """
    if isinstance(modules, str):
        modules = [modules]
    wanted = [(m, f"{option} {m}" if option.startswith("-") else f"{option}={modules!r}") for m in modules or []]
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
    _importing.append(name)
    try:
        load()
    except ModuleNotFoundError as exc:
        missing = exc.name or name
        if missing == name or name.startswith(missing + "."):
            raise PluginError(f"plug-in module {name!r} (from {origin}) cannot be found: is it installed or on "
                              f"PYTHONPATH? Fix or remove it") from None
        raise PluginError(f"plug-in module {name!r} (from {origin}) needs the module {missing!r}, which is not "
                          f"installed") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plug-in's own fault, reported in one line
        text = " ".join(str(exc).split())
        raise PluginError(f"plug-in module {name!r} (from {origin}) raised on import: {type(exc).__name__}: "
                          f"{text} (for the traceback: --debug, or the exception's __cause__)") from exc
    finally:
        _importing.pop()
