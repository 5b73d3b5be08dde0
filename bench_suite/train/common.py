"""What both trainers share (the fused engine, ``engine/``, and the reference trainer,
``reference.py``), so that they write the same records by the same rules: the TF32 switch,
the timer, the checkpoint protocol (``Checkpointing``, ``TrainingStopped``, the checks a saved
state must pass before it resumes a run), the divergence rules and the final metrics read off
the curves."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

# A cell diverges when a weight, a norm or a metric is non-finite, or when a weight norm passes
# this bound (our choice: trained nets here have ||V||_F and ||W - W0||_F of order 1-100; with
# a saturated activation a blown-up net can keep a finite loss while ||V|| reaches 1e86 in float64)
WEIGHT_NORM_LIMIT = 1e8
SEGMENT_MIN_STEPS = 64  # steps between exact folds (and host reads) when not evaluating


def compute_dtype(precision: str) -> torch.dtype | None:
    """The dtype a cell's data and weights are cast to before training: float64 for ``fp64``;
    None (the data's own dtype) for the float32 precisions."""
    return torch.float64 if precision == "fp64" else None


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device):
    """TF32 on for ``tf32``, off for every other precision (fp64 included), for this block
    (restored after); bf16 autocast is applied in the step."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class Timer:
    """Wall time on the host; on CUDA also device time between CUDA events. ``before`` holds
    the times of earlier processes of a resumed run, which the totals include."""

    def __init__(self, device: torch.device, before: dict[str, float] | None = None) -> None:
        self.cuda = device.type == "cuda"
        self.before = dict(before or {})
        self.t0 = time.perf_counter()
        if self.cuda:
            self.start = torch.cuda.Event(enable_timing=True)
            self.end = torch.cuda.Event(enable_timing=True)
            self.start.record()

    def wall(self) -> float:
        return self.before.get("wall_time_s", 0.0) + time.perf_counter() - self.t0

    def stop(self) -> dict[str, float]:
        out = {}
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            out["train_time_s"] = self.start.elapsed_time(self.end) / 1000.0
        out["wall_time_s"] = time.perf_counter() - self.t0
        out.setdefault("train_time_s", out["wall_time_s"])
        return {k: v + self.before.get(k, 0.0) for k, v in out.items()}


class TrainingStopped(Exception):
    """``train_group`` stopped early because ``Checkpointing.stop`` asked it to; the state was
    saved (``Checkpointing.save``) at ``epoch`` of ``epochs``, so a later call resumes there."""

    def __init__(self, epoch: int, epochs: int, reason: str) -> None:
        super().__init__(f"stopped at epoch {epoch}/{epochs}: {reason}")
        self.epoch, self.epochs, self.reason = epoch, epochs, reason


@dataclass
class Checkpointing:
    """How ``train_group`` saves, resumes and stops (all optional). Our choice of interface: the
    engine knows when its state is whole (a segment end), the caller where it goes.

    - ``resume``: a state from an earlier ``save`` (``torch.load(weights_only=True)`` of it is
      fine): training continues from it and ends with the same numbers as without a stop.
    - ``save(state)``: called at a segment end when ``every_epochs`` epochs or ``every_seconds``
      seconds have passed since the last save (or the start), and before a stop.
    - ``stop(next_segment_s)``: called at every segment end with an estimate of the next
      segment's seconds; a reason (str) stops training after a save (``TrainingStopped``).
    - ``invalid(message)``: ``resume`` did not match this group; training starts from scratch.
    """

    resume: dict[str, Any] | None = None
    save: Callable[[dict[str, Any]], None] | None = None
    every_epochs: int | None = None
    every_seconds: float | None = None
    stop: Callable[[float], str | None] | None = None
    invalid: Callable[[str], None] | None = None

    def at_segment_end(self, epoch: int, epochs: int, last_save: tuple[int, float], seg_seconds: list[float],
                       export_state: Callable[[], dict[str, Any]]) -> tuple[int, float]:
        """What a trainer does at a segment end (its state whole, ``epoch`` epochs done of
        ``epochs``): save when due or before a stop, then raise ``TrainingStopped`` on a stop.
        ``last_save`` is (epoch, ``time.perf_counter()``) of the last save; returns the new one."""
        stop = self.stop(max(seg_seconds[-3:])) if self.stop is not None else None
        due = ((self.every_epochs and epoch - last_save[0] >= self.every_epochs)
               or (self.every_seconds is not None and time.perf_counter() - last_save[1] >= self.every_seconds))
        if (stop or due) and self.save is not None:
            self.save(export_state())
            last_save = (epoch, time.perf_counter())
        if stop:
            raise TrainingStopped(epoch, epochs, stop)
        return last_save


# ------------------------------------------------------------------------------------------
# Resuming: the checks every saved state passes before a trainer loads it
# ------------------------------------------------------------------------------------------
def state_problem(state: Any, *, fmt: str, fingerprint: dict[str, Any], epochs: int, made_for: str,
                  loop_keys: tuple[str, ...]) -> str | None:
    """None when ``state`` has the trainer's format ``fmt``, was made for this ``fingerprint``
    (the cells, settings and data it must resume; ``made_for`` names them: "group", "cell"), stops
    strictly inside this run's ``epochs`` and holds every key of its loop state (``loop_keys``);
    else what is wrong, in one line. The trainer then checks its own tensors."""
    if not isinstance(state, dict) or state.get("format") != fmt:
        return f"not a {fmt} state"
    if state.get("fingerprint") != fingerprint:
        theirs, ours = state.get("fingerprint") or {}, fingerprint
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        return f"made for another {made_for} or setting (differs in: {', '.join(diff)})"
    epoch = state.get("epoch")
    if not isinstance(epoch, int) or not 0 < epoch < epochs or state.get("epochs") != epochs:
        return f"epoch {epoch!r} is not inside this run's {epochs} epochs"
    loop = state.get("loop")
    if not isinstance(loop, dict) or any(k not in loop for k in loop_keys):
        return "its loop state is incomplete"
    return None


# ------------------------------------------------------------------------------------------
# Divergence and final metrics: the same rules and words in both trainers
# ------------------------------------------------------------------------------------------
def divergence(dist: float, vnorm: float, *, epoch: int, when: str, loss_bad_epoch: int | None) -> str | None:
    """Why a cell diverged by the segment end at ``epoch``, or None: its hidden or output weights
    are non-finite (``when`` says since when, e.g. "in epoch 12"), its running training loss was
    non-finite in epoch ``loss_bad_epoch``, or a weight norm passed ``WEIGHT_NORM_LIMIT``.
    ``dist`` = ||W - W0||_F, ``vnorm`` = ||V||_F."""
    if not math.isfinite(dist):
        return f"the hidden weights became non-finite {when} (||W - W0||_F = {dist} at epoch {epoch})"
    if not math.isfinite(vnorm):
        return f"the output weights became non-finite {when} (||V||_F = {vnorm} at epoch {epoch})"
    if loss_bad_epoch is not None:
        return f"the training loss became non-finite in epoch {loss_bad_epoch}"
    if dist > WEIGHT_NORM_LIMIT:
        return f"||W - W0||_F = {dist:.3g} exceeded the limit {WEIGHT_NORM_LIMIT:g} by epoch {epoch}"
    if vnorm > WEIGHT_NORM_LIMIT:
        return f"||V||_F = {vnorm:.3g} exceeded the limit {WEIGHT_NORM_LIMIT:g} by epoch {epoch}"
    return None


def evaluation_divergence(train_loss: float | None, test_loss: float | None, *, epoch: int) -> str | None:
    """Why a cell diverged when its exact evaluation at ``epoch`` is non-finite, or None."""
    for value, what in ((train_loss, "training loss"), (test_loss, "test loss")):
        if value is not None and not math.isfinite(value):
            return f"the {what} (exact evaluation) became non-finite by epoch {epoch}"
    return None


# the record's final metrics: the last value of each exact-evaluation curve (None without one)
FINAL_FROM_CURVES = (("train_loss", "eval_train_loss"), ("train_acc", "eval_train_acc"), ("test_loss", "test_loss"),
                     ("test_acc", "test_acc"), ("dist_w0", "dist_w0"), ("proj_active_frac", "proj_active_frac"))


def final_metrics(curves: dict[str, list]) -> dict[str, Any]:
    """The record's ``final`` values read off a cell's curves (``FINAL_FROM_CURVES``)."""
    return {key: (curves[curve][-1] if curves[curve] else None) for key, curve in FINAL_FROM_CURVES}
