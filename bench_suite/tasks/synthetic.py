"""synthetic_ablation: the paper's ablation on synthetic data (training loss per method)."""

from __future__ import annotations

from typing import Any

import torch

from .base import Task, TaskData, register_task


@register_task
class SyntheticAblation(Task):
    """n Gaussian points x_i ~ N(0, I_d) in R^d with scalar targets y_i ~ N(0, 1), independent of x.

    Our choice (the paper's exact setup is not published): Gaussian inputs have norm about
    sqrt(d), so LeCun-initialised pre-activations w_j^T x are O(1); random targets carry no
    structure, so a low loss means memorization. The net is narrow (m < n) but satisfies the
    paper's width condition m >= 2n/d. Trained by full-batch gradient descent on the mean
    square loss; the curve of interest is the training loss of each method. The defaults
    (learning rates, eps, steps) come from the study in docs/ablation.md.
    """

    name = "synthetic_ablation"
    description = "Gaussian inputs, random scalar targets, narrow net (m < n, m >= 2n/d), full-batch GD"
    options: dict[str, Any] = {"n": 1000, "d": 100}
    train_defaults: dict[str, Any] = {
        "epochs": 5000,  # full-batch: one epoch is one GD step
        "batch_size": None,
        "lr_w": 1.0,
        "lr_v": 1.0,
        "loss": "mse",
        "eps": 1.0,
        "eps_mode": "absolute",
        "eval_every": 50,
    }
    grid: dict[str, list] = {
        "methods": ["mli_paired_pgd", "sgd", "constraint_only", "no_mirroring"],
        "widths": [20],
        "activations": ["tanh"],
    }
    profiles: dict[str, dict[str, Any]] = {
        "smoke": {
            "description": "the four methods at a reduced step budget (seconds on a CPU)",
            "device": "cpu",
            "seeds": 1,
            "train": {"epochs": 500},
        },
        "ci": {"description": "the default ablation, two repetitions", "device": "cpu", "seeds": 2},
        "paper": {"description": "the default ablation, five repetitions", "device": "any", "seeds": 5},
    }
    defaults_rationale = "see docs/ablation.md (a sweep over eps, lr_v, steps, activation and m*d/2n)"

    def load(self, options, *, data_seed, data_root=None, cache_dir=None) -> TaskData:
        n, d = int(options["n"]), int(options["d"])
        if n < 1 or d < 1:
            raise ValueError(f"synthetic_ablation needs n >= 1 and d >= 1, got n={n}, d={d}")
        g = torch.Generator().manual_seed(data_seed)
        x = torch.randn(n, d, generator=g)
        y = torch.randn(n, 1, generator=g)
        return TaskData(
            x_train=x, y_train=y, num_outputs=1, classification=False,
            source=f"synthetic: x ~ N(0, I_{d}), y ~ N(0, 1), n={n}, seed={data_seed}",
        )
