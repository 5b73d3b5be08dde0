"""bench_suite: reproducibility harness for 'When Expressivity Meets Trainability: Fewer than n
Neurons Can Work' (Zhang, Zhang, Hong, Sun, Luo; NeurIPS 2021).

The Python API (:mod:`bench_suite.api`): ``run``, ``load_results``, ``load_curves``, ``check``,
``export``, ``report``, ``compare``; for plug-ins, ``Method`` and ``METHODS``
(:mod:`bench_suite.methods`), ``register_task`` (:mod:`bench_suite.tasks`) and
``register_section`` (:mod:`bench_suite.reporting`). Imported lazily, so ``import bench_suite``
(and the CLI's ``--help``) stay light.
"""

from . import _compat  # former module names still import, with a DeprecationWarning
from .core.version import __version__  # one version: the package metadata / pyproject.toml

_compat.install()

_API = ("run", "load_results", "load_curves", "check", "export", "report", "compare")
_PLUGIN_API = {"Method": "methods", "METHODS": "methods", "register_task": "tasks", "register_section": "reporting"}


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name in _PLUGIN_API:
        import importlib

        return getattr(importlib.import_module(f".{_PLUGIN_API[name]}", __name__), name)
    raise AttributeError(f"module 'bench_suite' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API, *_PLUGIN_API])


__all__ = ["__version__", *_API, *_PLUGIN_API]
