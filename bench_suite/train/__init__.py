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
from .dispatch import train_cells
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
    "train_cells", "train_group", "train_reference",
]


def __getattr__(name: str):
    # the record's theory section moved to the theory package (one name per thing: the report's
    # section is bench_suite.reporting's); the old name still works, with a warning
    if name == "theory_section":
        import warnings

        from ..theory import record_section

        warnings.warn("bench_suite.train.theory_section is deprecated: use bench_suite.theory.record_section"
                      "(x, y, method=..., ...)", DeprecationWarning, stacklevel=2)

        def theory_section(method, x, y, **kwargs):
            kwargs.pop("init", None)
            kwargs.pop("output", None)
            return record_section(x, y, method=method, **kwargs)

        return theory_section
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
