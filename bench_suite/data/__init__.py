"""On-disk dataset readers and the uint8 cache they share.

- :func:`load_cifar10` -> :class:`Cifar10Images` (uint8 HWC images, labels, source, checksum)
- :func:`load_mnist` -> :class:`MnistImages` (uint8 (N, 28, 28, 1) images, digit labels)
- :func:`load_cifar100` -> :class:`Cifar100Images` (uint8 HWC images, fine and coarse labels)
- :func:`load_restricted_imagenet` -> :class:`RestrictedImageNetImages`
- :func:`gaussian_regression` (and the task mixin :class:`GaussianRegression`): generated Gaussian regression data
- :class:`DataError`: present but unusable data, one line naming the file and the fix;
  absent data raises :class:`bench_suite.tasks.base.DataUnavailable` (a skip).
"""

import importlib

# name -> module, imported on first use: the contract is light, a reader pulls numpy and Pillow
_NAMES = {
    "resolve_cache_dir": "cache",
    "CIFAR10_CLASSES": "cifar10", "CIFAR10_ENV": "cifar10", "Cifar10Images": "cifar10", "load_cifar10": "cifar10",
    "CIFAR100_ENV": "cifar100", "Cifar100Images": "cifar100", "load_cifar100": "cifar100",
    "DataError": "contract", "DataUnavailable": "contract", "TaskData": "contract",
    "GaussianRegression": "gaussian", "gaussian_regression": "gaussian",
    "ImageSubsets": "subsets", "check_subset_size": "subsets", "option_flag": "subsets",
    "IMAGENET_ENV": "imagenet", "RESTRICTED_IMAGENET_CLASSES": "imagenet", "RestrictedImageNetImages": "imagenet",
    "load_restricted_imagenet": "imagenet",
    "MNIST_ENV": "mnist", "MnistImages": "mnist", "load_mnist": "mnist",
}


def __getattr__(name: str):
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = sorted(_NAMES)
