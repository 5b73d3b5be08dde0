"""On-disk dataset readers and the uint8 cache they share.

- :func:`load_cifar10` -> :class:`Cifar10Images` (uint8 HWC images, labels, source, checksum)
- :func:`load_mnist` -> :class:`MnistImages` (uint8 (N, 28, 28, 1) images, digit labels)
- :func:`load_cifar100` -> :class:`Cifar100Images` (uint8 HWC images, fine and coarse labels)
- :func:`load_restricted_imagenet` -> :class:`RestrictedImageNetImages`
- :class:`DataError`: present but unusable data, one line naming the file and the fix;
  absent data raises :class:`bench_suite.tasks.base.DataUnavailable` (a skip).
"""

from .cache import resolve_cache_dir
from .cifar10 import CIFAR10_CLASSES, CIFAR10_ENV, Cifar10Images, load_cifar10
from .cifar100 import CIFAR100_ENV, Cifar100Images, load_cifar100
from .contract import DataError
from .imagenet import (
    IMAGENET_ENV,
    RESTRICTED_IMAGENET_CLASSES,
    RestrictedImageNetImages,
    load_restricted_imagenet,
)
from .mnist import MNIST_ENV, MnistImages, load_mnist

__all__ = [
    "CIFAR10_CLASSES", "CIFAR10_ENV", "CIFAR100_ENV", "Cifar100Images", "Cifar10Images", "DataError", "IMAGENET_ENV",
    "MNIST_ENV", "MnistImages", "RESTRICTED_IMAGENET_CLASSES", "RestrictedImageNetImages", "load_cifar10",
    "load_cifar100", "load_mnist", "load_restricted_imagenet", "resolve_cache_dir",
]
