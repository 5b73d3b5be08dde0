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

from typing import Any, Callable

import torch

from .. import theory
from ..data.contract import TaskData
from ..methods import Method
from .engine import train_group
from .engine.layout import CellResult, CellSpec
from .engine.loop import Checkpointing
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


def theory_section(method: Method, x: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> dict[str, Any]:
    """``theory.record_section`` for a cell of ``method``, with the KKT part made to fit the
    problem the method solves: with V frozen only W is a variable, so ``kkt_residual`` is the W
    block's residual (``kkt_residual_w``; ``kkt_variables`` says "W"); a projection other than
    the Frobenius ball has other KKT conditions than ``theory.kkt_residual``'s, so the part is
    skipped with that reason (and so is it with W frozen)."""
    section = theory.record_section(x, y, **kwargs)
    kkt = section.get("kkt")
    if not isinstance(kkt, dict) or kkt.get("status") != "done":
        return section
    if method.projection_name not in ("none", "frobenius"):
        section["kkt"] = {"status": "skipped",
                          "reason": f"the KKT residual is that of the Frobenius ball; method {method.name} projects "
                                    f"onto {method.projection_name}"}
    elif "w" in method.frozen:
        section["kkt"] = {"status": "skipped", "reason": f"method {method.name} freezes W: the KKT residual of V "
                                                         f"alone is not computed"}
    elif "v" in method.frozen:
        section["kkt"] = {**kkt, "kkt_residual": kkt.get("kkt_residual_w"), "kkt_variables": "W"}
    return section
