"""The training engine's FLOP count, shared by the engine (timing) and `plan` (cost estimates)."""

from __future__ import annotations


def step_flops(batch: int, dim: int, width: int, outputs: int, output: str) -> float:
    """FLOPs of one SGD step of one cell: forward 2BdM + weight gradient 2BdM (no input
    gradient), plus the output layer's forward and two backward products."""
    rows = width // 2 if output == "paired" else width
    return 4.0 * batch * dim * width + 6.0 * batch * rows * outputs
