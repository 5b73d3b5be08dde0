"""Probes: tiny float64 computations whose numbers stand for the code versions of
``bench_suite/grid/versions.py``.

A cell's id names the *versions* of the engine, the theory section, its task and its method,
not the code's files, so refactoring keeps every id (docs/design.md, "What identifies a
result"). What keeps the versions honest is this module and ``tests/test_golden.py``: the
numbers of every probe are stored with the versions that made them
(``tests/golden/probes.json``); when the numbers move and the versions did not, the test fails
and names the part whose version to bump.

The probes (:func:`run_probes`), each on the CPU in float64:

- ``train/...``: every built-in method x every built-in activation x cross-entropy on labels
  and mean square error on regression targets x full batch and mini-batches (a partial last
  batch) x momentum 0 and 0.9 (SGD methods), 4 epochs on n = 20 inputs of d = 5, evaluated at
  epochs 2 and 4; the fused methods as fused groups, the others on the reference trainer (as
  the runner would), with the radius relative or absolute in turn. Values: the final metrics,
  the per-epoch loss, the exact evaluations and sums of the final W and V. Depends on
  ``engine`` and the method.
- ``theory/...``: the theory section (Jacobian at init, KKT residual, linearized floor) of a
  full-batch mean-square cell of each init and output layer. Depends on ``engine`` and ``theory``.
- ``precision/fp64/...``: ``--precision fp64`` on float32 data, a fused group and a
  reference-trainer cell (the trainers cast data and weights to float64). Depends on ``engine``
  and the method.
- ``kkt_bound/...``: Theorem 2's KKT study of two tiny instances (counts, and a KKT point's
  loss below the width condition). Depends on ``theory``.
- ``init/...``: sums of W0 and V0 of each init and output layer; ``seeds``: the derived seeds
  of every built-in task. Depend on ``engine``.
- ``task/<name>``: statistics of a task's data at a tiny scale, for the tasks that need no files
  (``synthetic_ablation``, ``width_threshold``); the data-set tasks are probed by the test on
  fixture files in their exact formats. Depend on the task.

Tolerance (our choice, as the oracle's): relative 1e-9 with an absolute floor of 1e-12: the
same code on another machine or BLAS differs by rounding (~1e-15 per operation, a few hundred
operations deep), a changed computation by far more.
"""

from __future__ import annotations

import json
import math
from typing import Any

RTOL = 1e-9
ATOL = 1e-12
N, D, N_TEST = 20, 5, 6
ACTIVATIONS = ("relu", "tanh", "softplus", "gelu")
PROBED_TASKS = {"synthetic_ablation": {"n": 12, "d": 4}, "width_threshold": {"n": 12, "d": 4},
                "kkt_bound": {"n": 12, "d": 4}}


def _problem(kind: str):
    import torch

    from ..data.contract import TaskData

    g = torch.Generator().manual_seed(1234)
    x = torch.randn(N, D, generator=g, dtype=torch.float64)
    if kind == "ce":
        k = 3
        return TaskData(x, torch.randint(0, k, (N,), generator=g), k, True, "probe",
                        x_test=torch.randn(N_TEST, D, generator=g, dtype=torch.float64),
                        y_test=torch.randint(0, k, (N_TEST,), generator=g))
    return TaskData(x, torch.randn(N, 2, generator=g, dtype=torch.float64), 2, False, "probe")


def _numbers(value: Any) -> list[float] | float | None:
    """Plain floats (lists of them) for the golden file; None stays None."""
    import torch

    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double()
        return [float(value.sum()), float(value.square().sum()), float(value.flatten()[0])]
    if isinstance(value, (list, tuple)):
        return [None if v is None else float(v) for v in value]
    return float(value)


def _training_probes(methods: list[str]) -> dict[str, dict[str, Any]]:
    from ..core.config import TrainConfig
    from ..methods import METHODS
    from ..theory import record_section
    from ..train.dispatch import train_cells
    from ..train.engine.layout import CellSpec

    out: dict[str, dict[str, Any]] = {}
    for loss in ("ce", "mse"):
        data = _problem(loss)
        for batch in (None, 8):
            fused, alone = [], []
            for i, name in enumerate(methods):
                method = METHODS.get(name)
                momenta = (0.0, 0.9) if method.optimizer == "SGD" else (0.0,)
                for j, activation in enumerate(ACTIVATIONS):
                    for momentum in momenta:
                        relative = (i + j) % 2 == 0
                        config = TrainConfig(epochs=4, batch_size=batch, lr_w=0.2, lr_v=0.1, momentum=momentum,
                                             loss=loss, eps=0.05 if relative else 0.2,
                                             eps_mode="relative" if relative else "absolute", eval_every=2)
                        if method.optimizer != "SGD":  # e.g. Adam's own step sizes
                            config = config.updated(lr_w=0.01, lr_v=0.01)
                        spec = CellSpec(method, (6, 8)[(i + j) % 2], activation, config, 11 + i + 7 * j)
                        label = (f"train/{name}/{activation}/{loss}/{'full' if batch is None else f'batch{batch}'}"
                                 f"/momentum{momentum:g}")
                        (fused if method.trainer == "fused" else alone).append((label, spec))
            runs = [(fused, train_cells(data, [s for _, s in fused], order_seed=5, keep_weights=True))] if fused else []
            runs += [([item], train_cells(data, [item[1]], order_seed=5, keep_weights=True)) for item in alone]
            for items, results in runs:
                for (label, spec), result in zip(items, results):
                    values = {f"final.{k}": _numbers(v) for k, v in sorted(result.final.items())}
                    for key in ("train_loss", "eval_train_loss", "test_loss", "dist_w0", "proj_active_frac"):
                        if key in result.curves:
                            values[f"curve.{key}"] = _numbers(result.curves[key])
                    values["w"], values["v"] = _numbers(result.extra["w"]), _numbers(result.extra["v"])
                    values["status"] = result.status
                    if loss == "mse" and batch is None and spec.activation in ("tanh", "relu"):
                        section = record_section(data.x_train, data.y_train, method=spec.method, width=spec.width,
                                                 outputs=data.num_outputs, activation=spec.activation, loss=loss,
                                                 extra=result.extra, radius=result.final.get("radius"),
                                                 finished=result.status == "done")
                        out[label.replace("train/", "theory/", 1)] = {
                            "depends": ["engine", "theory", f"method:{spec.method.name}"],
                            "values": _theory_values(section)}
                    out[label] = {"depends": ["engine", f"method:{spec.method.name}"], "values": values}
    return out


def _theory_values(section: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for part, body in sorted(section.items()):
        for key, value in sorted((body or {}).items()):
            if isinstance(value, bool) or value is None:
                values[f"{part}.{key}"] = value
            elif isinstance(value, (int, float)):
                values[f"{part}.{key}"] = float(value)
            elif isinstance(value, str):
                values[f"{part}.{key}"] = value
    return values


def _precision_probes() -> dict[str, dict[str, Any]]:
    """``--precision fp64`` on float32 data (every built-in task's dtype): a fused group and a
    reference-trainer cell, whose data and weights the trainers cast to float64 themselves."""
    import torch

    from ..core.config import TrainConfig
    from ..data.contract import TaskData
    from ..methods import METHODS
    from ..train.dispatch import train_cells
    from ..train.engine.layout import CellSpec

    g = torch.Generator().manual_seed(4321)
    data = TaskData(torch.randn(N, D, generator=g), torch.randn(N, 1, generator=g), 1, False, "probe float32")
    config = TrainConfig(epochs=4, batch_size=8, lr_w=0.2, lr_v=0.1, loss="mse", eps=0.3, eps_mode="absolute",
                         eval_every=2, precision="fp64")
    groups = {"fused": [CellSpec(METHODS.get(m), 6, "tanh", config, 3) for m in ("mli_paired_pgd", "sgd")],
              "reference": [CellSpec(METHODS.get("adam"), 6, "tanh", config.updated(lr_w=0.01, lr_v=0.01), 3)]}
    out: dict[str, dict[str, Any]] = {}
    for trainer, specs in groups.items():
        for spec, result in zip(specs, train_cells(data, specs, order_seed=5, keep_weights=True)):
            values = {f"final.{k}": _numbers(v) for k, v in sorted(result.final.items())}
            values["curve.train_loss"] = _numbers(result.curves["train_loss"])
            values["w"], values["v"] = _numbers(result.extra["w"]), _numbers(result.extra["v"])
            values["dtype"] = result.timing["dtype"]
            out[f"precision/fp64/{trainer}/{spec.method.name}"] = {
                "depends": ["engine", f"method:{spec.method.name}"], "values": values}
    return out


def _kkt_bound_probes() -> dict[str, dict[str, Any]]:
    """Theorem 2's KKT study of one tiny instance in scope (n 8, d 4, m 8: m d/(2n) = 2) and one
    below the width condition (n 12, d 2, m 4), two radii, one start of a few kinds: the counts
    (certified, above the floor, active, degenerate) and, below the condition, the largest loss,
    a KKT point's real loss (at the floor the loss is rounding, not a number to pin)."""
    from ..theory.kkt_study import instance, measure

    out: dict[str, dict[str, Any]] = {}
    for label, (n, d, m, seed) in (("in_scope", (8, 4, 8, 2)), ("below", (12, 2, 4, 11))):
        x, y, w0, _ = instance(n, d, m, seed)
        part = measure(x, y, w0, activation="tanh", eps_rel=[0.01, 0.1], seed=seed,
                       starts={"boundary": 1, "mli_step": 1, "near_mirror": 1})
        s = part["summary"]
        values: dict[str, Any] = {k: s[k] for k in ("starts", "kkt_points", "not_certified", "above_floor",
                                                  "active", "degenerate")}
        if label == "below":
            values["max_loss"] = s["max_loss"]
        out[f"kkt_bound/{label}"] = {"depends": ["theory"], "values": values}
    return out


def _init_probes() -> dict[str, dict[str, Any]]:
    import torch

    from ..core.seeds import seeds_for
    from ..model import init_weights
    from ..tasks import BUILTIN_TASKS

    out: dict[str, dict[str, Any]] = {}
    for init in ("lecun", "mirrored_lecun"):
        for output in ("free", "paired"):
            weights = init_weights(6, D, 2, init, output, torch.Generator().manual_seed(7))
            out[f"init/{init}/{output}"] = {"depends": ["engine"],
                                            "values": {"w0": _numbers(weights.w), "v0": _numbers(weights.v)}}
    out["seeds"] = {"depends": ["engine"], "values": {
        f"{task}/{rep}": {k: str(v) for k, v in sorted(seeds_for(task, rep).items())}
        for task in sorted(BUILTIN_TASKS) for rep in (0, 1)}}
    return out


def data_values(data: Any) -> dict[str, Any]:
    """Statistics of a task's data (``TaskData``) that move when the data does: shapes, sums,
    sums of squares and first entries of the inputs and targets of each split."""
    values: dict[str, Any] = {"n": data.n, "d": data.dim, "k": data.num_outputs, "classification": data.classification}
    for name in ("x_train", "y_train", "x_test", "y_test"):
        t = getattr(data, name)
        values[name] = None if t is None else _numbers(t.double())
    return values


def _task_probes() -> dict[str, dict[str, Any]]:
    from ..core.seeds import seeds_for
    from ..tasks import TASKS

    out = {}
    for task, options in PROBED_TASKS.items():
        cls = TASKS.get(task)
        opts = cls.check_options({**cls.options, **options})
        data = cls().load(opts, data_seed=seeds_for(task, 0)["data"], data_root=None, cache_dir=None)
        out[f"task/{task}"] = {"depends": [f"task:{task}"], "values": data_values(data)}
    return out


def run_probes() -> dict[str, dict[str, Any]]:
    """Every probe of this module: ``{name: {"depends": [...], "values": {...}}}`` (plain JSON)."""
    import torch

    from ..methods import BUILTIN_METHODS

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one summation order for every run of the probes
    try:
        out = _training_probes(sorted(BUILTIN_METHODS))
        out.update(_precision_probes())
        out.update(_kkt_bound_probes())
        out.update(_init_probes())
        out.update(_task_probes())
    finally:
        torch.set_num_threads(threads)
    return dict(sorted(out.items()))


def part_versions(depends: list[str]) -> dict[str, Any]:
    """The current version of each part a probe depends on (``engine``, ``theory``,
    ``method:NAME``, ``task:NAME``)."""
    from ..grid.versions import ENGINE_VERSION, THEORY_VERSION, task_identity
    from ..methods import METHODS
    from ..tasks import TASKS

    out: dict[str, Any] = {}
    for part in depends:
        kind, _, name = part.partition(":")
        if kind == "engine":
            out[part] = ENGINE_VERSION
        elif kind == "theory":
            out[part] = THEORY_VERSION
        elif kind == "method":
            out[part] = METHODS.get(name).identity() if name in METHODS else None
        elif kind == "task":
            out[part] = task_identity(TASKS.get(name)) if name in TASKS else None
    return out


def max_rel(a: Any, b: Any) -> float:
    """Largest relative difference between two probe values (nested dicts, lists, numbers,
    strings, None), on the scale of :data:`RTOL`; anything but numbers must be equal (else inf)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return math.inf
        return max((max_rel(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return math.inf
        return max((max_rel(x, y) for x, y in zip(a, b)), default=0.0)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
            return 0.0 if (a == b or (math.isnan(a) and math.isnan(b))) else math.inf
        return abs(a - b) / max(abs(b), ATOL / RTOL) * 1.0
    return 0.0 if a == b else math.inf


def compare(golden: dict[str, Any], current: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The probes whose numbers or versions differ from ``golden`` (the file's content:
    ``{"probes": {name: {"depends", "versions", "values"}}}``), one dict each: ``name``,
    ``kind`` (``moved``: numbers moved with the same versions, a bump is due; ``versions``:
    versions changed, the goldens are to be regenerated; ``new`` / ``gone``), ``parts``, ``diff``."""
    stored = golden.get("probes", {})
    problems = []
    for name in sorted(set(stored) | set(current)):
        if name not in stored:
            problems.append({"name": name, "kind": "new", "parts": current[name]["depends"], "diff": None})
            continue
        if name not in current:
            problems.append({"name": name, "kind": "gone", "parts": stored[name]["depends"], "diff": None})
            continue
        versions = part_versions(current[name]["depends"])
        diff = max_rel(current[name]["values"], stored[name]["values"])
        if versions != stored[name].get("versions"):
            problems.append({"name": name, "kind": "versions", "parts": current[name]["depends"], "diff": diff,
                             "old": stored[name].get("versions"), "new": versions})
        elif diff > RTOL:
            problems.append({"name": name, "kind": "moved", "parts": current[name]["depends"], "diff": diff})
    return problems


def golden_content(current: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the golden file holds for ``current`` (:func:`run_probes` and the test's own probes)."""
    return {"about": "numbers of bench_suite's probes with the versions that made them "
                     "(bench_suite/diagnostics/probes.py; "
                     "tests/test_golden.py says how to regenerate)",
            "probes": {name: {"depends": p["depends"], "versions": part_versions(p["depends"]),
                              "values": _rounded(p["values"])}
                       for name, p in sorted(current.items())}}


def golden_text(content: dict[str, Any]) -> str:
    """The golden file's text: one probe per line, so a diff shows which probes moved."""
    lines = [f'{{"about": {json.dumps(content["about"])},', '"probes": {']
    items = sorted(content["probes"].items())
    for i, (name, probe) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        lines.append(f"{json.dumps(name)}: {json.dumps(probe, sort_keys=True, separators=(',', ':'))}{comma}")
    return "\n".join(lines) + "\n}}\n"


def _rounded(value: Any) -> Any:
    """Floats to 11 significant digits (100x finer than :data:`RTOL`): a smaller file to review."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.11g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def suspects(problems: list[dict[str, Any]], current: dict[str, dict[str, Any]]) -> list[str]:
    """The parts whose numbers moved: those every one of whose probes moved (the engine when
    all its probes or every method's did, else the methods, tasks or theory whose probes all
    moved); failing that, the methods and tasks of the moved probes."""
    moved = {p["name"] for p in problems if p["kind"] == "moved"}
    if not moved:
        return []
    by_part: dict[str, set[str]] = {}
    for name, probe in current.items():
        for part in probe["depends"]:
            by_part.setdefault(part, set()).add(name)
    whole = [part for part, names in sorted(by_part.items()) if names <= moved]
    methods = [part for part in by_part if part.startswith("method:")]
    if "engine" in whole or (len(methods) > 1 and set(methods) <= set(whole)):  # every method moved
        return ["engine"]
    if whole:
        return whole
    return sorted({part for p in problems if p["kind"] == "moved" for part in p["parts"] if part != "engine"})


def explain(problems: list[dict[str, Any]], current: dict[str, dict[str, Any]] | None = None) -> str:
    """What to do about :func:`compare`'s problems, in a few lines: which part moved
    (:func:`suspects`) and the commands."""
    moved = [p for p in problems if p["kind"] == "moved"]
    lines = []
    if moved:
        parts = suspects(problems, current or {})
        lines.append(f"{len(moved)} probe(s) moved with unchanged versions (e.g. {moved[0]['name']}, relative "
                     f"difference {moved[0]['diff']:.3g} > {RTOL:g}): the numbers of {', '.join(parts)} changed. "
                     f"If that is intended, bump its version (ENGINE_VERSION / THEORY_VERSION in "
                     f"bench_suite/grid/versions.py, a method's `version`, a task's `version`) and regenerate the "
                     f"goldens; "
                     f"if not, the change is a bug.")
    rest = [p for p in problems if p["kind"] != "moved"]
    if rest:
        kinds = sorted({p["kind"] for p in rest})
        lines.append(f"{len(rest)} probe(s) {'/'.join(kinds)} (e.g. {rest[0]['name']}): regenerate the goldens.")
    lines.append("Regenerate: BENCH_SUITE_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py -q")
    return "\n".join(lines)
