"""CIFAR-10 from disk: torchvision's pickle batches, an image folder, or a zip of one.

Search order for a data location ``root`` (``data_root``, else ``$BENCH_SUITE_CIFAR10``):

1. torchvision's ``cifar-10-batches-py`` folder (``root`` is it, or contains it), read by
   torchvision's own ``CIFAR10`` class (which checks every file's md5 against the official
   release); with ``download=True`` torchvision may fetch it when nothing is found.
2. an image folder ``root/{train,test}/<class>/*.{png,jpg,jpeg}``;
3. a zip of that layout (``root`` is the zip, or a folder holding exactly one zip).

The first load decodes every image once and caches uint8 arrays keyed by the source's
checksum (:mod:`bench_suite.data.cache`); later loads read the cache.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..tasks.base import DataUnavailable
from .cache import cache_key, cached_arrays, resolve_cache_dir
from .errors import DataError, one_line
from .imagefolder import DirectoryTree, ZipTree, decode_entries, file_sha256

CIFAR10_ENV = "BENCH_SUITE_CIFAR10"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_COUNTS = {"train": 50_000, "test": 10_000}
IMAGE_SHAPE = (32, 32)
BATCHES_FOLDER = "cifar-10-batches-py"
READER_VERSION = 1  # bump when decoding changes, so old cache entries are not reused

FOLDER_LAYOUT = "an image folder {train,test}/<class>/*.{png,jpg,jpeg} with 10 class folders"
ZIP_LAYOUT = "a .zip of {train,test}/<class>/*.{png,jpg,jpeg} (optionally under one top folder), 10 class folders"
LAYOUT = f"CIFAR-10 as torchvision's {BATCHES_FOLDER} folder, or {FOLDER_LAYOUT}, or a .zip of that image folder"
# a 32x32 PNG is at most ~3 KB; a file far bigger is not a CIFAR image (nor a zip bomb's member)
MAX_MEMBER_BYTES = 1 << 20


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
    """Find, check, decode (once) and return CIFAR-10.

    Raises :class:`DataUnavailable` when no CIFAR-10 is found (the message says what to pass)
    and :class:`DataError` when one is found but is unusable. ``expected_counts`` (default
    50,000 train / 10,000 test) exists so tests can use small fixtures.
    """
    counts = dict(CIFAR10_COUNTS if expected_counts is None else expected_counts)
    source = find_cifar10(data_root, cache_dir, download=download)
    checksum = source.checksum()
    key = cache_key(dataset="cifar10", reader=READER_VERSION, checksum=checksum, counts=counts)

    def build():
        return source.decode(counts)

    arrays, meta, hit = cached_arrays(cache_dir, "cifar10", key, build)
    return Cifar10Images(
        x_train=arrays["x_train"], y_train=arrays["y_train"], x_test=arrays["x_test"], y_test=arrays["y_test"],
        classes=list(meta["classes"]), source=meta["source"], checksum=checksum, location=str(source.location),
        from_cache=hit,
    )


# --------------------------------------------------------------------------- finding the source


def find_cifar10(data_root: str | os.PathLike | None, cache_dir: str | os.PathLike | None = None,
                 *, download: bool = False) -> "BatchesSource | ImageTreeSource":
    """The CIFAR-10 source at ``data_root``, else at ``$BENCH_SUITE_CIFAR10`` (so one data root
    can serve several tasks while CIFAR-10 lies elsewhere), else torchvision's download when
    allowed; else :class:`DataUnavailable` saying where it looked and what to pass."""
    searched = []
    for base in (data_root, os.environ.get(CIFAR10_ENV) or None):
        if base is None:
            continue
        root = Path(base).expanduser()
        if not root.exists():
            searched.append(f"{root} (does not exist)")
            continue
        found = _source_at(root)
        if found is not None:
            return found
        searched.append(str(root))
    if download:
        return _downloaded(Path(data_root).expanduser() if data_root is not None
                           else resolve_cache_dir(cache_dir) / "cifar10-download")
    where = f"searched {', '.join(searched)}" if searched else "no location given"
    raise DataUnavailable(
        f"CIFAR-10 not found ({where}): pass --data-root (or set BENCH_SUITE_DATA_ROOT or {CIFAR10_ENV}) to {LAYOUT}"
    )


def _source_at(root: Path) -> "BatchesSource | ImageTreeSource | None":
    if root.is_file():
        return ImageTreeSource.from_zip(root)
    if root.name == BATCHES_FOLDER or (root / "batches.meta").exists():
        return BatchesSource(root)
    if (root / BATCHES_FOLDER).is_dir():
        return BatchesSource(root / BATCHES_FOLDER)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return ImageTreeSource(root, is_zip=False)
    zips = sorted(p for p in root.iterdir() if p.suffix.lower() == ".zip" and p.is_file())
    if len(zips) > 1:  # several archives: take the one that says it is CIFAR-10, if exactly one does
        zips = [p for p in zips if "cifar" in p.name.lower()] or zips
    if len(zips) == 1:
        return ImageTreeSource.from_zip(zips[0])
    if len(zips) > 1:
        raise DataError(root, f"folder holds {len(zips)} zip archives ({', '.join(p.name for p in zips)})",
                        "pass the path of the CIFAR-10 zip itself")
    return None


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


# --------------------------------------------------------------------------- image folder / zip


class ImageTreeSource:
    """``{train,test}/<class>/<image>`` in a directory or a zip; labels = sorted class index."""

    def __init__(self, location: Path, *, is_zip: bool) -> None:
        self.location = location
        self.is_zip = is_zip
        self._tree: DirectoryTree | ZipTree | None = None

    @classmethod
    def from_zip(cls, path: Path) -> "ImageTreeSource":
        return cls(path, is_zip=True)

    def _open(self) -> DirectoryTree | ZipTree:
        # a zip is opened only when its members are needed: a cache hit needs its checksum only
        if self._tree is None:
            self._tree = (ZipTree(self.location, tuple(CIFAR10_COUNTS), ZIP_LAYOUT, MAX_MEMBER_BYTES) if self.is_zip
                          else DirectoryTree(self.location, FOLDER_LAYOUT, MAX_MEMBER_BYTES))
        return self._tree

    def checksum(self) -> str:
        if self.is_zip:  # the archive's own sha256 (as published next to it)
            return "sha256:" + file_sha256(self.location)
        tree = self._open()
        assert isinstance(tree, DirectoryTree)
        return tree.listing_checksum({split: self._listing(split) for split in CIFAR10_COUNTS})

    def _listing(self, split: str):
        tree = self._open()
        if not tree.has_split(split):
            raise DataError(self.location, f"has no {split}/ images",
                            f"expected {ZIP_LAYOUT if self.is_zip else FOLDER_LAYOUT}")
        return tree.list_split(split)

    def decode(self, counts: dict[str, int]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {}
        classes: list[str] = []
        jpeg = png = 0
        try:
            for split in CIFAR10_COUNTS:
                listing = self._listing(split)
                if classes and list(listing) != classes:
                    raise DataError(self.location, f"{split}/ has class folders {list(listing)}, train/ has {classes}",
                                    "expected the same 10 class folders in train/ and test/")
                classes = list(listing)
                _check_class_folders(self.location, split, listing, counts[split])
                entries = [e for label in classes for e in listing[label]]
                n_jpeg = sum(e.is_jpeg for e in entries)
                jpeg, png = jpeg + n_jpeg, png + len(entries) - n_jpeg
                arrays[f"x_{split}"] = decode_entries(self._open(), entries, IMAGE_SHAPE, exact=True)
                arrays[f"y_{split}"] = np.repeat(np.arange(len(classes), dtype=np.int64),
                                                 [len(listing[c]) for c in classes])
        finally:
            self.close()
        check_arrays(self.location, arrays, classes, counts)
        kind = "JPEG re-encoding" if jpeg and not png else "PNG images" if png and not jpeg else "JPEG/PNG images"
        return arrays, {"classes": classes, "source": f"CIFAR-10, {kind} ({self.location.name})"}

    def close(self) -> None:
        if self._tree is not None:
            self._tree.close()
            self._tree = None


def _check_class_folders(location: Path, split: str, listing, expected_count: int) -> None:
    if len(listing) != len(CIFAR10_CLASSES):
        raise DataError(f"{location}/{split}", f"has {len(listing)} class folders ({', '.join(listing) or 'none'})",
                        f"expected 10 ({', '.join(CIFAR10_CLASSES)})")
    empty = [c for c, entries in listing.items() if not entries]
    if empty:
        raise DataError(f"{location}/{split}/{empty[0]}", "class folder holds no .png/.jpg/.jpeg images",
                        f"expected {FOLDER_LAYOUT}")
    total = sum(len(v) for v in listing.values())
    if total != expected_count:
        raise DataError(f"{location}/{split}", f"holds {total:,} images", f"expected {expected_count:,} for CIFAR-10")


def check_arrays(location: Path, arrays: dict[str, np.ndarray], classes: list[str], counts: dict[str, int]) -> None:
    """The integrity check every source passes: counts, 10 classes, 32x32x3 uint8, labels in range."""
    if len(classes) != len(CIFAR10_CLASSES):
        raise DataError(location, f"has {len(classes)} classes ({', '.join(map(str, classes))})",
                        f"expected 10 ({', '.join(CIFAR10_CLASSES)})")
    for split, expected in counts.items():
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.shape[1:] != (*IMAGE_SHAPE, 3) or x.dtype != np.uint8:
            raise DataError(location, f"{split} images are {x.dtype}{tuple(x.shape[1:])}", "expected uint8 32x32x3")
        if x.shape[0] != expected or y.shape[0] != expected:
            raise DataError(location, f"{split} split holds {x.shape[0]:,} images / {y.shape[0]:,} labels",
                            f"expected {expected:,} for CIFAR-10")
        if y.size and (y.min() < 0 or y.max() >= len(classes)):
            raise DataError(location, f"{split} labels span {y.min()}..{y.max()}", "expected 0..9")
