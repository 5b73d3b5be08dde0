"""The reference trainer: any method, one cell at a time, the obvious way.

A plain :class:`bench_suite.model.TwoLayerNet`, autograd, any ``torch.optim`` optimizer (one
parameter group for W at the cell's ``lr_w``, one for V at ``lr_v``; frozen parameters get
none), the method's lr schedule, then an explicit projection after every step (the Frobenius
ball, per-unit balls, or the method's own function). A method may bring its own training step
(``Method.train_step``). Everything else is the fused engine's (``bench_suite/train/engine``), so the
runner writes the same record and the two can be compared number for number
(``bench_suite/diagnostics/oracle.py``):

- the same data, W0 and V0 (drawn by ``init_weights`` from the cell's init seed, on the CPU in
  float32, then cast to the data's dtype), the same sample orders (one ``randperm`` per epoch
  from a CPU generator seeded with the order seed; none for a full batch), the same radius
  (``eps``, times ||W0||_F in float64 when relative);
- the same losses (cross-entropy, or the mean over samples of the squared error summed over the
  K outputs), running loss / accuracy per epoch (of each batch before its step), exact
  evaluations (train and test split) at the same epochs, the same curves and final metrics;
- the same divergence rules at the same points: the ends of the engine's segments (every
  evaluation, and at least every 64 steps): non-finite weights, norms or losses, ||W - W0||_F
  or ||V||_F above ``WEIGHT_NORM_LIMIT``; the weights' health is looked at after every epoch, so
  a reason names the epoch it happened in;
- the same checkpoint protocol (``Checkpointing``: resume, save at segment ends, graceful stop
  raising ``TrainingStopped``); its own state format (``STATE_FORMAT``): the model's tensors,
  the optimizer's ``state_dict``, the order generator's state and a training step's
  ``state.memory``, read back with ``torch.load(weights_only=True)``, so ``memory`` must hold
  tensors and plain Python (otherwise the checkpoint is ignored on resume, with a warning).

Precision: ``fp32`` and ``tf32`` as the engine (TF32 only matters on CUDA); ``bf16`` autocasts
the whole forward (the engine autocasts only the hidden-layer GEMMs), so bf16 numbers of the two
trainers differ by more than rounding. Slow by design (a host read of the loss every step);
docs/performance.md has its speed against the engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..core.config import TrainConfig
from ..core.flops import step_flops
from ..data.contract import TaskData
from ..methods import SINGLE_GROUP_OPTIMIZERS, Method, MethodError, schedule_factor
from ..model import TwoLayerNet
from ..model.projection import project_frobenius_ball, project_per_neuron_balls
from .common import (
    SEGMENT_MIN_STEPS,
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
from .engine.layout import CellResult, CellSpec

STATE_FORMAT = "bench_suite.reference_state/1"
EVAL_CHUNK = 8192  # samples per forward in an exact evaluation


class TrainStepError(RuntimeError):
    """A method's training step raised or returned something unusable (one line: method, step, why)."""


@dataclass
class StepState:
    """What a training step sees besides the model and the batch.

    ``optimizer``: the ``torch.optim`` optimizer over the trainable parameters (its groups'
    ``lr`` already scheduled for this step); ``loss_fn(outputs, targets)``: the cell's loss, the
    batch mean (a 0-dim tensor); ``step``: optimizer steps done before this one; ``epoch``: this
    step's epoch (0-based); ``total_steps``: of the whole run; ``w0``, ``v0``: the initial
    parameters (data dtype, on the device); ``radius``: the projection's radius (None:
    unconstrained); ``autocast()``: a context for the forward (bf16 autocast or nothing);
    ``memory``: the step's own state (tensors and plain Python: it goes into checkpoints)."""

    optimizer: torch.optim.Optimizer
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    config: TrainConfig
    method: Method
    w0: torch.Tensor
    v0: torch.Tensor
    radius: float | None
    total_steps: int
    autocast: Callable[[], Any]
    step: int = 0
    epoch: int = 0
    memory: dict[str, Any] = field(default_factory=dict)


def default_step(model: TwoLayerNet, batch: tuple[torch.Tensor, torch.Tensor], state: StepState):
    """zero_grad, forward, the cell's loss, backward, ``optimizer.step()``: (loss, outputs)."""
    x, y = batch
    state.optimizer.zero_grad(set_to_none=True)
    with state.autocast():
        out = model(x)
    out = out.to(x.dtype)
    loss = state.loss_fn(out, y)
    loss.backward()
    state.optimizer.step()
    return loss.detach(), out.detach()


def projection_of(method: Method) -> Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor] | None:
    """The method's projection as a function (w, w0, radius) -> w, or None (unconstrained)."""
    name = method.projection_name
    if name == "none":
        return None
    if name == "frobenius":
        return project_frobenius_ball
    if name == "per_neuron":
        return project_per_neuron_balls
    return method.projection


def cell_radius(cell: CellSpec, w0: torch.Tensor) -> float | None:
    """The radius of the cell's ball: None unconstrained; ``eps`` times ||W0||_F (float64 of the
    float32 draw, as the engine) when relative; ``eps`` when absolute."""
    if not cell.method.constrained:
        return None
    if cell.config.eps_mode == "relative":
        return cell.config.eps * float(torch.linalg.vector_norm(w0.double()))
    return cell.config.eps


def train_reference(
    data: TaskData,
    cell: CellSpec,
    *,
    order_seed: int,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int, int], None] | None = None,
    keep_weights: bool = False,
    checkpoint: Checkpointing | None = None,
) -> CellResult:
    """Train one cell the reference way (module docstring); the same ``CellResult`` as
    ``train_group``, with ``timing["trainer"] = "reference"``. ``keep_weights`` puts (w0, v0,
    w, v) on the CPU in ``result.extra``. Raises ``MethodError`` for settings the method cannot
    run with, ``TrainStepError`` when its training step fails, ``TrainingStopped`` after a save
    when ``checkpoint.stop`` asks for it."""
    device = torch.device(device)
    cfg = cell.config
    if cfg.loss == "ce" and not data.classification:
        raise ValueError("loss 'ce' needs a classification task; use loss 'mse' for regression targets")
    cell.method.check_cell(cell.width, cfg)
    cell.method.check_runtime()
    data = data.to(device, compute_dtype(cfg.precision))
    with precision_context(cfg.precision, device):
        return _ReferenceRun(data, cell, order_seed, device, checkpoint).run(on_epoch, keep_weights)


class _ReferenceRun:
    def __init__(self, data: TaskData, cell: CellSpec, order_seed: int, device: torch.device,
                 checkpoint: Checkpointing | None) -> None:
        self.data, self.cell, self.device = data, cell, device
        self.method = method = cell.method
        self.cfg = cfg = cell.config
        self.ckpt = checkpoint or Checkpointing()
        x = data.x_train
        self.n, self.dim = x.shape
        self.k = data.num_outputs
        self.dtype = x.dtype
        self.batch = self.n if cfg.batch_size is None else min(cfg.batch_size, self.n)
        self.spe = math.ceil(self.n / self.batch)
        self.total_steps = cfg.epochs * self.spe
        self.full_batch = self.batch >= self.n
        self.segment_epochs = max(1, math.ceil(SEGMENT_MIN_STEPS / self.spe))

        # --- the net, W0 and V0 exactly as the engine draws them ---
        model = TwoLayerNet(self.dim, cell.width, self.k, cell.activation, method.init, method.output,
                            generator=torch.Generator().manual_seed(cell.init_seed))
        self.w0_draw, self.v0_draw = model.w.detach().clone(), model.v.detach().clone()  # float32, CPU
        self.digest = hashlib.sha256(self.w0_draw.numpy().tobytes()).hexdigest()[:16]
        self.model = model.to(device=device, dtype=self.dtype)
        self.w0, self.v0 = self.model.w.detach().clone(), self.model.v.detach().clone()
        self.radius = cell_radius(cell, self.w0_draw)
        self.project = projection_of(method)

        # --- the optimizer: one group per trainable parameter, at the cell's learning rates ---
        groups = []
        for name, lr in (("w", cfg.lr_w), ("v", cfg.lr_v)):
            param = getattr(self.model, name)
            if name in method.frozen:
                param.requires_grad_(False)
            else:
                groups.append({"params": [param], "lr": float(lr)})
        if method.optimizer in SINGLE_GROUP_OPTIMIZERS and len(groups) > 1:  # check_cell: lr_w = lr_v
            groups = [{"params": [p for g in groups for p in g["params"]], "lr": groups[0]["lr"]}]
        self.base_lrs = [g["lr"] for g in groups]
        settings = dict(method.optimizer_settings)
        if method.optimizer == "SGD":
            settings["momentum"] = cfg.momentum
        self.optimizer = getattr(torch.optim, method.optimizer)(groups, lr=self.base_lrs[0], **settings)
        autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if cfg.precision == "bf16" \
            else contextlib.nullcontext
        self.state = StepState(self.optimizer, self.loss_mean, cfg, method, self.w0, self.v0, self.radius,
                               self.total_steps, autocast)
        self.step_fn = method.train_step or default_step
        self.order_gen = torch.Generator().manual_seed(order_seed)
        self.fingerprint = {
            "method": method.name, "method_code": method.identity(), "width": cell.width,
            "activation": cell.activation, "config": asdict(cfg), "init_seed": cell.init_seed,
            "order_seed": order_seed, "n": self.n, "d": self.dim, "k": self.k, "dtype": str(self.dtype),
            "labels": data.label_digest(), "data_checksum": data.checksum,
        }
        self.flops_per_step = step_flops(self.batch, self.dim, cell.width, self.k, method.output)

        # --- the loop's state (all of it goes into a checkpoint) ---
        self.epoch = 0
        self.curves: dict[str, list] = {k: [] for k in ("eval_epoch", "eval_train_loss", "eval_train_acc", "test_loss",
                                                        "test_acc", "dist_w0", "proj_active_frac", "wall_time")}
        self.epoch_loss: list[float] = []
        self.epoch_acc: list[float] = []
        self.status, self.reason, self.stopped_at = "done", None, cfg.epochs
        self.steps_done = 0
        self.proj_count = 0
        self.evals_flops = 0.0
        self.first_bad: int | None = None  # the first epoch after which W or V was non-finite
        self.times_before: dict[str, float] = {}
        self.resumed_at: list[int] = []
        if self.ckpt.resume is not None:
            problem = self._check_state(self.ckpt.resume)
            if problem is None:
                self._load_state(self.ckpt.resume)
            elif self.ckpt.invalid is not None:
                self.ckpt.invalid(problem)

    # ----- losses -----
    def _targets(self, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return F.one_hot(y, self.k).to(dtype) if self.data.classification else y

    def loss_mean(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The cell's loss of a batch: cross-entropy, or the squared error summed over outputs,
        averaged over the batch (the engine's)."""
        if self.cfg.loss == "ce":
            return F.cross_entropy(out, y)
        return (out - self._targets(y, out.dtype)).square().sum(1).mean()

    def loss_sum(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.cfg.loss == "ce":
            return F.cross_entropy(out, y, reduction="sum")
        return (out - self._targets(y, out.dtype)).square().sum()

    # ----- the loop -----
    def is_segment_end(self, e: int) -> bool:
        """The engine's segment ends (epoch index ``e``, 0-based): evaluations, >= 64 steps, the last."""
        cfg = self.cfg
        return (e + 1) % cfg.eval_every == 0 or (e + 1) % self.segment_epochs == 0 or e == cfg.epochs - 1

    def run(self, on_epoch: Callable[[int, int], None] | None, keep_weights: bool) -> CellResult:
        cfg = self.cfg
        timer = self.timer = Timer(self.device, self.times_before)
        last_save = (self.epoch, time.perf_counter())
        seg_seconds: list[float] = []
        while self.epoch < cfg.epochs and self.status == "done":
            start = self.epoch
            end = next(e for e in range(start, cfg.epochs) if self.is_segment_end(e))
            t_seg = time.perf_counter()
            for e in range(start, end + 1):
                self._run_epoch(e)
                if on_epoch is not None:
                    on_epoch(e + 1, cfg.epochs)
            self.epoch = end + 1
            self._segment_end(end)
            seg_seconds.append(time.perf_counter() - t_seg)
            if self.epoch >= cfg.epochs or self.status != "done":
                break
            last_save = self.ckpt.at_segment_end(self.epoch, cfg.epochs, last_save, seg_seconds, self.export_state)
        return self._result(timer.stop(), keep_weights)

    def _run_epoch(self, e: int) -> None:
        x, y, n, b = self.data.x_train, self.data.y_train, self.n, self.batch
        perm = None if self.full_batch else torch.randperm(n, generator=self.order_gen).to(self.device)
        total, correct = 0.0, 0
        for s0 in range(0, n, b):
            idx = None if perm is None else perm[s0 : s0 + b]
            xb, yb = (x, y) if idx is None else (x.index_select(0, idx), y.index_select(0, idx))
            loss, out = self._step(xb, yb, e)
            total += float(loss) * xb.shape[0]
            if self.data.classification:
                correct += int((out.argmax(1) == yb).sum())
            self.steps_done += 1
        self.epoch_loss.append(total / n)
        self.epoch_acc.append(correct / n)
        with torch.no_grad():
            healthy = all(bool(torch.isfinite(p).all()) for p in (self.model.w, self.model.v))
        if not healthy and self.first_bad is None:
            self.first_bad = e + 1

    def _step(self, xb: torch.Tensor, yb: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        method, state, t = self.method, self.state, self.steps_done
        try:
            factor = schedule_factor(method.lr_schedule, t, self.total_steps)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plug-in's schedule
            raise MethodError(f"method {method.name!r}: lr_schedule raised at step {t}: "
                              f"{type(exc).__name__}: {' '.join(str(exc).split())}") from exc
        if not (math.isfinite(factor) and factor >= 0):
            raise MethodError(f"method {method.name!r}: lr_schedule gave {factor!r} at step {t} of "
                              f"{self.total_steps}; a factor must be finite and >= 0")
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        state.step, state.epoch = t, epoch
        where = f"method {method.name!r}: train_step at step {t} (epoch {epoch + 1})"
        try:
            result = self.step_fn(self.model, (xb, yb), state)
        except (TrainingStopped, KeyboardInterrupt):
            raise
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plug-in's step (even sys.exit): its fault, in one line
            raise TrainStepError(f"{where} raised {type(exc).__name__}: {' '.join(str(exc).split())}") from exc
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TrainStepError(f"{where} returned {type(result).__name__}; it must return (loss, outputs)")
        loss, out = result
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (xb.shape[0], self.k):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise TrainStepError(f"{where} returned outputs {got}; expected ({xb.shape[0]}, {self.k}) "
                                 f"(batch x outputs)")
        if isinstance(loss, torch.Tensor) and loss.numel() != 1:
            raise TrainStepError(f"{where} returned a loss of shape {tuple(loss.shape)}; expected one number")
        if self.project is not None:
            with torch.no_grad():
                w = self.model.w
                try:
                    new = self.project(w.detach(), self.w0, self.radius)
                except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plug-in's projection
                    raise MethodError(f"method {method.name!r}: projection raised at step {t}: "
                                      f"{type(exc).__name__}: {' '.join(str(exc).split())}") from exc
                if not isinstance(new, torch.Tensor) or new.shape != w.shape:
                    got = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
                    raise MethodError(f"method {method.name!r}: projection returned {got} for W of shape "
                                      f"{tuple(w.shape)}; it must return W's shape")
                if not torch.equal(new, w):
                    self.proj_count += 1
                    w.copy_(new)
        if t == 0 or state.memory and t % 1000 == 0:  # early, not only when the first checkpoint is due
            self._check_memory()
        return (loss.detach() if isinstance(loss, torch.Tensor) else loss), out.detach()

    def _check_memory(self) -> None:
        """A method's ``state.memory`` goes into checkpoints, read back with
        ``torch.load(weights_only=True)``: tensors and plain Python only (MethodError naming the key)."""
        def bad(obj: Any) -> bool:
            if isinstance(obj, (torch.Tensor, str, int, float, bool, type(None))):
                return False
            if isinstance(obj, (list, tuple)):
                return any(bad(x) for x in obj)
            if isinstance(obj, dict):
                return any(not isinstance(k, (str, int)) or bad(v) for k, v in obj.items())
            return True
        for key, value in self.state.memory.items():
            if bad(value):
                raise MethodError(f"method {self.method.name!r}: state.memory[{key!r}] holds a "
                                  f"{type(value).__name__}, which cannot go into a checkpoint: keep tensors and "
                                  f"plain Python (numbers, strings, lists, dicts) there")

    @torch.no_grad()
    def evaluate(self, xs: torch.Tensor, ys: torch.Tensor) -> tuple[float, float]:
        """Exact mean loss and accuracy over a whole split (sums in float64)."""
        loss, correct = 0.0, 0
        for s0 in range(0, xs.shape[0], EVAL_CHUNK):
            xb, yb = xs[s0 : s0 + EVAL_CHUNK], ys[s0 : s0 + EVAL_CHUNK]
            with self.state.autocast():
                out = self.model(xb)
            out = out.to(xs.dtype)
            loss += float(self.loss_sum(out, yb))
            if self.data.classification:
                correct += int((out.argmax(1) == yb).sum())
        return loss / xs.shape[0], correct / xs.shape[0]

    def weight_norms(self) -> tuple[float, float]:
        """(||W - W0||_F, ||V||_F) in float64."""
        with torch.no_grad():
            dist = float(torch.linalg.vector_norm((self.model.w - self.w0).double()))
            vnorm = float(torch.linalg.vector_norm(self.model.v.double()))
        return dist, vnorm

    def seg_start(self, end: int) -> int:
        start = end
        while start > 0 and not self.is_segment_end(start - 1):
            start -= 1
        return start

    def _segment_end(self, end: int) -> None:
        """The engine's checks at a segment end: divergence (weights, running loss), then the
        exact evaluation when due (and for a cell found diverged)."""
        data, cfg = self.data, self.cfg
        epoch = end + 1
        evaluating = epoch % cfg.eval_every == 0 or epoch == cfg.epochs
        dist, vnorm = self.weight_norms()
        seg_losses = self.epoch_loss[self.seg_start(end) : epoch]
        first_bad = next((j for j, v in enumerate(seg_losses) if not math.isfinite(v)), None)
        when = f"in epoch {self.first_bad}" if self.first_bad else f"by epoch {epoch}"
        why = divergence(dist, vnorm, epoch=epoch, when=when,
                         loss_bad_epoch=None if first_bad is None else self.seg_start(end) + first_bad + 1)
        if evaluating or why:
            tr_loss, tr_acc = self.evaluate(data.x_train, data.y_train)
            te_loss, te_acc = self.evaluate(data.x_test, data.y_test) if data.x_test is not None else (None, None)
            values = {
                "eval_train_loss": tr_loss,
                "eval_train_acc": tr_acc if data.classification else None,
                "test_loss": te_loss,
                "test_acc": te_acc if data.classification else None,
                "dist_w0": dist,
                "proj_active_frac": self.proj_count / self.steps_done,
            }
            self.curves["eval_epoch"].append(epoch)
            self.curves["wall_time"].append(self.timer.wall())
            for key, value in values.items():
                self.curves[key].append(value)
            n_eval = self.n + (0 if data.x_test is None else data.x_test.shape[0])
            self.evals_flops += 2.0 * n_eval * self.dim * self.cell.width
            if why is None:
                why = evaluation_divergence(tr_loss, te_loss, epoch=epoch)
        if why is not None:
            self.status, self.reason, self.stopped_at = "diverged", why, epoch

    def _result(self, timing: dict[str, float], keep_weights: bool) -> CellResult:
        method, epochs_run = self.method, self.stopped_at
        curves = {key: list(vals) for key, vals in self.curves.items()}
        curves["epoch"] = list(range(1, epochs_run + 1))
        curves["train_loss"] = self.epoch_loss[:epochs_run]
        if self.data.classification:
            curves["train_acc"] = self.epoch_acc[:epochs_run]
        final = final_metrics(curves)
        final["radius"] = self.radius
        flops = self.flops_per_step * self.spe * epochs_run + self.evals_flops
        engine = f"reference/{method.optimizer}/{method.projection_name}"
        if method.lr_schedule != "constant":
            engine += f"/schedule={method.lr_schedule if isinstance(method.lr_schedule, str) else 'custom'}"
        if method.frozen:
            engine += f"/frozen={','.join(method.frozen)}"
        if method.train_step is not None:
            engine += f"/step={getattr(method.train_step, '__qualname__', 'custom')}"
        timing_out: dict[str, Any] = {
            **timing, "epochs": epochs_run, "group_size": 1, "flops": flops,
            "group_tflops_per_s": flops / max(timing["train_time_s"], 1e-9) / 1e12,
            "engine": engine, "trainer": "reference", "dtype": str(self.dtype).replace("torch.", ""),
            "grouping": "alone",
        }
        if self.resumed_at:
            timing_out["resumed_at_epochs"] = list(self.resumed_at)
        extra: dict[str, Any] = {}
        if keep_weights:
            extra = {"w0": self.w0_draw, "v0": self.v0_draw, "w": self.model.w.detach().cpu().clone(),
                     "v": self.model.v.detach().cpu().clone()}
        return CellResult(status=self.status, reason=self.reason, curves=curves, final=final, timing=timing_out,
                          w0_digest=self.digest, extra=extra)

    # ----- state: export, check, load -----
    def export_state(self) -> dict[str, Any]:
        """The whole state at a segment end, as CPU tensors and plain Python."""
        self._check_memory()
        return {
            "format": STATE_FORMAT,
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "epochs": self.cfg.epochs,
            "model": {"w": self.model.w.detach().cpu().clone(), "v": self.model.v.detach().cpu().clone()},
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "order_state": self.order_gen.get_state().clone(),
            "memory": _to_cpu(self.state.memory),
            "loop": {
                "curves": self.curves, "epoch_loss": self.epoch_loss, "epoch_acc": self.epoch_acc,
                "status": self.status, "reason": self.reason, "stopped_at": self.stopped_at,
                "steps_done": self.steps_done, "proj_count": self.proj_count, "evals_flops": self.evals_flops,
                "first_bad": self.first_bad, "times": self.timer.stop() if hasattr(self, "timer") else {},
                "resumed_at": self.resumed_at,
            },
        }

    def _check_state(self, state: Any) -> str | None:
        """None when ``state`` can resume this cell, else what is wrong (one line)."""
        problem = state_problem(state, fmt=STATE_FORMAT, fingerprint=self.fingerprint, epochs=self.cfg.epochs,
                                made_for="cell", loop_keys=(
                                    "curves", "epoch_loss", "epoch_acc", "status", "reason", "stopped_at",
                                    "steps_done", "proj_count", "evals_flops", "first_bad", "times", "resumed_at"))
        if problem is not None:
            return problem
        model = state.get("model")
        if not isinstance(model, dict) or any(
                not isinstance(model.get(k), torch.Tensor) or model[k].shape != getattr(self.model, k).shape
                for k in ("w", "v")):
            return "its model tensors are not this cell's"
        if len(state["loop"]["epoch_loss"]) != state["epoch"]:
            return "its loop state is incomplete"
        if not isinstance(state.get("optimizer"), dict) or not isinstance(state.get("order_state"), torch.Tensor):
            return "its optimizer or sample-order state is missing"
        return None

    def _load_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.model.w.copy_(state["model"]["w"].to(self.device, self.dtype))
            self.model.v.copy_(state["model"]["v"].to(self.device, self.dtype))
        self.optimizer.load_state_dict(state["optimizer"])
        self.order_gen.set_state(state["order_state"].clone())
        self.state.memory = _to_device(state.get("memory") or {}, self.device)
        loop = state["loop"]
        self.curves = {k: list(v) for k, v in loop["curves"].items()}
        self.epoch_loss, self.epoch_acc = list(loop["epoch_loss"]), list(loop["epoch_acc"])
        self.status, self.reason, self.stopped_at = loop["status"], loop["reason"], int(loop["stopped_at"])
        self.steps_done, self.proj_count = int(loop["steps_done"]), int(loop["proj_count"])
        self.evals_flops, self.first_bad = float(loop["evals_flops"]), loop["first_bad"]
        self.times_before = dict(loop["times"])
        self.epoch = int(state["epoch"])
        self.resumed_at = list(loop["resumed_at"]) + [self.epoch]


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_device(v, device) for v in value]
    return value
