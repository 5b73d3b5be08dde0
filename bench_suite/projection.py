"""Exact Euclidean projection onto the Frobenius ball {W : ||W - W0||_F <= eps}.

The ball is convex and centred at W0, so the nearest point to W is W0 + (W - W0) scaled by
min(1, eps / ||W - W0||_F): the identity inside the ball (bit for bit: rows inside are not
rewritten), a radial shrink outside.
"""

from __future__ import annotations

import math

import torch


def project_rows_by_segment(
    w: torch.Tensor,
    w0: torch.Tensor,
    row_segment: torch.Tensor,
    radius: torch.Tensor,
) -> torch.Tensor:
    """Project each segment of rows of ``w`` onto its own Frobenius ball, in place.

    ``row_segment[i]`` is the segment (cell) of row i; ``radius[s]`` is segment s's radius
    (``inf`` for an unconstrained segment). This vectorized form serves the fused engine, where
    many cells' hidden units sit side by side in one matrix. Returns a bool tensor, one entry
    per segment: whether its projection was active (the iterate was outside its ball).
    """
    delta = w - w0
    sq = torch.zeros(radius.shape[0], dtype=delta.dtype, device=delta.device)
    sq.index_add_(0, row_segment, delta.pow(2).sum(dim=1))
    norm = sq.sqrt()
    active = norm > radius
    scale = torch.where(active, radius / torch.where(active, norm, torch.ones_like(norm)), torch.ones_like(norm))
    row_active = active[row_segment].unsqueeze(1)
    w.copy_(torch.where(row_active, w0 + delta * scale[row_segment].unsqueeze(1), w))
    return active


def project_frobenius_ball(w: torch.Tensor, w0: torch.Tensor, eps: float) -> torch.Tensor:
    """Return the point of {W : ||W - W0||_F <= eps} nearest to ``w`` (a new tensor)."""
    if not eps >= 0 or math.isnan(eps):
        raise ValueError(f"projection radius must be >= 0, got {eps}")
    out = w.detach().clone().reshape(w.shape[0], -1) if w.ndim > 1 else w.detach().clone().reshape(1, -1)
    ref = w0.reshape(out.shape)
    segments = torch.zeros(out.shape[0], dtype=torch.long, device=out.device)
    project_rows_by_segment(out, ref, segments, torch.tensor([eps], dtype=out.dtype, device=out.device))
    return out.reshape(w.shape)
