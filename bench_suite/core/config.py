"""Configuration types and their vocabularies: plain data, no torch import.

Everything the command line, ``list``, ``plan``, ``check`` and ``report`` need to know about a
cell's settings lives here, so those commands start without importing torch (the engine and
the network import it; see ``bench_suite/train/__init__.py`` and ``bench_suite/model/__init__.py``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import InvalidArgument

LOSSES = ("ce", "mse")
EPS_MODES = ("relative", "absolute")
PRECISIONS = ("fp32", "tf32", "bf16", "fp64")
INITS = ("lecun", "mirrored_lecun")
OUTPUTS = ("free", "paired")
# activation names; bench_suite.model maps each to its function (a plug-in adds to both with
# bench_suite.model.register_activation)
ACTIVATIONS: list[str] = ["relu", "tanh", "softplus", "gelu"]


DEVICE_FORMS = "auto, cpu, cuda, cuda:N (N a GPU index) or mps"
_DEVICE_RE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")


def check_device_text(device: str, flag: str = "--device") -> str:
    """``device`` if it is a device string bench_suite takes (without importing torch), else
    :class:`~bench_suite.core.errors.InvalidArgument` (a ``ValueError``) naming ``flag`` and the valid forms."""
    if not isinstance(device, str) or not _DEVICE_RE.fullmatch(device.strip()):
        raise InvalidArgument(f"{flag} {device!r}: not a device; valid forms: {DEVICE_FORMS}")
    return device.strip()


def check_choice(kind: str, value: str, choices) -> None:
    """Raise :class:`~bench_suite.core.errors.InvalidArgument` (a ``ValueError``: "unknown <kind> ...;
    valid choices: ...") unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise InvalidArgument(f"unknown {kind} {value!r}; valid choices: {', '.join(choices)}")


def check_width(width: int, output: str, init: str) -> None:
    """A width m must be a positive integer, and even for a paired output layer or mirrored init."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise InvalidArgument(f"width must be a positive integer, got {width!r}")
    if (output == "paired" or init == "mirrored_lecun") and width % 2:
        raise InvalidArgument(
            f"width {width} is odd, but a paired output layer or mirrored init needs an even "
            f"width (m/2 pairs); use {width + 1} or {width - 1}"
        )


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
      effect on the CPU), ``bf16`` (autocast of the hidden-layer GEMMs) or ``fp64`` (the data
      and the weights in float64, TF32 off; the initial weights are the same float32 draws as
      at the other precisions, held in float64). With fp32, tf32 and bf16 the trainers compute
      in the dtype of the task's data (float32 for every built-in task).
    """

    # metadata: the command-line help and the kind of value (the CLI's flags are made from these)
    epochs: int = field(default=100, metadata={"kind": "positive_int", "help": "epochs (full-batch tasks: GD steps)"})
    batch_size: int | None = field(default=128, metadata={
        "kind": "batch", "metavar": "B|full", "help": "mini-batch size, or 'full' for full-batch gradient descent"})
    lr_w: float = field(default=0.1, metadata={"kind": "nonneg_float", "help": "learning rate of the hidden weights W"})
    lr_v: float = field(default=0.1, metadata={"kind": "nonneg_float", "help": "learning rate of the output weights V"})
    momentum: float = field(default=0.0, metadata={"kind": "float", "help": "SGD (heavy-ball) momentum in [0, 1)"})
    loss: str = field(default="ce", metadata={
        "kind": "choice", "choices": LOSSES,
        "help": "ce (cross-entropy) or mse (mean over samples of the squared error summed over outputs)"})
    eps: float = field(default=1.0, metadata={
        "kind": "positive_float", "help": "radius of the ball ||W - W0||_F <= eps (constrained methods)"})
    eps_mode: str = field(default="relative", metadata={
        "kind": "choice", "choices": EPS_MODES, "help": "eps as a multiple of ||W0||_F (relative) or as is (absolute)"})
    eval_every: int = field(default=1, metadata={
        "kind": "positive_int", "help": "exact evaluation every k epochs (the last epoch always)"})
    precision: str = field(default="fp32", metadata={
        "kind": "choice", "choices": PRECISIONS,
        "help": "fp32 (strict), tf32 (TF32 tensor cores on CUDA), bf16 (autocast of the hidden GEMMs) or fp64 "
                "(data and weights in float64)"})

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise InvalidArgument(f"epochs must be a positive integer, got {self.epochs!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise InvalidArgument(f"batch_size must be a positive integer or None (full batch), "
                                  f"got {self.batch_size!r}")
        for name in ("lr_w", "lr_v"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InvalidArgument(f"{name} must be a finite number >= 0, got {value!r}")
        if not (0 <= self.momentum < 1):
            raise InvalidArgument(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not (isinstance(self.eps, (int, float)) and self.eps > 0 and not math.isnan(self.eps)):
            raise InvalidArgument(f"eps must be > 0, got {self.eps!r}")
        if not isinstance(self.eval_every, int) or self.eval_every < 1:
            raise InvalidArgument(f"eval_every must be a positive integer, got {self.eval_every!r}")
        check_choice("loss", self.loss, LOSSES)
        check_choice("eps_mode", self.eps_mode, EPS_MODES)
        check_choice("precision", self.precision, PRECISIONS)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def settings(cls):
        """The fields with their metadata (``kind``, ``help``, ``choices``): what the CLI offers."""
        return fields(cls)

    def schedule_key(self) -> tuple:
        """What cells must share to be fused: the batch stream and the evaluation points."""
        return (self.epochs, self.batch_size, self.eval_every, self.precision)

    def updated(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)


