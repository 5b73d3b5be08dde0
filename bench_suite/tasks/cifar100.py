"""cifar100: CIFAR-100 with its true labels (fine, or the 20 coarse ones), d = 3072: generalization."""

from __future__ import annotations

from typing import Any

from ..data.subsets import ImageSubsets
from .base import Task, TaskData, register_task
from .cifar10 import (
    GENERALIZATION_GRID,
    GENERALIZATION_RATIONALE,
    GENERALIZATION_TRAIN_DEFAULTS,
    generalization_profiles,
)

CIFAR100_TRAIN, CIFAR100_TEST = 50_000, 10_000  # the published split
LABELS = {"fine": 100, "coarse": 20}  # option labels -> number of classes


@register_task
class Cifar100(ImageSubsets, Task):
    """CIFAR-100 with its true labels: test accuracy against width, per method.

    Read from torchvision's ``cifar-100-python`` (md5 of every file checked against the
    published one before it is unpickled), an image folder ``{train,test}/<fine class>/*`` or a
    zip of one (``$BENCH_SUITE_CIFAR100``; docs/data.md). ``labels``: ``fine`` (100 classes,
    default) or ``coarse`` (the 20 superclasses). Inputs as CIFAR-10's: [0, 1], per-channel
    standardization with the training images' statistics, flattened to d = 3072 (CHW).
    ``n_train`` / ``n_test`` take seeded subsets (``data_seed``). 2n/d = 32.6 for the full set.
    """

    name = "cifar100"
    train_count, test_count, input_dim = CIFAR100_TRAIN, CIFAR100_TEST, 3072
    version = 1
    classification = True
    description = "CIFAR-100 (d=3072, 100 fine or 20 coarse classes) with its true labels: test accuracy vs width"
    options: dict[str, Any] = {
        "n_train": None,  # None = all 50,000
        "n_test": None,  # None = all 10,000
        "labels": "fine",  # "fine" (100 classes) or "coarse" (20 superclasses)
    }
    train_defaults: dict[str, Any] = dict(GENERALIZATION_TRAIN_DEFAULTS)
    grid: dict[str, list] = dict(GENERALIZATION_GRID)
    profiles: dict[str, dict[str, Any]] = generalization_profiles(CIFAR100_TRAIN, CIFAR100_TEST, labels="fine labels",
                                                                  needs="CIFAR-100")
    defaults_rationale = GENERALIZATION_RATIONALE

    @classmethod
    def outputs(cls, options: dict[str, Any]) -> int:
        return LABELS[options.get("labels", "fine")]

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        out = super().check_options(options)
        labels = options.get("labels", "fine")
        if labels not in LABELS:
            raise ValueError(f"option labels must be one of {', '.join(LABELS)}, got {labels!r}")
        out["labels"] = labels
        return out

    def load(self, options, *, data_seed, data_root=None, cache_dir=None) -> TaskData:
        # imported here: listing the tasks must not need torch or numpy
        from ..data.cifar100 import load_cifar100
        from ..data.features import subset_image_data

        options = self.check_options(options)
        images = load_cifar100(data_root, cache_dir)
        if options["labels"] == "coarse":
            return subset_image_data(images, options, data_seed=data_seed, y_train=images.y_train_coarse,
                                     y_test=images.y_test_coarse, classes=images.coarse_classes,
                                     info={"labels": "coarse"})
        return subset_image_data(images, options, data_seed=data_seed, info={"labels": options["labels"]})
