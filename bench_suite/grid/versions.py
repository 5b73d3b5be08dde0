"""What identifies a result: the versions of the code that computes a cell. No torch import.

A cell's id (``records.compute_cell_id``) hashes its resolved configuration, its seeds, the
protocol and its **code version**: the explicit versions of the parts of the code that decide
its numbers, never the code's files or layout, so moving, renaming or restructuring code keeps
every cell id and every committed result, and a change of the numbers makes new cells once the
version of the part that changed is bumped.

The parts (:func:`code_version`):

- ``engine`` (:data:`ENGINE_VERSION`): what trains a cell — both trainers (the fused engine and
  the reference trainer), the network and its inits, the projections, the losses and
  evaluations, the seed derivation, the divergence rules, the record's final metrics;
- ``theory`` (:data:`THEORY_VERSION`): the record's theory section (Jacobian at init, KKT
  residual, linearized floor);
- ``task``: the task's ``version`` (its data: generation or reading, preprocessing, subsets,
  labels); a task without one (a plug-in that declares none) is identified by the source of its
  module instead (:func:`task_identity`);
- ``method``: :meth:`bench_suite.methods.Method.identity` (its ``version`` and a hash of its
  declaration; a plug-in's functions by their source);
- ``activation``, only for an activation a plug-in registered: the source of its function.

The guard is ``tests/test_golden.py``: tiny float64 trainings of every built-in method,
activation, loss, momentum, batching and projection path, the theory section, and each task's
data on fixtures, against numbers stored with the versions that made them
(``tests/golden/probes.json``). When numbers move and the versions did not, it fails and names
the part to bump. What it cannot see is listed in docs/design.md ("What identifies a result").
"""

from __future__ import annotations

import ast
import hashlib
import inspect
from typing import Any

# Bump when a change moves the numbers of the part (the golden test says which); then
# regenerate the goldens (tests/test_golden.py says how). Every committed result of that part
# becomes older code and is re-run.
ENGINE_VERSION = 2
THEORY_VERSION = 1

BUILTIN_ACTIVATIONS = ("relu", "tanh", "softplus", "gelu")


def code_version(task: str, method: str, activation: str | None = None) -> dict[str, Any]:
    """The code version of a cell of ``task`` trained by ``method``: ``{"engine", "theory",
    "task", "method"}`` (plus ``"activation"`` for a plug-in's activation). ``KeyError`` for a
    task or method that is not registered (a plug-in not loaded)."""
    from ..methods import METHODS
    from ..tasks import TASKS

    out: dict[str, Any] = {
        "engine": ENGINE_VERSION,
        "theory": THEORY_VERSION,
        "task": task_identity(TASKS.get(task)),
        "method": METHODS.get(method).identity(),
    }
    if activation is not None and activation not in BUILTIN_ACTIVATIONS:
        out["activation"] = activation_identity(activation)
    return out


def task_identity(task_cls: type) -> int | str:
    """A task's ``version``; for a task that declares none, ``"src-<hash>"`` of its module's
    code (docstrings, comments and the class's declarations such as profiles left out)."""
    version = vars(task_cls).get("version")  # its own: a subclass of a task has its own code
    if version is not None:
        return version
    try:
        source = inspect.getsource(inspect.getmodule(task_cls))
    except (TypeError, OSError):
        source = repr(sorted(vars(task_cls)))
    return "src-" + hashlib.sha256(code_only(source).encode()).hexdigest()[:12]


def activation_identity(name: str) -> str:
    """``"src-<hash>"`` of the function a plug-in registered as activation ``name``."""
    from ..methods import source_of

    try:
        from ..model import ACTIVATIONS
    except ImportError:  # pragma: no cover - torch is a dependency
        return "unknown"
    fn = ACTIVATIONS.get(name)
    return "src-" + hashlib.sha256(source_of(fn).encode()).hexdigest()[:12] if fn is not None else "unknown"


def current_code_version(task: str, method: str, activation: str | None = None) -> dict[str, Any] | None:
    """:func:`code_version`, or None when the task or method is not registered here."""
    try:
        return code_version(task, method, activation)
    except KeyError:
        return None


def describe(version: dict[str, Any] | None) -> str:
    """``engine 1, theory 1, task 1, method 1-3fa2c1d0``: one line for messages and tables."""
    if not version:
        return "unknown"
    return ", ".join(f"{k} {v}" for k, v in version.items())


def differences(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    """What changed between two code versions, e.g. ``engine 1 -> 2``."""
    if not old or not new:
        return f"{describe(old)} -> {describe(new)}"
    keys = list(dict.fromkeys([*old, *new]))
    return ", ".join(f"{k} {old.get(k, '-')} -> {new.get(k, '-')}" for k in keys if old.get(k) != new.get(k)) \
        or "none"


# a task class's declarations that do not change what a cell computes: its profiles and grid
# (which cells exist), defaults (already resolved into the cell's config) and prose
_DECLARATIONS = {"description", "profiles", "grid", "defaults_rationale", "train_defaults", "options",
                 "classification", "version", "report_sections"}


def code_only(source: str) -> str:
    """The source's syntax tree as text, without docstrings and without the task declarations
    (``_DECLARATIONS``) of its classes: editing a profile or a comment keeps the fingerprint."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body = body[1:]
            if isinstance(node, ast.ClassDef):
                body = [stmt for stmt in body if not _is_declaration(stmt)]
            node.body = body or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def _is_declaration(stmt: ast.stmt) -> bool:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
    return bool(targets) and all(isinstance(t, ast.Name) and t.id in _DECLARATIONS for t in targets)


def is_current(record: Any) -> bool:
    """Whether the current code computes ``record``'s cell as the record's code did: its code
    version equals the current one for its task, method and activation. A record of schema 1-2
    (code named by a source digest) or of a task or method not registered here is not current."""
    version = getattr(record, "code_version", None)
    if not version:
        return False
    config = record.config
    return current_code_version(config["task"], config["method"], config.get("activation")) == version


def why_not_current(record: Any) -> str:
    """One clause for messages: how the record's code differs from the current code."""
    version = getattr(record, "code_version", None)
    if not version:
        digest = getattr(record, "legacy_code_digest", None)
        return (f"schema-{record.schema} record (code named by source digest {digest}, before versioned code): "
                f"`bench-suite migrate` re-identifies records of known code, or re-run it")
    config = record.config
    current = current_code_version(config["task"], config["method"], config.get("activation"))
    if current is None:
        return f"task {config['task']} or method {config['method']} is not registered here (a plug-in not loaded?)"
    return f"code version differs ({differences(version, current)})"


def current_versions(tasks: Any = (), methods: Any = ()) -> dict[str, Any]:
    """The current versions of the engine and theory and of the given tasks and methods (those
    registered here): what saved verdicts name as the code they scored against."""
    from ..methods import METHODS
    from ..tasks import TASKS

    return {"engine": ENGINE_VERSION, "theory": THEORY_VERSION,
            "tasks": {t: task_identity(TASKS.get(t)) for t in sorted(set(tasks)) if t in TASKS},
            "methods": {m: METHODS.get(m).identity() for m in sorted(set(methods)) if m in METHODS}}
