"""MNIST readers: raw IDX files (gzipped or not, torchvision's MNIST/raw/ layout), image folders
and zips, the cache, other data sets passed over, and every kind of bad input."""

from __future__ import annotations

import gzip
import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import (
    MNIST_IDX_NAMES,
    MNIST_SMALL_COUNTS,
    idx_bytes,
    mnist_digits,
    mnist_images,
    mnist_members,
    mnist_pixel_value,
    no_data_env,  # noqa: F401 - fixture
    write_cifar_zip,
    write_mnist_idx,
    write_mnist_image_folder,
    write_mnist_zip,
    write_zip,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from bench_suite.data import DataError
from bench_suite.data.mnist import load_mnist, read_idx
from bench_suite.tasks.base import DataUnavailable


def load_small(root, cache, **kwargs):
    kwargs.setdefault("expected_counts", MNIST_SMALL_COUNTS)
    return load_mnist(root, cache, **kwargs)


def assert_one_line_error(excinfo, *needles):
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def assert_labels_match_pixels(images):
    """Each fixture image's gray level encodes its digit (data_fixtures.mnist_pixel_value)."""
    for x, y in ((images.x_train, images.y_train), (images.x_test, images.y_test)):
        levels = x.reshape(len(x), -1).mean(axis=1)
        for level, label in zip(levels, y):
            assert any(level == mnist_pixel_value(int(label), i) for i in range(4)), (level, label)


# --------------------------------------------------------------------------- IDX files


@pytest.mark.parametrize("compress", ["gz", "none", "both"])
@pytest.mark.parametrize("layout", ["MNIST/raw", "raw", ""])
def test_idx_files_in_every_layout(tmp_path, compress, layout):
    folder = write_mnist_idx(tmp_path / "data", layout=layout, compress=compress)
    images = load_small(tmp_path / "data", tmp_path / "cache")
    assert images.x_train.shape == (40, 28, 28, 1) and images.x_train.dtype == np.uint8
    assert images.x_test.shape == (20, 28, 28, 1) and images.y_test.dtype == np.int64
    assert images.y_train.tolist() == mnist_digits("train") and images.classes == [str(d) for d in range(10)]
    np.testing.assert_array_equal(images.x_train[..., 0], mnist_images("train"))  # exact pixels
    kind = {"gz": "gzipped", "none": "uncompressed", "both": "uncompressed"}[compress]  # plain wins
    assert images.source.startswith(f"MNIST, IDX files ({kind}; ")
    assert images.location == str(folder) and images.checksum.startswith("sha256:")
    assert_labels_match_pixels(images)


def test_idx_fixture_is_what_torchvision_reads(tmp_path):
    """The fixture is the real format: torchvision's own IDX reader parses it to the same arrays."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    folder = write_mnist_idx(tmp_path, compress="both")
    np.testing.assert_array_equal(read_image_file(str(folder / "train-images-idx3-ubyte")).numpy(),
                                  mnist_images("train"))
    assert read_label_file(str(folder / "t10k-labels-idx1-ubyte")).tolist() == mnist_digits("test")
    assert gzip.decompress((folder / "train-images-idx3-ubyte.gz").read_bytes()) == \
        (folder / "train-images-idx3-ubyte").read_bytes()
    ours = load_small(tmp_path, tmp_path / "cache")
    assert ours.y_test.tolist() == read_label_file(str(folder / "t10k-labels-idx1-ubyte")).tolist()


def test_gz_and_plain_copies_decode_alike_but_checksum_differently(tmp_path):
    write_mnist_idx(tmp_path / "a", compress="gz")
    write_mnist_idx(tmp_path / "b", compress="none")
    a, b = load_small(tmp_path / "a", tmp_path / "cache"), load_small(tmp_path / "b", tmp_path / "cache")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.checksum != b.checksum and not b.from_cache  # the checksum is of the files read


@settings(max_examples=25, deadline=None)
@given(count=st.integers(0, 6), height=st.integers(1, 5), width=st.integers(1, 5), seed=st.integers(0, 2**16),
       packed=st.booleans())
def test_read_idx_inverts_the_idx_encoding(count, height, width, seed, packed):
    array = np.random.default_rng(seed).integers(0, 256, size=(count, height, width), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("x.gz" if packed else "x")
        data = idx_bytes(array)
        path.write_bytes(gzip.compress(data) if packed else data)
        out = read_idx(path, dims=3, tail=(height, width), count=count, what="images")
    np.testing.assert_array_equal(out, array)


# --------------------------------------------------------------------------- image folders and zips


def test_image_folder_of_grayscale_pngs(tmp_path):
    root = write_mnist_image_folder(tmp_path / "mnist-png")
    images = load_small(root, tmp_path / "cache")
    assert images.source == "MNIST, PNG images (mnist-png)" and images.checksum.startswith("listing-sha256:")
    assert images.x_train.shape == (40, 28, 28, 1)
    assert images.y_train.tolist() == [d for d in range(10) for _ in range(4)]
    assert_labels_match_pixels(images)


def test_rgb_pngs_of_gray_digits_are_read_as_gray(tmp_path):
    from PIL import Image

    root = write_mnist_image_folder(tmp_path / "m")
    path = root / "train" / "3" / "00001.png"
    Image.open(path).convert("RGB").save(path)  # some exports write RGB
    images = load_small(root, tmp_path / "cache")
    assert (images.x_train[13] == mnist_pixel_value(3, 1)).all()


@pytest.mark.parametrize("prefix", ["", "mnist/"])
def test_zip_with_and_without_top_folder(tmp_path, prefix):
    path = write_mnist_zip(tmp_path / "mnist.zip", prefix=prefix)
    images = load_small(path, tmp_path / "cache")
    assert images.source == "MNIST, PNG images (mnist.zip)"
    assert images.checksum == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert_labels_match_pixels(images)


def test_folder_of_several_zips_takes_the_one_named_mnist(tmp_path):
    write_cifar_zip(tmp_path / "data" / "cifar10-jpeg.zip")
    write_mnist_zip(tmp_path / "data" / "MNIST-png.zip")
    assert load_small(tmp_path / "data", tmp_path / "cache").location.endswith("MNIST-png.zip")


# --------------------------------------------------------------------------- where it is looked for


def test_env_var_is_the_fallback_and_data_root_wins(no_data_env, tmp_path, monkeypatch):  # noqa: F811
    write_mnist_idx(tmp_path / "env")
    write_mnist_image_folder(tmp_path / "root")
    monkeypatch.setenv("BENCH_SUITE_MNIST", str(tmp_path / "env"))
    assert "IDX" in load_small(None, tmp_path / "cache").source
    assert "PNG" in load_small(tmp_path / "root", tmp_path / "cache").source  # data_root wins
    (tmp_path / "empty").mkdir()
    assert "IDX" in load_small(tmp_path / "empty", tmp_path / "cache").source  # holds no MNIST: the env var


def test_another_data_set_is_passed_over_not_an_error(no_data_env, tmp_path, monkeypatch):  # noqa: F811
    """One zip for every task (the CI passes CIFAR-10's as --data-root): MNIST skips it."""
    cifar = write_cifar_zip(tmp_path / "cifar10-jpeg.zip")
    with pytest.raises(DataUnavailable) as excinfo:
        load_small(cifar, tmp_path / "cache")
    assert_one_line_error(excinfo, str(cifar), "CIFAR-10", "not of MNIST", "BENCH_SUITE_MNIST", "MNIST/raw")
    assert not isinstance(excinfo.value, DataError)
    monkeypatch.setenv("BENCH_SUITE_MNIST", str(write_mnist_zip(tmp_path / "m.zip")))
    assert load_small(cifar, tmp_path / "cache").location.endswith("m.zip")


def test_second_load_comes_from_the_cache(tmp_path):
    write_mnist_idx(tmp_path / "d")
    first, second = load_small(tmp_path / "d", tmp_path / "cache"), load_small(tmp_path / "d", tmp_path / "cache")
    assert not first.from_cache and second.from_cache and second.source == first.source
    np.testing.assert_array_equal(first.x_test, second.x_test)


def test_no_location_is_unavailable_with_instructions(no_data_env, tmp_path):  # noqa: F811
    with pytest.raises(DataUnavailable) as excinfo:
        load_small(None, tmp_path / "cache")
    assert_one_line_error(excinfo, "no location given", "--data-root", "BENCH_SUITE_MNIST", "MNIST/raw",
                          "train-images-idx3-ubyte", "{train,test}/<digit>/*.png")
    with pytest.raises(DataUnavailable, match="does not exist"):
        load_small(tmp_path / "nowhere", tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataUnavailable, match="searched .*empty"):
        load_small(tmp_path / "empty", tmp_path / "cache")


# --------------------------------------------------------------------------- bad IDX files


def damage_idx(tmp_path, name, data: bytes, *, compress="none"):
    folder = write_mnist_idx(tmp_path, compress=compress)
    path = folder / (f"{name}.gz" if compress == "gz" else name)
    path.write_bytes(gzip.compress(data) if compress == "gz" else data)
    return path


@pytest.mark.parametrize("case, needles", [
    ("magic", ["does not start with an IDX magic number"]),
    ("type", ["IDX data type is 0x0d", "unsigned byte"]),
    ("dims", ["declares 1 dimension(s)", "expected 3 (images)"]),
    ("size", ["images of size 27x28", "expected 28x28"]),
    ("count", ["holds 41 images", "expected 40 for MNIST"]),
    ("truncated", ["is truncated", "31,360 data bytes"]),
    ("trailing", ["bytes after the 31,360 data bytes"]),
    ("header", ["IDX header is truncated"]),
])
@pytest.mark.parametrize("compress", ["none", "gz"])
def test_bad_idx_images_name_the_file(tmp_path, case, needles, compress):
    good = idx_bytes(mnist_images("train"))
    data = {
        "magic": b"\x12\x34" + good[2:],
        "type": good[:2] + b"\x0d" + good[3:],
        "dims": idx_bytes(np.zeros(40, dtype=np.uint8)),
        "size": idx_bytes(mnist_images("train", size=(27, 28))),
        "count": idx_bytes(np.concatenate([mnist_images("train"), mnist_images("train")[:1]])),
        "truncated": good[:-100],
        "trailing": good + b"\0",
        "header": good[:10],
    }[case]
    path = damage_idx(tmp_path, "train-images-idx3-ubyte", data, compress=compress)
    with pytest.raises(DataError) as excinfo:
        load_small(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, str(path), *needles)


def test_label_file_with_a_label_past_9(tmp_path):
    labels = np.asarray(mnist_digits("test"), dtype=np.uint8)
    labels[3] = 11
    path = damage_idx(tmp_path, "t10k-labels-idx1-ubyte", idx_bytes(labels))
    with pytest.raises(DataError) as excinfo:
        load_small(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, str(path), "label 11", "0..9")


def test_label_file_missing_a_digit(tmp_path):
    labels = np.asarray(mnist_digits("test"), dtype=np.uint8)
    labels[labels == 7] = 1
    path = damage_idx(tmp_path, "t10k-labels-idx1-ubyte", idx_bytes(labels))
    with pytest.raises(DataError) as excinfo:
        load_small(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, str(path), "digit(s) [7]")


def test_images_and_labels_swapped(tmp_path):
    folder = write_mnist_idx(tmp_path, compress="none")
    images, labels = (folder / n for n in MNIST_IDX_NAMES["train"])
    a, b = images.read_bytes(), labels.read_bytes()
    images.write_bytes(b)
    labels.write_bytes(a)
    with pytest.raises(DataError) as excinfo:
        load_small(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, str(images), "declares 1 dimension(s)")


def test_corrupt_gzip(tmp_path):
    folder = write_mnist_idx(tmp_path, compress="gz")
    path = folder / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataError) as excinfo:
        load_small(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, str(path), "cannot be read")
    path.write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError) as excinfo:
        load_small(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, str(path), "cannot be read")


def test_gzip_file_without_its_suffix(tmp_path):
    folder = write_mnist_idx(tmp_path, compress="gz")
    packed = folder / "t10k-images-idx3-ubyte.gz"
    packed.rename(folder / "t10k-images-idx3-ubyte")
    with pytest.raises(DataError) as excinfo:
        load_small(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, "t10k-images-idx3-ubyte", "gzip-compressed but not named .gz", "rename")


def test_missing_idx_file(tmp_path):
    folder = write_mnist_idx(tmp_path, compress="gz")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as excinfo:
        load_small(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, "t10k-labels-idx1-ubyte", "missing")


def test_real_counts_are_expected_by_default(tmp_path):
    write_mnist_idx(tmp_path)
    with pytest.raises(DataError) as excinfo:
        load_mnist(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, "train-images-idx3-ubyte.gz", "holds 40 images", "expected 60,000")


# --------------------------------------------------------------------------- bad image folders


def test_folder_with_nine_digits(tmp_path):
    root = write_mnist_image_folder(tmp_path / "m", classes=[str(d) for d in range(9)])
    with pytest.raises(DataError) as excinfo:
        load_small(root, tmp_path / "cache", expected_counts={"train": 36, "test": 18})
    assert_one_line_error(excinfo, f"{root}/train", "9 class folders", "expected 10")


def test_folder_with_a_stray_class_folder(tmp_path):
    classes = [str(d) for d in range(9)] + ["seven"]
    root = write_mnist_image_folder(tmp_path / "m", classes=classes)
    with pytest.raises(DataError) as excinfo:
        load_small(root, tmp_path / "cache")
    assert_one_line_error(excinfo, f"{root}/train", "seven", "lacks 9", "expected the 10 class folders (0, 1, 2")


def test_wrong_image_size_and_count(tmp_path):
    members = mnist_members()
    members["train/4/00002.png"] = mnist_members(size=(28, 29))["train/4/00002.png"]
    path = write_zip(tmp_path / "m.zip", members)
    with pytest.raises(DataError) as excinfo:
        load_small(path, tmp_path / "cache")
    assert_one_line_error(excinfo, "train/4/00002.png", "28x29", "expected 28x28")
    root = write_mnist_image_folder(tmp_path / "m", per_class={"train": 4, "test": 3})
    with pytest.raises(DataError) as excinfo:
        load_small(root, tmp_path / "cache")
    assert_one_line_error(excinfo, f"{root}/test", "holds 30 images", "expected 20 for MNIST")


def test_corrupt_png(tmp_path):
    root = write_mnist_image_folder(tmp_path / "m")
    bad = root / "test" / "5" / "00001.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError) as excinfo:
        load_small(root, tmp_path / "cache")
    assert_one_line_error(excinfo, str(bad))

