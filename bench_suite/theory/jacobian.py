"""Theorem 1 as a measurement: the Jacobian J(w; v) = d f(X) / d W at init, its rank and
singular values (exact SVD in float64, skipped above :data:`MAX_JACOBIAN_ENTRIES`), the rank
law (:func:`predicted_rank`) and, for relu, why it can fail (:func:`relu_rank_bound`,
:func:`relu_dead_samples`); what the SVD costs (:func:`jacobian_flops`, for ``plan``).
Conventions: ``bench_suite/theory/__init__.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

# Largest n*K*m*d (entries of J) for which jacobian_stats runs the exact SVD. Our choice:
# 2**22 entries is 32 MiB in float64 (plus the same again for the SVD's work copy), and even a
# square J (n*K = m*d = 2048) costs ~2.3e10 FLOPs, seconds on one CPU core. The synthetic
# ablation's default cell (n=1000, d=100, m=20: 2e6 entries) fits; CIFAR-10 cells (d = 3072)
# do not and are skipped with their size.
MAX_JACOBIAN_ENTRIES = 2**22

_FLOAT64_EPS = 2.220446049250313e-16  # numpy.finfo(float64).eps


def predicted_rank(n: int, m: int, d: int, k: int = 1, *, init: str) -> int:
    """The rank law for J at init (generic data, analytic activation): ``min(nK, md/2)`` under
    ``mirrored_lecun`` (unit j + m/2 repeats unit j's W row with the opposite output weight, so
    its J columns are the negatives of unit j's: at most md/2 independent columns), ``min(nK,
    md)`` under ``lecun``. (With K > m/2 resp. m outputs, nK becomes n times the number of
    distinct units: sample i's K rows all lie in x_i (x) R^units.) Source: the issue's statement
    of the paper's rank argument; it holds for almost every (X, W0, V0) when sigma' vanishes
    nowhere (tanh, softplus). In float64 the measured rank can fall short at d = 1, where J's
    columns x sigma'(w_j x) sample analytic functions of one variable and their singular values
    decay below the tolerance. For relu it fails with positive probability (dead samples, few
    activation patterns at small d): see :func:`relu_rank_bound`, :func:`relu_dead_samples` and
    docs/theory.md."""
    if init not in ("lecun", "mirrored_lecun"):
        raise ValueError(f"unknown init {init!r}; valid choices: lecun, mirrored_lecun")
    units = m // 2 if init == "mirrored_lecun" else m  # distinct units
    # sample i's K rows are x_i (x) (D_i V[:, k]) for the K outputs: they span min(K, units) dimensions
    return min(n * min(k, units), units * d)


def jacobian_entries(n: int, m: int, d: int, k: int = 1) -> int:
    """Entries of the stacked J: (nK) * (md)."""
    return int(n) * int(k) * int(m) * int(d)


def svd_flops(rows: int, cols: int) -> float:
    """FLOPs of the singular values (no vectors) of a rows x cols matrix: the bidiagonalization,
    4 a b^2 - 4 b^3 / 3 with a = max, b = min (Golub & Van Loan, Matrix Computations, 4th ed.,
    Fig. 8.6.1); the bidiagonal QR iterations are O(b^2) and left out."""
    a, b = max(rows, cols), min(rows, cols)
    return 4.0 * a * b * b - 4.0 * b**3 / 3.0


def jacobian_flops(n: int, m: int, d: int, k: int = 1, *, max_entries: int = MAX_JACOBIAN_ENTRIES) -> float:
    """What :func:`jacobian_stats` costs for one cell: forming J (n m pre-activation products
    of length d, then nKmd products) plus its SVD; 0 when the cell is above ``max_entries``
    (skipped). ``plan`` adds this to a cell's training FLOPs."""
    if jacobian_entries(n, m, d, k) > max_entries:
        return 0.0
    return 2.0 * n * m * d + 2.0 * n * k * m * d + svd_flops(n * k, m * d)


def activation_derivative(activation: str, pre: "torch.Tensor") -> "torch.Tensor":
    """sigma'(pre), elementwise, in ``pre``'s dtype. Closed forms for the built-in activations
    (relu' = 1[pre > 0], torch's convention at 0); any other registered activation is
    differentiated with autograd (it must be elementwise)."""
    import torch

    if activation == "tanh":
        return 1.0 - torch.tanh(pre).square()
    if activation == "softplus":
        return torch.sigmoid(pre)
    if activation == "relu":
        return (pre > 0).to(pre.dtype)
    from ..model import ACTIVATIONS

    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; valid choices: {', '.join(ACTIVATIONS)}")
    with torch.enable_grad():
        z = pre.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(ACTIVATIONS[activation](z).sum(), z)
    return grad.detach()


def hidden_jacobian(x: "torch.Tensor", w: "torch.Tensor", v: "torch.Tensor", activation: str) -> "torch.Tensor":
    """J = d f(X) / d W at (W, V), in float64, of shape (n*K, m*d), in closed form:
    row ``i*K + k``, block of unit j (columns j*d .. j*d + d - 1) = V[j, k] sigma'(w_j . x_i) x_i.

    ``x``: (n, d) inputs; ``w``: (m, d) hidden weights; ``v``: (m, K) *effective* output
    weights (``model.effective_output_weights``), or (m,) for K = 1."""
    import torch

    x, w, v = (t.detach().to(torch.float64) for t in (x, w, v))
    if v.dim() == 1:
        v = v.unsqueeze(1)
    n, d = x.shape
    m, k = v.shape
    if w.shape != (m, d):
        raise ValueError(f"w must be (m, d) = ({m}, {d}) to match v and x, got {tuple(w.shape)}")
    slope = activation_derivative(activation, x @ w.T)  # (n, m)
    return torch.einsum("nm,mk,nd->nkmd", slope, v, x).reshape(n * k, m * d)


def jacobian_stats(
    x: "torch.Tensor",
    w: "torch.Tensor",
    v: "torch.Tensor",
    activation: str,
    *,
    init: str | None = None,
    max_entries: int = MAX_JACOBIAN_ENTRIES,
) -> dict[str, Any]:
    """The record's Jacobian entries at (W, V) (call it at init: W0 and the effective V0).

    Rank convention: numpy's ``matrix_rank`` / torch's ``linalg.matrix_rank`` defaults, the
    number of singular values above ``tol = sigma_max * max(rows, cols) * eps_float64``.
    Returns (JSON-safe):

    - ``status``: ``"done"``, or ``"skipped"`` when rows*cols > ``max_entries`` (then only the
      size, the bound and ``reason``; no SVD is attempted, so never a memory error);
    - ``jacobian_rows`` (nK), ``jacobian_cols`` (md), ``jacobian_entries``, ``max_entries``;
    - ``jacobian_rank`` (int), ``jacobian_rank_tol`` (the absolute tolerance), ``jacobian_rank_rtol``
      (max(rows, cols) * eps), ``jacobian_sigma_max``, ``jacobian_sigma_min`` (the smallest
      singular value counted in the rank, i.e. the smallest nonzero one; None at rank 0),
      ``jacobian_sigma_below`` (the largest one counted as zero; None at full rank): the gap
      between the two shows how clear-cut the rank is;
    - with ``init``: ``jacobian_rank_predicted`` (:func:`predicted_rank`) and
      ``jacobian_rank_deficit`` = predicted - measured (0 when the law holds);
    - for relu, ``relu_dead_samples`` and ``relu_rank_bound`` (:func:`relu_dead_samples`,
      :func:`relu_rank_bound`, capped by the predicted rank when ``init`` is given): where the rank
      law fails for relu, these say why.
    """
    import torch

    n, d = (int(s) for s in x.shape)
    m = int(w.shape[0])
    k = 1 if v.dim() == 1 else int(v.shape[1])
    rows, cols = n * k, m * d
    out: dict[str, Any] = {"jacobian_rows": rows, "jacobian_cols": cols, "jacobian_entries": rows * cols,
                           "max_entries": int(max_entries)}
    if init is not None:
        out["jacobian_rank_predicted"] = predicted_rank(n, m, d, k, init=init)
    if rows * cols > max_entries:
        out.update(status="skipped", reason=(
            f"J is {rows} x {cols} = {rows * cols} entries, above the exact-SVD bound of {max_entries} "
            f"(bench_suite.theory.MAX_JACOBIAN_ENTRIES); use fewer samples or a narrower net"))
        return out
    jac = hidden_jacobian(x, w, v, activation)
    sv = torch.linalg.svdvals(jac)  # descending
    rtol = max(rows, cols) * _FLOAT64_EPS
    tol = float(sv[0]) * rtol if sv.numel() else 0.0
    rank = int((sv > tol).sum())
    out.update(
        status="done",
        jacobian_rank=rank,
        jacobian_rank_tol=tol,
        jacobian_rank_rtol=rtol,
        jacobian_sigma_max=float(sv[0]) if sv.numel() else 0.0,
        jacobian_sigma_min=float(sv[rank - 1]) if rank else None,
        jacobian_sigma_below=float(sv[rank]) if rank < sv.numel() else None,
    )
    if init is not None:
        out["jacobian_rank_deficit"] = out["jacobian_rank_predicted"] - rank
    if activation == "relu":
        out["relu_dead_samples"] = relu_dead_samples(x, w)
        bound = relu_rank_bound(x, w, k)
        out["relu_rank_bound"] = min(bound, out["jacobian_rank_predicted"]) if init is not None else bound
    return out


def relu_rank_bound(x: "torch.Tensor", w: "torch.Tensor", k: int = 1) -> int:
    """An upper bound on rank J for relu from the activation patterns alone: with relu, row i of
    J (K = 1) is p_i (x) x_i scaled by V, where p_i in {0, 1}^m is sample i's pattern
    1[w_j . x_i > 0], so the samples sharing a pattern p span at most min(d, their count)
    dimensions (inside p (x) R^d) and dead samples (p = 0) none: rank J <= K * sum over nonzero
    patterns p of min(d, count(p)), capped by min(nK, md). At small d few patterns exist (d = 1:
    two, so rank <= 2K), which is why the rank law fails for relu there (docs/theory.md).
    It explains most, not all, relu failures: at d <= 4 dependencies among the patterns cut the
    rank further."""
    import torch

    active = (x.detach().to(torch.float64) @ w.detach().to(torch.float64).T) > 0
    patterns, counts = torch.unique(active, dim=0, return_counts=True)
    d = int(x.shape[1])
    bound = sum(min(d, int(c)) for p, c in zip(patterns, counts) if bool(p.any()))
    n, m = int(x.shape[0]), int(w.shape[0])
    return min(k * bound, n * k, m * d)


def relu_dead_samples(x: "torch.Tensor", w: "torch.Tensor") -> int:
    """Samples on which no hidden unit is active (w_j . x_i <= 0 for every j): with relu their
    rows of J are zero, so rank J <= n - (this count). Under MLI only m/2 distinct rows exist,
    so a sample is dead with probability ~2^(-m/2) (Gaussian data): at n = 200, m = 20 about one
    seed in six has one, and the rank law min(n, md/2) then fails by that count."""
    import torch

    pre = x.detach().to(torch.float64) @ w.detach().to(torch.float64).T
    return int((pre <= 0).all(dim=1).sum())

