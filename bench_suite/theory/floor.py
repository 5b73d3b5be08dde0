"""The tight-eps limit of the width threshold: the loss floor of the net's linearization at
init (:func:`linearized_loss_floor`) and the step sizes projected GD can use there
(:func:`tight_eps_learning_rates`; the width_threshold task's defaults). Our derivation
(docs/theory.md), not the paper's."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .jacobian import _FLOAT64_EPS, activation_derivative, hidden_jacobian

if TYPE_CHECKING:  # pragma: no cover
    import torch


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

