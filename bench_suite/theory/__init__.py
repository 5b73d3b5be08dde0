"""The paper's two theorems as measurements (docs/theory.md).

Theorem 1 (slides, "Narrow nets have strong expressivity"): for m >= 2n/d, around the mirrored
LeCun init (MLI) there is a zero-loss global minimum and a region where every stationary point is
global; the proof rests on the full rank of the Jacobian J(w; v) = d f(X) / d W. Theorem 2
("Trainability results"): with the paired output layer, MLI and ||W - W0||_F <= eps, every KKT
point has loss O(eps^2). This module measures both:

- :func:`jacobian_stats`: rank, smallest nonzero and largest singular value of J at init (exact
  SVD in float64, skipped with its size above :data:`MAX_JACOBIAN_ENTRIES`), next to the rank
  law :func:`predicted_rank` (min(nK, md/2) under MLI, min(nK, md) under LeCun init);
- :func:`kkt_stats`: the KKT residual of the constrained problem at the end of training;
- :func:`loglog_slope`: the fitted exponent of final loss against eps, with its interval;
- :func:`linearized_loss_floor`: the loss of the net's linearization at init (the tight-eps limit
  the width threshold comes from); :func:`tight_eps_learning_rates`: the step sizes projected GD
  can use there (the width_threshold task's defaults);
- :func:`rank_table`, :func:`threshold_table`, :func:`eps_table`: the tables of the "Theory"
  report section, from results.

Conventions (ours; the paper states the theorems for K = 1 and the loss 1/2 sum of squares):

- J is **stacked** over outputs: row ``i*K + k`` is d f_k(x_i) / d W, so J is (nK) x (md) and the
  rank law reads min(nK, md/2). For K = 1 this is the theorems' J. Stacking is the Jacobian of
  the whole map W -> f(X) in R^{n x K}, whose rank is what fitting all nK targets needs; per
  output each block obeys the law with nK replaced by n.
- J is taken with the output weights fixed (the theorems' J(w; v)) at their *effective* values
  (m, K): for a paired output layer, [V_h; -V_h] (``model.effective_output_weights``).
- Losses are the engine's (``config.TrainConfig``): ``mse`` = mean over samples of the squared
  error summed over the K outputs (one-hot targets for labels), ``ce`` = mean cross-entropy.
- Everything is computed in float64 from the (float32) weights the engine returns.

torch is imported inside the functions that need it: ``plan`` prices the SVD with
:func:`jacobian_flops` and ``report`` builds tables without importing torch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import torch

# Largest n*K*m*d (entries of J) for which jacobian_stats runs the exact SVD. Our choice:
# 2**22 entries is 32 MiB in float64 (plus the same again for the SVD's work copy), and even a
# square J (n*K = m*d = 2048) costs ~2.3e10 FLOPs, seconds on one CPU core. The synthetic
# ablation's default cell (n=1000, d=100, m=20: 2e6 entries) fits; CIFAR-10 cells (d = 3072)
# do not and are skipped with their size.
MAX_JACOBIAN_ENTRIES = 2**22

# A point is "on the boundary" of ||W - W0||_F <= radius when its distance is within this
# fraction of the radius. Our choice: the engine projects exactly (in float32, relative error
# ~1e-7) and W - W0 is recomputed in float64 from float32 weights (relative error ~1e-6 of
# ||W0|| / radius at radius >= 0.01 ||W0||), so 1e-3 is far above rounding and far below any
# genuine interior gap.
ACTIVE_RTOL = 1e-3

_FLOAT64_EPS = 2.220446049250313e-16  # numpy.finfo(float64).eps


# ------------------------------------------------------------------------------------------
# Theorem 1: the Jacobian at initialization
# ------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------
# Theorem 2: the KKT residual of min l(W, V) s.t. ||W - W0||_F <= radius
# ------------------------------------------------------------------------------------------
def network_output(x: "torch.Tensor", w: "torch.Tensor", v: "torch.Tensor", activation: str,
                   output: str) -> "torch.Tensor":
    """f(X) (n, K) of the trained parameters: ``v`` is the output layer's parameter, (m, K)
    for ``free``, (m/2, K) for ``paired`` (the engine's ``result.extra['v']``)."""
    from ..model import hidden_features

    return hidden_features(x @ w.T, activation, output) @ v


def loss_value(out: "torch.Tensor", y: "torch.Tensor", loss: str) -> "torch.Tensor":
    """The engine's loss of outputs (n, K) against ``y``: labels (n,) int64 or targets (n, K)."""
    import torch
    import torch.nn.functional as F

    if loss == "ce":
        if y.dtype != torch.int64:
            raise ValueError("loss 'ce' needs integer labels; use loss 'mse' for regression targets")
        return F.cross_entropy(out, y, reduction="mean")
    if loss != "mse":
        raise ValueError(f"unknown loss {loss!r}; valid choices: ce, mse")
    target = F.one_hot(y, out.shape[1]).to(out.dtype) if y.dtype == torch.int64 else y.to(out.dtype)
    if target.dim() == 1:
        target = target.unsqueeze(1)
    return (out - target).square().sum(dim=1).mean()


def loss_and_gradients(
    x: "torch.Tensor", y: "torch.Tensor", w: "torch.Tensor", v: "torch.Tensor", *,
    activation: str, output: str, loss: str,
) -> tuple[float, "torch.Tensor", "torch.Tensor"]:
    """(loss, dloss/dW (m, d), dloss/dV (the parameter's shape)) in float64, by autograd through
    the model's own functions (so any registered activation works)."""
    import torch

    with torch.enable_grad():
        w64 = w.detach().to(torch.float64).requires_grad_(True)
        v64 = v.detach().to(torch.float64).requires_grad_(True)
        value = loss_value(network_output(x.detach().to(torch.float64), w64, v64, activation, output), y, loss)
        gw, gv = torch.autograd.grad(value, (w64, v64))
    return float(value.detach()), gw, gv


def kkt_residual(
    grad_w: "torch.Tensor", delta: "torch.Tensor", radius: float | None, *,
    grad_v: "torch.Tensor | None" = None, active_rtol: float = ACTIVE_RTOL,
) -> dict[str, Any]:
    """The stationarity residual of the KKT conditions of min l s.t. ||delta||_F <= radius at
    one point, from the gradient there (absolute, not normalized; see :func:`kkt_stats`).

    With u = delta / ||delta||, the conditions are grad_W + lambda u = 0 with lambda >= 0 when
    the constraint is active, grad_W = 0 when not, and grad_V = 0 (V is unconstrained). The
    residual of the W block is min over lambda >= 0 of ||grad_W + lambda u||:

    - active (||delta|| >= (1 - active_rtol) radius) and <grad_W, u> <= 0 (the gradient points
      into the ball, the sign a KKT point has): the norm of grad_W's component tangent to the
      sphere, ||grad_W - <grad_W, u> u||; any inward radial component is absorbed by lambda;
    - active and <grad_W, u> > 0 (descent would move inward, so the constraint is not what
      stops it): ||grad_W||;
    - not active, or ``radius`` None / inf (an unconstrained method): ||grad_W||.

    This equals the norm of the projected-gradient map lim_{t -> 0} ||W - P(W - t grad_W)|| / t.
    Returns ``residual_w``, ``residual`` (sqrt(residual_w^2 + ||grad_V||^2)), ``active``,
    ``radial`` (<grad_W, u>, None when not active), ``dist`` (||delta||)."""
    import torch

    gw = grad_w.detach().to(torch.float64)
    dl = delta.detach().to(torch.float64)
    dist = float(torch.linalg.vector_norm(dl))
    constrained = radius is not None and math.isfinite(radius)
    active = bool(constrained and dist > 0 and dist >= (1.0 - active_rtol) * float(radius))
    radial = None
    if active:
        u = dl / dist
        radial = float((gw * u).sum())
        res_w = float(torch.linalg.vector_norm(gw - radial * u)) if radial <= 0 else float(torch.linalg.vector_norm(gw))
    else:
        res_w = float(torch.linalg.vector_norm(gw))
    gv_norm = 0.0 if grad_v is None else float(torch.linalg.vector_norm(grad_v.detach().to(torch.float64)))
    return {"residual_w": res_w, "residual": math.hypot(res_w, gv_norm), "active": active, "radial": radial,
            "dist": dist}


def kkt_stats(
    x: "torch.Tensor", y: "torch.Tensor", *,
    w: "torch.Tensor", v: "torch.Tensor", w0: "torch.Tensor", v0: "torch.Tensor",
    activation: str, output: str, loss: str, radius: float | None, active_rtol: float = ACTIVE_RTOL,
) -> dict[str, Any]:
    """The record's KKT entries at the end of training (``w``, ``v``: final parameters; ``w0``,
    ``v0``: initial ones, as ``train_group(..., keep_weights=True)`` returns them in
    ``result.extra``; ``v`` and ``v0`` are the output layer's *parameter*; ``radius``: the
    record's ``final.radius``, None for unconstrained methods).

    Both residuals of :func:`kkt_residual` are divided by the gradient's norm at init (the same
    blocks), so 1 means "no closer to stationarity than the start" and the numbers compare
    across widths and eps:

    - ``kkt_residual`` (the (W, V) residual / ||grad_(W,V) l(W0, V0)||): the KKT conditions of
      the problem projected GD solves, min over (W, V) with only W constrained, so both blocks
      must be stationary; this is the one the checks use.
    - ``kkt_residual_w`` (the W block / ||grad_W l(W0, V0)||): the theorems' view J(w; v), V
      held fixed. (Under MLI with a paired output grad_V is exactly 0 at init, so both
      denominators are ||grad_W l(W0, V0)||.)

    Also: ``kkt_active`` (bool), ``kkt_radial_frac`` (<grad_W, u> / ||grad_W|| when active: -1
    means the gradient points straight into the ball), ``dist_w0`` (float64), ``loss_final`` /
    ``loss_init`` (float64 recomputation of the engine's loss), ``grad_norm_init``,
    ``grad_norm_init_w``, ``grad_norm_final``, ``active_rtol``. A residual is None when the
    gradient at init is 0 (nothing to normalize by)."""
    import torch

    loss0, gw0, gv0 = loss_and_gradients(x, y, w0, v0, activation=activation, output=output, loss=loss)
    loss1, gw1, gv1 = loss_and_gradients(x, y, w, v, activation=activation, output=output, loss=loss)
    res = kkt_residual(gw1, w.to(torch.float64) - w0.to(torch.float64), radius, grad_v=gv1, active_rtol=active_rtol)
    g0w = float(torch.linalg.vector_norm(gw0))
    g0 = math.hypot(g0w, float(torch.linalg.vector_norm(gv0)))
    g1w = float(torch.linalg.vector_norm(gw1))
    return {
        "kkt_residual": res["residual"] / g0 if g0 > 0 else None,
        "kkt_residual_w": res["residual_w"] / g0w if g0w > 0 else None,
        "kkt_active": res["active"],
        "kkt_radial_frac": (res["radial"] / g1w) if res["radial"] is not None and g1w > 0 else None,
        "dist_w0": res["dist"],
        "loss_init": loss0,
        "loss_final": loss1,
        "grad_norm_init": g0,
        "grad_norm_init_w": g0w,
        "grad_norm_final": math.hypot(g1w, float(torch.linalg.vector_norm(gv1))),
        "active_rtol": active_rtol,
    }


# ------------------------------------------------------------------------------------------
# The tight-eps limit: the linearization's loss floor (why the threshold sits at m d / 2n = 1)
# ------------------------------------------------------------------------------------------
def linearized_loss_floor(
    x: "torch.Tensor", y: "torch.Tensor", w0: "torch.Tensor", v0: "torch.Tensor", *,
    activation: str, output: str,
) -> dict[str, Any]:
    """The mse loss of the best fit of the targets by the net's first-order model at init:
    (1/n) ||(I - P) Y||_F^2, with P the projection onto the column space of the full Jacobian
    [d f / d W, d f / d V] at (W0, V0) (per output for K > 1; mse only).

    Why: with ||W - W0|| <= eps and eps -> 0, f(W, V) = f(W0, V) + J_W(V) (W - W0) + O(|V| eps^2),
    and f(W0, V) is linear in V, so (as long as |V| eps^2 stays small, i.e. for training times
    in which V grows like 1/eps, not 1/eps^2) every reachable output lies in that column space.
    Its dimension is the width threshold: md/2 under MLI with a paired output (there d f / d V =
    0 at init, since both halves' features are equal), m(d + 1) for LeCun init with a free
    output, m/2 + md with a paired one. Random targets independent of X leave a fraction
    1 - rank/n of their mean square unexplained, so the floor is ~ mean(y^2) (1 - rank/n)_+.
    Returns ``floor`` (mse units), ``rank``, ``n``; the rank uses :func:`jacobian_stats`'s
    tolerance convention. Our derivation (docs/theory.md), not the paper's."""
    import torch

    x64, w64, v64 = (t.detach().to(torch.float64) for t in (x, w0, v0))
    targets = y.detach().to(torch.float64)
    if targets.dim() == 1:
        targets = targets.unsqueeze(1)
    n = x64.shape[0]
    from ..model import effective_output_weights, hidden_features

    v_eff = effective_output_weights(v64, output)
    feats = hidden_features(x64 @ w64.T, activation, output)  # (n, m or m/2): d f_k / d V[:, k]
    total, ranks = 0.0, []
    for k in range(targets.shape[1]):
        cols = torch.cat([hidden_jacobian(x64, w64, v_eff[:, k], activation), feats], dim=1)
        u, s, _ = torch.linalg.svd(cols, full_matrices=False)
        tol = float(s[0]) * max(cols.shape) * _FLOAT64_EPS if s.numel() else 0.0
        rank = int((s > tol).sum())
        basis = u[:, :rank]
        resid = targets[:, k] - basis @ (basis.T @ targets[:, k])
        total += float(resid.square().sum())
        ranks.append(rank)
    return {"floor": total / n, "rank": ranks[0] if len(ranks) == 1 else ranks, "n": n}


def tight_eps_learning_rates(
    x: "torch.Tensor", y: "torch.Tensor", w0: "torch.Tensor", *, activation: str, eps: float,
) -> dict[str, Any]:
    """The step-size scales of projected GD on an MLI net with a paired output under a tight
    radius ``eps`` (absolute), from the data and W0 alone (K = 1, mse; our derivation,
    docs/theory.md). ``w0``: the (m, d) MLI hidden weights (only the first m/2 rows are used).

    To first order f = Phi u with Phi = [sigma'(w_j . x_i) x_i]_{j < m/2} (n x md/2) and
    u_j = v_j (delta_j - delta_{j+m/2}). Fitting needs |u| ~ ||Phi^+ y||; with ||delta|| <= eps the
    output weights must grow to |v| ~ ||Phi^+ y|| / (sqrt(2) eps), and the curvature of the loss in
    W grows as |v|^2, to (2/n) ||Phi^+ y||^2 sigma_max(Phi)^2 / eps^2. Full-batch GD is stable
    there only below ``lr_w_max`` = eps^2 n / (||Phi^+ y||^2 sigma_max(Phi)^2); above it V stops
    growing at the edge of stability and the fit stalls. The V curvature is O(eps^2) because the
    paired features are differences: ``v_curvature`` = (2/n) E[sigma'^2] (4 eps^2 / m)
    (sqrt(n) + sqrt(m/2))^2 for the movement spread evenly over the m/2 pairs (lr_v well below
    2 / v_curvature is stable). ``kappa`` = cond(Phi): the slowest linear mode contracts by
    ~2 s / kappa^2 per step at lr_w = s * lr_w_max. Returns those three and ``phi_pinv_y_norm``,
    ``phi_sigma_max``."""
    import torch

    x64, w64 = x.detach().to(torch.float64), w0.detach().to(torch.float64)
    n, m = x64.shape[0], w64.shape[0]
    half = m // 2
    targets = y.detach().to(torch.float64).reshape(n, -1)[:, :1]
    phi = hidden_jacobian(x64, w64[:half], torch.ones(half, 1, dtype=torch.float64), activation)
    sv = torch.linalg.svdvals(phi)
    u = torch.linalg.lstsq(phi, targets, driver="gelsd").solution
    pinv_norm = float(torch.linalg.vector_norm(u))
    slope2 = float(activation_derivative(activation, x64 @ w64[:half].T).square().mean())
    return {
        "lr_w_max": eps**2 * n / (pinv_norm**2 * float(sv[0]) ** 2),
        "v_curvature": 2.0 / n * slope2 * (4.0 * eps**2 / m) * (math.sqrt(n) + math.sqrt(half)) ** 2,
        "kappa": float(sv[0] / sv[-1]) if float(sv[-1]) > 0 else math.inf,
        "phi_pinv_y_norm": pinv_norm,
        "phi_sigma_max": float(sv[0]),
    }


# ------------------------------------------------------------------------------------------
# Loss against eps: the fitted exponent (Theorem 2's O(eps^2))
# ------------------------------------------------------------------------------------------
def loglog_slope(eps: Sequence[float], loss: Sequence[float], *, confidence: float = 0.95) -> dict[str, Any]:
    """Least-squares fit log(loss) = a + b log(eps) over the points given (pool repetitions:
    one point per cell), with the slope's standard error from ``scipy.stats.linregress`` and a
    two-sided Student-t interval with n - 2 degrees of freedom (``scipy.stats.t``).

    Points with a non-finite or non-positive loss or eps cannot be logged: they are dropped and
    counted in ``dropped``. Returns ``slope``, ``intercept``, ``stderr``, ``ci_low``,
    ``ci_high``, ``confidence``, ``n`` (points used), ``rvalue``, ``dropped``; the interval is
    None with fewer than 3 points or fewer than two distinct eps (no residual degrees of freedom),
    and the slope too with fewer than 2 distinct eps.

    Reading it against O(eps^2): an upper bound loss <= C eps^2 as eps -> 0 is contradicted by a
    slope below 2 over a range where the loss is a KKT point's (check ``kkt_residual``), not by
    a slope above 2."""
    from scipy import stats

    pairs = [(float(e), float(l_)) for e, l_ in zip(eps, loss)
             if _positive_finite(e) and _positive_finite(l_)]
    dropped = len(list(eps)) - len(pairs) if hasattr(eps, "__len__") else None
    out: dict[str, Any] = {"slope": None, "intercept": None, "stderr": None, "ci_low": None, "ci_high": None,
                           "confidence": confidence, "n": len(pairs), "rvalue": None, "dropped": dropped}
    if len({e for e, _ in pairs}) < 2:
        return out
    fit = stats.linregress([math.log(e) for e, _ in pairs], [math.log(l_) for _, l_ in pairs])
    out.update(slope=float(fit.slope), intercept=float(fit.intercept), rvalue=float(fit.rvalue))
    if len(pairs) >= 3:
        half = float(stats.t.ppf(0.5 + confidence / 2, len(pairs) - 2)) * float(fit.stderr)
        out.update(stderr=float(fit.stderr), ci_low=float(fit.slope) - half, ci_high=float(fit.slope) + half)
    return out


def _positive_finite(value: Any) -> bool:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(f) and f > 0


# ------------------------------------------------------------------------------------------
# Tables for the report's "Theory" section (pandas only, no torch)
# ------------------------------------------------------------------------------------------
def _mean_sd(series: "pd.Series") -> str:
    vals = series.dropna().astype(float)
    if vals.empty:
        return "-"
    if len(vals) == 1:
        return f"{vals.iloc[0]:.3g}"
    return f"{vals.mean():.3g} ± {vals.std(ddof=1):.2g}"


def rank_table(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Rank of J at init against m d / (2n), one row per (init, activation, width).

    ``frame``: one row per cell with columns ``init``, ``activation``, ``width``, ``n``, ``d``,
    ``jacobian_rank``, ``jacobian_rank_predicted``, ``jacobian_sigma_min``, ``jacobian_sigma_max``
    (cells whose Jacobian was skipped have NaN there and are left out). Columns of the result:
    init, activation, m, m·d/(2n), predicted rank, rank (min..max over cells), law holds (k/N
    cells), σ_min (mean ± sd), σ_max (mean ± sd)."""
    import pandas as pd

    cols = ["init", "activation", "m", "m·d/(2n)", "predicted rank", "rank", "law holds", "σ_min", "σ_max"]
    rows = []
    done = frame.dropna(subset=["jacobian_rank"])
    for (init, act, width), g in done.groupby(["init", "activation", "width"], sort=True):
        ranks = g["jacobian_rank"].astype(int)
        pred = g["jacobian_rank_predicted"].astype(int)
        ratio = float((g["width"] * g["d"] / (2 * g["n"])).iloc[0])
        span = f"{ranks.min()}" if ranks.min() == ranks.max() else f"{ranks.min()}..{ranks.max()}"
        rows.append([init, act, int(width), round(ratio, 4), int(pred.iloc[0]), span,
                     f"{int((ranks == pred).sum())}/{len(g)}", _mean_sd(g["jacobian_sigma_min"]),
                     _mean_sd(g["jacobian_sigma_max"])])
    return pd.DataFrame(rows, columns=cols)


def threshold_table(frame: "pd.DataFrame", *, memorized_below: float | None = None) -> "pd.DataFrame":
    """Final training loss against m d / (2n), one row per (activation, width), one column per
    method (mean ± sd over repetitions; "(k div)" counts diverged cells, which are left out of
    the mean). With ``memorized_below``, a column per method counting the repetitions whose
    loss is below it ("memorized k/N").

    ``frame``: columns ``method``, ``activation``, ``width``, ``n``, ``d``, ``train_loss``,
    ``status`` (optional; ``done`` / ``diverged``), and optionally ``floor`` (the linearized loss
    floor of :func:`linearized_loss_floor` for the mirrored method, averaged into its own column)."""
    import pandas as pd

    methods = list(dict.fromkeys(frame["method"]))
    rows = []
    for (act, width), g in frame.groupby(["activation", "width"], sort=True):
        ratio = float((g["width"] * g["d"] / (2 * g["n"])).iloc[0])
        row: dict[str, Any] = {"activation": act, "m": int(width), "m·d/(2n)": round(ratio, 4)}
        for method in methods:
            gm = g[g["method"] == method]
            status = gm["status"] if "status" in gm else pd.Series(["done"] * len(gm), index=gm.index)
            ok = gm[status == "done"]
            text = _mean_sd(ok["train_loss"])
            n_div = int((status == "diverged").sum())
            row[method] = text + (f" ({n_div} div)" if n_div else "")
            if memorized_below is not None:
                hits = int((ok["train_loss"].astype(float) < memorized_below).sum())
                row[f"{method} < {memorized_below:g}"] = f"{hits}/{len(gm)}"
        if "floor" in g:
            row["linearized floor (MLI)"] = _mean_sd(g["floor"])
        rows.append(row)
    return pd.DataFrame(rows)


def eps_table(frame: "pd.DataFrame", *, confidence: float = 0.95) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Final loss and KKT residual against eps, and the fitted log-log slope.

    ``frame``: one row per cell with ``method``, ``activation``, ``width``, ``eps``,
    ``train_loss``, and optionally ``kkt_residual``, ``kkt_active``, ``dist_w0``, ``radius``.
    Returns (per-eps table: method, activation, m, eps, final loss, KKT residual, constraint
    active k/N; slope table: method, activation, m, slope, its interval, n points, next to 2)."""
    import pandas as pd

    rows, slopes = [], []
    for (method, act, width), g in frame.groupby(["method", "activation", "width"], sort=True):
        for eps, ge in g.groupby("eps", sort=True):
            row: dict[str, Any] = {"method": method, "activation": act, "m": int(width), "eps": float(eps),
                                   "final loss": _mean_sd(ge["train_loss"])}
            if "kkt_residual" in ge:
                row["KKT residual"] = _mean_sd(ge["kkt_residual"])
            if "kkt_active" in ge:
                row["active"] = f"{int(ge['kkt_active'].fillna(False).astype(bool).sum())}/{len(ge)}"
            rows.append(row)
        fit = loglog_slope(g["eps"].tolist(), g["train_loss"].tolist(), confidence=confidence)
        interval = ("-" if fit["ci_low"] is None
                    else f"[{fit['ci_low']:.3g}, {fit['ci_high']:.3g}]")
        slopes.append({"method": method, "activation": act, "m": int(width),
                       "slope": "-" if fit["slope"] is None else f"{fit['slope']:.3g}",
                       f"{int(confidence * 100)}% interval": interval, "points": fit["n"],
                       "dropped": fit["dropped"], "O(eps^2) slope": 2})
    return pd.DataFrame(rows), pd.DataFrame(slopes)


# ------------------------------------------------------------------------------------------
# The record's "theory" section (written by the runner for every cell small enough)
# ------------------------------------------------------------------------------------------
def wants_section(n: int, m: int, d: int, k: int = 1, *, max_entries: int = MAX_JACOBIAN_ENTRIES) -> bool:
    """Whether a cell of this shape gets a computed ``theory`` section (else one saying it was
    skipped and why): J's n*K x m*d entries within ``max_entries``. The KKT residual and the
    loss floor need passes of the same size, so one bound gates all three."""
    return jacobian_entries(n, m, d, k) <= max_entries


def record_section(x: "torch.Tensor", y: "torch.Tensor", *, width: int, outputs: int, init: str, output: str,
                   activation: str, loss: str, extra: dict[str, Any] | None, radius: float | None, finished: bool,
                   max_entries: int = MAX_JACOBIAN_ENTRIES) -> dict[str, Any]:
    """The record's ``theory`` section of one cell: ``jacobian`` (:func:`jacobian_stats` at
    init), ``kkt`` (:func:`kkt_stats` at the end, for a finished cell), ``floor``
    (:func:`linearized_loss_floor`, mse only). ``extra`` is ``train_group(...,
    keep_weights=True)``'s ``result.extra`` (w0, v0, w, v on the CPU); ``x``, ``y`` the training
    data. Above ``max_entries`` every part is ``{"status": "skipped", "reason": ...}`` with the
    size and the bound (never a memory error)."""
    from ..model import effective_output_weights

    n, d = (int(s) for s in x.shape)
    m, k = int(width), int(outputs)
    if not wants_section(n, m, d, k, max_entries=max_entries):
        why = (f"J is {n * k} x {m * d} = {n * k * m * d} entries, above the exact-SVD bound of {max_entries} "
               f"(bench_suite.theory.MAX_JACOBIAN_ENTRIES)")
        skipped = {"status": "skipped", "reason": why}
        return {"jacobian": {**skipped, "jacobian_entries": n * k * m * d, "max_entries": max_entries},
                "kkt": skipped}
    if extra is None or "w0" not in extra:
        return {"jacobian": {"status": "skipped", "reason": "the initial weights were not kept"}}
    v0_eff = effective_output_weights(extra["v0"], output)
    x64 = x.detach().cpu().double()
    section: dict[str, Any] = {
        "jacobian": jacobian_stats(x64, extra["w0"].double(), v0_eff.double(), activation, init=init,
                                   max_entries=max_entries)}
    if finished and "w" in extra:
        targets = y.detach().cpu()
        section["kkt"] = {"status": "done", **kkt_stats(
            x64, targets, w=extra["w"], v=extra["v"], w0=extra["w0"], v0=extra["v0"], activation=activation,
            output=output, loss=loss, radius=radius)}
    else:
        section["kkt"] = {"status": "skipped", "reason": "the cell did not finish"}
    if loss == "mse" and y.is_floating_point():  # regression targets (labels would need their one-hot)
        section["floor"] = {"status": "done", **linearized_loss_floor(
            x64, y.detach().cpu(), extra["w0"], extra["v0"], activation=activation, output=output)}
    return section
