"""The plug-in contract, as a check a plug-in author runs on their own module.

    python -m bench_suite plugin-check my_plugin          # one line per check, exit 1 on a FAIL

or, in the plug-in's own tests::

    from bench_suite.testing import assert_plugin_contract

    def test_my_plugin_keeps_the_contract():
        assert_plugin_contract("my_plugin")

It imports the module (which registers methods and tasks, ``bench_suite/methods/__init__.py``,
``bench_suite/tasks/base.py``), then trains what it registered on a tiny problem through the
runner, into throw-away stores, the way ``run`` would:

- each new **method** on its first new task's ``smoke`` profile if it registers one with that
  profile, else on ``synthetic_ablation`` at n = 64, d = 16, width 8 (``ablation_smoke``'s
  shape), 20 epochs, beside the built-in method of the same init (``sgd`` for LeCun init,
  ``mli_paired_pgd`` for MLI);
- each new **task** with ``mli_paired_pgd`` and ``sgd`` at its smallest even grid width, on its
  ``smoke`` profile if it has one (else its defaults at 2 epochs).

and checks, per method or task:

- ``record``: every record passes the record schema (written, read back and validated as
  ``check`` reads it), names its trainer, ends ``done`` (``skipped``, i.e. data absent, is
  reported as skipped; ``error`` and ``diverged`` fail with their reason) with a finite final
  training loss;
- ``determinism``: a second run into another store gives the same curves and final metrics,
  bit for bit;
- ``seed pairing``: the same label digest as the built-in method's cell, and the same W0 digest
  as the built-in of the same init (seeds come from task and repetition, never the method).

Our choice of contract (issue 10); the CLI's ``plugin-check`` and this module share it.
"""

from __future__ import annotations

import math
import tempfile
from typing import Any, Callable

from .diagnostics.doctor import FAIL, OK, SKIP, Check  # one vocabulary of check lines (doctor, plugin-check)

TINY_OPTIONS = {"n": 64, "d": 16}  # ablation_smoke's shape
TINY_WIDTH = 8
TINY_EPOCHS = 20
PAIRED_WITH = {"lecun": "sgd", "mirrored_lecun": "mli_paired_pgd"}  # the built-in of each init




def registered_by(module: str) -> tuple[list[str], list[str]]:
    """(methods, tasks) that importing ``module`` registers (``PluginError`` if it cannot be
    imported). Already imported: the methods whose functions and the tasks whose classes live in it."""
    from .core.registry import load_plugins
    from .methods import METHODS
    from .tasks import TASKS

    methods_before, tasks_before = set(METHODS.names()), set(TASKS.names())
    load_plugins([module])
    methods = sorted(set(METHODS.names()) - methods_before)
    tasks = sorted(set(TASKS.names()) - tasks_before)
    if not methods and not tasks:  # imported before (e.g. $BENCH_SUITE_PLUGINS): what its import registered
        tasks = [t for t in TASKS.names() if TASKS.origin(t) == module or TASKS.get(t).__module__ == module]
        methods = [m for m in METHODS.names() if METHODS.origin(m) == module or any(
            getattr(getattr(METHODS.get(m), f, None), "__module__", None) == module
            for f in ("train_step", "projection", "lr_schedule"))]
    return methods, tasks


def _run(cells: list, device: str) -> list:
    """The cells' records, run by the runner into a fresh temporary store (re-read from disk)."""
    from .runner.runner import Runner
    from .store.result_store import ResultStore

    with tempfile.TemporaryDirectory(prefix="bench_suite-plugin-check-") as root:
        store = ResultStore(root)
        Runner(store, device=device, wait_for_others=False).run(cells)
        return [store.get(c.cell_id, with_curves=True) for c in cells]


def _comparable(record) -> dict[str, Any]:
    curves = {k: v for k, v in (record.curves or {}).items() if k != "wall_time"}
    return {"status": str(record.status), "curves": curves, "final": record.final}


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN (a diverged curve)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _record_check(name: str, records: list) -> Check:
    from .core.records import Record, RecordError

    problems, skipped = [], []
    for record in records:
        if record is None:
            problems.append("a cell left no record")
            continue
        try:
            Record.from_json(record.to_json(), expected_id=record.cell_id)
        except RecordError as exc:
            problems.append(f"{record.name}: the record fails the schema ({exc})")
            continue
        if record.status == "skipped":
            skipped.append(f"{record.name}: {record.reason}")
        elif record.status != "done":
            problems.append(f"{record.name} ended {record.status}: {record.reason}")
        else:
            loss = (record.final or {}).get("train_loss")
            if not (isinstance(loss, (int, float)) and math.isfinite(loss)):
                problems.append(f"{record.name}: final train_loss is {loss!r}")
            if (record.timing or {}).get("trainer") not in ("fused", "reference"):
                problems.append(f"{record.name}: the record does not name its trainer")
    if problems:
        return Check(f"{name}: record", FAIL, "; ".join(problems))
    if skipped:
        return Check(f"{name}: record", SKIP, "; ".join(skipped))
    trainers = ", ".join(sorted({f"{r.config['method']} on {r.timing['trainer']}" for r in records}))
    return Check(f"{name}: record", OK, f"{len(records)} record(s) pass the schema, done ({trainers})")


def _contract(name: str, cells: list, subject: str, builtin: str | None, device: str) -> list[Check]:
    """The three checks for the cells of one method or task (``subject``: the method under test;
    ``builtin``: the built-in method its W0 must equal, None to compare labels only)."""
    first, second = _run(cells, device), _run(cells, device)
    out = [_record_check(name, first)]
    if out[0].status != OK:
        return out
    differ = [a.name for a, b in zip(first, second) if not _same(_comparable(a), _comparable(b))]
    out.append(Check(f"{name}: determinism", FAIL if differ else OK,
                     f"a second run differs: {', '.join(differ)}" if differ
                     else f"a second run into another store gives the same curves and final metrics "
                          f"({len(first)} cells)"))
    by_method = {r.method: r for r in first}
    mine = by_method[subject]
    problems = [f"label digest {r.label_digest} of {r.method} vs {mine.label_digest}" for r in first
                if r.label_digest != mine.label_digest]
    if builtin is not None and by_method[builtin].w0_digest != mine.w0_digest:
        problems.append(f"W0 digest {mine.w0_digest} vs {by_method[builtin].w0_digest} of {builtin} (same init)")
    what = f"labels and W0 as {builtin}" if builtin is not None else "labels across methods"
    out.append(Check(f"{name}: seed pairing", FAIL if problems else OK, "; ".join(problems) or f"the same {what}"))
    return out


def _cells_for_method(method: str, tasks: list[str]) -> tuple[list, str]:
    from .grid import expand, profiles_of
    from .methods import METHODS

    builtin = PAIRED_WITH[METHODS.get(method).init]
    methods = [method, builtin] if builtin != method else [method]
    task = next((t for t in tasks if "smoke" in profiles_of(t)), None)
    if task is not None:
        return expand(task, profile="smoke", methods=methods, repetitions=[0]), builtin
    train = {"epochs": TINY_EPOCHS, "eval_every": TINY_EPOCHS // 2}
    return expand("synthetic_ablation", methods=methods, widths=[TINY_WIDTH], options=dict(TINY_OPTIONS),
                  train=train, repetitions=[0]), builtin


def _cells_for_task(task: str) -> list:
    from .grid import expand, profiles_of
    from .tasks import TASKS

    methods = ["mli_paired_pgd", "sgd"]
    widths = sorted(w for w in (TASKS.get(task).grid.get("widths") or [TINY_WIDTH]) if w % 2 == 0) or [TINY_WIDTH]
    if "smoke" in profiles_of(task):
        return expand(task, profile="smoke", methods=methods, widths=widths[:1], repetitions=[0])
    return expand(task, methods=methods, widths=widths[:1], train={"epochs": 2, "eval_every": 2}, repetitions=[0])


def check_plugin(module: str, *, device: str = "cpu", emit: Callable[[str], None] | None = None) -> list[Check]:
    """Import ``module`` and check the contract for everything it registers (module docstring);
    one :class:`Check` per line, also passed to ``emit``. ``PluginError`` if it cannot be imported."""
    checks: list[Check] = []

    def add(items: list[Check]) -> None:
        for c in items:
            checks.append(c)
            if emit is not None:
                emit(c.line())

    methods, tasks = registered_by(module)
    if not methods and not tasks:
        add([Check(f"plug-in {module}", FAIL, "it registers no method and no task (METHODS.add, @register_task)")])
        return checks
    add([Check(f"plug-in {module}", OK, f"registers method(s) {', '.join(methods) or '(none)'} and task(s) "
                                        f"{', '.join(tasks) or '(none)'}")])
    for method in methods:
        try:
            cells, builtin = _cells_for_method(method, tasks)
            add(_contract(f"method {method}", cells, method, builtin, device))
        except Exception as exc:  # noqa: BLE001 - a plug-in that cannot even be gridded is a failed check
            add([Check(f"method {method}", FAIL, f"{type(exc).__name__}: {' '.join(str(exc).split())}")])
    for task in tasks:
        try:
            add(_contract(f"task {task}", _cells_for_task(task), "mli_paired_pgd", None, device))
        except Exception as exc:  # noqa: BLE001
            add([Check(f"task {task}", FAIL, f"{type(exc).__name__}: {' '.join(str(exc).split())}")])
    return checks


def assert_plugin_contract(module: str, *, device: str = "cpu") -> list[Check]:
    """:func:`check_plugin`, raising ``AssertionError`` with the failed checks' lines (for pytest)."""
    checks = check_plugin(module, device=device)
    failed = [c.line() for c in checks if c.status == FAIL]
    assert not failed, "\n".join(failed)
    return checks


def main(module: str, device: str = "cpu") -> int:
    """``plugin-check``: the checks' lines and a summary; 1 on any FAIL, else 0."""
    checks = check_plugin(module, device=device, emit=print)
    counts = {s: sum(c.status == s for c in checks) for s in (OK, FAIL, SKIP)}
    print(f"plugin-check {module}: {counts[OK]} ok, {counts[FAIL]} failed, {counts[SKIP]} skipped")
    return 1 if counts[FAIL] else 0
