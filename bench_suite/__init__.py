"""bench_suite: reproducibility harness for 'When Expressivity Meets Trainability: Fewer than n
Neurons Can Work' (Zhang, Zhang, Hong, Sun, Luo; NeurIPS 2021).

The Python API (:mod:`bench_suite.api`): ``run``, ``load_results``, ``load_curves``, ``check``,
``export``. Imported lazily, so ``import bench_suite`` (and the CLI's ``--help``) stay light.
"""

__version__ = "0.1.0"

_API = ("run", "load_results", "load_curves", "check", "export")


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench_suite' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])


__all__ = ["__version__", *_API]
