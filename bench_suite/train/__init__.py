"""Training: the one face of both trainers.

- the fused engine (:mod:`bench_suite.train.engine`: ``layout``, ``step``, ``loop``), which
  trains many cells fused into one hidden matrix (``train_group``);
- the reference trainer (:mod:`bench_suite.train.reference`), one cell with autograd and any
  ``torch.optim`` optimizer (``train_reference``);
- :func:`train_cells` (:mod:`bench_suite.train.dispatch`), which sends cells to the trainer
  their method needs: what the runner calls.
"""

from ..core.config import EPS_MODES, LOSSES, PRECISIONS, TrainConfig
from ..core.flops import step_flops
from .dispatch import theory_section, train_cells
from .engine import (
    CUDA_GRAPHS_ENV,
    NORM_TRACKING_ENV,
    NORM_TRACKINGS,
    P0_TABLE_ENV,
    CellResult,
    CellSpec,
    Checkpointing,
    TrainingStopped,
    precision_context,
    train_group,
)
from .reference import train_reference

__all__ = [
    "CUDA_GRAPHS_ENV", "EPS_MODES", "LOSSES", "NORM_TRACKINGS", "NORM_TRACKING_ENV", "P0_TABLE_ENV", "PRECISIONS",
    "CellResult", "CellSpec", "Checkpointing", "TrainConfig", "TrainingStopped", "precision_context", "step_flops",
    "theory_section", "train_cells", "train_group", "train_reference",
]
