"""Writers of small on-disk datasets in the real formats, for the data-reader tests.

- :func:`write_cifar_batches`: torchvision's ``cifar-10-batches-py`` (pickle batches + meta)
- :func:`write_cifar_image_folder` / :func:`write_cifar_zip`: ``{train,test}/<class>/<image>``
- :func:`write_ilsvrc_tree`: an ILSVRC-2012-like tree with 1000 fake wnid folders
- :func:`write_mnist_idx`: the four raw IDX files (gzipped, plain or both) as torchvision's
  ``MNIST/raw/`` holds them; :func:`write_mnist_image_folder` / :func:`write_mnist_zip`:
  ``{train,test}/<digit>/*.png``, 28x28 grayscale
- :func:`write_cifar100_python`: the ``cifar-100-python`` pickles (``train``, ``test``, ``meta``)
  with the official keys; :func:`write_cifar100_image_folder` / :func:`write_cifar100_zip`:
  ``{train,test}/<fine class>/*.png``

CIFAR and MNIST images are filled with a value that encodes (class, index), so a test can check
that every image landed under the right label. Small counts go with ``expected_counts``.
"""

from __future__ import annotations

import gzip
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
from bench_suite.data.classnames import CIFAR100_COARSE_CLASSES, CIFAR100_COARSE_OF_FINE, CIFAR100_FINE_CLASSES
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
    for var in ("BENCH_SUITE_CIFAR10", "BENCH_SUITE_IMAGENET", "BENCH_SUITE_MNIST", "BENCH_SUITE_CIFAR100",
                "BENCH_SUITE_DATA_ROOT"):
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


# --------------------------------------------------------------------------- MNIST

# per digit: 4 train and 2 test images -> 40 train, 20 test
MNIST_PER_CLASS = {"train": 4, "test": 2}
MNIST_SMALL_COUNTS = {split: 10 * n for split, n in MNIST_PER_CLASS.items()}
MNIST_IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def mnist_pixel_value(digit: int, index: int) -> int:
    """The gray level of image ``index`` of ``digit`` (distinct for the small fixtures)."""
    return 20 * digit + 5 * index


def mnist_digits(split: str, per_class=MNIST_PER_CLASS) -> list[int]:
    """The label sequence of a split in the IDX fixture: interleaved, as in the real files."""
    return [digit for i in range(per_class[split]) for digit in range(10)]


def mnist_images(split: str, per_class=MNIST_PER_CLASS, size: tuple[int, int] = (28, 28)) -> np.ndarray:
    labels = mnist_digits(split, per_class)
    return np.stack([np.full(size, mnist_pixel_value(d, i // 10), dtype=np.uint8) for i, d in enumerate(labels)])


def idx_bytes(array: np.ndarray, *, type_code: int = 0x08) -> bytes:
    """The IDX encoding (LeCun et al.): magic 0x0000 <type> <ndim>, big-endian uint32 sizes, data."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist_idx(root: Path, *, layout: str = "MNIST/raw", compress: str = "gz", per_class=MNIST_PER_CLASS,
                    size: tuple[int, int] = (28, 28)) -> Path:
    """The four IDX files under ``root/<layout>`` (torchvision: ``root/MNIST/raw``); ``compress``:
    ``gz`` (the published files), ``none`` (what torchvision unpacks them to) or ``both``."""
    folder = root / layout if layout else root
    folder.mkdir(parents=True, exist_ok=True)
    for split, (images_name, labels_name) in MNIST_IDX_NAMES.items():
        for name, array in ((images_name, mnist_images(split, per_class, size)),
                            (labels_name, np.asarray(mnist_digits(split, per_class), dtype=np.uint8))):
            data = idx_bytes(array)
            if compress in ("none", "both"):
                (folder / name).write_bytes(data)
            if compress in ("gz", "both"):
                (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
    return folder


def mnist_members(per_class=MNIST_PER_CLASS, classes=tuple(str(d) for d in range(10)),
                  size: tuple[int, int] = (28, 28)) -> dict[str, bytes]:
    """relative path -> grayscale PNG bytes, for the image-folder layout ``{train,test}/<digit>/``."""
    members = {}
    for split, count in per_class.items():
        for label, name in enumerate(classes):
            for i in range(count):
                image = Image.fromarray(np.full(size[::-1], mnist_pixel_value(label, i), dtype=np.uint8))  # 2-D: mode L
                buf = io.BytesIO()
                image.save(buf, format="PNG")
                members[f"{split}/{name}/{i:05d}.png"] = buf.getvalue()
    return members


def write_mnist_image_folder(root: Path, **kwargs) -> Path:
    for rel, data in mnist_members(**kwargs).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_mnist_zip(path: Path, *, prefix: str = "", **kwargs) -> Path:
    return write_zip(path, mnist_members(**kwargs), prefix=prefix)


# --------------------------------------------------------------------------- CIFAR-100

# per fine class: 2 train and 1 test image -> 200 train, 100 test
CIFAR100_PER_CLASS = {"train": 2, "test": 1}
CIFAR100_SMALL_COUNTS = {split: 100 * n for split, n in CIFAR100_PER_CLASS.items()}


def cifar100_image(fine: int, index: int) -> np.ndarray:
    """R encodes the fine label, G the index within the class; B varies with both."""
    image = np.empty((32, 32, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 2 * fine, 40 * index, (7 * fine + 50 * index) % 256
    return image


def cifar100_split(split: str, per_class=CIFAR100_PER_CLASS) -> tuple[np.ndarray, list[int], list[int]]:
    """(data (N, 3072) in the release's row layout, fine labels, coarse labels) of a split,
    classes interleaved as in the real files."""
    fine = [c for i in range(per_class[split]) for c in range(100)]
    images = [cifar100_image(c, i // 100) for i, c in enumerate(fine)]
    data = np.stack([im.transpose(2, 0, 1).reshape(-1) for im in images])  # 1024 R, 1024 G, 1024 B
    return data, fine, [CIFAR100_COARSE_OF_FINE[c] for c in fine]


def write_cifar100_python(root: Path, per_class=CIFAR100_PER_CLASS, *, folder_name: str = "cifar-100-python",
                          coarse_of_fine=None, fine_names=None) -> Path:
    """``root/cifar-100-python/{train,test,meta}``: protocol-2 pickles (as the Python 2 release)
    of dicts with the official keys (``filenames``, ``batch_label``, ``fine_labels``,
    ``coarse_labels``, ``data``; meta: ``fine_label_names``, ``coarse_label_names``)."""
    folder = root / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        data, fine, coarse = cifar100_split(split, per_class)
        if coarse_of_fine is not None:
            coarse = [coarse_of_fine[c] for c in fine]
        entry = {"filenames": [f"img_{i}.png" for i in range(len(fine))], "batch_label": f"{split}ing batch 1 of 1",
                 "fine_labels": fine, "coarse_labels": coarse, "data": data}
        (folder / split).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {"fine_label_names": list(fine_names or CIFAR100_FINE_CLASSES),
            "coarse_label_names": list(CIFAR100_COARSE_CLASSES)}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def cifar100_members(per_class=CIFAR100_PER_CLASS, classes=CIFAR100_FINE_CLASSES) -> dict[str, bytes]:
    members = {}
    for split, count in per_class.items():
        for label, name in enumerate(classes):
            for i in range(count):
                members[f"{split}/{name}/{i:04d}.png"] = encode(cifar100_image(label, i), "png")
    return members


def write_cifar100_image_folder(root: Path, **kwargs) -> Path:
    for rel, data in cifar100_members(**kwargs).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_cifar100_zip(path: Path, *, prefix: str = "", **kwargs) -> Path:
    return write_zip(path, cifar100_members(**kwargs), prefix=prefix)


@pytest.fixture
def skip_cifar100_md5(monkeypatch):
    """The CIFAR-100 reader unpickles a file only if its md5 is the published one; fixture
    files cannot match it, so only that check is replaced (by "the file exists")."""
    monkeypatch.setattr("bench_suite.data.cifar100.matches_published_md5", lambda path, md5: Path(path).is_file())
