"""The cells of a fused group (``CellSpec``, ``CellResult``), where each cell's hidden units
and features sit in the group's matrices (``_Layout``), and the activations' forward and
backward kernels (the same ones autograd uses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ...core.config import TrainConfig
from ...methods import Method
from ...model import ACTIVATIONS, check_choice, check_width


@dataclass(frozen=True)
class CellSpec:
    method: Method
    width: int
    activation: str
    config: TrainConfig
    init_seed: int

    def __post_init__(self) -> None:
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_width(self.width, self.method.output, self.method.init)


@dataclass
class CellResult:
    status: str  # "done" | "diverged"
    reason: str | None
    curves: dict[str, list]
    final: dict[str, float]
    timing: dict[str, float]
    w0_digest: str
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# Activations: forward into a slice of a buffer, backward with the kernels autograd uses
# ------------------------------------------------------------------------------------------
def _act_forward(name: str, pre: torch.Tensor, out: torch.Tensor) -> None:
    if name == "relu":
        torch.clamp_min(pre, 0, out=out)  # what torch.relu computes
    elif name == "tanh":
        torch.tanh(pre, out=out)
    else:
        out.copy_(ACTIVATIONS[name](pre))


def _act_backward(name: str, grad: torch.Tensor, pre: torch.Tensor, act: torch.Tensor, out: torch.Tensor) -> None:
    """out = grad * sigma'(pre), with the same kernels as autograd (bit-identical)."""
    aten = torch.ops.aten
    if name == "relu":
        aten.threshold_backward.grad_input(grad, act, 0, grad_input=out)
    elif name == "tanh":
        aten.tanh_backward.grad_input(grad, act, grad_input=out)
    elif name == "softplus":
        aten.softplus_backward.grad_input(grad, pre, 1, 20, grad_input=out)
    elif name == "gelu":
        aten.gelu_backward.grad_input(grad, pre, approximate="none", grad_input=out)
    else:  # an activation registered by a plugin: autograd of its forward
        with torch.enable_grad():
            p = pre.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(ACTIVATIONS[name](p), p, grad)
        out.copy_(g)


# ------------------------------------------------------------------------------------------
# Layout of a fused group
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ActGroup:
    """The hidden rows of one activation: [paired first halves | paired second halves | free]."""

    activation: str
    lo: int  # rows [lo, hi) use this activation
    hi: int
    p1: int  # paired cells' first halves: rows [p1, p1 + hp); second halves [p2, p2 + hp)
    p2: int
    hp: int
    fp: int  # their features (first half minus second half): feature rows [fp, fp + hp)
    fr: int  # free cells' rows [fr, fr + nf), features [ff, ff + nf)
    nf: int
    ff: int


class _Layout:
    """Where each cell's hidden units and features sit in the fused matrices.

    Hidden rows are ordered by activation, and within one activation as [first halves of the
    paired cells | their second halves | free cells], so each activation is one op over a
    contiguous block and every paired feature sigma(w_j x) - sigma(w_{j+m/2} x) of the block
    is one subtraction. The output layers of all cells are one batched product over features
    padded to a common row count R (pad rows read a zero row and have zero output weights)."""

    def __init__(self, cells: list[CellSpec]) -> None:
        self.C = len(cells)
        rows: list[list[int]] = [[] for _ in cells]  # internal row of each original row
        feat_start = [0] * self.C
        self.feat_len = [c.width // 2 if c.method.output == "paired" else c.width for c in cells]
        self.groups: list[_ActGroup] = []
        row = feat = 0
        for act in dict.fromkeys(c.activation for c in cells):
            paired = [i for i, c in enumerate(cells) if c.activation == act and c.method.output == "paired"]
            free = [i for i, c in enumerate(cells) if c.activation == act and c.method.output != "paired"]
            lo, hp = row, sum(cells[i].width // 2 for i in paired)
            p1, p2, fp = row, row + hp, feat
            off = 0
            for i in paired:
                h = cells[i].width // 2
                rows[i] = list(range(p1 + off, p1 + off + h)) + list(range(p2 + off, p2 + off + h))
                feat_start[i] = fp + off
                off += h
            row, feat = p2 + hp, fp + hp
            fr, ff = row, feat
            for i in free:
                rows[i] = list(range(row, row + cells[i].width))
                feat_start[i] = feat
                row += cells[i].width
                feat += cells[i].width
            self.groups.append(_ActGroup(act, lo, row, p1, p2, hp, fp, fr, row - fr, ff))
        self.M, self.F = row, feat
        # mirrored init (MLI): hidden row j + m/2 starts equal to row j, so its pre-activations at
        # init must be the very same numbers (the engine copies them: a GEMM may round two equal
        # rows differently by their position, and the output would not be exactly 0)
        self.mirror_src: list[int] = []
        self.mirror_dst: list[int] = []
        for i, c in enumerate(cells):
            if c.method.init == "mirrored_lecun":
                h = c.width // 2
                self.mirror_src += rows[i][:h]
                self.mirror_dst += rows[i][h:]
        self.R = max(self.feat_len)
        self.Wmax = max(c.width for c in cells)
        self.any_paired = any(g.hp for g in self.groups)
        self.cell_rows = rows
        row_cell = [0] * self.M
        row_pos = [0] * self.M  # slot of each row in a (C, Wmax) padded layout, for segment sums
        for i, rs in enumerate(rows):
            for j, r in enumerate(rs):
                row_cell[r] = i
                row_pos[r] = i * self.Wmax + j
        self.row_cell, self.row_pos = row_cell, row_pos
        gather = []
        for i in range(self.C):
            gather += [feat_start[i] + r for r in range(self.feat_len[i])] + [self.F] * (self.R - self.feat_len[i])
        self.identity = gather == list(range(self.C * self.R)) and self.F == self.C * self.R
        self.gather = None if self.identity else gather  # padded slot -> feature row (F: the zero row)
        scatter = [0] * self.F
        for slot, f in enumerate(gather):
            if f < self.F:
                scatter[f] = slot
        self.scatter = None if self.identity else scatter  # feature row -> padded slot
