"""cifar100: CIFAR-100 with its true labels (fine, or the 20 coarse ones), d = 3072: generalization."""

from __future__ import annotations

from typing import Any

from .base import Task, TaskData, register_task
from .cifar10 import (
    GENERALIZATION_GRID,
    GENERALIZATION_RATIONALE,
    GENERALIZATION_TRAIN_DEFAULTS,
    check_subset_size,
    generalization_profiles,
)

CIFAR100_TRAIN, CIFAR100_TEST = 50_000, 10_000  # the published split
LABELS = {"fine": 100, "coarse": 20}  # option labels -> number of classes


@register_task
class Cifar100(Task):
    """CIFAR-100 with its true labels: test accuracy against width, per method.

    Read from torchvision's ``cifar-100-python`` (md5 of every file checked against the
    published one before it is unpickled), an image folder ``{train,test}/<fine class>/*`` or a
    zip of one (``$BENCH_SUITE_CIFAR100``; docs/data.md). ``labels``: ``fine`` (100 classes,
    default) or ``coarse`` (the 20 superclasses). Inputs as CIFAR-10's: [0, 1], per-channel
    standardization with the training images' statistics, flattened to d = 3072 (CHW).
    ``n_train`` / ``n_test`` take seeded subsets (``data_seed``). 2n/d = 32.6 for the full set.
    """

    name = "cifar100"
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
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        out = dict(options)
        out["n_train"] = check_subset_size("n_train", options.get("n_train"), CIFAR100_TRAIN)
        out["n_test"] = check_subset_size("n_test", options.get("n_test"), CIFAR100_TEST)
        labels = options.get("labels", "fine")
        if labels not in LABELS:
            raise ValueError(f"option labels must be one of {', '.join(LABELS)}, got {labels!r}")
        out["labels"] = labels
        return out

    @classmethod
    def shape(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {"n": options.get("n_train") or CIFAR100_TRAIN, "d": 3072, "k": LABELS[options.get("labels", "fine")],
                "n_test": options.get("n_test") or CIFAR100_TEST}

    def load(self, options, *, data_seed, data_root=None, cache_dir=None) -> TaskData:
        # imported here: listing the tasks must not need torch or numpy
        from ..data.cifar100 import load_cifar100
        from ..data.features import labeled_image_data

        options = self.check_options(options)
        images = load_cifar100(data_root, cache_dir)
        coarse = options["labels"] == "coarse"
        y_train = images.y_train_coarse if coarse else images.y_train
        y_test = images.y_test_coarse if coarse else images.y_test
        return labeled_image_data(
            images.x_train, y_train, images.x_test, y_test,
            classes=images.coarse_classes if coarse else images.classes,
            n_train=check_subset_size("n_train", options["n_train"], len(y_train)),
            n_test=check_subset_size("n_test", options["n_test"], len(y_test)),
            data_seed=data_seed, source=images.source, checksum=images.checksum,
            info={"labels": options["labels"], "location": images.location, "from_cache": images.from_cache},
        )
