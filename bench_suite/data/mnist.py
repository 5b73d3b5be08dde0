"""MNIST from disk: the raw IDX files (torchvision's ``MNIST/raw/``, gzipped or not), an image
folder, or a zip of one.

Search order for a data location ``root`` (``data_root``, else ``$BENCH_SUITE_MNIST``):

1. the four IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
   ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each may be ``.gz``) in
   ``root/MNIST/raw/`` (torchvision's layout, ``root`` being what torchvision calls root),
   ``root/raw/`` or ``root`` itself;
2. an image folder ``root/{train,test}/<digit>/*.png`` (class folders ``0`` … ``9``, 28×28
   grayscale);
3. a zip of that layout (``root`` is the zip, or a folder holding exactly one zip, or several of
   which exactly one has ``mnist`` in its name).

The IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/) is parsed here with numpy, no
pickle and no torch: a big-endian magic number ``0x0000 TT DD`` (``TT`` = 0x08, unsigned byte;
``DD`` = number of dimensions: 3 for images, 1 for labels), ``DD`` big-endian uint32 sizes, then
the data. Magic, sizes and the exact file length are checked before the data is used; a gzip
file is inflated only up to the size its header declares. Decoded once into the uint8 cache.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .cache import cache_key, cached_arrays
from .classnames import MNIST_CLASSES
from .contract import DataError, OtherDataset, one_line
from .imagefolder import ImageTreeSource, TreeSpec, check_image_arrays, file_sha256
from .locations import Search, pick_zip

MNIST_ENV = "BENCH_SUITE_MNIST"
MNIST_COUNTS = {"train": 60_000, "test": 10_000}
IMAGE_SHAPE = (28, 28)
READER_VERSION = 1  # bump when decoding changes, so old cache entries are not reused
# split -> (images file, labels file), without the optional .gz
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_UNSIGNED_BYTE = 0x08
RAW_SUBFOLDERS = ("MNIST/raw", "raw", "")  # where under a location the IDX files may lie

IDX_LAYOUT = ("torchvision's MNIST/raw/ folder with the IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
              "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each may be .gz)")
FOLDER_LAYOUT = "an image folder {train,test}/<digit>/*.png with class folders 0..9 of 28x28 grayscale images"
ZIP_LAYOUT = "a .zip of {train,test}/<digit>/*.png (optionally under one top folder), class folders 0..9"
LAYOUT = f"MNIST as {IDX_LAYOUT}, or {FOLDER_LAYOUT}, or a .zip of that image folder"
HINT = " (torchvision.datasets.MNIST(root, download=True) writes root/MNIST/raw/ where a network is reachable)"
MAX_MEMBER_BYTES = 1 << 20  # a 28x28 PNG is under 1 KB
ZIP_NAME = r"mnist"
TREE_SPEC = TreeSpec("MNIST", IMAGE_SHAPE, "L", len(MNIST_CLASSES), FOLDER_LAYOUT, ZIP_LAYOUT, MAX_MEMBER_BYTES,
                     class_names=MNIST_CLASSES, require_names=True)


@dataclass
class MnistImages:
    """The decoded data set: uint8 images (N, 28, 28, 1) and int64 labels 0..9 (the digit)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    source: str  # e.g. "MNIST, IDX files (gzipped; MNIST/raw)"
    checksum: str
    location: str
    from_cache: bool = False


def load_mnist(
    data_root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    expected_counts: dict[str, int] | None = None,
) -> MnistImages:
    """Find, check, decode (once) and return MNIST: at ``data_root``, else at ``$BENCH_SUITE_MNIST``
    (also when ``data_root`` holds no MNIST).

    Raises :class:`DataUnavailable` when no MNIST is found (the message says where it looked and
    what to pass) and :class:`DataError` (naming the file) when one is found but is unusable.
    ``expected_counts`` (default 60,000 train / 10,000 test) exists so tests can use small fixtures.
    """
    counts = dict(MNIST_COUNTS if expected_counts is None else expected_counts)
    search = Search("MNIST", data_root, MNIST_ENV)
    for root, source in search.sources(_source_at):
        try:
            return _load_source(source, cache_dir, counts)
        except OtherDataset as err:  # e.g. CIFAR-10's class folders: not ours, look further
            search.skip(root, err)
    raise search.unavailable(LAYOUT, HINT)


def _load_source(source: "IdxSource | ImageTreeSource", cache_dir, counts: dict[str, int]) -> MnistImages:
    checksum = source.checksum()
    key = cache_key(dataset="mnist", reader=READER_VERSION, checksum=checksum, counts=counts)
    arrays, meta, hit = cached_arrays(cache_dir, "mnist", key, lambda: source.decode(counts))
    return MnistImages(
        x_train=arrays["x_train"], y_train=arrays["y_train"], x_test=arrays["x_test"], y_test=arrays["y_test"],
        classes=list(meta["classes"]), source=meta["source"], checksum=checksum, location=str(source.location),
        from_cache=hit,
    )


def _source_at(root: Path) -> "IdxSource | ImageTreeSource | None":
    if root.is_file():
        return ImageTreeSource(root, TREE_SPEC, is_zip=True)
    for sub in RAW_SUBFOLDERS:
        folder = root / sub if sub else root
        if folder.is_dir() and any((folder / n).is_file() or (folder / f"{n}.gz").is_file()
                                   for pair in IDX_FILES.values() for n in pair):
            return IdxSource(folder)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return ImageTreeSource(root, TREE_SPEC, is_zip=False)
    archive = pick_zip(root, ZIP_NAME, "MNIST")
    return None if archive is None else ImageTreeSource(archive, TREE_SPEC, is_zip=True)


# --------------------------------------------------------------------------- IDX files


class IdxSource:
    """The four IDX files in one folder; of a file present both plain and gzipped, the plain one
    is read (what torchvision reads after its download)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.location = folder

    def files(self) -> dict[str, Path]:
        """file name (without .gz) -> the path read."""
        out = {}
        for pair in IDX_FILES.values():
            for name in pair:
                plain, packed = self.folder / name, self.folder / f"{name}.gz"
                if plain.is_file():
                    out[name] = plain
                elif packed.is_file():
                    out[name] = packed
                else:
                    raise DataError(plain, "file is missing (nor is there a .gz of it)", f"expected {IDX_LAYOUT}")
        return out

    def checksum(self) -> str:
        digest = hashlib.sha256()
        for path in self.files().values():
            digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
        return "sha256:" + digest.hexdigest()

    def decode(self, counts: dict[str, int]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        files = self.files()
        arrays = {}
        for split, (images_name, labels_name) in IDX_FILES.items():
            images = read_idx(files[images_name], dims=3, tail=IMAGE_SHAPE, count=counts[split], what="images")
            labels = read_idx(files[labels_name], dims=1, tail=(), count=counts[split], what="labels")
            if labels.size and labels.max() > 9:
                raise DataError(files[labels_name], f"holds label {int(labels.max())}", "expected digits 0..9")
            missing = sorted(set(range(10)) - set(np.unique(labels).tolist()))
            if missing:
                raise DataError(files[labels_name], f"has no sample of digit(s) {missing}",
                                "expected all ten digits; this is not MNIST's label file")
            arrays[f"x_{split}"] = images[..., None]  # (N, 28, 28, 1): one channel
            arrays[f"y_{split}"] = labels.astype(np.int64)
        check_image_arrays(self.folder, TREE_SPEC, arrays, list(MNIST_CLASSES), counts)
        packed = sum(p.suffix == ".gz" for p in files.values())
        kind = "gzipped" if packed == len(files) else "uncompressed" if not packed else "partly gzipped"
        where = "/".join(self.folder.parts[-2:])
        return arrays, {"classes": list(MNIST_CLASSES), "source": f"MNIST, IDX files ({kind}; {where})"}


def read_idx(path: Path, *, dims: int, tail: tuple[int, ...], count: int, what: str) -> np.ndarray:
    """An IDX file of unsigned bytes as a (count, *tail) uint8 array, or :class:`DataError` naming
    ``path``: magic number, type, number of dimensions, sizes and exact length are checked
    before the data is read (a gzip file is inflated only up to the declared size)."""
    fix = f"expected MNIST's {what} file in the IDX format; re-download it"
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            magic = fh.read(4)
            if magic[:2] == b"\x1f\x8b":
                raise DataError(path, "is gzip-compressed but not named .gz", f"rename it to {path.name}.gz")
            if len(magic) < 4 or magic[0] or magic[1]:
                raise DataError(path, f"does not start with an IDX magic number (first bytes {magic.hex() or 'none'})",
                                fix)
            if magic[2] != IDX_UNSIGNED_BYTE:
                raise DataError(path, f"IDX data type is 0x{magic[2]:02x}", f"expected 0x08 (unsigned byte); {fix}")
            if magic[3] != dims:
                raise DataError(path, f"IDX header declares {magic[3]} dimension(s)",
                                f"expected {dims} ({what}); {fix}")
            header = fh.read(4 * dims)
            if len(header) < 4 * dims:
                raise DataError(path, "IDX header is truncated", fix)
            shape = tuple(int.from_bytes(header[4 * i: 4 * i + 4], "big") for i in range(dims))
            if shape[1:] != tail:
                raise DataError(path, f"holds {what} of size {'x'.join(map(str, shape[1:]))}",
                                f"expected {'x'.join(map(str, tail))}; {fix}")
            if shape[0] != count:
                raise DataError(path, f"holds {shape[0]:,} {what}", f"expected {count:,} for MNIST")
            size = math.prod(shape)
            payload = fh.read(size)
            if len(payload) < size:
                raise DataError(path, f"is truncated: {len(payload):,} of the {size:,} data bytes its header "
                                "declares", fix)
            if fh.read(1):
                raise DataError(path, f"has bytes after the {size:,} data bytes its header declares", fix)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(path, f"cannot be read ({type(err).__name__}: {one_line(err)})", fix) from err
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape).copy()  # writable, like the cache's arrays
