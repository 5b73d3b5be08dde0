"""Epochs (eager or one CUDA graph each), the training loop and ``train_group``, the public entry.

The loop runs in **segments**: the epochs between two exact folds (at least 64 steps, and every
evaluation ends one). At a segment's end, and only there, the host reads the device: the exact
fold, the fold-cadence decision (``state.FOLD_*``), the divergence checks on the loss and on the
weights, evaluations, and checkpoints / graceful stops (``Checkpointing``); so a stop asked for
at any moment takes effect within max(one epoch, 64 steps).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict
from typing import Any, Callable

import torch

from ...core.config import TrainConfig  # noqa: F401 - re-exported
from ...core.flops import step_flops
from ...data.contract import TaskData
from ...model import check_choice
from ..common import (  # noqa: F401 - re-exported: the engine's face names them
    SEGMENT_MIN_STEPS,
    WEIGHT_NORM_LIMIT,
    Checkpointing,
    Timer,
    TrainingStopped,
    compute_dtype,
    divergence,
    evaluation_divergence,
    final_metrics,
    precision_context,
    state_problem,
)
from .layout import CellResult, CellSpec  # noqa: F401 - re-exported
from .state import CUDA_GRAPHS_ENV, NORM_TRACKING_ENV, NORM_TRACKINGS, _env_flag
from .step import _FusedEngine

HEALTH_MIN_STEPS = 16  # the device notes non-finite weights at epoch ends at least this many steps apart
STATE_FORMAT = "bench_suite.train_state/1"


class _EpochRunner:
    """Runs epochs eagerly, or (CUDA, opt-in) replays a captured CUDA graph per epoch: the first
    epoch of a process runs eagerly on a side stream (warm-up), then one graph is captured per
    fold cadence in use and replayed. UNTESTED on a GPU so far (no GPU where it was written):
    opt in with BENCH_SUITE_CUDA_GRAPHS=1 or ``train_group(..., cuda_graphs=True)``; a capture
    error falls back to eager epochs (``timing['engine']`` says which ran).

    The sample orders are drawn on the CPU from ``order_gen`` (the same on every device), one
    ``randperm`` per epoch, ``BLOCK`` epochs at a time: one host-to-device copy per block, so no
    epoch waits on the host. ``position`` / ``set_position`` save and restore where it is."""

    BLOCK = 32

    def __init__(self, engine: _FusedEngine, enabled: bool, order_gen: torch.Generator, epochs: int) -> None:
        self.engine = engine
        self.enabled = enabled and engine.device.type == "cuda"
        self.graphs: dict[int | None, Any] = {}
        self.epochs = 0  # epochs drawn so far (the next epoch's index)
        self.ran = 0  # epochs run by this process (the first is the graphs' warm-up)
        self.note = "graph" if self.enabled else "eager"
        self.order_gen, self.total_epochs = order_gen, epochs
        self.full_batch = engine.batch >= engine.n
        self.block: torch.Tensor | None = None
        self.block_state = order_gen.get_state()  # generator state at the start of the current block
        self.perm_buf = None
        if self.enabled and not self.full_batch:
            self.perm_buf = torch.empty(engine.n, dtype=torch.long, device=engine.device)

    def _draw_block(self) -> None:
        count = min(self.BLOCK, self.total_epochs - self.epochs)
        perms = torch.stack([torch.randperm(self.engine.n, generator=self.order_gen) for _ in range(count)])
        self.block = perms.to(self.engine.device)

    def _perm(self) -> torch.Tensor | None:
        """This epoch's sample order, on the device."""
        if self.full_batch:
            return None
        j = self.epochs % self.BLOCK
        if j == 0:
            self.block_state = self.order_gen.get_state()
            self._draw_block()
        return self.block[j]

    def position(self) -> dict[str, Any]:
        """Where the sample orders stand: the next epoch and the generator state at the start
        of its block of BLOCK epochs (the block is drawn again from it on restore)."""
        at_block_start = self.epochs % self.BLOCK == 0
        state = self.order_gen.get_state() if at_block_start else self.block_state
        return {"epochs": self.epochs, "block_state": state.clone()}

    def set_position(self, pos: dict[str, Any]) -> None:
        epochs = int(pos["epochs"])
        self.order_gen.set_state(pos["block_state"].clone())
        self.block_state = pos["block_state"].clone()
        self.epochs = epochs - epochs % self.BLOCK
        if not self.full_batch and epochs % self.BLOCK:
            self._draw_block()
        self.epochs = epochs

    def run(self, cadence: int | None) -> None:
        eng = self.engine
        perm = self._perm()
        self.epochs += 1
        self.ran += 1
        if not self.enabled:
            eng.run_epoch(perm, cadence)
            return
        if perm is not None:
            self.perm_buf.copy_(perm)  # device to device, in stream order
        graph = self.graphs.get(cadence)
        if graph is not None:
            graph.replay()
        elif self.ran == 1:  # warm-up: a real epoch, eager, on a side stream
            side = torch.cuda.Stream(eng.device)
            side.wait_stream(torch.cuda.current_stream(eng.device))
            with torch.cuda.stream(side):
                eng.run_epoch(self.perm_buf, cadence)
            torch.cuda.current_stream(eng.device).wait_stream(side)
        else:
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    eng.run_epoch(self.perm_buf, cadence)
            except Exception as exc:  # noqa: BLE001 - fall back to eager epochs
                self.enabled = False
                self.note = f"eager (graph capture failed: {type(exc).__name__}: {str(exc)[:120]})"
                eng.run_epoch(self.perm_buf, cadence)
                return
            self.graphs[cadence] = graph
            graph.replay()


def _cell_fingerprint(data: TaskData, cells: list[CellSpec], order_seed: int, eng: _FusedEngine) -> dict[str, Any]:
    """What a saved state must have been made with to resume this group (plain data)."""
    return {
        "cells": [{"method": c.method.name, "width": c.width, "activation": c.activation,
                   "config": asdict(c.config), "init_seed": c.init_seed} for c in cells],
        "order_seed": order_seed, "n": eng.n, "d": eng.dim, "k": eng.k, "dtype": str(eng.dtype),
        "tracking": eng.tracking, "p0_table": eng.P0 is not None, "labels": data.label_digest(),
        "data_checksum": data.checksum,
    }


def grouping(cells: list[CellSpec]) -> str:
    """How a cell ran, for its record (``timing.grouping``): ``alone`` (a group of one), or
    ``fused/`` and a digest of the group's cells (method, width, activation and settings, not
    the seeds), equal for every repetition of a grid run the same way. On the CPU a cell's
    numbers do not depend on it (``step._FusedEngine.output_grad``); on CUDA cuBLAS picks its
    kernels by the fused matrices' shapes, so records of one cell in different groupings can
    differ by rounding, which a chaotic run amplifies (docs/design.md, "Same cell, same number")."""
    if len(cells) == 1:
        return "alone"
    members = sorted(json.dumps([c.method.name, c.width, c.activation, asdict(c.config)], sort_keys=True)
                     for c in cells)
    return "fused/" + hashlib.sha256("\n".join(members).encode()).hexdigest()[:12]


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
    checkpoint: Checkpointing | None = None,
) -> list[CellResult]:
    """Train ``cells`` (which share ``data`` and a schedule) fused; return one result each.

    ``keep_weights`` puts each cell's initial and final (W, V) on the CPU in ``result.extra``.
    ``cuda_graphs`` (default: $BENCH_SUITE_CUDA_GRAPHS, off) replays each epoch as a CUDA graph
    on CUDA (ignored elsewhere). ``norm_tracking`` (default: $BENCH_SUITE_NORM_TRACKING, auto)
    chooses how constrained cells follow ||W - W0|| between exact measurements: ``lowrank``
    (from B x m quantities; the choice for B << d), ``exact`` (a pass over W every step).
    ``checkpoint`` saves / resumes / stops the group (``Checkpointing``); a stop raises
    ``TrainingStopped`` after the save. Raises ValueError for cells that cannot share a group."""
    if not cells:
        return []
    device = torch.device(device)
    sched = cells[0].config.schedule_key()
    for cell in cells:
        if not cell.method.fused_expressible:
            raise ValueError(f"method {cell.method.name!r} needs the reference trainer (optimizer "
                             f"{cell.method.optimizer}, projection {cell.method.projection_name}, ...): train it with "
                             f"bench_suite.train.dispatch.train_cells or bench_suite.train.reference.train_reference")
        if cell.config.schedule_key() != sched:
            raise ValueError("cells of one fused group must share epochs, batch_size, eval_every and precision")
        if cell.config.loss == "ce" and not data.classification:
            raise ValueError("loss 'ce' needs a classification task; use loss 'mse' for regression targets")
    norm_tracking = norm_tracking or os.environ.get(NORM_TRACKING_ENV, "").strip() or "auto"
    check_choice("norm tracking", norm_tracking, NORM_TRACKINGS)
    if cuda_graphs is None:
        cuda_graphs = bool(_env_flag(CUDA_GRAPHS_ENV))
    data = data.to(device, compute_dtype(cells[0].config.precision))
    with precision_context(cells[0].config.precision, device), torch.no_grad():
        return _Training(data, cells, order_seed, device, cuda_graphs, norm_tracking, checkpoint).run(
            on_epoch, keep_weights)


class _Training:
    """One call of ``train_group``: the engine, the epoch runner and the loop's own state."""

    def __init__(self, data: TaskData, cells: list[CellSpec], order_seed: int, device: torch.device,
                 cuda_graphs: bool, norm_tracking: str, checkpoint: Checkpointing | None) -> None:
        cfg = self.cfg = cells[0].config
        self.data, self.cells, self.device = data, cells, device
        self.ckpt = checkpoint or Checkpointing()
        n, self.dim = data.x_train.shape
        self.n = n
        self.batch = n if cfg.batch_size is None else min(cfg.batch_size, n)
        self.spe = math.ceil(n / self.batch)  # steps per epoch
        C = self.C = len(cells)
        self.eng = eng = _FusedEngine(data, cells, batch=self.batch, device=device, norm_tracking=norm_tracking)
        self.runner = _EpochRunner(eng, cuda_graphs, torch.Generator().manual_seed(order_seed), cfg.epochs)
        self.fingerprint = _cell_fingerprint(data, cells, order_seed, eng)
        self.grouping = grouping(cells)
        # flops: every step charged a full batch; without the X·W0ᵀ table the forward has one more GEMM
        extra = 0.0 if eng.P0 is not None else 2.0 * self.batch * self.dim
        self.flops_per_step = [step_flops(self.batch, self.dim, c.width, data.num_outputs, c.method.output)
                               + extra * c.width for c in cells]
        self.segment_epochs = max(1, math.ceil(SEGMENT_MIN_STEPS / self.spe))
        self.health_epochs = max(1, math.ceil(HEALTH_MIN_STEPS / self.spe))  # a few small ops each time
        # --- the loop's state (all of it goes into a checkpoint) ---
        self.epoch = 0  # epochs done
        self.curves: dict[str, list] = {
            k: [[] for _ in cells]
            for k in ("eval_epoch", "eval_train_loss", "eval_train_acc", "test_loss", "test_acc", "dist_w0",
                      "proj_active_frac", "wall_time")
        }
        self.status = ["done"] * C
        self.reason: list[str | None] = [None] * C
        self.stopped_at = [cfg.epochs] * C
        self.evals_flops = [0.0] * C
        self.steps_done = 0
        self.mom_since = 0  # steps since the momentum buffer was last folded
        self.redos = 0  # stretches re-run at fold cadence 1 (their first run risked float32's range)
        self.cadence_segments: dict[str, int] = {}  # device-side fold decision: segments per cadence
        self.times_before: dict[str, float] = {}
        self.resumed_at: list[int] = []
        self.epoch_loss = torch.zeros(cfg.epochs, C, device=device, dtype=eng.dtype)
        self.epoch_acc = torch.zeros(cfg.epochs, C, device=device, dtype=eng.tdt)
        if self.ckpt.resume is not None:
            problem = self._check_state(self.ckpt.resume)
            if problem is None:
                self._load_state(self.ckpt.resume)
            elif self.ckpt.invalid is not None:
                self.ckpt.invalid(problem)

    # ----- the loop -----
    def live(self) -> list[int]:
        return [i for i in range(self.C) if self.status[i] == "done"]

    def is_segment_end(self, e: int) -> bool:
        """Whether epoch index ``e`` (0-based) ends a segment."""
        cfg = self.cfg
        return (e + 1) % cfg.eval_every == 0 or (e + 1) % self.segment_epochs == 0 or e == cfg.epochs - 1

    def run(self, on_epoch: Callable[[int, int], None] | None, keep_weights: bool) -> list[CellResult]:
        eng, cfg = self.eng, self.cfg
        sync_free = eng.constrained and eng.host_check is None
        timer = self.timer = Timer(self.device, self.times_before)
        last_save = (self.epoch, time.perf_counter())
        seg_seconds: list[float] = []
        while self.epoch < cfg.epochs and self.live():
            start = self.epoch
            end = next(e for e in range(start, cfg.epochs) if self.is_segment_end(e))
            t_seg = time.perf_counter()
            cadence = eng.cadence
            saved = None
            if sync_free and cadence != 1:  # a stretch that may have to be re-run
                saved = (eng.snapshot(), self.runner.position(), self.steps_done, self.mom_since)
            while True:
                eng.start_stretch()
                self._run_epochs(start, end, cadence, on_epoch)
                eng.fold()  # exact: ||W - W0|| measured, projected exactly, s <- 1 (and the momentum buffer)
                self.mom_since = 0
                if saved is not None and eng.stretch_overflowed(self.live()):
                    eng.restore(saved[0])
                    self.runner.set_position(saved[1])
                    self.steps_done, self.mom_since = saved[2], saved[3]
                    cadence, saved = 1, None
                    self.redos += 1
                    continue
                break
            if sync_free:
                name = "none" if cadence is None else str(cadence)
                self.cadence_segments[name] = self.cadence_segments.get(name, 0) + 1
                eng.cadence = eng.next_cadence(self.live(), (end + 1 - start) * self.spe)
            self.epoch = end + 1
            self._segment_end(end)
            seg_seconds.append(time.perf_counter() - t_seg)
            if self.epoch >= cfg.epochs or not self.live():
                break
            last_save = self.ckpt.at_segment_end(self.epoch, cfg.epochs, last_save, seg_seconds, self.export_state)
        return self._results(timer.stop(), keep_weights)

    def _run_epochs(self, start: int, end: int, cadence: int | None,
                    on_epoch: Callable[[int, int], None] | None) -> None:
        """Epochs ``start..end`` (0-based, inclusive); folds between epochs as run_epoch does
        inside one (the exact fold after ``end`` is the caller's)."""
        eng, spe, n = self.eng, self.spe, self.n
        per = None if cadence is None else (1 if spe >= cadence else max(1, cadence // spe))
        for e in range(start, end + 1):
            self.runner.run(cadence)
            self.steps_done += spe
            self.epoch_loss[e] = eng.loss_acc / n
            self.epoch_acc[e] = eng.correct_acc.to(eng.tdt) / n
            if (e + 1) % self.health_epochs == 0:
                eng.note_health(e + 1)
            if e < end:
                if eng.constrained:
                    if eng.host_check is not None:
                        if self.steps_done % eng.host_check == 0:
                            eng.fold_small_if_needed()
                    elif per is not None and (e + 1 - start) % per == 0:
                        eng.fold_small()
                if eng.momentum:  # no stretch of more than mom_fold_steps steps without a fold
                    self.mom_since += spe
                    if spe >= eng.mom_fold_steps or self.mom_since + spe > eng.mom_fold_steps:
                        eng.fold_momentum()
                        self.mom_since = 0
            if on_epoch is not None:
                on_epoch(e + 1, self.cfg.epochs)

    def _segment_end(self, end: int) -> None:
        """After the exact fold of the segment ending at epoch index ``end``: divergence checks
        (running loss, weights), the evaluation if due (and for cells found diverged)."""
        eng, data, cfg = self.eng, self.data, self.cfg
        epoch = end + 1
        evaluating = epoch % cfg.eval_every == 0 or epoch == cfg.epochs
        dist, vnorm = eng.weight_norms()
        seg_losses = self.epoch_loss[self.seg_start(end) : epoch].T.tolist()
        bad_epoch = eng.bad_epoch.tolist()
        why: dict[int, str] = {}
        for i in self.live():
            first_bad = next((j for j, v in enumerate(seg_losses[i]) if not math.isfinite(v)), None)
            k = self.health_epochs
            when = (f"by epoch {epoch}" if not bad_epoch[i] else f"in epoch {bad_epoch[i]}" if k == 1
                    else f"between epochs {bad_epoch[i] - k + 1} and {bad_epoch[i]}")
            text = divergence(dist[i], vnorm[i], epoch=epoch, when=when,
                              loss_bad_epoch=None if first_bad is None else self.seg_start(end) + first_bad + 1)
            if text is not None:
                why[i] = text
        if evaluating or why:
            tr_loss, tr_acc = eng.evaluate(data.x_train, data.y_train)
            te_loss, te_acc = eng.evaluate(data.x_test, data.y_test) if data.x_test is not None else (None, None)
            C = self.C
            values = {
                "eval_train_loss": tr_loss.tolist(),
                "eval_train_acc": tr_acc.tolist() if data.classification else [None] * C,
                "test_loss": te_loss.tolist() if te_loss is not None else [None] * C,
                "test_acc": te_acc.tolist() if te_acc is not None and data.classification else [None] * C,
                "dist_w0": dist,
                "proj_active_frac": (eng.proj_acc.to(eng.tdt) / self.steps_done).tolist(),
            }
            now = self.timer.wall()
            n_eval = self.n + (0 if data.x_test is None else data.x_test.shape[0])
            for i in self.live():
                if not (evaluating or i in why):
                    continue
                self.curves["eval_epoch"][i].append(epoch)
                self.curves["wall_time"][i].append(now)
                for key, vals in values.items():
                    self.curves[key][i].append(vals[i])
                self.evals_flops[i] += 2.0 * n_eval * self.dim * self.cells[i].width
                if i not in why:
                    text = evaluation_divergence(values["eval_train_loss"][i], values["test_loss"][i], epoch=epoch)
                    if text is not None:
                        why[i] = text
        for i, text in sorted(why.items()):
            eng.freeze(i)
            self.status[i] = "diverged"
            self.reason[i] = text
            self.stopped_at[i] = epoch

    def seg_start(self, end: int) -> int:
        start = end
        while start > 0 and not self.is_segment_end(start - 1):
            start -= 1
        return start

    def _results(self, timing: dict[str, float], keep_weights: bool) -> list[CellResult]:
        eng, data = self.eng, self.data
        kind = "fused" if self.C > 1 else "alone"
        engine_note = f"{kind}/{eng.tracking}/{'p0' if eng.P0 is not None else 'nop0'}/{self.runner.note}"
        losses_host = self.epoch_loss.T.tolist()
        accs_host = self.epoch_acc.T.tolist()
        folds = eng.folds.tolist()
        total_flops = sum(self.flops_per_step[j] * self.spe * self.stopped_at[j] + self.evals_flops[j]
                          for j in range(self.C))
        results = []
        for i in range(self.C):
            epochs_run = self.stopped_at[i]
            cell_curves = {key: vals[i] for key, vals in self.curves.items()}
            cell_curves["epoch"] = list(range(1, epochs_run + 1))
            cell_curves["train_loss"] = losses_host[i][:epochs_run]
            if data.classification:
                cell_curves["train_acc"] = accs_host[i][:epochs_run]
            final = final_metrics(cell_curves)
            final.update({
                "radius": eng.radius[i] if math.isfinite(eng.radius[i]) else None,
            })
            extra: dict[str, Any] = {}
            if keep_weights:
                w, v = eng.cell_weights(i)
                extra = {"w0": eng.w_parts[i], "v0": eng.v_parts[i], "w": w, "v": v}
            timing_i = {
                **timing,
                "epochs": epochs_run,
                "group_size": self.C,
                "flops": self.flops_per_step[i] * self.spe * epochs_run + self.evals_flops[i],
                # a fused group's time is shared: its cells' FLOP/s are reported for the group
                "group_tflops_per_s": total_flops / max(timing["train_time_s"], 1e-9) / 1e12,
                "engine": engine_note,
                "grouping": self.grouping,
                "dtype": str(eng.dtype).replace("torch.", ""),  # what it computed in (float64 for fp64)
                "small_folds": folds[i],
                "refolded_stretches": self.redos,
            }
            if self.cadence_segments:
                timing_i["fold_cadence_segments"] = dict(self.cadence_segments)
            if self.resumed_at:
                timing_i["resumed_at_epochs"] = list(self.resumed_at)
            results.append(CellResult(status=self.status[i], reason=self.reason[i], curves=cell_curves,
                                      final=final, timing=timing_i, w0_digest=eng.digests[i], extra=extra))
        return results

    # ----- state: export, check, load -----
    def export_state(self) -> dict[str, Any]:
        """The whole training state at a segment end, as CPU tensors and plain Python (what
        ``torch.save`` writes and ``torch.load(weights_only=True)`` reads back)."""
        eng = self.eng
        return {
            "format": STATE_FORMAT,
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "epochs": self.cfg.epochs,
            "engine": {k: t.detach().cpu().clone() for k, t in eng.state_tensors().items()},
            "epoch_loss": self.epoch_loss[: self.epoch].cpu().clone(),
            "epoch_acc": self.epoch_acc[: self.epoch].cpu().clone(),
            "orders": self.runner.position(),
            "loop": {
                "curves": self.curves, "status": self.status, "reason": self.reason, "stopped_at": self.stopped_at,
                "evals_flops": self.evals_flops, "steps_done": self.steps_done, "mom_since": self.mom_since,
                "cadence": eng.cadence, "redos": self.redos, "cadence_segments": self.cadence_segments,
                "times": self.timer.stop() if hasattr(self, "timer")
                else {}, "resumed_at": self.resumed_at,
            },
        }

    def _check_state(self, state: Any) -> str | None:
        """None when ``state`` can resume this group, else what is wrong (one line)."""
        problem = state_problem(state, fmt=STATE_FORMAT, fingerprint=self.fingerprint, epochs=self.cfg.epochs,
                                made_for="group", loop_keys=(
                                    "curves", "status", "reason", "stopped_at", "evals_flops", "steps_done",
                                    "mom_since", "cadence", "redos", "cadence_segments", "times", "resumed_at"))
        if problem is not None:
            return problem
        epoch = state["epoch"]
        live = self.eng.state_tensors()
        tensors = state.get("engine")
        if not isinstance(tensors, dict) or set(tensors) != set(live):
            return "its engine tensors are not this engine's"
        for k, t in live.items():
            src = tensors[k]
            if not isinstance(src, torch.Tensor) or tuple(src.shape) != tuple(t.shape) or src.dtype != t.dtype:
                return f"tensor {k} has another shape or dtype"
        for key, shape in (("epoch_loss", (epoch, self.C)), ("epoch_acc", (epoch, self.C))):
            if not isinstance(state.get(key), torch.Tensor) or tuple(state[key].shape) != shape:
                return f"{key} has another shape"
        if any(len(state["loop"][k]) != self.C for k in ("status", "reason", "stopped_at", "evals_flops")):
            return "its loop state is for another number of cells"
        orders = state.get("orders")
        if not isinstance(orders, dict) or not isinstance(orders.get("block_state"), torch.Tensor):
            return "its sample-order position is missing"
        return None

    def _load_state(self, state: dict[str, Any]) -> None:
        eng = self.eng
        eng.restore({k: t.to(self.device) for k, t in state["engine"].items()})
        epoch = state["epoch"]
        self.epoch_loss[:epoch] = state["epoch_loss"].to(self.device)
        self.epoch_acc[:epoch] = state["epoch_acc"].to(self.device)
        self.runner.set_position(state["orders"])
        loop = state["loop"]
        self.curves = {k: [list(v) for v in vals] for k, vals in loop["curves"].items()}
        self.status, self.reason = list(loop["status"]), list(loop["reason"])
        self.stopped_at, self.evals_flops = list(loop["stopped_at"]), list(loop["evals_flops"])
        self.steps_done, self.mom_since = int(loop["steps_done"]), int(loop["mom_since"])
        eng.cadence = loop["cadence"]
        self.redos = int(loop["redos"])
        self.cadence_segments = dict(loop["cadence_segments"])
        self.times_before = dict(loop["times"])
        self.resumed_at = list(loop["resumed_at"]) + [epoch]
        self.epoch = epoch
        for i, status in enumerate(self.status):
            if status != "done":
                eng.freeze(i)
        eng._set_scale_rows()
