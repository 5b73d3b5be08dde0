"""CIFAR-10 from disk: torchvision's pickle batches, an image folder, or a zip of one.

Search order for a data location ``root`` (``data_root``, else ``$BENCH_SUITE_CIFAR10``):

1. torchvision's ``cifar-10-batches-py`` folder (``root`` is it, or contains it), read by
   torchvision's own ``CIFAR10`` class (which checks every file's md5 against the official
   release); with ``download=True`` torchvision may fetch it when nothing is found.
2. an image folder ``root/{train,test}/<class>/*.{png,jpg,jpeg}``;
3. a zip of that layout (``root`` is the zip, or a folder holding exactly one zip, or several
   of which exactly one is named like ``cifar10*.zip`` / ``cifar-10*.zip``).

An image tree whose class folders are another data set's (MNIST's digits, CIFAR-100's names)
is passed over (:mod:`bench_suite.data.locations`). The first load decodes every image once and
caches uint8 arrays keyed by the source's checksum (:mod:`bench_suite.data.cache`); later loads
read the cache. The image-tree reader is :class:`bench_suite.data.imagefolder.ImageTreeSource`,
shared with CIFAR-100 and MNIST.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .cache import cache_key, cached_arrays, resolve_cache_dir
from .classnames import CIFAR10_CLASSES
from .contract import DataError, DataUnavailable, OtherDataset, one_line
from .imagefolder import ImageTreeSource, TreeSpec, check_image_arrays, file_sha256
from .locations import Search, pick_zip

CIFAR10_ENV = "BENCH_SUITE_CIFAR10"
CIFAR10_COUNTS = {"train": 50_000, "test": 10_000}
IMAGE_SHAPE = (32, 32)
BATCHES_FOLDER = "cifar-10-batches-py"
READER_VERSION = 1  # bump when decoding changes, so old cache entries are not reused

FOLDER_LAYOUT = "an image folder {train,test}/<class>/*.{png,jpg,jpeg} with 10 class folders"
ZIP_LAYOUT = "a .zip of {train,test}/<class>/*.{png,jpg,jpeg} (optionally under one top folder), 10 class folders"
LAYOUT = f"CIFAR-10 as torchvision's {BATCHES_FOLDER} folder, or {FOLDER_LAYOUT}, or a .zip of that image folder"
# a 32x32 PNG is at most ~3 KB; a file far bigger is not a CIFAR image (nor a zip bomb's member)
MAX_MEMBER_BYTES = 1 << 20
ZIP_NAME = r"cifar[-_]?10(?!\d)"  # of several zips in a folder, the one named like CIFAR-10's
# class folders: any 10 names (label = sorted index); CIFAR-10's own names are sorted already
TREE_SPEC = TreeSpec("CIFAR-10", IMAGE_SHAPE, "RGB", len(CIFAR10_CLASSES), FOLDER_LAYOUT, ZIP_LAYOUT,
                     MAX_MEMBER_BYTES, class_names=CIFAR10_CLASSES)


@dataclass
class Cifar10Images:
    """The decoded data set: uint8 images (N, 32, 32, 3) in HWC order and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    source: str  # e.g. "CIFAR-10, JPEG re-encoding (cifar10-jpeg.zip)"
    checksum: str
    location: str
    from_cache: bool = False


def load_cifar10(
    data_root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    download: bool = False,
    expected_counts: dict[str, int] | None = None,
) -> Cifar10Images:
    """Find, check, decode (once) and return CIFAR-10: at ``data_root``, else at
    ``$BENCH_SUITE_CIFAR10`` (also when ``data_root`` holds no CIFAR-10, so one data root can
    serve several tasks), else torchvision's download when allowed.

    Raises :class:`DataUnavailable` when no CIFAR-10 is found (the message says where it looked
    and what to pass) and :class:`DataError` when one is found but is unusable.
    ``expected_counts`` (default 50,000 train / 10,000 test) exists so tests can use small fixtures.
    """
    counts = dict(CIFAR10_COUNTS if expected_counts is None else expected_counts)
    search = Search("CIFAR-10", data_root, CIFAR10_ENV)
    for root, source in search.sources(_source_at):
        try:
            return _load_source(source, cache_dir, counts)
        except OtherDataset as err:  # e.g. MNIST's digit folders: not ours, look further
            search.skip(root, err)
    if download:
        target = (Path(data_root).expanduser() if data_root is not None
                  else resolve_cache_dir(cache_dir) / "cifar10-download")
        return _load_source(_downloaded(target), cache_dir, counts)
    raise search.unavailable(LAYOUT)


def _load_source(source: "BatchesSource | ImageTreeSource", cache_dir, counts: dict[str, int]) -> Cifar10Images:
    checksum = source.checksum()
    key = cache_key(dataset="cifar10", reader=READER_VERSION, checksum=checksum, counts=counts)
    arrays, meta, hit = cached_arrays(cache_dir, "cifar10", key, lambda: source.decode(counts))
    return Cifar10Images(
        x_train=arrays["x_train"], y_train=arrays["y_train"], x_test=arrays["x_test"], y_test=arrays["y_test"],
        classes=list(meta["classes"]), source=meta["source"], checksum=checksum, location=str(source.location),
        from_cache=hit,
    )


# --------------------------------------------------------------------------- finding the source


def _source_at(root: Path) -> "BatchesSource | ImageTreeSource | None":
    if root.is_file():
        return ImageTreeSource(root, TREE_SPEC, is_zip=True)
    if root.name == BATCHES_FOLDER or (root / "batches.meta").exists():
        return BatchesSource(root)
    if (root / BATCHES_FOLDER).is_dir():
        return BatchesSource(root / BATCHES_FOLDER)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return ImageTreeSource(root, TREE_SPEC, is_zip=False)
    archive = pick_zip(root, ZIP_NAME, "CIFAR-10")
    return None if archive is None else ImageTreeSource(archive, TREE_SPEC, is_zip=True)


def _downloaded(root: Path) -> "BatchesSource":
    """torchvision's download into ``root`` (only when the caller allowed it)."""
    from torchvision.datasets import CIFAR10

    try:
        CIFAR10(root, train=False, download=True)
    except Exception as err:  # no network, disk full, ...: the data is simply not there
        raise DataUnavailable(f"CIFAR-10 not found and torchvision's download into {root} failed "
                              f"({one_line(err)}); pass a local copy: {LAYOUT}") from err
    return BatchesSource(root / BATCHES_FOLDER)


# --------------------------------------------------------------------------- torchvision's batches


class BatchesSource:
    """The official python release, read batch by batch through torchvision's ``CIFAR10``."""

    FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]

    def __init__(self, folder: Path) -> None:
        self.folder = folder  # the batches' folder, whatever its name
        self.root = folder.parent  # what torchvision calls root
        self.location = folder

    def checksum(self) -> str:
        digest = hashlib.sha256()
        for name in self.FILES:
            path = self.folder / name
            if not path.is_file():
                raise DataError(path, "file is missing", f"expected the official {BATCHES_FOLDER} files "
                                f"({', '.join(self.FILES)}); re-download CIFAR-10 (python version)")
            digest.update(f"{name}\0{file_sha256(path)}\n".encode())
        return "sha256:" + digest.hexdigest()

    def decode(self, counts: dict[str, int]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from torchvision.datasets import CIFAR10

        parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"train": [], "test": []}
        classes: list[str] = []
        for name, md5 in CIFAR10.train_list + CIFAR10.test_list:
            split = "test" if name == "test_batch" else "train"
            images, labels, classes = self._read_batch(CIFAR10, name, md5)
            parts[split].append((images, labels))
        arrays = {}
        for split, batches in parts.items():
            arrays[f"x_{split}"] = np.concatenate([b[0] for b in batches])
            arrays[f"y_{split}"] = np.concatenate([b[1] for b in batches])
        check_arrays(self.folder, arrays, classes, counts)
        return arrays, {"classes": classes, "source": f"CIFAR-10, python pickle batches ({BATCHES_FOLDER})"}

    def _read_batch(self, cifar10_cls, name: str, md5: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        path = self.folder / name

        class OneBatch(cifar10_cls):  # torchvision's reader and md5 check, for one file at a time
            base_folder = self.folder.name
            train_list = [[name, md5]]
            test_list: list = []

        fix = f"expected an official {BATCHES_FOLDER} file; re-download CIFAR-10 (python version)"
        try:
            batch = OneBatch(str(self.root), train=True, download=False)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted" (a failed md5)
            which = path if "metadata" not in str(err) else self.folder / "batches.meta"
            raise DataError(which, "file is missing or its md5 differs from the official release", fix) from err
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError, IndexError,
                OSError, MemoryError) as err:
            raise DataError(path, f"cannot be read as a CIFAR-10 pickle batch ({type(err).__name__}: "
                            f"{one_line(err)})", fix) from err
        images = np.asarray(batch.data)
        labels = np.asarray(batch.targets, dtype=np.int64)
        if images.shape[0] != labels.shape[0]:
            raise DataError(path, f"holds {labels.shape[0]} labels but {images.shape[0]} images of 32x32x3 "
                            "(the images are not 32x32x3)", fix)
        return np.ascontiguousarray(images, dtype=np.uint8), labels, list(batch.classes)


def check_arrays(location: Path, arrays: dict[str, np.ndarray], classes: list[str], counts: dict[str, int]) -> None:
    """The integrity check every source passes: counts, 10 classes, 32x32x3 uint8, labels in range."""
    check_image_arrays(location, TREE_SPEC, arrays, classes, counts)
