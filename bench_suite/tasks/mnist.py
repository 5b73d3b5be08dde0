"""mnist: MNIST digits with their true labels, 28x28 grayscale flattened (d = 784): generalization."""

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

MNIST_TRAIN, MNIST_TEST = 60_000, 10_000  # the published split


@register_task
class Mnist(ImageSubsets, Task):
    """MNIST with its true labels: test accuracy against width, per method.

    Read from the raw IDX files (torchvision's ``MNIST/raw/``, gzipped or not), an image folder
    ``{train,test}/<digit>/*.png`` or a zip of one (``$BENCH_SUITE_MNIST``; docs/data.md).
    Pixels scaled to [0, 1], standardized with the mean/std of the training images used (one
    channel), flattened to d = 784. ``n_train`` / ``n_test`` take seeded subsets (``data_seed``)
    kept in data-set order. 2n/d = 153 for the full training set.
    """

    name = "mnist"
    train_count, test_count, input_dim = MNIST_TRAIN, MNIST_TEST, 784
    version = 1
    classification = True
    description = "MNIST (d=784) with its true labels: test accuracy vs width per method (generalization)"
    options: dict[str, Any] = {
        "n_train": None,  # None = all 60,000
        "n_test": None,  # None = all 10,000
    }
    train_defaults: dict[str, Any] = dict(GENERALIZATION_TRAIN_DEFAULTS)
    grid: dict[str, list] = dict(GENERALIZATION_GRID)
    profiles: dict[str, dict[str, Any]] = generalization_profiles(MNIST_TRAIN, MNIST_TEST, needs="MNIST")
    defaults_rationale = GENERALIZATION_RATIONALE

    def load(self, options, *, data_seed, data_root=None, cache_dir=None) -> TaskData:
        # imported here: listing the tasks must not need torch or numpy
        from ..data.features import subset_image_data
        from ..data.mnist import load_mnist

        options = self.check_options(options)
        return subset_image_data(load_mnist(data_root, cache_dir), options, data_seed=data_seed)
