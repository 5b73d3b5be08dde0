"""Epochs (eager or one CUDA graph each) and ``train_group``, the public entry point."""

from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Any, Callable

import torch

from ..config import TrainConfig  # noqa: F401 - re-exported
from ..flops import step_flops
from ..model import check_choice
from ..tasks.base import TaskData
from .layout import CellResult, CellSpec  # noqa: F401 - re-exported
from .step import CUDA_GRAPHS_ENV, NORM_TRACKING_ENV, NORM_TRACKINGS, _env_flag, _FusedEngine


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
