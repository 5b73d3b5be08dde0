"""The public faces stay as they are while the package moves underneath: `import bench_suite as
bs` and its functions, `python -m bench_suite`, the `bench-suite` entry point, bench_suite.methods,
bench_suite.tasks and bench_suite.testing for plug-ins; every former module name still imports,
with a DeprecationWarning, and gives the module at its new place."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bench_suite as bs
from bench_suite._compat import MOVED

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_the_library_face():
    for name in ("run", "load_results", "load_curves", "check", "export"):
        assert callable(getattr(bs, name)), name
        assert name in bs.__all__ and name in dir(bs)
    assert "store" in inspect.signature(bs.load_results).parameters
    assert set(inspect.signature(bs.run).parameters) >= {"task", "profile", "store", "methods", "widths",
                                                         "activations", "repetitions", "options", "train",
                                                         "device", "plugins"}
    assert isinstance(bs.__version__, str) and bs.__version__[0].isdigit()
    with pytest.raises(AttributeError):
        bs.no_such_name  # noqa: B018


def test_the_plug_in_faces():
    from bench_suite.methods import METHODS, Method
    from bench_suite.tasks import TASKS, Task, TaskData, register_task
    from bench_suite.testing import assert_plugin_contract, check_plugin

    assert bs.Method is Method and bs.METHODS is METHODS and bs.register_task is register_task
    assert {"mli_paired_pgd", "sgd", "constraint_only", "no_mirroring"} <= set(METHODS.names())
    assert "synthetic_ablation" in TASKS and issubclass(Task, object) and TaskData
    assert callable(assert_plugin_contract) and callable(check_plugin)


def test_python_m_bench_suite_and_the_entry_point():
    out = subprocess.run([sys.executable, "-m", "bench_suite", "--help"], cwd=ROOT, env=ENV, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("usage: python -m bench_suite ")
    for command in ("list", "run", "plan", "check", "report", "export", "doctor", "plugin-check"):
        assert command in out.stdout
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"bench-suite": "bench_suite.cli:main"}
    # what the entry point calls, as the script calls it (no arguments): its name is bench-suite
    code = "import sys; sys.argv = ['bench-suite', '--help']; from bench_suite.cli import main; sys.exit(main())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("usage: bench-suite ")
    out = subprocess.run([sys.executable, "-c", code.replace("'--help'", "'runn'")], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("bench-suite: error: ")


def test_every_former_module_name_imports_with_a_warning_and_gives_the_new_module():
    # a fresh interpreter: a name imported once is cached and would not warn again
    code = """
import importlib, json, sys, warnings
import bench_suite
from bench_suite._compat import MOVED
out = {}
for old, new in MOVED.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    out[old] = {"same": module is importlib.import_module(new), "in_sys": sys.modules[old] is module,
                "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}
print(json.dumps(out))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert set(result) == set(MOVED)
    for old, new in MOVED.items():
        got = result[old]
        assert got["same"] and got["in_sys"], old
        deprecations = [w for w in got["warnings"] if w.startswith("DeprecationWarning: ")]
        assert deprecations == [f"DeprecationWarning: {old} is now {new}; the old name will be removed in a later "
                                f"version"], (old, got["warnings"])


def test_a_former_name_works_in_a_from_import():
    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            "try:\n    from bench_suite.records import Record\nexcept DeprecationWarning as w:\n    print(w)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == ("bench_suite.records is now bench_suite.core.records; the old name will be removed "
                                  "in a later version")
    code = "import warnings; warnings.simplefilter('ignore'); from bench_suite.records import Record; print(Record)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "<class 'bench_suite.core.records.Record'>"


def test_former_modules_that_became_packages_keep_their_names():
    from bench_suite.runner import Runner, RunSummary  # noqa: F401
    from bench_suite.scoring import load_references, run_checks  # noqa: F401
    from bench_suite.store import ResultStore  # noqa: F401
