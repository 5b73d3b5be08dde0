"""Configuration types and their vocabularies: plain data, no torch import.

Everything the command line, ``list``, ``plan``, ``check`` and ``report`` need to know about a
cell's settings lives here, so those commands start without importing torch (the engine and
the network import it; see ``bench_suite/training.py`` and ``bench_suite/model.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

LOSSES = ("ce", "mse")
EPS_MODES = ("relative", "absolute")
PRECISIONS = ("fp32", "tf32", "bf16")
INITS = ("lecun", "mirrored_lecun")
OUTPUTS = ("free", "paired")
# activation names; bench_suite.model maps each to its function (a plug-in adds to both with
# bench_suite.model.register_activation)
ACTIVATIONS: list[str] = ["relu", "tanh", "softplus", "gelu"]


def check_choice(kind: str, value: str, choices) -> None:
    """Raise ``ValueError("unknown <kind> ...; valid choices: ...")`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; valid choices: {', '.join(choices)}")


def check_width(width: int, output: str, init: str) -> None:
    """A width m must be a positive integer, and even for a paired output layer or mirrored init."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    if (output == "paired" or init == "mirrored_lecun") and width % 2:
        raise ValueError(
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


