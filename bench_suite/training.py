"""The training engine: (projected) SGD for one or many cells fused into one hidden matrix.

Cells that share data, batch order and schedule (same task, repetition, epochs, batch size)
are trained together: their hidden units sit side by side in one weight matrix W_all, so one
GEMM per step computes every cell's pre-activations and one GEMM its weight gradient.
Activation, output layer, loss, learning rates and the projection stay per cell, so a fused
cell computes the same numbers as the cell trained alone (tested to float tolerance).
A single cell is simply a group of one.

Hot-loop rules (airbench style): the data is on the device before training, batches are
gathered by index on the device, and nothing is read back to the host inside an epoch:
per-step metrics accumulate on the device and are read once per evaluation.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .methods import Method
from .model import ACTIVATIONS, check_choice, check_width, hidden_features, init_weights
from .projection import project_rows_by_segment
from .tasks.base import TaskData

LOSSES = ("ce", "mse")
EPS_MODES = ("relative", "absolute")
PRECISIONS = ("fp32", "tf32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one cell. Tasks set their own defaults (``Task.train_defaults``).

    - ``batch_size``: None (or >= n) means full-batch gradient descent.
    - ``loss``: ``ce`` (cross-entropy, classification only) or ``mse``: the mean over samples of
      the squared error summed over the K outputs (the paper's 1/2-sum loss times 2/n), with
      one-hot targets for classification.
    - ``eps``: the radius of ||W - W0||_F <= eps for constrained methods; ``eps_mode``
      ``relative`` multiplies it by ||W0||_F, ``absolute`` takes it as is.
    - ``eval_every``: exact evaluation (full train set, test set) every k epochs; the last
      epoch is always evaluated exactly. Per-epoch running loss/accuracy are always recorded.
    - ``precision``: ``fp32`` (strict), ``tf32`` (TF32 tensor cores for matmuls on CUDA; no
      effect on the CPU) or ``bf16`` (autocast of the hidden-layer GEMMs).
    """

    epochs: int = 100
    batch_size: int | None = 128
    lr_w: float = 0.1
    lr_v: float = 0.1
    momentum: float = 0.0
    loss: str = "ce"
    eps: float = 1.0
    eps_mode: str = "relative"
    eval_every: int = 1
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None (full batch), got {self.batch_size!r}")
        for name in ("lr_w", "lr_v"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not (0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not (isinstance(self.eps, (int, float)) and self.eps > 0 and not math.isnan(self.eps)):
            raise ValueError(f"eps must be > 0, got {self.eps!r}")
        if not isinstance(self.eval_every, int) or self.eval_every < 1:
            raise ValueError(f"eval_every must be a positive integer, got {self.eval_every!r}")
        check_choice("loss", self.loss, LOSSES)
        check_choice("eps_mode", self.eps_mode, EPS_MODES)
        check_choice("precision", self.precision, PRECISIONS)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def schedule_key(self) -> tuple:
        """What cells must share to be fused: the batch stream and the evaluation points."""
        return (self.epochs, self.batch_size, self.eval_every, self.precision)

    def updated(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)


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


def step_flops(batch: int, dim: int, width: int, outputs: int, output: str) -> float:
    """FLOPs of one SGD step of one cell: forward 2BdM + weight gradient 2BdM (no input
    gradient), plus the output layer's forward and two backward products."""
    rows = width // 2 if output == "paired" else width
    return 4.0 * batch * dim * width + 6.0 * batch * rows * outputs


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


def train_group(
    data: TaskData,
    cells: list[CellSpec],
    *,
    order_seed: int,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int, int], None] | None = None,
    keep_weights: bool = False,
) -> list[CellResult]:
    """Train ``cells`` (which share ``data`` and a schedule) fused; return one result each.

    ``keep_weights`` puts each cell's initial and final (W, V) on the CPU in ``result.extra``."""
    if not cells:
        return []
    device = torch.device(device)
    sched = cells[0].config.schedule_key()
    for cell in cells:
        if cell.config.schedule_key() != sched:
            raise ValueError("cells of one fused group must share epochs, batch_size, eval_every and precision")
        if cell.config.loss == "ce" and not data.classification:
            raise ValueError("loss 'ce' needs a classification task; use loss 'mse' for regression targets")
    cfg = cells[0].config
    data = data.to(device)
    x, y = data.x_train, data.y_train
    n, dim = x.shape
    k = data.num_outputs
    batch = n if cfg.batch_size is None else min(cfg.batch_size, n)
    steps_per_epoch = math.ceil(n / batch)
    n_cells = len(cells)

    # --- parameters: W_all (sum of widths x d) and one V per cell, all drawn on the CPU ---
    w_parts, v_parts, digests = [], [], []
    for cell in cells:
        weights = init_weights(
            cell.width, dim, k, cell.method.init, cell.method.output, torch.Generator().manual_seed(cell.init_seed)
        )
        w_parts.append(weights.w)
        v_parts.append(weights.v)
        digests.append(hashlib.sha256(weights.w.numpy().tobytes()).hexdigest()[:16])
    bounds = [0]
    for cell in cells:
        bounds.append(bounds[-1] + cell.width)
    w0 = torch.cat(w_parts).to(device, x.dtype)
    w_all = w0.clone().requires_grad_(True)
    vs = [v.to(device, x.dtype).requires_grad_(True) for v in v_parts]
    row_cell = torch.repeat_interleave(torch.arange(n_cells), torch.tensor([c.width for c in cells])).to(device)
    radius = []
    for cell, w_part in zip(cells, w_parts):
        if not cell.method.constrained:
            radius.append(math.inf)
        elif cell.config.eps_mode == "relative":
            radius.append(cell.config.eps * float(torch.linalg.vector_norm(w_part)))
        else:
            radius.append(cell.config.eps)
    radius_t = torch.tensor(radius, dtype=w0.dtype, device=device)
    any_constrained = any(c.method.constrained for c in cells)
    lr_rows = torch.cat([torch.full((c.width, 1), c.config.lr_w) for c in cells]).to(device)
    mom_rows = torch.cat([torch.full((c.width, 1), c.config.momentum) for c in cells]).to(device)
    lr_v = [c.config.lr_v for c in cells]
    use_momentum = any(c.config.momentum > 0 for c in cells)
    w_buf = torch.zeros_like(w0) if use_momentum else None
    v_bufs = [torch.zeros_like(v) for v in vs] if use_momentum else None
    onehot = F.one_hot(y, k).to(x.dtype) if data.classification else None
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16" else contextlib.nullcontext()
    )

    def targets(idx: torch.Tensor | None):
        if data.classification:
            return (y if idx is None else y[idx]), (onehot if idx is None else onehot[idx])
        return None, (y if idx is None else y[idx])

    def cell_losses(xb: torch.Tensor, labels, target) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        with autocast:
            pre_all = xb @ w_all.T
        pre_all = pre_all.to(xb.dtype)  # back from bf16 under autocast; the rest runs in the data's dtype
        losses, outs = [], []
        for i, cell in enumerate(cells):
            feats = hidden_features(pre_all[:, bounds[i] : bounds[i + 1]], cell.activation, cell.method.output)
            out = feats @ vs[i]
            if cell.config.loss == "ce":
                loss = F.cross_entropy(out, labels)
            else:
                loss = (out - target).pow(2).sum(dim=1).mean()
            losses.append(loss)
            outs.append(out)
        return losses, outs

    def correct_counts(outs: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        return torch.stack([(o.argmax(dim=1) == labels).sum() for o in outs]).to(torch.float32)

    @torch.no_grad()
    def evaluate(xs: torch.Tensor, ys: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact mean loss and accuracy per cell over a whole split (chunked forward)."""
        loss_sum = torch.zeros(n_cells, device=device, dtype=xs.dtype)
        correct = torch.zeros(n_cells, device=device, dtype=xs.dtype)
        for s in range(0, xs.shape[0], chunk):
            xb, yb = xs[s : s + chunk], ys[s : s + chunk]
            if data.classification:
                labels, target = yb, F.one_hot(yb, k).to(xb.dtype)
            else:
                labels, target = None, yb
            losses, outs = cell_losses(xb, labels, target)
            loss_sum += torch.stack(losses).detach() * xb.shape[0]
            if data.classification:
                correct += correct_counts(outs, labels)
        return loss_sum / xs.shape[0], correct / xs.shape[0]

    order_gen = torch.Generator().manual_seed(order_seed)
    epoch_loss = torch.zeros(cfg.epochs, n_cells, device=device, dtype=x.dtype)
    epoch_acc = torch.zeros(cfg.epochs, n_cells, device=device, dtype=x.dtype)
    proj_active = torch.zeros(n_cells, device=device)
    curves: dict[str, list] = {
        k_: [[] for _ in cells]
        for k_ in ("eval_epoch", "eval_train_loss", "eval_train_acc", "test_loss", "test_acc", "dist_w0",
                   "proj_active_frac", "wall_time")
    }
    status = ["done"] * n_cells
    reason: list[str | None] = [None] * n_cells
    stopped_at = [cfg.epochs] * n_cells
    flops_per_step = [step_flops(batch, dim, c.width, k, c.method.output) for c in cells]
    steps_done = 0
    evals_flops = [0.0] * n_cells

    with precision_context(cfg.precision, device):
        timer = _Timer(device)
        for epoch in range(cfg.epochs):
            perm = None if batch >= n else torch.randperm(n, generator=order_gen).to(device, non_blocking=True)
            for s in range(0, n, batch):
                idx = None if perm is None else perm[s : s + batch]
                xb = x if idx is None else x[idx]
                labels, target = targets(idx)
                losses, outs = cell_losses(xb, labels, target)
                total = torch.stack(losses).sum()
                grads = torch.autograd.grad(total, [w_all, *vs])
                with torch.no_grad():
                    rows_in_batch = xb.shape[0]
                    epoch_loss[epoch] += torch.stack(losses).detach() * rows_in_batch
                    if data.classification:
                        epoch_acc[epoch] += correct_counts(outs, labels)
                    gw, gvs = grads[0], grads[1:]
                    if use_momentum:
                        w_buf.mul_(mom_rows).add_(gw)
                        gw = w_buf
                        for i, gv in enumerate(gvs):
                            v_bufs[i].mul_(cells[i].config.momentum).add_(gv)
                        gvs = v_bufs
                    w_all.sub_(lr_rows * gw)
                    for i, gv in enumerate(gvs):
                        vs[i].sub_(lr_v[i] * gv)
                    if any_constrained:
                        proj_active += project_rows_by_segment(w_all, w0, row_cell, radius_t).to(torch.float32)
                steps_done += 1
            epoch_loss[epoch] /= n
            epoch_acc[epoch] /= n
            last = epoch == cfg.epochs - 1
            if (epoch + 1) % cfg.eval_every == 0 or last:
                tr_loss, tr_acc = evaluate(x, y)
                te_loss, te_acc = (
                    evaluate(data.x_test, data.y_test) if data.x_test is not None else (None, None)
                )
                with torch.no_grad():
                    sq = torch.zeros(n_cells, device=device, dtype=w0.dtype)
                    sq.index_add_(0, row_cell, (w_all - w0).pow(2).sum(1))
                values = {
                    "eval_train_loss": tr_loss.tolist(),
                    "eval_train_acc": tr_acc.tolist() if data.classification else [None] * n_cells,
                    "test_loss": te_loss.tolist() if te_loss is not None else [None] * n_cells,
                    "test_acc": te_acc.tolist() if te_acc is not None and data.classification else [None] * n_cells,
                    "dist_w0": sq.sqrt().tolist(),
                    "proj_active_frac": (proj_active / steps_done).tolist(),
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
                        _freeze_cell(i, bounds, w_all, w0, vs, lr_rows, w_buf, v_bufs)
                        lr_v[i] = 0.0
                        status[i] = "diverged"
                        reason[i] = f"training loss became non-finite by epoch {epoch + 1}"
                        stopped_at[i] = epoch + 1
                if all(s_ != "done" for s_ in status):
                    break
            if on_epoch is not None:
                on_epoch(epoch + 1, cfg.epochs)
        timing = timer.stop()

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
            "radius": radius[i] if math.isfinite(radius[i]) else None,
        }
        flops = flops_per_step[i] * steps_per_epoch * epochs_run + evals_flops[i]
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
                },
                w0_digest=digests[i],
                extra=(
                    {"w0": w_parts[i], "v0": v_parts[i], "w": w_all.detach()[bounds[i] : bounds[i + 1]].cpu().clone(),
                     "v": vs[i].detach().cpu().clone()}
                    if keep_weights else {}
                ),
            )
        )
    return results


@torch.no_grad()
def _freeze_cell(i, bounds, w_all, w0, vs, lr_rows, w_buf, v_bufs) -> None:
    """Stop a diverged cell without touching the others: zero its weights, learning rate and
    momentum, so its NaNs cannot spread (its rows of the shared GEMM then produce zeros)."""
    s, e = bounds[i], bounds[i + 1]
    for t in (w_all, w0, lr_rows) + ((w_buf,) if w_buf is not None else ()):
        t[s:e] = 0
    vs[i].zero_()
    if v_bufs is not None:
        v_bufs[i].zero_()
