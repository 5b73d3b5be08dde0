"""The reference trainer as the fused engine's oracle: for every built-in method the fused engine
runs, both trainers on small problems in float64 must give the same numbers.

The cases (:func:`oracle_cases`) cover every activation, free and paired output layers (by
method), constrained or not, momentum 0 and 0.9, full batch and mini-batches (with a partial
last batch), cross-entropy on labels and mean square error on regression targets, relative and
absolute radii; each case is one fused group (so fusion is covered too) against each of its
cells trained by the reference trainer. What is compared (:func:`compare`): status, W0 digest,
evaluation epochs, every curve (running loss and accuracy per epoch, exact train/test loss and
accuracy, ||W - W0||_F, the fraction of steps with an active projection) and the final W and V.

Tolerance (our choice): relative 1e-9 with an absolute floor of 1e-12, in float64. The two
trainers compute the same maths in different orders (W = W0 + s·U and a tracked norm against a
plain W and an exact projection; hand-written gradients against autograd), so they differ by
rounding, ~1e-15 per operation, a few hundred operations deep here. Used by
``tests/test_oracle.py`` and by ``doctor`` (:func:`run_oracle`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

RTOL = 1e-9
ATOL = 1e-12
ACTIVATIONS = ("relu", "tanh", "softplus", "gelu")
CURVES = ("train_loss", "train_acc", "eval_train_loss", "eval_train_acc", "test_loss", "test_acc", "dist_w0",
          "proj_active_frac")


@dataclass
class OracleCase:
    label: str
    data: Any  # TaskData
    cells: list  # CellSpec, one fused group
    order_seed: int


def fused_builtin_methods() -> list[str]:
    """The built-in methods the runner sends to the fused engine."""
    from ..methods import BUILTIN_METHODS, METHODS

    return [m for m in sorted(BUILTIN_METHODS) if METHODS.get(m).trainer == "fused"]


def _problem(kind: str, dtype, device, seed: int = 0, n: int = 40, d: int = 10):
    import torch

    from ..data.contract import TaskData

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g).to(dtype)
    if kind == "classification":
        k = 3
        return TaskData(x, torch.randint(0, k, (n,), generator=g), k, True, "oracle",
                        x_test=torch.randn(12, d, generator=g).to(dtype),
                        y_test=torch.randint(0, k, (12,), generator=g)).to(device)
    return TaskData(x, torch.randn(n, 2, generator=g).to(dtype), 2, False, "oracle").to(device)


def oracle_cases(dtype=None, device="cpu", methods: list[str] | None = None) -> list[OracleCase]:
    """One fused group per (labels or regression) x (full batch or batches of 16 of n = 40):
    every method x activation x momentum {0, 0.9}, widths 6-10, 4 epochs evaluated at 2 and 4."""
    import torch

    from ..methods import METHODS
    from ..train import CellSpec, TrainConfig

    dtype = dtype or torch.float64
    methods = methods or fused_builtin_methods()
    cases = []
    for kind, loss in (("classification", "ce"), ("regression", "mse")):
        data = _problem(kind, dtype, device)
        for batch in (None, 16):
            cells = []
            for i, method in enumerate(methods):
                for j, activation in enumerate(ACTIVATIONS):
                    for momentum in (0.0, 0.9):
                        relative = (i + j) % 2 == 0
                        # a radius small enough that the projection is active in most steps
                        eps = 0.05 if relative else 0.2
                        width = (6, 8, 10)[(i + j) % 3]
                        config = TrainConfig(epochs=4, batch_size=batch, lr_w=0.2, lr_v=0.1, momentum=momentum,
                                             loss=loss, eps=eps, eps_mode="relative" if relative else "absolute",
                                             eval_every=2)
                        cells.append(CellSpec(METHODS.get(method), width, activation, config, 11 + i + 7 * j))
            cases.append(OracleCase(f"{kind}, {'full batch' if batch is None else f'batch {batch}'}", data, cells,
                                    order_seed=5))
    return cases


def max_rel_diff(a: Any, b: Any, *, floor: float = ATOL / RTOL) -> float:
    """Max over entries of |a - b| / max(|b|, ``floor``) for numbers, lists or tensors: the
    relative difference, with an absolute one below ``floor`` (the default makes <= RTOL mean
    within the oracle's tolerance). None must match None; entries that are not finite must be
    equal (NaN matching NaN), else inf; so must the shapes. Shared by ``doctor``'s checks."""
    import torch

    if a is None or b is None:
        return 0.0 if a is None and b is None else math.inf
    if isinstance(a, list) and any(v is None for v in a) or isinstance(b, list) and any(v is None for v in b):
        return 0.0 if a == b else math.inf
    ta = torch.as_tensor(a, dtype=torch.float64).cpu().flatten()
    tb = torch.as_tensor(b, dtype=torch.float64).cpu().flatten()
    if ta.shape != tb.shape:
        return math.inf
    if not (torch.isfinite(ta).all() and torch.isfinite(tb).all()):
        return 0.0 if torch.equal(ta.nan_to_num(), tb.nan_to_num()) else math.inf
    if not ta.numel():
        return 0.0
    return float(((ta - tb).abs() / tb.abs().clamp_min(floor)).max())


def compare(fused, reference) -> tuple[float, list[str]]:
    """(largest relative difference, what differs beyond numbers) between two ``CellResult``s of
    one cell; the relative difference is on the scale of RTOL (<= RTOL: within tolerance)."""
    problems = []
    if fused.status != reference.status:
        problems.append(f"status {fused.status} vs {reference.status}")
    if fused.w0_digest != reference.w0_digest:
        problems.append("W0 differs")
    if fused.curves.get("eval_epoch") != reference.curves.get("eval_epoch"):
        problems.append("evaluation epochs differ")
    worst = 0.0
    for key in CURVES:
        if (key in fused.curves) != (key in reference.curves):
            problems.append(f"curve {key} missing on one side")
            continue
        if key in fused.curves:
            worst = max(worst, max_rel_diff(fused.curves[key], reference.curves[key]))
    for key in ("w", "v"):
        if key in fused.extra and key in reference.extra:
            worst = max(worst, max_rel_diff(fused.extra[key], reference.extra[key]))
    return worst, problems


def run_case(case: OracleCase, device="cpu") -> list[tuple[Any, float, list[str]]]:
    """(cell, worst relative difference, problems) for each cell of the case."""
    from ..train.dispatch import train_cells
    from ..train.reference import train_reference

    fused = train_cells(case.data, case.cells, order_seed=case.order_seed, device=device, keep_weights=True)
    out = []
    for cell, res in zip(case.cells, fused):
        ref = train_reference(case.data, cell, order_seed=case.order_seed, device=device, keep_weights=True)
        diff, problems = compare(res, ref)
        if res.timing.get("trainer") != "fused":
            problems.append(f"ran on {res.timing.get('trainer')}, not the fused engine")
        out.append((cell, diff, problems))
    return out


def run_oracle(device="cpu", dtype=None) -> list[tuple[str, int, float, list[str]]]:
    """Every case: (label, cells, worst relative difference, problems of its cells)."""
    results = []
    for case in oracle_cases(dtype=dtype, device=device):
        rows = run_case(case, device=device)
        problems = [f"{c.method.name}/{c.activation}/momentum {c.config.momentum:g}: {p}" for c, _, ps in rows
                    for p in ps]
        results.append((case.label, len(rows), max(d for _, d, _ in rows), problems))
    return results
