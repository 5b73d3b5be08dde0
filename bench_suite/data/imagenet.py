"""Restricted ImageNet (Tsipras et al., 2019): 9 super-classes of ILSVRC-2012, small squares.

The super-classes are INCLUSIVE ranges of class indices over the sorted list of the 1000 wnid
folder names (the ILSVRC-2012 / torchvision order), as in MadryLab's ``robustness`` library.
Train images come from ``train/<wnid>/``, test images from ``val/<wnid>/`` (the ImageFolder
layout of the validation set). Each image is center-cropped to a square and resized to
``image_size`` (box filter), decoded once and cached as uint8 like CIFAR-10.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .cache import cache_key, cached_arrays
from .contract import DataError, DataUnavailable
from .imagefolder import DirectoryTree, ImageEntry, decode_entries

IMAGENET_ENV = "BENCH_SUITE_IMAGENET"
# (super-class, first class index, last class index), inclusive, in the label order of robustness
RESTRICTED_IMAGENET_RANGES = (
    ("dog", 151, 268),
    ("cat", 281, 285),
    ("frog", 30, 32),
    ("turtle", 33, 37),
    ("bird", 80, 100),
    ("primate", 365, 382),
    ("fish", 389, 397),
    ("crab", 118, 121),
    ("insect", 300, 319),
)
RESTRICTED_IMAGENET_CLASSES = tuple(name for name, _, _ in RESTRICTED_IMAGENET_RANGES)
N_IMAGENET_CLASSES = 1000
N_RESTRICTED_WNIDS = sum(last - first + 1 for _, first, last in RESTRICTED_IMAGENET_RANGES)
assert N_RESTRICTED_WNIDS == 203
WNID = re.compile(r"^n\d{8}$")
SPLITS = {"train": "train", "test": "val"}  # our split -> ILSVRC folder
# where under a data root an ILSVRC-2012 tree is commonly found (the root itself first)
CANDIDATE_SUBFOLDERS = ("", "imagenet", "ImageNet", "ILSVRC2012", "ilsvrc2012", "ILSVRC/Data/CLS-LOC")
READER_VERSION = 1
MAX_FILE_BYTES = 64 << 20  # ILSVRC-2012's biggest JPEG is a few MB

LAYOUT = (
    "an ILSVRC-2012 folder with train/<wnid>/*.JPEG and val/<wnid>/*.JPEG "
    f"({N_IMAGENET_CLASSES} wnid folders each, e.g. train/n01440764/)"
)


@dataclass
class RestrictedImageNetImages:
    """uint8 images (N, s, s, 3) HWC and int64 super-class labels 0..8."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    source: str
    checksum: str
    location: str
    from_cache: bool = False
    info: dict[str, Any] = field(default_factory=dict)  # class counts, wnids per class, caps


def load_restricted_imagenet(
    data_root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    image_size: int = 32,
    max_train_per_wnid: int | None = None,
    max_val_per_wnid: int | None = None,
) -> RestrictedImageNetImages:
    """Find, check, decode (once) and return Restricted ImageNet.

    ``max_*_per_wnid`` keep the first k images (sorted file names) of every wnid folder, for
    tractability (None = all). Raises :class:`DataUnavailable` when no ILSVRC-2012 tree is
    found, :class:`DataError` when one is found but does not have the expected layout.
    """
    if not (isinstance(image_size, int) and 4 <= image_size <= 512):
        raise ValueError(f"image_size must be an integer in [4, 512], got {image_size!r}")
    for name, cap in (("max_train_per_wnid", max_train_per_wnid), ("max_val_per_wnid", max_val_per_wnid)):
        if cap is not None and (not isinstance(cap, int) or cap < 1):
            raise ValueError(f"{name} must be a positive integer or None, got {cap!r}")
    root = find_imagenet(data_root)
    tree = DirectoryTree(root, LAYOUT, MAX_FILE_BYTES)
    wnids = restricted_wnids(tree)
    caps = {"train": max_train_per_wnid, "test": max_val_per_wnid}
    listings = {split: _listing(tree, split, wnids, caps[split]) for split in SPLITS}
    # content-hashing ~260k JPEGs (tens of GB) on every load is not feasible: the checksum is
    # over the listing (relative path, size) of exactly the images used
    checksum = tree.listing_checksum(listings)
    key = cache_key(dataset="restricted_imagenet", reader=READER_VERSION, checksum=checksum, image_size=image_size)

    def build():
        arrays = {}
        for split in SPLITS:
            entries = [e for cls in wnids for w in wnids[cls] for e in listings[split][w]]
            arrays[f"x_{split}"] = decode_entries(tree, entries, (image_size, image_size), exact=False)
            arrays[f"y_{split}"] = np.repeat(
                np.arange(len(wnids), dtype=np.int64),
                [sum(len(listings[split][w]) for w in wnids[cls]) for cls in wnids],
            )
        return arrays, {"image_size": image_size}

    arrays, _, hit = cached_arrays(cache_dir, "restricted_imagenet", key, build)
    counts = {split: {cls: int(n) for cls, n in zip(wnids, np.bincount(arrays[f"y_{split}"], minlength=len(wnids)))}
              for split in SPLITS}
    info = {
        "class_counts_train": counts["train"],
        "class_counts_test": counts["test"],
        "wnids_per_class": {cls: len(w) for cls, w in wnids.items()},
        "class_index_ranges": {name: [first, last] for name, first, last in RESTRICTED_IMAGENET_RANGES},
        "max_train_per_wnid": max_train_per_wnid,
        "max_val_per_wnid": max_val_per_wnid,
        "image_size": image_size,
    }
    return RestrictedImageNetImages(
        x_train=arrays["x_train"], y_train=arrays["y_train"], x_test=arrays["x_test"], y_test=arrays["y_test"],
        classes=list(RESTRICTED_IMAGENET_CLASSES),
        source=f"Restricted ImageNet (ILSVRC-2012 train/val, {image_size}x{image_size}, {root.name})",
        checksum=checksum, location=str(root), from_cache=hit, info=info,
    )


def find_imagenet(data_root: str | os.PathLike | None) -> Path:
    """The first ILSVRC-2012 tree (a folder with ``train/``) under ``data_root``, then under
    ``$BENCH_SUITE_IMAGENET``; each is tried as is and at the usual subfolders."""
    searched = []
    for base in (data_root, os.environ.get(IMAGENET_ENV) or None):
        if base is None:
            continue
        base = Path(base).expanduser()
        for sub in CANDIDATE_SUBFOLDERS:
            candidate = base / sub if sub else base
            if (candidate / "train").is_dir():
                return candidate
        searched.append(str(base))
    where = f"searched {', '.join(searched)}" if searched else "no location given"
    raise DataUnavailable(
        f"ImageNet not found ({where}): pass --data-root (or set BENCH_SUITE_DATA_ROOT or {IMAGENET_ENV}) "
        f"to {LAYOUT}"
    )


def restricted_wnids(tree: DirectoryTree) -> dict[str, list[str]]:
    """super-class -> its wnids, from the sorted list of the 1000 train wnid folders."""
    all_wnids = tree.class_names("train")
    if len(all_wnids) != N_IMAGENET_CLASSES or not all(WNID.match(w) for w in all_wnids):
        odd = next((w for w in all_wnids if not WNID.match(w)), None)
        detail = f" (e.g. {odd!r} is not a wnid)" if odd else ""
        raise DataError(tree.root / "train", f"holds {len(all_wnids)} class folders{detail}",
                        f"expected the {N_IMAGENET_CLASSES} ILSVRC-2012 wnid folders (nXXXXXXXX): the class index is "
                        "the position in their sorted list, so all of them must be there")
    val = tree.root / "val"
    if not val.is_dir():
        raise DataError(val, "folder is missing", f"expected {LAYOUT}")
    val_wnids = tree.class_names("val")
    if val_wnids != all_wnids:
        raise DataError(val, f"holds {len(val_wnids)} class folders, not the {N_IMAGENET_CLASSES} wnids of train/",
                        "expected val/<wnid>/*.JPEG (sort a flat val/ into wnid folders with the usual valprep script)")
    return {name: all_wnids[first : last + 1] for name, first, last in RESTRICTED_IMAGENET_RANGES}


def _listing(
    tree: DirectoryTree, split: str, wnids: dict[str, list[str]], cap: int | None
) -> dict[str, list[ImageEntry]]:
    """wnid -> its first ``cap`` images (sorted names) in ``split``; every used wnid must have one."""
    folder = SPLITS[split]
    listing = tree.list_split(folder, [w for ws in wnids.values() for w in ws])
    for wnid, entries in listing.items():
        if not entries:
            raise DataError(tree.root / folder / wnid, "wnid folder holds no images", f"expected {LAYOUT}")
    return {w: entries[:cap] for w, entries in listing.items()}
