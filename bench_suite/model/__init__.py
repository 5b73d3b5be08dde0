"""The 1-hidden-layer network f(x) = sum_j v_j sigma(w_j^T x), with K outputs (V is m x K).

Two output layers:
- ``free``:   f(x) = sigma(x W^T) V, with V an m x K trainable matrix.
- ``paired``: f(x) = (sigma(x W_1^T) - sigma(x W_2^T)) V_h, with W_1 / W_2 the first / second
  m/2 hidden units and V_h an (m/2) x K trainable matrix. The effective output weights are
  [V_h; -V_h] throughout training, not only at init, because only V_h exists.

Two inits (no biases):
- ``lecun``:          w_j ~ N(0, I/d), v_j ~ N(0, 1/m), all m rows independent.
- ``mirrored_lecun``: the first m/2 rows drawn as above, then w_{j+m/2} = w_j and
  v_{j+m/2} = -v_j (MLI), so f(x) = 0 for every x at init.

The fused engine (:mod:`bench_suite.train`) uses the functional pieces below on slices of
one shared hidden matrix; :class:`TwoLayerNet` wraps the same pieces as an ``nn.Module``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core.config import ACTIVATIONS as ACTIVATION_NAMES
from ..core.config import INITS, OUTPUTS, check_choice, check_width  # noqa: F401 - re-exported

ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "softplus": F.softplus,  # smooth; the theory's analytic-activation case
    "gelu": F.gelu,
}


def register_activation(name: str, fn) -> None:
    """Add an activation (a torch function of one tensor) for every command: the engine
    differentiates it with autograd unless it is one of the built-in four."""
    if name in ACTIVATIONS and ACTIVATIONS[name] is not fn:
        raise ValueError(f"activation {name!r} is already registered")
    ACTIVATIONS[name] = fn
    if name not in ACTIVATION_NAMES:
        ACTIVATION_NAMES.append(name)


@dataclass
class InitialWeights:
    w: torch.Tensor  # (m, d) hidden weights
    v: torch.Tensor  # (m, K) for a free output layer, (m/2, K) for a paired one


def init_weights(
    width: int, dim: int, outputs: int, init: str, output: str, generator: torch.Generator
) -> InitialWeights:
    """Draw W0 and V0 on the CPU (device-independent numbers) from ``generator``.

    Every init draws the same full m x d and m x K Gaussian tensors first, so methods that
    share a seed share the first half of W0 (and, for LeCun-init methods, all of it).
    """
    check_choice("init", init, INITS)
    check_choice("output layer", output, OUTPUTS)
    check_width(width, output, init)
    w = torch.randn(width, dim, generator=generator) / dim**0.5
    v = torch.randn(width, outputs, generator=generator) / width**0.5
    half = width // 2
    if init == "mirrored_lecun":
        w[half:] = w[:half]
        v[half:] = -v[:half]
    if output == "paired":
        v = v[:half].clone()  # only the first half is a parameter; the second is -v by construction
    return InitialWeights(w=w, v=v)


def hidden_features(pre: torch.Tensor, activation: str, output: str) -> torch.Tensor:
    """Map pre-activations (B, m) to the features the output weights multiply."""
    act = ACTIVATIONS[activation](pre)
    if output == "paired":
        half = pre.shape[1] // 2
        return act[:, :half] - act[:, half:]
    return act


def effective_output_weights(v: torch.Tensor, output: str) -> torch.Tensor:
    """The m x K matrix V of f(x) = sigma(x W^T) V, whatever the output layer."""
    return torch.cat([v, -v]) if output == "paired" else v


class TwoLayerNet(nn.Module):
    """A single network, for users and tests; the engine trains the same maths fused."""

    def __init__(
        self,
        dim: int,
        width: int,
        outputs: int,
        activation: str = "relu",
        init: str = "mirrored_lecun",
        output: str = "paired",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_choice("activation", activation, tuple(ACTIVATIONS))
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        weights = init_weights(width, dim, outputs, init, output, generator)
        self.activation, self.output, self.init = activation, output, init
        self.w = nn.Parameter(weights.w)
        self.v = nn.Parameter(weights.v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.init == "mirrored_lecun":
            # the halves as two products of one shape, so mirrored rows (equal at init) get the
            # very same pre-activations and f(x) = 0 exactly there (one product of all rows may
            # round equal rows differently by their position, as the fused engine notes)
            half = self.w.shape[0] // 2
            pre = torch.cat([x @ self.w[:half].T, x @ self.w[half:].T], dim=1)
        else:
            pre = x @ self.w.T
        return hidden_features(pre, self.activation, self.output) @ self.v
