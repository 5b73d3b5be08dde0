"""Theorem 2's KKT conditions at a trained point: the loss and its gradients in float64
(:func:`loss_and_gradients`), the stationarity residual of min l(W, V) s.t. ||W - W0||_F <=
radius (:func:`kkt_residual`) and the record's normalized KKT entries (:func:`kkt_stats`).
The KKT points themselves, solved for in float64, are ``kkt_bound``'s."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

# A point is "on the boundary" of ||W - W0||_F <= radius when its distance is within this
# fraction of the radius. Our choice: the engine projects exactly (in float32, relative error
# ~1e-7) and W - W0 is recomputed in float64 from float32 weights (relative error ~1e-6 of
# ||W0|| / radius at radius >= 0.01 ||W0||), so 1e-3 is far above rounding and far below any
# genuine interior gap.
ACTIVE_RTOL = 1e-3


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
    grad_w: Any, delta: Any, radius: float | None, *,
    grad_v: Any = None, active_rtol: float = ACTIVE_RTOL,
) -> dict[str, Any]:
    """The stationarity residual of the KKT conditions of min l s.t. ||delta||_F <= radius at
    one point, from the gradient there (absolute, not normalized; see :func:`kkt_stats`).
    ``grad_w``, ``delta`` (same shape) and ``grad_v`` are torch tensors or numpy arrays, read in
    float64 (the record's section and the float64 KKT solver, ``kkt_solver``, share this).

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
    ``radial`` (<grad_W, u>, None when not active), ``dist`` (||delta||) and ``lam`` (the
    multiplier that attains the minimum: -radial when active and radial <= 0, else 0)."""
    import numpy as np

    gw, dl = _float64(grad_w).ravel(), _float64(delta).ravel()
    dist = float(np.linalg.norm(dl))
    constrained = radius is not None and math.isfinite(radius)
    active = bool(constrained and dist > 0 and dist >= (1.0 - active_rtol) * float(radius))
    radial, lam = None, 0.0
    if active:
        u = dl / dist
        radial = float(gw @ u)
        if radial <= 0:
            res_w, lam = float(np.linalg.norm(gw - radial * u)), -radial
        else:
            res_w = float(np.linalg.norm(gw))
    else:
        res_w = float(np.linalg.norm(gw))
    gv_norm = 0.0 if grad_v is None else float(np.linalg.norm(_float64(grad_v).ravel()))
    return {"residual_w": res_w, "residual": math.hypot(res_w, gv_norm), "active": active, "radial": radial,
            "dist": dist, "lam": lam}


def _float64(value: Any) -> "np.ndarray":
    """A torch tensor (any device) or array-like as a float64 numpy array."""
    import numpy as np

    if hasattr(value, "detach"):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


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
    - ``kkt_residual_w`` (the W block / ||grad_W l(W0, V0)||): Theorem 1's view J(w; v), V
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

