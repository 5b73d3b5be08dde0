"""Image-folder layouts ``<split>/<class>/<image>`` in a directory or a zip, and safe decoding.

Both kinds of tree list their images the same way (classes and files in sorted order, so a
label is the index of its class folder in sorted order, as in torchvision's ``ImageFolder``)
and hand out each image's bytes; :func:`decode_image` turns bytes into a uint8 HWC array with
Pillow, keeping Pillow's decompression-bomb guard on (its warning is promoted to an error).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DataError, one_line
from .safezip import SafeZip, member_parts

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
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
        images = [(member_parts(i.filename), i) for i in self.archive.members if is_image_name(Path(i.filename).name)]
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
                 square: int | None = None) -> np.ndarray:
    """Decode one image to a uint8 (H, W, 3) RGB array.

    ``expect_size`` (width, height): the image must have exactly this size (checked from the
    header, before decoding). ``square``: center-crop to a square and resize to
    ``square x square`` with box (area-average) filtering; JPEGs are first decoded at a reduced
    scale (DCT scaling via ``draft``), which is much faster and stays above twice the target.
    """
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
                    img.draft("RGB", (2 * square, 2 * square))
                rgb = img.convert("RGB")
            if square is not None:
                rgb = ImageOps.fit(rgb, (square, square), method=Image.Resampling.BOX)
            return np.asarray(rgb, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(where, f"image is too large to be a data set picture ({one_line(err)})",
                        "remove or replace this file") from err
    except UnidentifiedImageError as err:
        raise DataError(where, "is not an image Pillow can read", "remove or replace this file") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise DataError(where, f"image cannot be decoded ({one_line(err)})",
                        "the file is truncated or corrupt; remove or replace it") from err


def decode_entries(tree: DirectoryTree | ZipTree, entries: list[ImageEntry], shape: tuple[int, int],
                   *, exact: bool) -> np.ndarray:
    """Decode ``entries`` into one (N, H, W, 3) uint8 array; ``shape`` is (height, width).

    ``exact``: every image must already be ``shape`` (CIFAR); otherwise each is cropped and
    resized to it (``shape`` must then be square).
    """
    height, width = shape
    out = np.empty((len(entries), height, width, 3), dtype=np.uint8)
    for i, entry in enumerate(entries):
        data = tree.read(entry)
        if exact:
            out[i] = decode_image(data, entry.where, expect_size=(width, height))
        else:
            out[i] = decode_image(data, entry.where, square=height)
    return out
