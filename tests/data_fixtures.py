"""Writers of small on-disk datasets in the real formats, for the data-reader tests.

- :func:`write_cifar_batches`: torchvision's ``cifar-10-batches-py`` (pickle batches + meta)
- :func:`write_cifar_image_folder` / :func:`write_cifar_zip`: ``{train,test}/<class>/<image>``
- :func:`write_ilsvrc_tree`: an ILSVRC-2012-like tree with 1000 fake wnid folders

CIFAR images are filled with a value that encodes (class, index), so a test can check that
every image landed under the right label. Small counts go with ``expected_counts``.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets.cifar
from PIL import Image

from bench_suite.data.cifar10 import CIFAR10_CLASSES
from bench_suite.data.imagenet import RESTRICTED_IMAGENET_RANGES

# per class: 3 train and 1 test images -> 30 train, 10 test
SMALL_PER_CLASS = {"train": 3, "test": 1}
SMALL_COUNTS = {split: 10 * n for split, n in SMALL_PER_CLASS.items()}


def cifar_pixel_value(label: int, index: int) -> int:
    """The gray level of image ``index`` of class ``label`` (distinct for the small fixtures)."""
    return 20 * label + 5 * index


def cifar_image(label: int, index: int, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    return np.full((size[1], size[0], 3), cifar_pixel_value(label, index), dtype=np.uint8)


def encode(array: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpg":  # high quality, no chroma subsampling: flat colors survive within a few levels
        Image.fromarray(array).save(buf, format="JPEG", quality=95, subsampling=0)
    else:
        Image.fromarray(array).save(buf, format=fmt.upper())
    return buf.getvalue()


def cifar_members(fmt: str = "png", per_class=SMALL_PER_CLASS, classes=CIFAR10_CLASSES) -> dict[str, bytes]:
    """relative path -> encoded bytes, for the image-folder layout."""
    members = {}
    for split, count in per_class.items():
        for label, name in enumerate(classes):
            for i in range(count):
                members[f"{split}/{name}/{i:04d}.{fmt}"] = encode(cifar_image(label, i), fmt)
    return members


def write_cifar_image_folder(root: Path, fmt: str = "png", **kwargs) -> Path:
    for rel, data in cifar_members(fmt, **kwargs).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_zip(path: Path, members: dict[str, bytes], *, prefix: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for rel, data in members.items():
            zf.writestr(zipfile.ZipInfo(prefix + rel), data)  # ZipInfo keeps the name as given
    return path


def write_cifar_zip(path: Path, fmt: str = "jpg", *, prefix: str = "", **kwargs) -> Path:
    return write_zip(path, cifar_members(fmt, **kwargs), prefix=prefix)


def write_cifar_batches(root: Path, per_batch: int = 6, test: int = 10, *, image_bytes: int = 3072) -> Path:
    """torchvision's layout ``root/cifar-10-batches-py/``: five training batches of ``per_batch``
    images, one test batch, and ``batches.meta``; the dicts have the official keys. Images of
    batch b, position i have class (b + i) % 10 and gray level cifar_pixel_value(class, b)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(label_text: str, count: int, b: int) -> dict:
        labels = [(b + i) % 10 for i in range(count)]
        data = np.stack([np.full(image_bytes, cifar_pixel_value(c, b), dtype=np.uint8) for c in labels])
        return {"batch_label": label_text, "labels": labels, "data": data,
                "filenames": [f"img_{b}_{i}.png" for i in range(count)]}

    for b in range(1, 6):
        (folder / f"data_batch_{b}").write_bytes(pickle.dumps(batch(f"training batch {b} of 5", per_batch, b)))
    (folder / "test_batch").write_bytes(pickle.dumps(batch("testing batch 1 of 1", test, 0)))
    meta = {"num_cases_per_batch": per_batch, "label_names": list(CIFAR10_CLASSES), "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


@pytest.fixture
def skip_torchvision_md5(monkeypatch):
    """torchvision's CIFAR10 checks each file's md5 against the official release; fixture files
    cannot match it, so only that check is replaced (by "the file exists")."""
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity",
                        lambda fpath, md5=None: os.path.isfile(fpath))


@pytest.fixture
def no_data_env(monkeypatch):
    """No data location from the environment: each test passes its own."""
    for var in ("BENCH_SUITE_CIFAR10", "BENCH_SUITE_IMAGENET", "BENCH_SUITE_DATA_ROOT"):
        monkeypatch.delenv(var, raising=False)


# --------------------------------------------------------------------------- ILSVRC-like tree

USED_INDICES = sorted(i for _, first, last in RESTRICTED_IMAGENET_RANGES for i in range(first, last + 1))


def wnid(index: int) -> str:
    return f"n{index:08d}"  # fake wnids; zero-padded, so their sorted order is the index order


def ilsvrc_image(index: int, k: int, size: tuple[int, int]) -> bytes:
    """A small JPEG whose color encodes the class index (see :func:`ilsvrc_index_of`); the
    steps are coarse, as JPEG shifts flat colors by a few levels."""
    array = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    array[..., 0] = index % 50 * 5
    array[..., 1] = index // 50 * 30
    array[..., 2] = 40 * k
    return encode(array, "jpg")


def ilsvrc_index_of(images: np.ndarray) -> np.ndarray:
    """The class index encoded by :func:`ilsvrc_image` in each decoded (N, H, W, 3) image."""
    mean = images.reshape(len(images), -1, 3).mean(axis=1)
    return np.rint(mean[:, 0] / 5).astype(int) + 50 * np.rint(mean[:, 1] / 30).astype(int)


def write_ilsvrc_tree(root: Path, *, train_per_wnid: int = 2, val_per_wnid: int = 1,
                      n_classes: int = 1000, size: tuple[int, int] = (24, 16)) -> Path:
    """``root/{train,val}/<wnid>/*.JPEG`` with ``n_classes`` wnid folders; only the 203 that
    Restricted ImageNet uses hold images (non-square, to exercise the center crop)."""
    for split, count in (("train", train_per_wnid), ("val", val_per_wnid)):
        for index in range(n_classes):
            folder = root / split / wnid(index)
            folder.mkdir(parents=True, exist_ok=True)
            if index in USED_INDICES:
                for k in range(count):
                    (folder / f"{wnid(index)}_{k}.JPEG").write_bytes(ilsvrc_image(index, k, size))
    return root
