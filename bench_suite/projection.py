"""Exact Euclidean projection onto the Frobenius ball {W : ||W - W0||_F <= eps}.

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
