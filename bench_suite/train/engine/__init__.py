"""The training engine: (projected) SGD for one or many cells fused into one hidden matrix.

Cells that share data, batch order and schedule (same task, repetition, epochs, batch size)
are trained together: their hidden units sit side by side in one weight matrix, so one GEMM
per step computes every cell's pre-activations and one GEMM updates every cell's hidden
weights. Activation, output layer, loss, learning rates and the projection stay per cell, so a
fused cell computes the same numbers as the cell trained alone (tested to float tolerance, and
against a plain autograd loop in tests/test_engine_fast_paths.py). A single cell is a group of one.

Modules: ``layout`` (the cells and where their rows sit), ``state`` (the group's state: W0, s,
U, V and the buffers, folds, freezing, state tensors; the engine's switches), ``step`` (one SGD
step, an epoch of steps, evaluation), ``loop`` (epochs eager or as CUDA graphs, the segment loop,
divergence checks, checkpoints, ``train_group``).

How a step stays near the cost of its two big GEMMs (docs/performance.md has the numbers):

- hidden rows are ordered by activation, paired halves in two blocks, so each activation and
  all paired features sigma(w_j x) - sigma(w_{j+m/2} x) are a few ops over contiguous blocks;
  every cell's output layer, loss and gradients are one batched product over features padded
  to a common width; gradients are written by hand (autograd's own activation kernels), so
  there is no autograd graph and no (B x d) input gradient;
- W = W0 + s·U with one scale s per cell: the projection onto ||W - W0||_F <= eps only changes
  s, so no (m x d) pass is spent on it; X·W0ᵀ is a table computed once (mirrored rows of MLI
  copied, so the output is exactly 0 at init), so a forward is x·Uᵀ (one GEMM) and the update
  U <- U - (lr/s)·dpreᵀx is one GEMM with accumulate; with momentum the buffer is gamma·B, so
  b <- mu·b + G is one GEMM with accumulate into B too;
- ||U|| per cell is tracked from B x m quantities (``lowrank``) or re-measured (``exact``);
  a fold (U <- s·U) keeps U inside float32's range, decided on the device (``state.FOLD_*``);
- the data is on the device before training, batches are gathered by index on the device,
  sample orders are copied 32 epochs at a time, and nothing is read back to the host inside a
  segment (>= 64 steps; metrics accumulate on the device), so on CUDA an epoch can be one CUDA
  graph (opt-in, ``cuda_graphs`` / $BENCH_SUITE_CUDA_GRAPHS).
"""

from .loop import (
    WEIGHT_NORM_LIMIT,
    CellResult,
    CellSpec,
    Checkpointing,
    TrainingStopped,
    precision_context,
    train_group,
)
from .state import (
    CUDA_GRAPHS_ENV,
    FOLD_BELOW,
    FOLD_CADENCES,
    FOLD_CHECK_STEPS,
    FOLD_DANGER,
    NORM_TRACKING_ENV,
    NORM_TRACKINGS,
    P0_TABLE_ENV,
)

__all__ = [
    "CUDA_GRAPHS_ENV", "FOLD_BELOW", "FOLD_CADENCES", "FOLD_CHECK_STEPS", "FOLD_DANGER", "NORM_TRACKINGS",
    "NORM_TRACKING_ENV", "P0_TABLE_ENV", "WEIGHT_NORM_LIMIT", "CellResult", "CellSpec", "Checkpointing",
    "TrainingStopped", "precision_context", "train_group",
]
