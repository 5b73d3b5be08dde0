"""Exact Euclidean projections: onto the Frobenius ball {W : ||W - W0||_F <= eps}, and onto
the product of per-unit balls {W : ||w_j - w_j0|| <= eps / sqrt(m) for each row j}.

The ball is convex and centred at W0, so the nearest point to W is W0 + (W - W0) scaled by
min(1, eps / ||W - W0||_F): the identity inside the ball (bit for bit: a point inside is
returned unchanged), a radial shrink outside. The training engine applies the same map per
cell through its scale s (W = W0 + s·U, see ``training.py``); this function is the reference
the tests compare it with.
"""

from __future__ import annotations

import math

import torch


def project_frobenius_ball(w: torch.Tensor, w0: torch.Tensor, eps: float) -> torch.Tensor:
    """Return the point of {W : ||W - W0||_F <= eps} nearest to ``w`` (a new tensor)."""
    if not eps >= 0 or math.isnan(eps):
        raise ValueError(f"projection radius must be >= 0, got {eps}")
    w = w.detach()
    delta = w - w0
    norm = float(torch.linalg.vector_norm(delta))
    if norm <= eps:
        return w.clone()
    return w0 + delta * (eps / norm)


def project_per_neuron_balls(w: torch.Tensor, w0: torch.Tensor, eps: float) -> torch.Tensor:
    """Return the point of {W : ||w_j - w_j0|| <= eps / sqrt(m) for every row j} nearest to
    ``w`` ((m, d) tensors; a new tensor). The set is a product of balls, so the projection is
    row by row: a row inside its ball is returned unchanged (bit for bit), a row outside is
    shrunk radially onto it. eps_j = eps / sqrt(m) makes the total radius sqrt(sum eps_j^2) = eps,
    the Frobenius ball's (our choice, issue 10: does the shape of the ball matter?)."""
    if not eps >= 0 or math.isnan(eps):
        raise ValueError(f"projection radius must be >= 0, got {eps}")
    w = w.detach()
    delta = w - w0
    radius = eps / math.sqrt(w.shape[0])
    norms = torch.linalg.vector_norm(delta.to(torch.float64), dim=1, keepdim=True)
    scale = torch.where(norms > radius, radius / norms, torch.ones_like(norms)).to(w.dtype)
    out = w0 + delta * scale
    inside = (norms <= radius).squeeze(1)
    out[inside] = w[inside]  # unchanged rows stay bit for bit
    return out
