"""The guard of the code versions that identify results (bench_suite/grid/versions.py).

A cell's id names the versions of the engine, theory, task and method, never the code's files,
so a refactor keeps every id. These tests keep the versions honest: the numbers of the probes
(bench_suite/diagnostics/probes.py, plus each data-set task on fixture files in its exact format) must equal
the golden ones stored with the versions that made them (tests/golden/probes.json).

When a change moves numbers on purpose: bump the version of the part that moved (the failure
says which), then regenerate the goldens and commit them with the change:

    BENCH_SUITE_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py -q

The last tests prove the rule on a copy of the package: a pure refactor (a function moved to
another module, a module renamed) keeps every cell id and every probe; a changed constant moves
the probes (so the guard fails), and the bump it calls for changes the cell ids.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from data_fixtures import (
    CIFAR100_SMALL_COUNTS,
    MNIST_SMALL_COUNTS,
    no_data_env,  # noqa: F401 - fixture
    skip_cifar100_md5,  # noqa: F401 - fixture
    skip_torchvision_md5,  # noqa: F401 - fixture
    write_cifar100_python,
    write_cifar_batches,
    write_ilsvrc_tree,
    write_mnist_idx,
)

from bench_suite.core.env import env_flag
from bench_suite.core.seeds import seeds_for
from bench_suite.diagnostics import probes
from bench_suite.grid import expand
from bench_suite.tasks import BUILTIN_TASKS, TASKS

GOLDEN = Path(__file__).parent / "golden" / "probes.json"
ROOT = Path(__file__).resolve().parent.parent
UPDATE = env_flag("BENCH_SUITE_UPDATE_GOLDEN")

# (task, options) of the data-set tasks, loaded from fixtures written in their exact formats
FIXTURE_TASKS = {
    "cifar10_random": {"n_train": 20, "n_test": 6},
    "cifar10": {"n_train": 20, "n_test": 6},
    "mnist": {"n_train": 20, "n_test": 6},
    "cifar100": {"n_train": 20, "n_test": 6},
    "restricted_imagenet": {"image_size": 8, "max_train_per_wnid": 1, "max_val_per_wnid": 1},
}


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden-data")
    write_cifar_batches(root, per_batch=6, test=10)
    write_mnist_idx(root)
    write_cifar100_python(root)
    write_ilsvrc_tree(root / "ilsvrc", train_per_wnid=1, val_per_wnid=1)
    return root


def fixture_task_probes(root: Path, cache: Path) -> dict:
    out = {}
    for task, options in FIXTURE_TASKS.items():
        cls = TASKS.get(task)
        data_root = root / "ilsvrc" if task == "restricted_imagenet" else root
        data = cls().load(cls.check_options({**cls.options, **options}), data_seed=seeds_for(task, 0)["data"],
                          data_root=str(data_root), cache_dir=str(cache))
        out[f"task/{task}"] = {"depends": [f"task:{task}"], "values": probes.data_values(data)}
    return out


@pytest.fixture(scope="module")
def current(fixture_root, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("bench_suite.data.cifar10.CIFAR10_COUNTS", {"train": 30, "test": 10})
        mp.setattr("bench_suite.data.mnist.MNIST_COUNTS", dict(MNIST_SMALL_COUNTS))
        mp.setattr("bench_suite.data.cifar100.CIFAR100_COUNTS", dict(CIFAR100_SMALL_COUNTS))
        mp.setattr("bench_suite.data.cifar100.matches_published_md5", lambda path, md5: Path(path).is_file())
        import torchvision.datasets.cifar

        mp.setattr(torchvision.datasets.cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
        for var in ("BENCH_SUITE_CIFAR10", "BENCH_SUITE_IMAGENET", "BENCH_SUITE_MNIST", "BENCH_SUITE_CIFAR100",
                    "BENCH_SUITE_DATA_ROOT"):
            mp.delenv(var, raising=False)
        out = probes.run_probes()
        out.update(fixture_task_probes(fixture_root, tmp_path_factory.mktemp("golden-cache")))
    return dict(sorted(out.items()))


def test_probes_match_the_goldens(current):
    if UPDATE:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(probes.golden_text(probes.golden_content(current)))
        pytest.skip(f"goldens regenerated: {GOLDEN}")
    assert GOLDEN.exists(), f"no goldens at {GOLDEN}: " + probes.explain([])
    problems = probes.compare(json.loads(GOLDEN.read_text()), current)
    assert not problems, probes.explain(problems, current)


def test_every_built_in_method_task_and_activation_is_probed(current):
    from bench_suite.methods import BUILTIN_METHODS

    methods = {n.split("/")[1] for n in current if n.startswith("train/")}
    assert methods == set(BUILTIN_METHODS)
    assert {n.split("/")[1] for n in current if n.startswith("task/")} == set(BUILTIN_TASKS)
    assert {n.split("/")[2] for n in current if n.startswith("train/")} == set(probes.ACTIVATIONS)
    assert {n.split("/")[1] for n in current if n.startswith("theory/")} == set(BUILTIN_METHODS)


def test_compare_tells_a_moved_number_from_a_version_bump(current):
    golden = probes.golden_content(current)
    assert probes.compare(golden, current) == []
    name = "train/sgd/tanh/mse/full/momentum0"
    moved = json.loads(json.dumps(golden))
    moved["probes"][name]["values"]["final.train_loss"] *= 1 + 1e-6
    (problem,) = probes.compare(moved, current)
    assert problem["kind"] == "moved" and problem["name"] == name
    assert probes.suspects([problem], current) == ["method:sgd"]
    assert "method:sgd" in probes.explain([problem], current) and "bump" in probes.explain([problem], current)
    bumped = json.loads(json.dumps(golden))
    bumped["probes"][name]["versions"]["engine"] = 0
    assert [p["kind"] for p in probes.compare(bumped, current)] == ["versions"]
    within = json.loads(json.dumps(golden))
    within["probes"][name]["values"]["final.train_loss"] *= 1 + 1e-12  # rounding on another machine
    assert probes.compare(within, current) == []


# --------------------------------------------------------------------------- the rule, on a copy

SNIPPET = """
import json, sys
from bench_suite.grid import expand
from bench_suite.tasks import BUILTIN_TASKS, TASKS
from bench_suite.diagnostics import probes
ids = {}
for task in sorted(TASKS.names()):
    for profile in ("smoke", "ci"):
        try:
            ids.update({c.name: c.cell_id for c in expand(task, profile=profile)})
        except Exception:
            pass
print(json.dumps({"ids": ids, "probes": probes.run_probes()}))
"""


def _ids_here() -> dict[str, str]:
    ids = {}
    for task in sorted(BUILTIN_TASKS):
        for profile in ("smoke", "ci"):
            try:
                ids.update({c.name: c.cell_id for c in expand(task, profile=profile)})
            except Exception:  # noqa: BLE001 - a task without that profile
                pass
    return ids


def _copy_package(tmp_path: Path) -> Path:
    dest = tmp_path / "pkg"
    shutil.copytree(ROOT / "bench_suite", dest / "bench_suite", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _run_copy(dest: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(dest), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-c", SNIPPET], cwd=dest, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


@pytest.mark.slow
def test_a_pure_refactor_keeps_every_cell_id_and_probe(tmp_path):
    dest = _copy_package(tmp_path)
    pkg = dest / "bench_suite"
    # move a function the engine calls into a new module, and rename a module of the engine
    _edit(pkg / "methods" / "__init__.py", "def schedule_factor(", "def _old_schedule_factor(")
    source = (ROOT / "bench_suite" / "methods" / "__init__.py").read_text()
    start = source.index("def schedule_factor(")
    end = source.index("\n\n\n", start)
    (pkg / "methods" / "schedules.py").write_text(
        "import math\nfrom typing import Callable\n\nSCHEDULES = ('constant', 'linear', 'cosine')\n\n\n"
        "class MethodError(ValueError):\n    pass\n\n\n" + source[start:end] + "\n")
    _edit(pkg / "methods" / "__init__.py", "from ..core.registry import Registry\n",
          "from ..core.registry import Registry\nfrom .schedules import schedule_factor  # noqa: F401 - moved\n")
    (pkg / "train" / "engine" / "step.py").rename(pkg / "train" / "engine" / "group_step.py")
    for path in pkg.rglob("*.py"):
        text = path.read_text()
        if "from .step import" in text or "engine.step" in text or "from .engine.step import" in text:
            path.write_text(text.replace("from .step import", "from .group_step import")
                            .replace("engine.step", "engine.group_step"))
    copy = _run_copy(dest)
    assert copy["ids"] == _ids_here()
    problems = probes.compare(probes.golden_content(probes.run_probes()), copy["probes"])
    assert problems == [], probes.explain(problems, copy["probes"])


@pytest.mark.slow
def test_a_changed_number_is_caught_and_its_bump_changes_the_cell_ids(tmp_path):
    dest = _copy_package(tmp_path)
    pkg = dest / "bench_suite"
    # one constant of the network: the scale of LeCun's init of V
    _edit(pkg / "model" / "__init__.py", "/ width**0.5", "/ (width**0.5 * 1.001)")
    changed = _run_copy(dest)
    problems = probes.compare(probes.golden_content(probes.run_probes()), changed["probes"])
    assert problems and all(p["kind"] == "moved" for p in problems)
    assert probes.suspects(problems, changed["probes"]) == ["engine"]
    assert changed["ids"] == _ids_here()  # the change alone does not show in the ids: the guard is what fails
    _edit(pkg / "grid" / "versions.py", "ENGINE_VERSION = ", "ENGINE_VERSION = 1 + ")
    bumped = _run_copy(dest)
    here = _ids_here()
    assert bumped["ids"].keys() == here.keys()
    assert all(bumped["ids"][name] != here[name] for name in here)
