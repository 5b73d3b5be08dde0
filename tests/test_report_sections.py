"""Report sections as a plug-in point (bench_suite/reporting/sections.py): which tasks get which
sections, a section registered from outside the package, a task that asks for sections by its
``report_sections``, and the template plug-in examples/my_report_section.py run as its author
would."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from test_report import make_record

from bench_suite.core.records import to_frame
from bench_suite.reporting import SECTIONS, Table, Text, register_section
from bench_suite.reporting.build import collect, write_report
from bench_suite.reporting.sections import plan_sections, task_sections
from bench_suite.scoring.checks import run_checks
from bench_suite.tasks import TASKS, Task

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def registries():
    """Registrations made by a test are undone after it."""
    saved = [(reg, dict(reg._items), dict(reg._origin)) for reg in (SECTIONS, TASKS)]
    plan_sections([])  # the built-in sections are registered before the snapshot is restored to
    saved = [(reg, dict(reg._items), dict(reg._origin)) for reg, _, _ in saved]
    yield
    for reg, items, origin in saved:
        reg._items.clear()
        reg._items.update(items)
        reg._origin.clear()
        reg._origin.update(origin)


def test_tasks_ask_for_their_sections_and_classification_tasks_default_to_accuracy():
    assert task_sections("synthetic_ablation") == ("ordering", "study", "map")
    assert task_sections("width_threshold") == ("threshold", "eps")
    for task in ("cifar10", "cifar10_random", "mnist", "cifar100", "restricted_imagenet"):
        assert task_sections(task) == ("accuracy",)  # not declared: the default of a classification task
    assert task_sections("not_loaded_plugin_task") == ()


def test_the_plan_is_in_report_order_with_each_sections_tasks():
    plan, problems = plan_sections(["width_threshold", "cifar10", "synthetic_ablation"])
    names = [(s.name, tasks) for s, tasks in plan]
    assert names == [("accuracy", ["cifar10"]), ("ordering", ["synthetic_ablation"]),
                     ("jacobian_rank", ["cifar10", "synthetic_ablation", "width_threshold"]),
                     ("threshold", ["width_threshold"]), ("eps", ["width_threshold"]),
                     ("study", ["synthetic_ablation"]), ("map", ["synthetic_ablation"]),
                     ("curves", ["cifar10", "synthetic_ablation", "width_threshold"])]
    assert problems == []


def test_no_task_is_named_in_the_reporting_code():
    """A new task gets its sections without editing bench_suite/reporting/: no string in its
    code (docstrings and prose aside) is a task's name."""
    names = set(TASKS.names())
    found = []
    for path in sorted((ROOT / "bench_suite" / "reporting").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.name}:{node.lineno} {node.value}")
    assert found == []


def _records():
    return [make_record(task="cifar10", method=m, width=w, activation="relu", rep=r, n=1000, d=3072, k=10,
                        acc=0.5 + 0.01 * r, test_acc=0.3 + 0.01 * r, epochs=10)
            for m in ("sgd", "mli_paired_pgd") for w in (16, 64) for r in range(2)]


def test_a_section_registered_outside_reaches_existing_tasks(tmp_path, registries):
    @register_section("cell_count", title="How many cells", tasks=("cifar10",), order=85)
    def cell_count(data):
        counts = data.frame.groupby("method").size().reset_index(name="cells")
        return [Text(f"{len(data.frame)} cells of {', '.join(data.tasks)}.", summary=True), Table(counts)]

    recs = _records()
    df = to_frame(recs)
    paths = write_report(df, recs, run_checks(df, []), tmp_path)
    text, page = paths[0].read_text(), paths[1].read_text()
    assert "## How many cells\n\n8 cells of cifar10." in text
    assert 'id="section-cell_count"' in page and "<th>cells</th>" in page
    assert text.index("## Accuracy against width") < text.index("## How many cells") < text.index("## Training")
    with pytest.raises(ValueError, match="already registered"):
        register_section("cell_count", title="again")(cell_count)


def test_a_task_asks_for_sections_by_name_and_a_missing_one_is_one_warning(tmp_path, registries):
    @register_section("hello", title="Hello")
    def hello(data):
        return [Text(f"hello {', '.join(data.tasks)}", summary=True)]

    class Mine(Task):
        name = "cifar10_mine"
        classification = True
        report_sections: ClassVar[Any] = ("hello", "accuracy", "nosuch")

        def load(self, options, *, data_seed, data_root, cache_dir):  # pragma: no cover - never run
            raise NotImplementedError

    TASKS.add("cifar10_mine", Mine)
    recs = [r.replace(config={**r.config, "task": "cifar10_mine"}) for r in _records()]
    df = to_frame(recs)
    data = collect(df, recs, run_checks(df, []), title="t")
    assert [s.name for s, _ in data.sections] == ["accuracy", "curves", "hello"]
    assert data.problems == ["task cifar10_mine asks for the report section 'nosuch', which is not registered (load "
                             "the plug-in that defines it with --plugin); registered: " + ", ".join(SECTIONS.names())]
    text = write_report(df, recs, run_checks(df, []), tmp_path)[0].read_text()
    assert "## Hello\n\nhello cifar10_mine" in text and "> Warning: task cifar10_mine asks for" in text


def test_a_failing_section_costs_one_line_not_the_report(tmp_path, registries, capsys):
    @register_section("broken", title="Broken", tasks="*")
    def broken(data):
        raise KeyError("no_such_column")

    recs = _records()
    df = to_frame(recs)
    text = write_report(df, recs, run_checks(df, []), tmp_path)[0].read_text()
    line = "the report section 'broken' failed: KeyError: 'no_such_column'"
    assert f"> Warning: {line}" in text and "## Accuracy against width" in text
    assert capsys.readouterr().err == f"warning: {line}\n"


@pytest.mark.slow
def test_the_template_section_plug_in_runs_from_outside_the_package(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "examples")])}
    env.pop("BENCH_SUITE_PLUGINS", None)

    def bench(*args):
        return subprocess.run([sys.executable, "-m", "bench_suite", "--plugin", "my_report_section", *args],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)

    run = bench("run", "--task", "synthetic_small", "--profile", "smoke", "--store", "s", "--quiet", "--threads", "1")
    assert run.returncode == 0, run.stderr
    report = bench("report", "--store", "s", "--format", "md")
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "s" / "report" / "report.md").read_text()
    assert "## Distance travelled: ‖W − W0‖_F at the end" in text  # its own section, asked for by its task
    assert "## Ordering of the methods (final training loss)" in text  # a built-in one it asked for
    assert (tmp_path / "s" / "report" / "figures" / "weight_distance__synthetic_small.svg").is_file()
