"""The state of one fused group: W = W0 + s·U per cell, built from the cells' initial weights
(``_GroupState``), the folds that keep s and U inside float32's range, a diverged cell's
freezing, the exact norms, and the group's state as tensors (snapshots, checkpoints). The
engine's switches (environment variables) and memory budget live here too. One SGD step and the
evaluation are ``step.py``'s; the package docstring describes the design; docs/performance.md
counts what each step costs."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os

import torch
import torch.nn.functional as F

from ...core.env import env_flag_or_none
from ...data.contract import TaskData
from ...model import init_weights
from .layout import CellSpec, _Layout

# ------------------------------------------------------------------------------------------
# Folds: U <- s·U, s <- 1 (the iterate W = W0 + s·U does not change)
# ------------------------------------------------------------------------------------------
# Each active projection multiplies s by radius / ||W - W0|| (< 1). With a radius far below the
# step size s falls by orders of magnitude per step, U = (W - W0)/s grows as fast and leaves
# float32's range within a few steps unless the cell is folded. The rule: fold a cell whose s is
# below FOLD_BELOW. Where the engine may read s on the host (FOLD_CHECK_STEPS: the CPU, where a
# read costs nothing) it checks after every step and folds only then. Elsewhere (CUDA, and inside
# a captured CUDA graph, which cannot read anything) the decision is made on the device: a
# masked fold multiplies the rows of the cells below FOLD_BELOW by their s and every other row by
# exactly 1 (bit for bit a no-op). That is a pass over U (read + write), so it does not run every
# step: a group runs at a fold cadence k (steps between masked folds), chosen at each exact fold
# (a host read there, every >= 64 steps) from the smallest per-step shrink rho seen since the
# last one: no masked fold at all when rho**FOLD_RATE_MARGIN per step cannot take s from 1 below
# FOLD_DANGER within the stretch, else the largest k of FOLD_CADENCES for which it cannot take s
# from FOLD_BELOW below FOLD_DANGER in k steps. The bound is only a prediction, so the device also
# records the smallest s of the stretch; had it fallen below FOLD_DANGER (or become NaN), the
# stretch is re-run from a snapshot at cadence 1 (docs/performance.md has the costs).
FOLD_BELOW = 1e-4
# s >= FOLD_DANGER keeps U = (W - W0)/s, x·Uᵀ and the Gram tracking's products inside float32's
# range with a margin of ~1e8 (a float32 norm of U can still overflow: row_sq_norms says what then)
FOLD_DANGER = 1e-20
FOLD_CADENCES = (64, 16, 4, 1)
FOLD_RATE_MARGIN = 2.0  # the cadence assumes s may shrink twice as many orders per step as seen
FOLD_CHECK_STEPS = {"cpu": 1}  # device type -> steps between host reads of s; absent: decided on the device
# the momentum buffer is kept as b = gamma·B (gamma per cell, gamma <- mu·gamma each step), so
# b <- mu·b + G is one GEMM with accumulate into B; B <- gamma·B, gamma <- 1 every MOMENTUM_FOLD_STEPS
# steps at most, or sooner for a small mu, so gamma stays >= MOMENTUM_SCALE_MIN
MOMENTUM_SCALE_MIN = 1e-6
MOMENTUM_FOLD_STEPS = 256


# ------------------------------------------------------------------------------------------
# Engine switches (environment variables, so that runs through the Runner/CLI can set them)
# ------------------------------------------------------------------------------------------
CUDA_GRAPHS_ENV = "BENCH_SUITE_CUDA_GRAPHS"  # "1": capture one epoch as a CUDA graph (CUDA only)
NORM_TRACKING_ENV = "BENCH_SUITE_NORM_TRACKING"  # "auto" (default), "lowrank" or "exact"
P0_TABLE_ENV = "BENCH_SUITE_P0_TABLE_MB"  # memory budget of the X·W0ᵀ table, MiB
NORM_TRACKINGS = ("auto", "lowrank", "exact")
_P0_TABLE_MB_DEFAULT = {"cpu": 512, "cuda": 8192}
P0_FREE_FRACTION = 0.5  # on CUDA the table takes at most this share of the device's free memory


_env_flag = env_flag_or_none  # a switch: None unset, EnvVarError for junk (bench_suite.core.env)


def free_device_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device (``torch.cuda.mem_get_info``); None elsewhere."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def p0_table_budget(device: torch.device) -> float:
    """Bytes the X·W0ᵀ table may take: $BENCH_SUITE_P0_TABLE_MB or the device type's default, and
    on CUDA at most P0_FREE_FRACTION of the free memory (the rest: step buffers, evaluation
    chunks, a CUDA graph's pool)."""
    budget = os.environ.get(P0_TABLE_ENV)
    budget_b = (float(budget) if budget else _P0_TABLE_MB_DEFAULT.get(device.type, 512)) * 2**20
    free = free_device_memory(device)
    if free is not None:
        budget_b = min(budget_b, P0_FREE_FRACTION * free)
    return budget_b




# ------------------------------------------------------------------------------------------
# The group's state
# ------------------------------------------------------------------------------------------
class _GroupState:
    """State of one fused group (the step and evaluation are ``step._FusedEngine``'s). Hidden
    weights are kept as W = W0 + s·U (one scale s per cell): the projection onto
    ||W - W0||_F <= eps only rescales s, so it touches no (m x d) matrix, and pre-activations
    are X·W0ᵀ (a table, computed once) + s·(x·Uᵀ). ||U||² per cell is updated from B x m
    quantities (``lowrank``: <U_r, G_r> = Σ_b dpre·q and ||G_r||² = dpreᵀ(x xᵀ)dpre, G = dpreᵀx
    is the weight gradient) or recomputed (``exact``); ``fold`` writes s into U (U <- s·U,
    s <- 1) and re-measures ||U|| exactly at the end of every segment (>= 64 steps) and before
    every evaluation, so the iterate is projected exactly there; ``fold_small`` folds only the
    cells whose s is small (see FOLD_BELOW)."""

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
        self.mirror = None
        if L.mirror_dst:
            self.mirror = (torch.tensor(L.mirror_src, device=dev), torch.tensor(L.mirror_dst, device=dev))

        # --- per-cell hyperparameters as tensors (a diverged cell's are zeroed in place) ---
        self.radius = []
        for cell, w_part in zip(cells, self.w_parts):
            if not cell.method.constrained:
                self.radius.append(math.inf)
            elif cell.config.eps_mode == "relative":  # ||W0||_F in float64 (W0 is drawn in float32)
                self.radius.append(cell.config.eps * float(torch.linalg.vector_norm(w_part.double())))
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
        # a frozen parameter (Method.frozen) has learning rate 0: its weights stay as they are, bit for bit
        lr_w = per_cell(lambda c: 0.0 if "w" in c.method.frozen else c.config.lr_w)
        self.lr_rows = (lr_w[row_cell_cpu].unsqueeze(1) * sign).to(dev)
        self.lr_v = per_cell(lambda c: 0.0 if "v" in c.method.frozen else c.config.lr_v).view(C, 1, 1).to(dev)
        self.momentum = any(c.config.momentum > 0 for c in cells)
        self.mom_fold_steps = 0
        if self.momentum:
            mus = [c.config.momentum for c in cells]
            # gamma <- mu·gamma per step for the cells with momentum; the others keep gamma = 1 and
            # have their rows of B zeroed after each step (so their "buffer" is this step's G)
            self.mom_gamma_step = torch.tensor([m if m > 0 else 1.0 for m in mus], dtype=self.tdt, device=dev)
            self.gam = torch.ones(C, dtype=self.tdt, device=dev)
            self.gam_rows = torch.ones(M, 1, dtype=dt, device=dev)
            self.B = torch.zeros_like(self.U)  # the hidden layer's momentum buffer is gamma·B
            zero = [r for i, c in enumerate(cells) if c.config.momentum == 0 for r in L.cell_rows[i]]
            self.mom_zero_rows = torch.tensor(zero, device=dev) if zero else None
            smallest = min(m for m in mus if m > 0)
            self.mom_fold_steps = max(1, min(MOMENTUM_FOLD_STEPS,
                                             int(math.log(MOMENTUM_SCALE_MIN) / math.log(smallest))))
            self.mom_v = per_cell(lambda c: c.config.momentum).view(C, 1, 1).to(dev)
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
            # the exact norm is one read of U per step; tracking it from B x m quantities would
            # need <B, G>, i.e. a read of B (x·Bᵀ) per step instead: no cheaper (docs/performance.md)
            self.tracking = "exact"
        elif norm_tracking != "auto":
            self.tracking = norm_tracking
        else:  # the Gram path costs 2B²(d + m) flops; the exact one a pass over U (m x d)
            self.tracking = "lowrank" if 8 * batch <= self.dim and 2 * batch <= M else "exact"
        # folds: read s on the host every `host_check` steps, or decide on the device
        self.host_check = FOLD_CHECK_STEPS.get(device.type)
        self.cadence: int | None = None  # steps between masked folds (device decision); None: none
        self.smin = torch.ones(C, dtype=self.tdt, device=dev)  # smallest s since the last exact fold
        self.rho_min = torch.ones(C, dtype=self.tdt, device=dev)  # smallest per-step shrink since then
        self.folds = torch.zeros(C, dtype=torch.long, device=dev)  # small folds per cell (a statistic)
        # the first epoch whose end saw a cell's tracked ||U||² or its ||V|| non-finite (0: none yet)
        self.bad_epoch = torch.zeros(C, dtype=torch.long, device=dev)

        # --- per-epoch accumulators (static tensors: a CUDA graph writes into them) ---
        self.loss_acc = torch.zeros(C, dtype=dt, device=dev)  # sum of the per-sample losses
        self.correct_acc = torch.zeros(C, dtype=torch.long, device=dev)
        self._step_bufs: dict[int, dict[str, torch.Tensor]] = {}  # per batch size, reused every step
        self.proj_acc = torch.zeros(C, dtype=torch.long, device=dev)  # steps with an active projection

        # --- X·W0ᵀ, the constant part of every pre-activation, when it fits the budget ---
        self.P0 = None
        if self.n * M * self.x.element_size() <= p0_table_budget(device):
            self.P0 = self._p0_table()

    def _p0_table(self) -> torch.Tensor:
        """X·W0ᵀ (n, M), in chunks of samples; mirrored columns are copies of their sources."""
        M = self.L.M
        out = torch.empty(self.n, M, dtype=self.dtype, device=self.device)
        chunk = max(1, (1 << 26) // max(M, 1))
        for s0 in range(0, self.n, chunk):
            with self.autocast:
                part = torch.mm(self.x[s0 : s0 + chunk], self.W0.T)
            out[s0 : s0 + chunk] = part.to(self.dtype)
        if self.mirror is not None:
            src, dst = self.mirror
            out.index_copy_(1, dst, out.index_select(1, src))
        return out

    # ----- helpers -----
    def segsum(self, per_row: torch.Tensor) -> torch.Tensor:
        """Per-cell sums of a per-row vector, deterministic and without mixing cells (a NaN
        row of one cell cannot reach another's sum)."""
        self.seg_buf.index_copy_(0, self.row_pos, per_row.to(self.tdt))
        return self.seg_buf.view(self.L.C, self.L.Wmax).sum(1)

    def row_sq_norms(self, a: torch.Tensor, *, may_sync: bool) -> torch.Tensor:
        """||a_r||² per row in the tracking dtype from one float32 read of ``a`` (a float64
        reduction of float32 data would first write a float64 copy of it: 3x the traffic of
        the step's own passes over U). Its sum of squares overflows when ||a_r|| > ~1.8e19;
        with ``may_sync`` (where the host may read the device: the CPU's steps, every exact
        fold) an overflow is seen and the norms are taken again in float64. Without it (a
        CUDA step, which reads nothing back, so that an epoch can be a CUDA graph) the
        overflowed cell's tracked norm is inf, the projection makes its s 0 (or NaN), and the
        stretch check that guards float32's range (``FOLD_DANGER``) re-runs the stretch at
        fold cadence 1, where s >= FOLD_BELOW before every step's norm: there the float32
        norm overflows only for ||W_r - W0_r|| > 1.8e15, a cell diverged by any measure."""
        if a.dtype == torch.float64 or self.tdt != torch.float64:
            return torch.linalg.vector_norm(a, dim=1).to(self.tdt).square()
        norms = torch.linalg.vector_norm(a, dim=1)
        if may_sync and not bool(torch.isfinite(norms).all()):
            norms = torch.linalg.vector_norm(a, dim=1, dtype=torch.float64)
        return norms.to(self.tdt).square()

    def _set_scale_rows(self) -> None:
        self.s_rows.copy_(self.s.index_select(0, self.row_cell).unsqueeze(1))
        torch.div(self.lr_rows, self.s_rows, out=self.a_rows)


    # ----- folds -----
    def fold_small_if_needed(self) -> None:
        """The host-read rule: fold the cells whose s is below FOLD_BELOW, if there are any."""
        if bool((self.s < FOLD_BELOW).any()):
            self.fold_small()

    @torch.no_grad()
    def fold_small(self) -> None:
        """Fold the cells whose s is below FOLD_BELOW, decided on the device (no host read, so
        it can be part of a CUDA graph): U rows times s for those cells, times exactly 1 for
        every other cell (their U, s and tracked norm stay bit for bit)."""
        small = self.s < FOLD_BELOW
        factor = torch.where(small, self.s, torch.ones_like(self.s))
        self.U.mul_(factor.index_select(0, self.row_cell).unsqueeze(1).to(self.dtype))
        self.nrm2.mul_(factor.square())
        self.s.copy_(torch.where(small, torch.ones_like(self.s), self.s))
        self.folds.add_(small)
        self._set_scale_rows()

    @torch.no_grad()
    def fold_momentum(self) -> None:
        """B <- gamma·B, gamma <- 1 (the buffer b = gamma·B does not change)."""
        self.B.mul_(self.gam.index_select(0, self.row_cell).unsqueeze(1).to(self.dtype))
        self.gam.fill_(1.0)

    @torch.no_grad()
    def fold(self) -> None:
        """U <- s·U, s <- 1, ||U||² measured exactly; an iterate outside its ball (drift of the
        tracked norm) is projected exactly here. The momentum buffer is folded too."""
        if self.momentum:
            self.fold_momentum()
        exact = self.segsum(self.row_sq_norms(self.U, may_sync=True))
        if not self.constrained:
            self.nrm2.copy_(exact)
            return
        dist = self.s * exact.sqrt()
        over = dist > self.radius_t
        factor = self.s * torch.where(over, self.radius_t / dist, torch.ones_like(dist))
        self.U.mul_(factor.index_select(0, self.row_cell).unsqueeze(1).to(self.dtype))
        self.nrm2.copy_(exact * factor.square())
        self.s.fill_(1.0)
        self._set_scale_rows()

    def start_stretch(self) -> None:
        """Reset the evidence for the device-side fold decision (at an exact fold)."""
        self.smin.fill_(1.0)
        self.rho_min.fill_(1.0)

    def stretch_overflowed(self, live: list[int]) -> bool:
        """Whether some live cell's s fell below FOLD_DANGER (or became NaN) since start_stretch."""
        if not live:
            return False
        idx = torch.tensor(live, device=self.device)
        return bool((~(self.smin.index_select(0, idx) >= FOLD_DANGER)).any())

    def next_cadence(self, live: list[int], stretch_steps: int) -> int | None:
        """The masked-fold cadence for the next stretch of ``stretch_steps`` steps (between two
        exact folds), from the smallest per-step shrink seen in the last one (host read): None
        (no masked folds) if s cannot reach FOLD_DANGER from 1 within the stretch, else the
        largest of FOLD_CADENCES for which it cannot from FOLD_BELOW within that many steps."""
        rhos = [r for i, r in enumerate(self.rho_min.tolist()) if i in live and self.radius[i] < math.inf]
        if not rhos:
            return None
        rho = min(rhos)
        if not rho > 0:
            return 1
        per_step = FOLD_RATE_MARGIN * math.log(rho)  # log of the assumed worst shrink per step (<= 0)
        if per_step * stretch_steps >= math.log(FOLD_DANGER):
            return None
        for k in FOLD_CADENCES:
            if math.log(FOLD_BELOW) + per_step * k >= math.log(FOLD_DANGER):
                return k
        return 1

    def hidden_weights(self) -> torch.Tensor:
        return torch.addcmul(self.W0, self.s_rows, self.U)

    @torch.no_grad()

    @torch.no_grad()
    def note_health(self, epoch: int) -> None:
        """On the device (no host read): remember the first epoch (of those this is called at)
        at which a cell's tracked ||U||² or its ||V||² was non-finite, so a divergence found at
        the next segment end can name when it happened. (Unconstrained cells track no norm of U:
        a non-finite U of theirs shows at the segment end's exact measurement.)"""
        health = self.nrm2 + self.V.reshape(self.L.C, -1).to(self.tdt).square().sum(1)
        self.bad_epoch.masked_fill_(~torch.isfinite(health) & (self.bad_epoch == 0), epoch)

    @torch.no_grad()
    def weight_norms(self) -> tuple[list[float], list[float]]:
        """(||W - W0||_F, ||V||_F) per cell, in float64 (host read). ||W - W0|| is s·sqrt(nrm2),
        exact right after a fold; a non-finite U gives a non-finite norm."""
        dist = (self.s * self.nrm2.sqrt()).tolist()
        vnorm = torch.linalg.vector_norm(self.V.reshape(self.L.C, -1).to(self.tdt), dim=1).tolist()
        return dist, vnorm

    @torch.no_grad()
    def freeze(self, i: int) -> None:
        """Stop a diverged cell without touching the others: zero its weights, learning rates
        and momentum, so its NaNs cannot spread (its rows then produce zeros). Idempotent."""
        rows = self.cell_rows[i]
        for t in (self.U, self.W0, self.lr_rows, self.a_rows) + ((self.B,) if self.momentum else ()):
            t.index_fill_(0, rows, 0)
        if self.P0 is not None:
            self.P0.index_fill_(1, rows, 0)
        for t in (self.V, self.lr_v) + ((self.v_buf,) if self.momentum else ()):
            t[i] = 0
        if self.momentum:
            self.gam[i] = 1
        self.s[i] = 1
        self.nrm2[i] = 0
        self.s_rows.index_fill_(0, rows, 1)

    def cell_weights(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.hidden_weights().index_select(0, self.cell_rows[i])
        return w.detach().cpu().clone(), self.V[i, :, : self.L.feat_len[i]].T.detach().cpu().clone()

    # ----- the group's state as tensors -----
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor that training changes (the live ones: restore writes into them, so a
        captured CUDA graph keeps its addresses). Frozen cells' zeroed parameters are not here:
        ``freeze`` is replayed for them."""
        out = {"U": self.U, "V": self.V, "s": self.s, "nrm2": self.nrm2, "proj_acc": self.proj_acc,
               "folds": self.folds, "smin": self.smin, "rho_min": self.rho_min, "bad_epoch": self.bad_epoch}
        if self.momentum:
            out.update({"B": self.B, "gam": self.gam, "v_buf": self.v_buf})
        return out

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: t.clone() for k, t in self.state_tensors().items()}

    def restore(self, saved: dict[str, torch.Tensor]) -> None:
        live = self.state_tensors()
        if set(saved) != set(live):
            raise ValueError(f"state tensors {sorted(saved)} do not match the engine's {sorted(live)}")
        for k, t in live.items():
            src = saved[k]
            if tuple(src.shape) != tuple(t.shape) or src.dtype != t.dtype:
                raise ValueError(f"state tensor {k}: {tuple(src.shape)} {src.dtype}, expected "
                                 f"{tuple(t.shape)} {t.dtype}")
            t.copy_(src)
        self._set_scale_rows()
