"""CIFAR-100 from disk: the official python release (``cifar-100-python``), an image folder, or a zip of one.

Search order for a data location ``root`` (``data_root``, else ``$BENCH_SUITE_CIFAR100``):

1. torchvision's ``cifar-100-python`` folder with the files ``train``, ``test`` and ``meta``
   (``root`` is it, or contains it). Each file's md5 is compared with the published one (the
   md5s torchvision's ``CIFAR100`` class lists) BEFORE it is unpickled; a file with another md5
   is never unpickled (:class:`DataError`). Even then the unpickler only accepts the globals a
   pickled numpy array needs (defence in depth: nothing else can be called).
2. an image folder ``root/{train,test}/<fine class>/*.{png,jpg,jpeg}`` whose class folders are
   exactly the 100 fine class names (``apple`` … ``worm``); labels = sorted index (the official
   label order), coarse labels from the official superclass table;
3. a zip of that layout (``root`` is the zip, or a folder holding exactly one zip, or several of
   which exactly one is named like ``cifar100*.zip`` / ``cifar-100*.zip``).

Both fine (100) and coarse (20) labels are decoded and cached; the task picks one.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .cache import cache_key, cached_arrays
from .classnames import CIFAR100_COARSE_CLASSES, CIFAR100_COARSE_OF_FINE, CIFAR100_FINE_CLASSES, abridged
from .contract import DataError, OtherDataset, one_line
from .imagefolder import ImageTreeSource, TreeSpec, check_image_arrays, file_sha256
from .locations import Search, pick_zip

CIFAR100_ENV = "BENCH_SUITE_CIFAR100"
CIFAR100_COUNTS = {"train": 50_000, "test": 10_000}
IMAGE_SHAPE = (32, 32)
PICKLE_FOLDER = "cifar-100-python"
# the official release's md5s, exactly as torchvision.datasets.CIFAR100 lists them
# (train_list, test_list, meta; tests/test_data_cifar100.py checks they still agree)
PUBLISHED_MD5 = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}
RELEASE_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
READER_VERSION = 1  # bump when decoding changes, so old cache entries are not reused

FOLDER_LAYOUT = ("an image folder {train,test}/<fine class>/*.{png,jpg,jpeg} with the 100 fine class folders "
                 "(apple, ..., worm)")
ZIP_LAYOUT = "a .zip of {train,test}/<fine class>/*.{png,jpg,jpeg} (optionally under one top folder)"
LAYOUT = (f"CIFAR-100 as torchvision's {PICKLE_FOLDER} folder (train, test, meta), or {FOLDER_LAYOUT}, "
          "or a .zip of that image folder")
MAX_MEMBER_BYTES = 1 << 20
ZIP_NAME = r"cifar[-_]?100"
TREE_SPEC = TreeSpec("CIFAR-100", IMAGE_SHAPE, "RGB", len(CIFAR100_FINE_CLASSES), FOLDER_LAYOUT, ZIP_LAYOUT,
                     MAX_MEMBER_BYTES, class_names=CIFAR100_FINE_CLASSES, require_names=True)


@dataclass
class Cifar100Images:
    """The decoded data set: uint8 images (N, 32, 32, 3) HWC; int64 fine (0..99) and coarse (0..19) labels."""

    x_train: np.ndarray
    y_train: np.ndarray  # fine labels
    y_train_coarse: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    y_test_coarse: np.ndarray
    classes: list[str]  # the 100 fine class names, in label order
    coarse_classes: list[str]  # the 20 superclass names, in label order
    source: str  # e.g. "CIFAR-100, python pickles (cifar-100-python)"
    checksum: str
    location: str
    from_cache: bool = False


def load_cifar100(
    data_root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    expected_counts: dict[str, int] | None = None,
) -> Cifar100Images:
    """Find, check, decode (once) and return CIFAR-100: at ``data_root``, else at
    ``$BENCH_SUITE_CIFAR100`` (also when ``data_root`` holds no CIFAR-100).

    Raises :class:`DataUnavailable` when no CIFAR-100 is found and :class:`DataError` (naming
    the file) when one is found but is unusable, including a pickle file whose md5 is not the
    published one. ``expected_counts`` (default 50,000 / 10,000) exists for small test fixtures.
    """
    counts = dict(CIFAR100_COUNTS if expected_counts is None else expected_counts)
    search = Search("CIFAR-100", data_root, CIFAR100_ENV)
    for root, source in search.sources(_source_at):
        try:
            return _load_source(source, cache_dir, counts)
        except OtherDataset as err:  # e.g. CIFAR-10's class folders: not ours, look further
            search.skip(root, err)
    raise search.unavailable(LAYOUT, f" (the official release: {RELEASE_URL}, unpacked)")


def _load_source(source: "PickleSource | ImageTreeSource", cache_dir, counts: dict[str, int]) -> Cifar100Images:
    checksum = source.checksum()
    key = cache_key(dataset="cifar100", reader=READER_VERSION, checksum=checksum, counts=counts)
    arrays, meta, hit = cached_arrays(cache_dir, "cifar100", key, lambda: _with_coarse(source.decode(counts)))
    return Cifar100Images(
        x_train=arrays["x_train"], y_train=arrays["y_train"], y_train_coarse=arrays["y_train_coarse"],
        x_test=arrays["x_test"], y_test=arrays["y_test"], y_test_coarse=arrays["y_test_coarse"],
        classes=list(meta["classes"]), coarse_classes=list(meta["coarse_classes"]), source=meta["source"],
        checksum=checksum, location=str(source.location), from_cache=hit,
    )


def _source_at(root: Path) -> "PickleSource | ImageTreeSource | None":
    if root.is_file():
        return ImageTreeSource(root, TREE_SPEC, is_zip=True)
    if root.name == PICKLE_FOLDER or (root / "meta").is_file():
        return PickleSource(root)
    if (root / PICKLE_FOLDER).is_dir():
        return PickleSource(root / PICKLE_FOLDER)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return ImageTreeSource(root, TREE_SPEC, is_zip=False)
    archive = pick_zip(root, ZIP_NAME, "CIFAR-100")
    return None if archive is None else ImageTreeSource(archive, TREE_SPEC, is_zip=True)


def _with_coarse(decoded: tuple[dict[str, np.ndarray], dict[str, Any]]) -> tuple[dict[str, np.ndarray], dict]:
    """An image tree has fine labels only: add the coarse ones from the official superclass table."""
    arrays, meta = decoded
    if "y_train_coarse" not in arrays:  # the tree's class folders are exactly the fine names (TREE_SPEC)
        table = np.asarray(CIFAR100_COARSE_OF_FINE, dtype=np.int64)
        for split in CIFAR100_COUNTS:
            arrays[f"y_{split}_coarse"] = table[arrays[f"y_{split}"]]
        meta = {**meta, "coarse_classes": list(CIFAR100_COARSE_CLASSES)}
    return arrays, meta


# --------------------------------------------------------------------------- the python release


def matches_published_md5(path: Path, md5: str) -> bool:
    """True if the file's md5 is ``md5`` (the published one). The only gate before unpickling;
    tests replace it (tests/data_fixtures.py, ``skip_cifar100_md5``) to read their own pickles."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest() == md5


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only the globals a pickled numpy uint8 array needs; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-100 file")
        return allowed[(module, name)]


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import codecs

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core.multiarray import _reconstruct
    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # the name in pickles of numpy < 2
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes in a protocol-2 pickle written by Python 3
    }


class PickleSource:
    """``cifar-100-python/{train,test,meta}``: md5 checked against the published one, then unpickled."""

    FILES = ("train", "test", "meta")

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.location = folder

    def _path(self, name: str) -> Path:
        path = self.folder / name
        if not path.is_file():
            raise DataError(path, "file is missing", f"expected the official {PICKLE_FOLDER} files "
                            f"({', '.join(self.FILES)}); re-download CIFAR-100 ({RELEASE_URL})")
        return path

    def checksum(self) -> str:
        digest = hashlib.sha256()
        for name in self.FILES:
            digest.update(f"{name}\0{file_sha256(self._path(name))}\n".encode())
        return "sha256:" + digest.hexdigest()

    def _load(self, name: str) -> dict:
        path = self._path(name)
        fix = f"expected the official {PICKLE_FOLDER} file; re-download CIFAR-100 ({RELEASE_URL})"
        if not matches_published_md5(path, PUBLISHED_MD5[name]):
            raise DataError(path, f"md5 differs from the published one ({PUBLISHED_MD5[name]}): refusing to unpickle "
                            "a file that is not the official release", fix)
        try:
            with open(path, "rb") as fh:
                entry = _ArrayUnpickler(fh, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                OSError, MemoryError) as err:
            raise DataError(path, f"cannot be read as a CIFAR-100 pickle ({type(err).__name__}: {one_line(err)})",
                            fix) from err
        if not isinstance(entry, dict):
            raise DataError(path, f"holds a {type(entry).__name__}, not a dict", fix)
        return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}

    def decode(self, counts: dict[str, int]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        meta = self._load("meta")
        fine = _names(self.folder / "meta", meta, "fine_label_names", CIFAR100_FINE_CLASSES)
        coarse = _names(self.folder / "meta", meta, "coarse_label_names", CIFAR100_COARSE_CLASSES)
        arrays: dict[str, np.ndarray] = {}
        for split in CIFAR100_COUNTS:
            path = self.folder / split
            entry = self._load(split)
            fix = f"expected the official {PICKLE_FOLDER} file; re-download CIFAR-100 ({RELEASE_URL})"
            missing = [k for k in ("data", "fine_labels", "coarse_labels") if k not in entry]
            if missing:
                raise DataError(path, f"has no {', '.join(missing)} entry", fix)
            data = np.asarray(entry["data"])
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise DataError(path, f"data is {data.dtype}{tuple(data.shape)}", f"expected uint8 (N, 3072); {fix}")
            y_fine = np.asarray(entry["fine_labels"], dtype=np.int64)
            y_coarse = np.asarray(entry["coarse_labels"], dtype=np.int64)
            if not (len(y_fine) == len(y_coarse) == len(data)):
                raise DataError(path, f"holds {len(data):,} images, {len(y_fine):,} fine and {len(y_coarse):,} "
                                "coarse labels", fix)
            if y_coarse.size and (y_coarse.min() < 0 or y_coarse.max() >= len(coarse)):
                raise DataError(path, f"coarse labels span {y_coarse.min()}..{y_coarse.max()}", "expected 0..19")
            if y_fine.size and (y_fine.min() < 0 or y_fine.max() >= len(fine)):
                raise DataError(path, f"fine labels span {y_fine.min()}..{y_fine.max()}", "expected 0..99")
            table = np.asarray(CIFAR100_COARSE_OF_FINE, dtype=np.int64)
            wrong = np.flatnonzero(table[y_fine] != y_coarse)
            if wrong.size:
                i = int(wrong[0])
                raise DataError(path, f"{wrong.size:,} samples' coarse labels disagree with the official superclass "
                                f"table (sample {i}: fine {fine[y_fine[i]]}, coarse {coarse[y_coarse[i]]})", fix)
            # rows are 1024 R, 1024 G, 1024 B values of a 32x32 image: to HWC as torchvision does
            arrays[f"x_{split}"] = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            arrays[f"y_{split}"] = y_fine
            arrays[f"y_{split}_coarse"] = y_coarse
        check_image_arrays(self.folder, TREE_SPEC, arrays, fine, counts)
        return arrays, {"classes": fine, "coarse_classes": coarse,
                        "source": f"CIFAR-100, python pickles ({PICKLE_FOLDER})"}


def _names(path: Path, meta: dict, key: str, expected: tuple[str, ...]) -> list[str]:
    names = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in meta.get(key, [])]
    if names != list(expected):
        raise DataError(path, f"{key} are {len(names)} names ({abridged(names)})",
                        f"expected the official {len(expected)} ({abridged(expected)})")
    return names
