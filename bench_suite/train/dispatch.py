"""Which trainer runs a cell, and one call for both (what the runner uses).

- ``fused``: the fused engine (``bench_suite.train.train_group``) for methods it expresses
  (``Method.trainer``): SGD with the cell's momentum, a constant lr, the Frobenius ball or none;
  a frozen parameter is a learning rate of 0 for that cell inside the engine (its weights stay
  as they are, bit for bit), so ``mli_paired_pgd_fixed_v`` is fused;
- ``reference``: the reference trainer (``bench_suite.train.reference``), one cell at a
  time, for everything else (another optimizer, a schedule, another projection, a training step).

The result's ``timing["trainer"]`` names it (the record's ``timing.trainer``, the results
table's ``trainer`` column). The grouping into fused groups and single reference cells is
``grouping.trainer_groups`` (torch-free, shared with ``plan``).
"""

from __future__ import annotations

from typing import Callable

import torch

from ..data.contract import TaskData
from .common import Checkpointing
from .engine import train_group
from .engine.layout import CellResult, CellSpec
from .reference import train_reference


def train_cells(
    data: TaskData,
    specs: list[CellSpec],
    *,
    order_seed: int,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int, int], None] | None = None,
    keep_weights: bool = False,
    checkpoint: Checkpointing | None = None,
) -> list[CellResult]:
    """Train ``specs`` on the trainer their methods need: all fused (one fused group) or one
    reference cell. ``ValueError`` for a mix or several reference cells (split them first:
    ``grouping.trainer_groups``)."""
    kinds = {s.method.trainer for s in specs}
    if kinds == {"fused"}:
        results = train_group(data, specs, order_seed=order_seed, device=device,
                              on_epoch=on_epoch, keep_weights=keep_weights, checkpoint=checkpoint)
        for result in results:
            result.timing["trainer"] = "fused"
        return results
    if len(specs) != 1:
        raise ValueError(f"the reference trainer trains one cell at a time, got {len(specs)} cells "
                         f"({', '.join(sorted({s.method.name for s in specs}))}): split them with "
                         f"grouping.trainer_groups")
    return [train_reference(data, specs[0], order_seed=order_seed, device=device, on_epoch=on_epoch,
                            keep_weights=keep_weights, checkpoint=checkpoint)]
