"""The training engine: (projected) SGD for one or many cells fused into one hidden matrix.

Cells that share data, batch order and schedule (same task, repetition, epochs, batch size)
are trained together: their hidden units sit side by side in one weight matrix, so one GEMM
per step computes every cell's pre-activations and one GEMM updates every cell's hidden
weights. Activation, output layer, loss, learning rates and the projection stay per cell, so a
fused cell computes the same numbers as the cell trained alone (tested to float tolerance, and
against a plain autograd loop in tests/test_engine_fast_paths.py). A single cell is a group of one.

How a step stays near the cost of its two big GEMMs (docs/performance.md has the numbers):

- hidden rows are ordered by activation, paired halves in two blocks, so each activation and
  all paired features sigma(w_j x) - sigma(w_{j+m/2} x) are a few ops over contiguous blocks;
  every cell's output layer, loss and gradients are one batched product over features padded
  to a common width; gradients are written by hand (autograd's own activation kernels), so
  there is no autograd graph and no (B x d) input gradient;
- W = W0 + s·U with one scale s per cell: the projection onto ||W - W0||_F <= eps only changes
  s, so no (m x d) pass is spent on it; X·W0ᵀ is a table computed once, so a forward is
  x·Uᵀ (one GEMM) and the update U <- U - (lr/s)·dpreᵀx is one GEMM with accumulate;
  ||U|| per cell is tracked from B x m quantities (``lowrank``) or re-measured (``exact``), and
  ``fold`` (U <- s·U, exact norm, exact projection) runs at epoch ends and evaluations;
- the data is on the device before training, batches are gathered by index on the device,
  sample orders are copied 32 epochs at a time, and nothing is read back to the host inside an
  epoch (metrics accumulate on the device and are read once per evaluation), so on CUDA an
  epoch can be one CUDA graph (opt-in, ``cuda_graphs`` / $BENCH_SUITE_CUDA_GRAPHS).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .config import EPS_MODES, LOSSES, PRECISIONS, TrainConfig  # noqa: F401 - re-exported
from .flops import step_flops  # noqa: F401 - re-exported
from .methods import Method
from .model import ACTIVATIONS, check_choice, check_width, init_weights
from .tasks.base import TaskData

# Folds (U <- s·U, s <- 1) of a constrained group inside an epoch. Each projection multiplies s by
# radius/||W - W0|| (< 1 when active), so with a radius far below the step size s falls by orders
# of magnitude per step and U = (W - W0)/s leaves float32's range (seen at eps = 0.1 on the
# synthetic ablation when folds came only every 64 steps). So s is checked every
# FOLD_CHECK_STEPS steps (every step on the CPU, where reading it costs nothing; a fixed fold
# cadence inside a captured CUDA graph, which cannot read it) and folded when below FOLD_BELOW.
FOLD_STEPS = 16
FOLD_CHECK_STEPS = {"cpu": 1}  # device type -> steps between checks; others: FOLD_STEPS
FOLD_BELOW = 1e-4


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


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device):
    """TF32 on or off for this block (restored after); bf16 autocast is applied in the step."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class _Timer:
    """Wall time on the host; on CUDA also device time between CUDA events."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.t0 = time.perf_counter()
        if self.cuda:
            self.start = torch.cuda.Event(enable_timing=True)
            self.end = torch.cuda.Event(enable_timing=True)
            self.start.record()

    def stop(self) -> dict[str, float]:
        out = {}
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            out["train_time_s"] = self.start.elapsed_time(self.end) / 1000.0
        out["wall_time_s"] = time.perf_counter() - self.t0
        out.setdefault("train_time_s", out["wall_time_s"])
        return out


# ------------------------------------------------------------------------------------------
# Engine switches (environment variables, so that runs through the Runner/CLI can set them)
# ------------------------------------------------------------------------------------------
CUDA_GRAPHS_ENV = "BENCH_SUITE_CUDA_GRAPHS"  # "1": capture one epoch as a CUDA graph (CUDA only)
NORM_TRACKING_ENV = "BENCH_SUITE_NORM_TRACKING"  # "auto" (default), "lowrank" or "exact"
P0_TABLE_ENV = "BENCH_SUITE_P0_TABLE_MB"  # memory budget of the X·W0ᵀ table, MiB
NORM_TRACKINGS = ("auto", "lowrank", "exact")
_P0_TABLE_MB_DEFAULT = {"cpu": 512, "cuda": 8192}


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


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


# ------------------------------------------------------------------------------------------
# The fused engine
# ------------------------------------------------------------------------------------------
class _FusedEngine:
    """State and maths of one fused group. Hidden weights are kept as W = W0 + s·U (one scale s
    per cell): the projection onto ||W - W0||_F <= eps only rescales s, so it touches no
    (m x d) matrix, and pre-activations are X·W0ᵀ (a table, computed once) + s·(x·Uᵀ).
    ||U||² per cell is updated from B x m quantities (``lowrank``: <U_r, G_r> = Σ_b dpre·q and
    ||G_r||² = dpreᵀ(x xᵀ)dpre, G = dpreᵀx is the weight gradient) or recomputed (``exact``);
    ``fold`` writes s into U (U <- s·U, s <- 1) and re-measures ||U|| exactly at the end of
    epochs and before every evaluation, so the iterate is projected exactly there."""

    def __init__(self, data: TaskData, cells: list[CellSpec], *, batch: int, device: torch.device,
                 norm_tracking: str) -> None:
        cfg = cells[0].config
        self.cells = cells
        self.device = device
        self.data = data
        self.x, self.y = data.x_train, data.y_train
        self.n, self.dim = self.x.shape
        self.k = data.num_outputs
        self.dtype = self.x.dtype
        self.batch = batch
        self.classification = data.classification
        L = self.L = _Layout(cells)
        C, M = L.C, L.M
        dev, dt = device, self.dtype
        self.tdt = torch.float32 if device.type == "mps" else torch.float64  # dtype of per-cell sums
        self.autocast = (
            torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
            if cfg.precision == "bf16" else contextlib.nullcontext()
        )

        # --- initial weights, drawn on the CPU per cell, placed in the fused layout ---
        self.w_parts, self.v_parts, self.digests = [], [], []
        w0 = torch.zeros(M, self.dim, dtype=dt)
        v = torch.zeros(C, self.k, L.R, dtype=dt)  # output weights, transposed: (C, K, R)
        for i, cell in enumerate(cells):
            weights = init_weights(cell.width, self.dim, self.k, cell.method.init, cell.method.output,
                                   torch.Generator().manual_seed(cell.init_seed))
            self.w_parts.append(weights.w)
            self.v_parts.append(weights.v)
            self.digests.append(hashlib.sha256(weights.w.numpy().tobytes()).hexdigest()[:16])
            w0[torch.tensor(L.cell_rows[i])] = weights.w.to(dt)
            v[i, :, : weights.v.shape[0]] = weights.v.T.to(dt)
        self.W0 = w0.to(dev)
        self.U = torch.zeros_like(self.W0)
        self.V = v.to(dev)
        self.cell_rows = [torch.tensor(r, device=dev) for r in L.cell_rows]
        self.row_cell = torch.tensor(L.row_cell, device=dev)
        self.row_pos = torch.tensor(L.row_pos, device=dev)
        self.gather = None if L.gather is None else torch.tensor(L.gather, device=dev)
        self.scatter = None if L.scatter is None else torch.tensor(L.scatter, device=dev)

        # --- per-cell hyperparameters as tensors (a diverged cell's are zeroed in place) ---
        self.radius = []
        for cell, w_part in zip(cells, self.w_parts):
            if not cell.method.constrained:
                self.radius.append(math.inf)
            elif cell.config.eps_mode == "relative":
                self.radius.append(cell.config.eps * float(torch.linalg.vector_norm(w_part)))
            else:
                self.radius.append(cell.config.eps)
        self.radius_t = torch.tensor(self.radius, dtype=self.tdt, device=dev)
        self.constrained = any(c.method.constrained for c in cells)
        row_cell_cpu = torch.tensor(L.row_cell)
        per_cell = lambda f: torch.tensor([float(f(c)) for c in cells], dtype=dt)  # noqa: E731
        # the step size per hidden row, with the sign of the row's output weight: a paired cell's
        # second half enters its features with a minus, which is folded in here rather than
        # negating those rows of the gradient every step
        sign = torch.ones(M, 1, dtype=dt)
        for g in L.groups:
            sign[g.p2 : g.p2 + g.hp] = -1
        self.lr_rows = (per_cell(lambda c: c.config.lr_w)[row_cell_cpu].unsqueeze(1) * sign).to(dev)
        self.lr_v = per_cell(lambda c: c.config.lr_v).view(C, 1, 1).to(dev)
        self.momentum = any(c.config.momentum > 0 for c in cells)
        if self.momentum:
            self.mom_rows = per_cell(lambda c: c.config.momentum)[row_cell_cpu].unsqueeze(1).to(dev)
            self.mom_v = per_cell(lambda c: c.config.momentum).view(C, 1, 1).to(dev)
            self.w_buf = torch.zeros_like(self.U)
            self.v_buf = torch.zeros_like(self.V)
        self.is_ce = torch.tensor([c.config.loss == "ce" for c in cells], device=dev)
        self.losses = {c.config.loss for c in cells}
        self.onehot = F.one_hot(self.y, self.k).to(dt) if self.classification else None

        # --- projection state: W = W0 + s·U per cell, nrm2 = ||U||² per cell ---
        self.s = torch.ones(C, dtype=self.tdt, device=dev)
        self.nrm2 = torch.zeros(C, dtype=self.tdt, device=dev)
        self.s_rows = torch.ones(M, 1, dtype=dt, device=dev)
        self.a_rows = self.lr_rows.clone()  # ±lr_w / s: the step on U that is lr_w on W
        self.seg_buf = torch.zeros(C * L.Wmax, dtype=self.tdt, device=dev)
        if not self.constrained:
            self.tracking = "none"
        elif self.momentum:
            self.tracking = "exact"  # a momentum buffer is not rank-B: re-measure ||U|| each step
        elif norm_tracking != "auto":
            self.tracking = norm_tracking
        else:  # the Gram path costs 2B²(d + m) flops; the exact one a pass over U (m x d)
            self.tracking = "lowrank" if 8 * batch <= self.dim and 2 * batch <= M else "exact"

        # --- per-epoch accumulators (static tensors: a CUDA graph writes into them) ---
        self.loss_acc = torch.zeros(C, dtype=dt, device=dev)  # sum of the per-sample losses
        self.correct_acc = torch.zeros(C, dtype=torch.long, device=dev)
        self._step_bufs: dict[int, dict[str, torch.Tensor]] = {}  # per batch size, reused every step
        self.proj_acc = torch.zeros(C, dtype=torch.float32, device=dev)

        # --- X·W0ᵀ, the constant part of every pre-activation, when it fits the budget ---
        budget = os.environ.get(P0_TABLE_ENV)
        budget_mb = float(budget) if budget else _P0_TABLE_MB_DEFAULT.get(device.type, 512)
        self.P0 = None
        if self.n * M * self.x.element_size() <= budget_mb * 2**20:
            with self.autocast:
                self.P0 = torch.mm(self.x, self.W0.T).to(dt)  # (n, M)

    # ----- helpers -----
    def segsum(self, per_row: torch.Tensor) -> torch.Tensor:
        """Per-cell sums of a per-row vector, deterministic and without mixing cells (a NaN
        row of one cell cannot reach another's sum)."""
        self.seg_buf.index_copy_(0, self.row_pos, per_row.to(self.tdt))
        return self.seg_buf.view(self.L.C, self.L.Wmax).sum(1)

    def _set_scale_rows(self) -> None:
        self.s_rows.copy_(self.s.index_select(0, self.row_cell).unsqueeze(1))
        torch.div(self.lr_rows, self.s_rows, out=self.a_rows)

    # ----- forward / backward -----
    def _buffers(self, b: int, dtype: torch.dtype) -> dict[str, torch.Tensor | None]:
        """Work buffers for a batch of ``b`` columns; the padded gather reads a zero row past the
        last feature, which is written once here."""
        L = self.L
        pad = 0 if L.identity else 1
        act = torch.empty(L.M + (0 if L.any_paired else pad), b, dtype=dtype, device=self.device)
        feat = torch.empty(L.F + pad, b, dtype=dtype, device=self.device) if L.any_paired else act
        if pad:
            feat[L.F].zero_()
        return {"act": act, "feat": feat}

    def step_buffers(self, b: int) -> dict[str, torch.Tensor | None]:
        bufs = self._step_bufs.get(b)
        if bufs is None:
            bufs = self._step_bufs[b] = self._buffers(b, self.dtype)
            bufs["pre"] = torch.empty(self.L.M, b, dtype=self.dtype, device=self.device)
            bufs["dpre"] = torch.empty(self.L.M, b, dtype=self.dtype, device=self.device)
        return bufs

    def features(self, preT: torch.Tensor, bufs: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(actT (M, B), featpad (C, R, B)) from pre-activations preT (M, B)."""
        L = self.L
        b = preT.shape[1]
        bufs = bufs or self._buffers(b, preT.dtype)
        act, feat = bufs["act"][: L.M], bufs["feat"]
        for g in L.groups:
            _act_forward(g.activation, preT[g.lo : g.hi], act[g.lo : g.hi])
        if L.any_paired:
            for g in L.groups:
                if g.hp:
                    torch.sub(act[g.p1 : g.p1 + g.hp], act[g.p2 : g.p2 + g.hp], out=feat[g.fp : g.fp + g.hp])
                if g.nf:
                    feat[g.ff : g.ff + g.nf].copy_(act[g.fr : g.fr + g.nf])
        featpad = feat if self.gather is None else feat.index_select(0, self.gather)
        return act, featpad.view(L.C, L.R, b)

    def loss_and_grad(self, out: torch.Tensor, labels: torch.Tensor | None, target: torch.Tensor,
                      grad: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """From outputs ``out`` (C, K, B) and targets (K, B): per-cell sum of the per-sample
        losses (C,), the gradient of the sum of the cells' mean losses w.r.t. ``out`` and
        per-cell correct counts (int64)."""
        b = out.shape[2]
        loss = dout = None
        if "ce" in self.losses:
            logp = torch.log_softmax(out, dim=1)
            loss = logp.gather(1, labels.view(1, 1, b).expand(self.L.C, 1, b)).sum((1, 2)).neg_()
            dout = logp.exp_().sub_(target) if grad else None  # softmax - onehot
        if "mse" in self.losses:
            diff = out - target
            mse = diff.square().sum((1, 2))
            dmse = diff.mul_(2.0) if grad else None
            if loss is None:
                loss, dout = mse, dmse
            else:
                loss = torch.where(self.is_ce, loss, mse)
                dout = torch.where(self.is_ce.view(-1, 1, 1), dout, dmse) if grad else None
        if dout is not None:
            dout.div_(b)
        correct = (out.argmax(1) == labels).sum(-1) if labels is not None else None
        return loss, dout, correct

    def step(self, idx: torch.Tensor | None) -> None:
        """One SGD step (+ projection) of every cell on the rows ``idx`` (None: all). Nothing
        here reads a value back to the host, so an epoch of steps can be a CUDA graph."""
        L = self.L
        xb = self.x if idx is None else self.x.index_select(0, idx)
        b = xb.shape[0]
        with self.autocast:
            qT = torch.mm(self.U, xb.T)
            p0 = None if self.P0 is not None else torch.mm(self.W0, xb.T)
        qT = qT.to(self.dtype)
        if self.P0 is not None:
            p0 = (self.P0 if idx is None else self.P0.index_select(0, idx)).T
        bufs = self.step_buffers(b)
        preT = bufs["pre"]
        torch.addcmul(p0.to(self.dtype), self.s_rows, qT, out=preT)
        act, featpad = self.features(preT, bufs)
        out = torch.bmm(self.V, featpad)  # (C, K, B): every cell's output layer in one product
        if self.classification:
            labels = self.y if idx is None else self.y.index_select(0, idx)
            target = (self.onehot if idx is None else self.onehot.index_select(0, idx)).T
        else:
            labels, target = None, (self.y if idx is None else self.y.index_select(0, idx)).T
        loss, dout, correct = self.loss_and_grad(out, labels, target, grad=True)
        self.loss_acc.add_(loss)
        if correct is not None:
            self.correct_acc.add_(correct)

        # --- backward: output layers (batched), features, activations ---
        dfeatpad = torch.bmm(self.V.transpose(1, 2), dout)  # (C, R, B)
        gv = torch.bmm(dout, featpad.transpose(1, 2))  # (C, K, R)
        dfeat = dfeatpad.view(L.C * L.R, b)
        if self.scatter is not None:
            dfeat = dfeat.index_select(0, self.scatter)
        dpre = bufs["dpre"]  # rows of paired second halves: without their minus (it is in lr_rows)
        for g in L.groups:
            if g.hp:
                d = dfeat[g.fp : g.fp + g.hp]
                for r0 in (g.p1, g.p2):
                    sl = slice(r0, r0 + g.hp)
                    _act_backward(g.activation, d, preT[sl], act[sl], dpre[sl])
            if g.nf:
                sl = slice(g.fr, g.fr + g.nf)
                _act_backward(g.activation, dfeat[g.ff : g.ff + g.nf], preT[sl], act[sl], dpre[sl])

        # --- hidden weights: W <- W - lr·G, i.e. U <- U - (lr/s)·G, with G = dpreᵀ x ---
        if self.momentum:
            with self.autocast:
                gw = torch.mm(dpre, xb)
            self.w_buf.mul_(self.mom_rows).add_(gw)
            self.U.addcmul_(self.w_buf, self.a_rows, value=-1)
        else:
            step_rows = dpre.mul_(self.a_rows)  # A = (lr/s)·dL/dpre, so U <- U - A x
            if self.tracking == "lowrank":
                # ||U_r - A_r x||² - ||U_r||² = Σ_b A[r,b]·((A xxᵀ)[r,b] - 2 q[r,b]): B x m work only
                with self.autocast:
                    gram = torch.mm(xb, xb.T)
                    y = torch.addmm(qT, step_rows, gram, beta=-2)
                # in the tracking dtype: with a small radius s shrinks fast and U = (W - W0)/s grows,
                # so these products can leave float32's range between two folds
                self.nrm2.add_(self.segsum(torch.linalg.vecdot(step_rows.to(self.tdt), y.to(self.tdt), dim=1)))
            if isinstance(self.autocast, contextlib.nullcontext):
                self.U.addmm_(step_rows, xb, alpha=-1)
            else:
                with self.autocast:
                    self.U.sub_(torch.mm(step_rows, xb))
        if self.tracking == "exact":
            self.nrm2.copy_(self.segsum(torch.linalg.vector_norm(self.U, dim=1).to(self.tdt).square()))

        # --- output weights ---
        if self.momentum:
            self.v_buf.mul_(self.mom_v).add_(gv)
            gv = self.v_buf
        self.V.addcmul_(gv, self.lr_v, value=-1)

        # --- projection: s <- s·min(1, radius / (s·||U||)) per cell ---
        if self.constrained:
            shrink = torch.div(self.radius_t, self.s * self.nrm2.clamp_min(0).sqrt()).clamp_(max=1)
            self.proj_acc.add_(shrink < 1)
            self.s.mul_(shrink)
            self._set_scale_rows()

    def run_epoch(self, perm: torch.Tensor | None) -> None:
        """All steps of one epoch (``perm``: the sample order on the device, None: full batch)."""
        self.loss_acc.zero_()
        self.correct_acc.zero_()
        capturing = self.x.is_cuda and torch.cuda.is_current_stream_capturing()
        for i, s0 in enumerate(range(0, self.n, self.batch)):
            self.step(None if perm is None else perm[s0 : s0 + self.batch])
            if self.constrained and s0 + self.batch < self.n:  # the epoch's end: train_group's call
                if capturing:  # a graph cannot read s: a fixed cadence
                    if (i + 1) % FOLD_STEPS == 0:
                        self.fold()
                else:
                    self.fold_if_small(i + 1)

    def fold_if_small(self, steps: int) -> None:
        """Fold when some cell's s has fallen below FOLD_BELOW (read every FOLD_CHECK_STEPS)."""
        if steps % FOLD_CHECK_STEPS.get(self.x.device.type, FOLD_STEPS) == 0:
            small = self.s < FOLD_BELOW
            if bool(small.any()):
                self.fold(only=small)  # the other cells of the group stay untouched

    @torch.no_grad()
    def fold(self, only: torch.Tensor | None = None) -> None:
        """U <- s·U, s <- 1, ||U||² measured exactly; an iterate outside its ball (drift of the
        tracked norm) is projected exactly here. ``only`` (a bool per cell) folds just those
        cells: the others' U, s and tracked norm stay bit for bit (U rows times exactly 1)."""
        exact = self.segsum(torch.linalg.vector_norm(self.U, dim=1).to(self.tdt).square())
        if not self.constrained:
            self.nrm2.copy_(exact)
            return
        dist = self.s * exact.sqrt()
        over = dist > self.radius_t
        factor = self.s * torch.where(over, self.radius_t / dist, torch.ones_like(dist))
        if only is not None:
            factor = torch.where(only, factor, torch.ones_like(factor))
        self.U.mul_(factor.index_select(0, self.row_cell).unsqueeze(1).to(self.dtype))
        if only is None:
            self.nrm2.copy_(exact * factor.square())
            self.s.fill_(1.0)
        else:
            self.nrm2.copy_(torch.where(only, exact * factor.square(), self.nrm2))
            self.s.copy_(torch.where(only, torch.ones_like(self.s), self.s))
        self._set_scale_rows()

    def hidden_weights(self) -> torch.Tensor:
        return torch.addcmul(self.W0, self.s_rows, self.U)

    @torch.no_grad()
    def evaluate(self, xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact mean loss and accuracy per cell over a whole split (chunked forward)."""
        w = self.hidden_weights()
        chunk = max(256, min(8192, (1 << 26) // max(self.L.M, 1)))
        loss_sum = torch.zeros(self.L.C, device=self.device, dtype=xs.dtype)
        correct = torch.zeros(self.L.C, device=self.device, dtype=xs.dtype)
        for s0 in range(0, xs.shape[0], chunk):
            xb, yb = xs[s0 : s0 + chunk], ys[s0 : s0 + chunk]
            with self.autocast:
                preT = torch.mm(w, xb.T)
            _, featpad = self.features(preT.to(xs.dtype))
            out = torch.bmm(self.V, featpad)
            if self.classification:
                labels, target = yb, F.one_hot(yb, self.k).to(xs.dtype).T
            else:
                labels, target = None, yb.T
            loss, _, corr = self.loss_and_grad(out, labels, target, grad=False)
            loss_sum += loss
            if corr is not None:
                correct += corr
        return loss_sum / xs.shape[0], correct / xs.shape[0]

    @torch.no_grad()
    def freeze(self, i: int) -> None:
        """Stop a diverged cell without touching the others: zero its weights, learning rates
        and momentum, so its NaNs cannot spread (its rows then produce zeros)."""
        rows = self.cell_rows[i]
        for t in (self.U, self.W0, self.lr_rows, self.a_rows) + ((self.w_buf,) if self.momentum else ()):
            t.index_fill_(0, rows, 0)
        if self.P0 is not None:
            self.P0.index_fill_(1, rows, 0)
        for t in (self.V, self.lr_v) + ((self.v_buf,) if self.momentum else ()):
            t[i] = 0
        self.s[i] = 1
        self.nrm2[i] = 0
        self.s_rows.index_fill_(0, rows, 1)

    def cell_weights(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.hidden_weights().index_select(0, self.cell_rows[i])
        return w.detach().cpu().clone(), self.V[i, :, : self.L.feat_len[i]].T.detach().cpu().clone()


class _EpochRunner:
    """Runs epochs eagerly, or (CUDA, opt-in) replays one captured CUDA graph per epoch: the
    first epoch runs eagerly on a side stream (warm-up), the second is captured, then replayed.
    UNTESTED on a GPU so far (no GPU where it was written): opt in with
    BENCH_SUITE_CUDA_GRAPHS=1 or ``train_group(..., cuda_graphs=True)``; a capture error falls
    back to eager epochs (``timing['engine']`` says which ran).

    The sample orders are drawn on the CPU from ``order_gen`` (the same on every device), one
    ``randperm`` per epoch as before, ``BLOCK`` epochs at a time: one host-to-device copy per
    block, so no epoch waits on the host."""

    BLOCK = 32

    def __init__(self, engine: _FusedEngine, enabled: bool, order_gen: torch.Generator, epochs: int) -> None:
        self.engine = engine
        self.enabled = enabled and engine.device.type == "cuda"
        self.graph = None
        self.epochs = 0
        self.note = "graph" if self.enabled else "eager"
        self.order_gen, self.total_epochs = order_gen, epochs
        self.full_batch = engine.batch >= engine.n
        self.block: torch.Tensor | None = None
        self.perm_buf = None
        if self.enabled and not self.full_batch:
            self.perm_buf = torch.empty(engine.n, dtype=torch.long, device=engine.device)

    def _perm(self) -> torch.Tensor | None:
        """This epoch's sample order, on the device."""
        if self.full_batch:
            return None
        j = self.epochs % self.BLOCK
        if j == 0:
            count = min(self.BLOCK, self.total_epochs - self.epochs)
            perms = torch.stack([torch.randperm(self.engine.n, generator=self.order_gen) for _ in range(count)])
            self.block = perms.to(self.engine.device)
        return self.block[j]

    def run(self) -> None:
        eng = self.engine
        perm = self._perm()
        self.epochs += 1
        if not self.enabled:
            eng.run_epoch(perm)
            return
        if perm is not None:
            self.perm_buf.copy_(perm)  # device to device, in stream order
        if self.graph is not None:
            self.graph.replay()
        elif self.epochs == 1:  # warm-up: a real epoch, eager, on a side stream
            side = torch.cuda.Stream(eng.device)
            side.wait_stream(torch.cuda.current_stream(eng.device))
            with torch.cuda.stream(side):
                eng.run_epoch(self.perm_buf)
            torch.cuda.current_stream(eng.device).wait_stream(side)
        else:
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    eng.run_epoch(self.perm_buf)
            except Exception as exc:  # noqa: BLE001 - fall back to eager epochs
                self.enabled = False
                self.note = f"eager (graph capture failed: {type(exc).__name__}: {str(exc)[:120]})"
                eng.run_epoch(self.perm_buf)
                return
            self.graph = graph
            graph.replay()


def train_group(
    data: TaskData,
    cells: list[CellSpec],
    *,
    order_seed: int,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int, int], None] | None = None,
    keep_weights: bool = False,
    cuda_graphs: bool | None = None,
    norm_tracking: str | None = None,
) -> list[CellResult]:
    """Train ``cells`` (which share ``data`` and a schedule) fused; return one result each.

    ``keep_weights`` puts each cell's initial and final (W, V) on the CPU in ``result.extra``.
    ``cuda_graphs`` (default: $BENCH_SUITE_CUDA_GRAPHS, off) replays each epoch as a CUDA graph
    on CUDA (ignored elsewhere). ``norm_tracking`` (default: $BENCH_SUITE_NORM_TRACKING, auto)
    chooses how constrained cells follow ||W - W0|| between exact measurements: ``lowrank``
    (from B x m quantities; the choice for B << d), ``exact`` (a pass over W every step)."""
    if not cells:
        return []
    device = torch.device(device)
    sched = cells[0].config.schedule_key()
    for cell in cells:
        if cell.config.schedule_key() != sched:
            raise ValueError("cells of one fused group must share epochs, batch_size, eval_every and precision")
        if cell.config.loss == "ce" and not data.classification:
            raise ValueError("loss 'ce' needs a classification task; use loss 'mse' for regression targets")
    norm_tracking = norm_tracking or os.environ.get(NORM_TRACKING_ENV, "").strip() or "auto"
    check_choice("norm tracking", norm_tracking, NORM_TRACKINGS)
    if cuda_graphs is None:
        cuda_graphs = bool(_env_flag(CUDA_GRAPHS_ENV))
    cfg = cells[0].config
    data = data.to(device)
    n, dim = data.x_train.shape
    k = data.num_outputs
    batch = n if cfg.batch_size is None else min(cfg.batch_size, n)
    steps_per_epoch = math.ceil(n / batch)
    n_cells = len(cells)

    order_gen = torch.Generator().manual_seed(order_seed)
    curves: dict[str, list] = {
        k_: [[] for _ in cells]
        for k_ in ("eval_epoch", "eval_train_loss", "eval_train_acc", "test_loss", "test_acc", "dist_w0",
                   "proj_active_frac", "wall_time")
    }
    status = ["done"] * n_cells
    reason: list[str | None] = [None] * n_cells
    stopped_at = [cfg.epochs] * n_cells
    flops_per_step = [step_flops(batch, dim, c.width, k, c.method.output) for c in cells]
    evals_flops = [0.0] * n_cells
    steps_done = 0
    fold_every = max(1, math.ceil(64 / steps_per_epoch))  # epochs between exact folds when not evaluating

    with precision_context(cfg.precision, device), torch.no_grad():
        eng = _FusedEngine(data, cells, batch=batch, device=device, norm_tracking=norm_tracking)
        epoch_loss = torch.zeros(cfg.epochs, n_cells, device=device, dtype=eng.dtype)
        epoch_acc = torch.zeros(cfg.epochs, n_cells, device=device, dtype=eng.dtype)
        runner = _EpochRunner(eng, cuda_graphs, order_gen, cfg.epochs)
        timer = _Timer(device)
        for epoch in range(cfg.epochs):
            runner.run()
            steps_done += steps_per_epoch
            epoch_loss[epoch] = eng.loss_acc / n
            epoch_acc[epoch] = eng.correct_acc / n
            last = epoch == cfg.epochs - 1
            evaluating = (epoch + 1) % cfg.eval_every == 0 or last
            if eng.constrained and (evaluating or (epoch + 1) % fold_every == 0):
                eng.fold()
            elif eng.constrained:
                eng.fold_if_small(steps_done)
            if evaluating:
                if not eng.constrained:
                    eng.fold()  # measures ||W - W0|| exactly
                tr_loss, tr_acc = eng.evaluate(data.x_train, data.y_train)
                te_loss, te_acc = (
                    eng.evaluate(data.x_test, data.y_test) if data.x_test is not None else (None, None)
                )
                values = {
                    "eval_train_loss": tr_loss.tolist(),
                    "eval_train_acc": tr_acc.tolist() if data.classification else [None] * n_cells,
                    "test_loss": te_loss.tolist() if te_loss is not None else [None] * n_cells,
                    "test_acc": te_acc.tolist() if te_acc is not None and data.classification else [None] * n_cells,
                    "dist_w0": eng.nrm2.clamp_min(0).sqrt().tolist(),
                    "proj_active_frac": (eng.proj_acc / steps_done).tolist(),
                }
                now = time.perf_counter() - timer.t0
                n_eval = n + (0 if data.x_test is None else data.x_test.shape[0])
                for i, cell in enumerate(cells):
                    if status[i] != "done":
                        continue
                    curves["eval_epoch"][i].append(epoch + 1)
                    curves["wall_time"][i].append(now)
                    for key, vals in values.items():
                        curves[key][i].append(vals[i])
                    evals_flops[i] += 2.0 * n_eval * dim * cell.width
                    if not math.isfinite(values["eval_train_loss"][i]):
                        eng.freeze(i)
                        status[i] = "diverged"
                        reason[i] = f"training loss became non-finite by epoch {epoch + 1}"
                        stopped_at[i] = epoch + 1
                if all(s_ != "done" for s_ in status):
                    break
            if on_epoch is not None:
                on_epoch(epoch + 1, cfg.epochs)
        timing = timer.stop()
        engine_note = f"fused/{eng.tracking}/{'p0' if eng.P0 is not None else 'nop0'}/{runner.note}"
        del runner

    losses_host = epoch_loss.T.tolist()
    accs_host = epoch_acc.T.tolist()
    results = []
    for i in range(n_cells):
        epochs_run = stopped_at[i]
        cell_curves = {key: vals[i] for key, vals in curves.items()}
        cell_curves["epoch"] = list(range(1, epochs_run + 1))
        cell_curves["train_loss"] = losses_host[i][:epochs_run]
        if data.classification:
            cell_curves["train_acc"] = accs_host[i][:epochs_run]
        final = {
            "train_loss": cell_curves["eval_train_loss"][-1],
            "train_acc": cell_curves["eval_train_acc"][-1],
            "test_loss": cell_curves["test_loss"][-1],
            "test_acc": cell_curves["test_acc"][-1],
            "dist_w0": cell_curves["dist_w0"][-1],
            "proj_active_frac": cell_curves["proj_active_frac"][-1],
            "radius": eng.radius[i] if math.isfinite(eng.radius[i]) else None,
        }
        flops = flops_per_step[i] * steps_per_epoch * epochs_run + evals_flops[i]
        extra: dict[str, Any] = {}
        if keep_weights:
            w, v = eng.cell_weights(i)
            extra = {"w0": eng.w_parts[i], "v0": eng.v_parts[i], "w": w, "v": v}
        results.append(
            CellResult(
                status=status[i],
                reason=reason[i],
                curves=cell_curves,
                final=final,
                timing={
                    **timing,
                    "epochs": epochs_run,
                    "group_size": n_cells,
                    "flops": flops,
                    # a fused group's time is shared: its cells' FLOP/s are reported for the group
                    "group_tflops_per_s": sum(
                        flops_per_step[j] * steps_per_epoch * stopped_at[j] + evals_flops[j] for j in range(n_cells)
                    ) / max(timing["train_time_s"], 1e-9) / 1e12,
                    "engine": engine_note,
                },
                w0_digest=eng.digests[i],
                extra=extra,
            )
        )
    return results
