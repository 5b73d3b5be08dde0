"""The training engine's public face: ``train_group`` and its types (the code is in
:mod:`bench_suite.engine`: ``layout``, ``step``, ``epochs``)."""

from .config import EPS_MODES, LOSSES, PRECISIONS, TrainConfig  # noqa: F401 - re-exported
from .engine import (  # noqa: F401 - re-exported
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
from .flops import step_flops  # noqa: F401 - re-exported
