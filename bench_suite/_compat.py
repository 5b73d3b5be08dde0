"""The modules' former names, kept importable with a DeprecationWarning.

The package is laid out by stage (docs/design.md); a plug-in written against a former name
(``bench_suite.reference_trainer``, ``bench_suite.store``, ...) still imports, gets the module
at its new place and a warning naming it. Installed by ``bench_suite/__init__.py`` as a
meta-path finder: ``import bench_suite.records`` and ``from bench_suite.records import X`` both
work; the module object is the new one, so there is one copy of each thing.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# former name -> current module (names that did not change are not listed; bench_suite.runner,
# bench_suite.scoring and bench_suite.store are packages now, whose __init__ re-exports what the
# former modules held)
MOVED = {
    "bench_suite.config": "bench_suite.core.config",
    "bench_suite.records": "bench_suite.core.records",
    "bench_suite.curves": "bench_suite.core.curves",
    "bench_suite.exit_codes": "bench_suite.core.exit_codes",
    "bench_suite.registry": "bench_suite.core.registry",
    "bench_suite.seeds": "bench_suite.core.seeds",
    "bench_suite.flops": "bench_suite.core.flops",
    "bench_suite.projection": "bench_suite.model.projection",
    "bench_suite.engine": "bench_suite.train.engine",
    "bench_suite.engine.layout": "bench_suite.train.engine.layout",
    "bench_suite.engine.step": "bench_suite.train.engine.step",
    "bench_suite.engine.epochs": "bench_suite.train.engine.loop",
    "bench_suite.training": "bench_suite.train",
    "bench_suite.trainers": "bench_suite.train.dispatch",
    "bench_suite.reference_trainer": "bench_suite.train.reference",
    "bench_suite.versions": "bench_suite.grid.versions",
    "bench_suite.curve_store": "bench_suite.store.curves",
    "bench_suite.migrate": "bench_suite.store.migrate",
    "bench_suite.cost": "bench_suite.runner.cost",
    "bench_suite.grouping": "bench_suite.runner.grouping",
    "bench_suite.checkpoints": "bench_suite.runner.checkpoints",
    "bench_suite.provenance": "bench_suite.runner.provenance",
    "bench_suite.baselines": "bench_suite.scoring.references",
    "bench_suite.report": "bench_suite.reporting.markdown",
    "bench_suite.ablation_tables": "bench_suite.reporting.ablation",
    "bench_suite.theory_report": "bench_suite.reporting.theory",
    "bench_suite.doctor": "bench_suite.diagnostics.doctor",
    "bench_suite.oracle": "bench_suite.diagnostics.oracle",
    "bench_suite.probes": "bench_suite.diagnostics.probes",
    "bench_suite.commands": "bench_suite.cli",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:  # already executed under its own name
        return None


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        warnings.warn(f"{fullname} is now {new}; the old name will be removed in a later version",
                      DeprecationWarning, stacklevel=3)
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
