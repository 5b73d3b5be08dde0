"""On-disk dataset readers and the uint8 cache they share.

- :func:`load_cifar10` -> :class:`Cifar10Images` (uint8 HWC images, labels, source, checksum)
- :func:`load_restricted_imagenet` -> :class:`RestrictedImageNetImages`
- :class:`DataError`: present but unusable data, one line naming the file and the fix;
  absent data raises :class:`bench_suite.tasks.base.DataUnavailable` (a skip).
"""

from .cache import resolve_cache_dir
from .cifar10 import CIFAR10_CLASSES, CIFAR10_ENV, Cifar10Images, load_cifar10
from .errors import DataError
from .imagenet import (
    IMAGENET_ENV,
    RESTRICTED_IMAGENET_CLASSES,
    RestrictedImageNetImages,
    load_restricted_imagenet,
)

__all__ = [
    "CIFAR10_CLASSES", "CIFAR10_ENV", "Cifar10Images", "DataError", "IMAGENET_ENV", "RESTRICTED_IMAGENET_CLASSES",
    "RestrictedImageNetImages", "load_cifar10", "load_restricted_imagenet", "resolve_cache_dir",
]
