"""Gaussian regression data, generated rather than read: n points x_i ~ N(0, I_d) with scalar
targets y_i ~ N(0, 1) independent of x (random targets carry no structure, so a low training
loss means memorization). The synthetic tasks (``synthetic_ablation``, ``width_threshold``,
``kkt_bound``) take this data with options ``n`` and ``d``: :class:`GaussianRegression` gives a
task its option check, its shape and its ``load``."""

from __future__ import annotations

from typing import Any

from .contract import TaskData


def gaussian_regression(n: int, d: int, *, data_seed: int) -> TaskData:
    """``x`` (n, d) and ``y`` (n, 1), float32, drawn in that order from one CPU
    ``torch.Generator`` seeded with ``data_seed`` (the same numbers on every machine)."""
    import torch

    g = torch.Generator().manual_seed(data_seed)
    x = torch.randn(n, d, generator=g)
    y = torch.randn(n, 1, generator=g)
    return TaskData(
        x_train=x, y_train=y, num_outputs=1, classification=False,
        source=f"synthetic: x ~ N(0, I_{d}), y ~ N(0, 1), n={n}, seed={data_seed}",
    )


class GaussianRegression:
    """What a task on :func:`gaussian_regression` data shares (a mixin before ``Task`` in the
    task's bases): options ``n`` and ``d`` checked to be integers >= 1, the shape (n, d, 1
    output, no test split) and ``load``. The task declares its own option defaults."""

    classification = False

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        out = super().check_options(options)  # type: ignore[misc]
        for key in ("n", "d"):
            if out[key] is None or out[key] < 1:
                raise ValueError(f"option {key} of {cls.name} must be an integer >= 1, got {out[key]!r}")  # type: ignore[attr-defined]
        return out

    @classmethod
    def shape(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {"n": int(options["n"]), "d": int(options["d"]), "k": 1, "n_test": 0}

    def load(self, options: dict[str, Any], *, data_seed: int, data_root: str | None = None,
             cache_dir: str | None = None) -> TaskData:
        return gaussian_regression(int(options["n"]), int(options["d"]), data_seed=data_seed)
