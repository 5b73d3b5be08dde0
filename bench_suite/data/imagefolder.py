"""Image-folder layouts ``<split>/<class>/<image>`` in a directory or a zip, and safe decoding.

Both kinds of tree list their images the same way (classes and files in sorted order, so a
label is the index of its class folder in sorted order, as in torchvision's ``ImageFolder``)
and hand out each image's bytes; :func:`decode_image` turns bytes into a uint8 HWC array with
Pillow, keeping Pillow's decompression-bomb guard on (its warning is promoted to an error).
:class:`ImageTreeSource` reads one whole data set (CIFAR-10, CIFAR-100, MNIST) from such a tree
against its :class:`TreeSpec` (size, channels, classes, counts).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .classnames import abridged, identify
from .contract import DataError, OtherDataset, one_line
from .safezip import SafeZip, member_parts

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MODES = {"RGB": 3, "L": 1}  # Pillow mode -> channels of the decoded array
JPEG_SUFFIXES = (".jpg", ".jpeg")


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ImageEntry:
    label: str  # class folder name
    where: str  # for messages: a file path, or "archive.zip!member"
    ref: object  # what the tree needs to read it (a Path or a ZipInfo)

    @property
    def is_jpeg(self) -> bool:
        return self.where.lower().endswith(JPEG_SUFFIXES)


Listing = dict[str, list[ImageEntry]]  # class folder name -> its images, sorted by name


class DirectoryTree:
    """``root/<split>/<class>/<image>`` on disk."""

    def __init__(self, root: Path, expected: str, max_file_bytes: int) -> None:
        self.root = root
        self.expected = expected  # the layout, for error messages
        self.max_file_bytes = max_file_bytes  # no dataset picture is bigger; refuse before reading

    def has_split(self, split: str) -> bool:
        return (self.root / split).is_dir()

    def class_names(self, split: str) -> list[str]:
        folder = self.root / split
        if not folder.is_dir():
            raise DataError(folder, "folder is missing", f"expected {self.expected}")
        return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))

    def list_split(self, split: str, classes: list[str] | None = None) -> Listing:
        """The images of ``split`` (of the given class folders only, when ``classes`` is set)."""
        listing: Listing = {}
        for name in self.class_names(split) if classes is None else classes:
            folder = self.root / split / name
            if not folder.is_dir():
                raise DataError(folder, "class folder is missing", f"expected {self.expected}")
            files = sorted(e.name for e in os.scandir(folder) if e.is_file() and is_image_name(e.name))
            listing[name] = [ImageEntry(name, str(folder / f), folder / f) for f in files]
        return listing

    def read(self, entry: ImageEntry) -> bytes:
        try:
            path = Path(entry.ref)
            size = path.stat().st_size
            if size > self.max_file_bytes:
                raise DataError(entry.where, f"file is {size:,} bytes, more than {self.max_file_bytes:,}",
                                f"expected {self.expected}; remove or replace this file")
            return path.read_bytes()
        except OSError as err:
            raise DataError(entry.where, f"cannot be read ({one_line(err)})",
                            "check the file and its permissions") from err

    def listing_checksum(self, listings: dict[str, Listing]) -> str:
        """sha256 over (relative path, size) of the listed images: hashing the content of tens of
        thousands of files costs seconds on every load, a listing a fraction of that."""
        digest = hashlib.sha256()
        for split in sorted(listings):
            for name in sorted(listings[split]):
                for entry in listings[split][name]:
                    path = Path(entry.ref)
                    digest.update(f"{path.relative_to(self.root).as_posix()}\0{path.stat().st_size}\n".encode())
        return "listing-sha256:" + digest.hexdigest()

    def close(self) -> None:
        pass


class ZipTree:
    """A zip of ``<split>/<class>/<image>``, optionally under one top folder; read in memory."""

    def __init__(self, path: Path, splits: tuple[str, ...], expected: str, max_member_bytes: int) -> None:
        self.path = path
        self.splits = splits
        self.expected = expected
        self.archive = SafeZip(path, max_member_bytes=max_member_bytes, expected=expected)
        self._listings = self._parse_layout()

    def _parse_layout(self) -> dict[str, Listing]:
        # member_parts, not pathlib: a Path per member costs ~1 s for CIFAR-10's 60,000 members
        parts_of = ((member_parts(i.filename), i) for i in self.archive.members)
        images = [(parts, i) for parts, i in parts_of if parts and is_image_name(parts[-1])]
        if not images:
            raise DataError(self.path, "archive holds no images", f"expected {self.expected}")
        # one optional top folder: "cifar10/train/cat/1.jpg" as well as "train/cat/1.jpg"
        depth = 0 if any(parts[0] in self.splits for parts, _ in images) else 1
        listings: dict[str, Listing] = {split: {} for split in self.splits}
        top = images[0][0][0]
        for parts, info in images:
            if len(parts) != depth + 3 or parts[depth] not in self.splits or (depth and parts[0] != top):
                raise DataError(self.path, f"member {info.filename!r} does not fit the layout",
                                f"expected {self.expected}")
            split, label = parts[depth], parts[depth + 1]
            listings[split].setdefault(label, []).append(ImageEntry(label, f"{self.path}!{info.filename}", info))
        for listing in listings.values():
            for label in listing:
                listing[label].sort(key=lambda e: e.where)
        return {split: dict(sorted(listing.items())) for split, listing in listings.items()}

    def has_split(self, split: str) -> bool:
        return bool(self._listings.get(split))

    def class_names(self, split: str) -> list[str]:
        return list(self._listings.get(split, {}))

    def list_split(self, split: str, classes: list[str] | None = None) -> Listing:
        listing = self._listings.get(split, {})
        return listing if classes is None else {c: listing.get(c, []) for c in classes}

    def read(self, entry: ImageEntry) -> bytes:
        assert isinstance(entry.ref, zipfile.ZipInfo)
        return self.archive.read(entry.ref)

    def close(self) -> None:
        self.archive.close()


def decode_image(data: bytes, where: str, *, expect_size: tuple[int, int] | None = None,
                 square: int | None = None, mode: str = "RGB") -> np.ndarray:
    """Decode one image to a uint8 (H, W, C) array: C = 3 for ``mode`` "RGB", C = 1 for "L"
    (grayscale; Pillow's ITU-R 601-2 luma for colour input, exact for gray pixels).

    ``expect_size`` (width, height): the image must have exactly this size (checked from the
    header, before decoding). ``square``: center-crop to a square and resize to
    ``square x square`` with box (area-average) filtering; JPEGs are first decoded at a reduced
    scale (DCT scaling via ``draft``), which is much faster and stays above twice the target.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    try:
        with warnings.catch_warnings():
            # a picture past Pillow's MAX_IMAGE_PIXELS is not a dataset image: fail, don't warn
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if expect_size is not None and img.size != expect_size:
                    raise DataError(where, f"image is {img.size[0]}x{img.size[1]}",
                                    f"expected {expect_size[0]}x{expect_size[1]} pixels; "
                                    "this is not the expected data set")
                if square is not None:
                    img.draft(mode, (2 * square, 2 * square))
                converted = img.convert(mode)
            if square is not None:
                converted = ImageOps.fit(converted, (square, square), method=Image.Resampling.BOX)
            array = np.asarray(converted, dtype=np.uint8)
            return array if array.ndim == 3 else array[:, :, None]
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(where, f"image is too large to be a data set picture ({one_line(err)})",
                        "remove or replace this file") from err
    except UnidentifiedImageError as err:
        raise DataError(where, "is not an image Pillow can read", "remove or replace this file") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise DataError(where, f"image cannot be decoded ({one_line(err)})",
                        "the file is truncated or corrupt; remove or replace it") from err


def decode_entries(tree: DirectoryTree | ZipTree, entries: list[ImageEntry], shape: tuple[int, int],
                   *, exact: bool, mode: str = "RGB") -> np.ndarray:
    """Decode ``entries`` into one (N, H, W, C) uint8 array; ``shape`` is (height, width), C is
    3 for ``mode`` "RGB" and 1 for "L" (grayscale).

    ``exact``: every image must already be ``shape`` (CIFAR, MNIST); otherwise each is cropped
    and resized to it (``shape`` must then be square).
    """
    height, width = shape
    out = np.empty((len(entries), height, width, MODES[mode]), dtype=np.uint8)
    for i, entry in enumerate(entries):
        data = tree.read(entry)
        if exact:
            out[i] = decode_image(data, entry.where, expect_size=(width, height), mode=mode)
        else:
            out[i] = decode_image(data, entry.where, square=height, mode=mode)
    return out


# --------------------------------------------------------------------------- one data set as a tree


@dataclass(frozen=True)
class TreeSpec:
    """What an image tree of one data set must look like (CIFAR-10, CIFAR-100, MNIST)."""

    dataset: str  # its name in messages and in the source line, e.g. "CIFAR-10"
    image_size: tuple[int, int]  # (height, width); every image must have exactly this size
    mode: str  # "RGB" or "L" (grayscale, one channel)
    num_classes: int
    folder_layout: str  # the expected layouts, for messages
    zip_layout: str
    max_member_bytes: int  # no picture of the data set is bigger; refused before reading
    class_names: tuple[str, ...] | None = None  # the data set's class names, in label order
    require_names: bool = False  # the class folders must be exactly these names (else: any names)
    splits: tuple[str, ...] = ("train", "test")

    def classes_hint(self) -> str:
        return f"{self.num_classes} ({abridged(self.class_names)})" if self.class_names else str(self.num_classes)


class ImageTreeSource:
    """``{train,test}/<class>/<image>`` of one data set in a directory or a zip; label = index of
    the class folder in sorted order (torchvision's ``ImageFolder`` rule). ``decode`` passes the
    tree over (:class:`OtherDataset`) when its class folders are another known data set's."""

    def __init__(self, location: Path, spec: TreeSpec, *, is_zip: bool) -> None:
        self.location = location
        self.spec = spec
        self.is_zip = is_zip
        self._tree: DirectoryTree | ZipTree | None = None

    @property
    def layout(self) -> str:
        return self.spec.zip_layout if self.is_zip else self.spec.folder_layout

    def _open(self) -> DirectoryTree | ZipTree:
        # a zip is opened only when its members are needed: a cache hit needs its checksum only
        if self._tree is None:
            spec = self.spec
            self._tree = (ZipTree(self.location, spec.splits, spec.zip_layout, spec.max_member_bytes) if self.is_zip
                          else DirectoryTree(self.location, spec.folder_layout, spec.max_member_bytes))
        return self._tree

    def checksum(self) -> str:
        if self.is_zip:  # the archive's own sha256 (as published next to it)
            return "sha256:" + file_sha256(self.location)
        tree = self._open()
        assert isinstance(tree, DirectoryTree)
        return tree.listing_checksum({split: self._listing(split) for split in self.spec.splits})

    def _listing(self, split: str) -> Listing:
        tree = self._open()
        if not tree.has_split(split):
            raise DataError(self.location, f"has no {split}/ images", f"expected {self.layout}")
        return tree.list_split(split)

    def decode(self, counts: dict[str, int]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """uint8 arrays ``x_<split>`` (N, H, W, C) and int64 ``y_<split>``, checked against the spec
        and ``counts`` (split -> expected number of images); meta: classes and the source line."""
        spec = self.spec
        arrays: dict[str, np.ndarray] = {}
        classes: list[str] = []
        jpeg = png = 0
        try:
            for split in spec.splits:
                listing = self._listing(split)
                other = identify(listing)
                if other is not None and other != spec.dataset:
                    raise OtherDataset(f"an image tree of {other} (class folders {abridged(listing)}), "
                                       f"not of {spec.dataset}")
                if classes and list(listing) != classes:
                    raise DataError(self.location, f"{split}/ has class folders {list(listing)}, "
                                    f"{spec.splits[0]}/ has {classes}",
                                    f"expected the same {spec.num_classes} class folders in every split")
                classes = list(listing)
                self._check_class_folders(split, listing, counts[split])
                entries = [e for label in classes for e in listing[label]]
                n_jpeg = sum(e.is_jpeg for e in entries)
                jpeg, png = jpeg + n_jpeg, png + len(entries) - n_jpeg
                arrays[f"x_{split}"] = decode_entries(self._open(), entries, spec.image_size, exact=True,
                                                      mode=spec.mode)
                arrays[f"y_{split}"] = np.repeat(np.arange(len(classes), dtype=np.int64),
                                                 [len(listing[c]) for c in classes])
        finally:
            self.close()
        check_image_arrays(self.location, spec, arrays, classes, counts)
        kind = "JPEG re-encoding" if jpeg and not png else "PNG images" if png and not jpeg else "JPEG/PNG images"
        return arrays, {"classes": classes, "source": f"{spec.dataset}, {kind} ({self.location.name})"}

    def _check_class_folders(self, split: str, listing: Listing, expected_count: int) -> None:
        spec, where = self.spec, f"{self.location}/{split}"
        if len(listing) != spec.num_classes:
            raise DataError(where, f"has {len(listing)} class folders ({abridged(listing) or 'none'})",
                            f"expected {spec.classes_hint()}")
        if spec.require_names and spec.class_names and set(listing) != set(spec.class_names):
            unknown = sorted(set(listing) - set(spec.class_names))
            missing = sorted(set(spec.class_names) - set(listing))
            raise DataError(where, f"has class folders {abridged(unknown)} that {spec.dataset} does not have "
                            f"(and lacks {abridged(missing)})",
                            f"expected the {spec.num_classes} class folders ({abridged(spec.class_names)})")
        empty = [c for c, entries in listing.items() if not entries]
        if empty:
            raise DataError(f"{where}/{empty[0]}", "class folder holds no .png/.jpg/.jpeg images",
                            f"expected {self.layout}")
        total = sum(len(v) for v in listing.values())
        if total != expected_count:
            raise DataError(where, f"holds {total:,} images", f"expected {expected_count:,} for {spec.dataset}")

    def close(self) -> None:
        if self._tree is not None:
            self._tree.close()
            self._tree = None


def check_image_arrays(location: Path | str, spec: TreeSpec, arrays: dict[str, np.ndarray], classes: list[str],
                       counts: dict[str, int]) -> None:
    """The integrity check every source of a data set passes, whatever its format: the number
    of classes, the counts per split, uint8 images of the spec's size and channels, labels in range."""
    if len(classes) != spec.num_classes:
        raise DataError(location, f"has {len(classes)} classes ({', '.join(map(str, classes))})",
                        f"expected {spec.classes_hint()}")
    height, width = spec.image_size
    shape = (height, width, MODES[spec.mode])
    for split, expected in counts.items():
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.shape[1:] != shape or x.dtype != np.uint8:
            raise DataError(location, f"{split} images are {x.dtype}{tuple(x.shape[1:])}",
                            f"expected uint8 {'x'.join(map(str, shape))}")
        if x.shape[0] != expected or y.shape[0] != expected:
            raise DataError(location, f"{split} split holds {x.shape[0]:,} images / {y.shape[0]:,} labels",
                            f"expected {expected:,} for {spec.dataset}")
        if y.size and (y.min() < 0 or y.max() >= len(classes)):
            raise DataError(location, f"{split} labels span {y.min()}..{y.max()}", f"expected 0..{len(classes) - 1}")
