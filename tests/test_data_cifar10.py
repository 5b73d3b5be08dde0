"""CIFAR-10 readers: each on-disk format, the cache, and every kind of bad input."""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
import zipfile

import numpy as np
import pytest
from data_fixtures import (
    SMALL_COUNTS,
    cifar_members,
    cifar_pixel_value,
    encode,
    no_data_env,  # noqa: F401 - fixture
    skip_torchvision_md5,  # noqa: F401 - fixture
    write_cifar_batches,
    write_cifar_image_folder,
    write_cifar_zip,
    write_zip,
)
from PIL import Image

from bench_suite.data import DataError, load_cifar10
from bench_suite.data.cache import CorruptCacheWarning, resolve_cache_dir
from bench_suite.tasks.base import DataError as TaskDataError
from bench_suite.tasks.base import DataUnavailable

BATCH_COUNTS = {"train": 30, "test": 10}  # write_cifar_batches' defaults: 5 x 6, 10


def load_small(root, cache, **kwargs):
    kwargs.setdefault("expected_counts", SMALL_COUNTS)
    return load_cifar10(root, cache, **kwargs)


def assert_one_line_error(excinfo, *needles):
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def assert_labels_match_pixels(images):
    """Each fixture image's gray level encodes its class (see data_fixtures.cifar_pixel_value)."""
    for x, y in ((images.x_train, images.y_train), (images.x_test, images.y_test)):
        levels = x.reshape(len(x), -1).mean(axis=1)
        for level, label in zip(levels, y):
            assert any(abs(level - cifar_pixel_value(int(label), i)) <= 2 for i in range(6)), (level, label)


# --------------------------------------------------------------------------- formats


def test_pickle_batches_read_through_torchvision(tmp_path, skip_torchvision_md5):  # noqa: F811
    write_cifar_batches(tmp_path / "data")
    shutil.copytree(tmp_path / "data" / "cifar-10-batches-py", tmp_path / "renamed")
    # the folder's parent, the folder, or the folder under another name
    for root in (tmp_path / "data", tmp_path / "data" / "cifar-10-batches-py", tmp_path / "renamed"):
        images = load_cifar10(root, tmp_path / "cache", expected_counts=BATCH_COUNTS)
        assert images.x_train.shape == (30, 32, 32, 3) and images.x_train.dtype == np.uint8
        assert images.x_test.shape == (10, 32, 32, 3)
        assert images.classes[0] == "airplane" and len(images.classes) == 10
        assert images.source == "CIFAR-10, python pickle batches (cifar-10-batches-py)"
        assert images.checksum.startswith("sha256:")
        assert images.y_train[:6].tolist() == [(1 + i) % 10 for i in range(6)]  # batch 1
        assert (images.x_train[0] == cifar_pixel_value(1, 1)).all()


def test_image_folder_png_labels_follow_sorted_class_folders(tmp_path):
    root = write_cifar_image_folder(tmp_path / "cifar", fmt="png")
    images = load_small(root, tmp_path / "cache")
    assert images.source == "CIFAR-10, PNG images (cifar)"
    assert images.checksum.startswith("listing-sha256:")
    assert images.y_train.tolist() == [c for c in range(10) for _ in range(3)]
    assert_labels_match_pixels(images)
    # PNG is lossless: exact pixel values
    assert (images.x_train[4] == cifar_pixel_value(1, 1)).all()


@pytest.mark.parametrize("prefix", ["", "cifar10/"])
def test_jpeg_zip_source_and_checksum(tmp_path, prefix):
    path = write_cifar_zip(tmp_path / "cifar10-jpeg.zip", fmt="jpg", prefix=prefix)
    images = load_small(path, tmp_path / "cache")
    assert images.source == "CIFAR-10, JPEG re-encoding (cifar10-jpeg.zip)"
    assert images.checksum == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert images.x_train.shape == (30, 32, 32, 3) and images.y_test.tolist() == list(range(10))
    assert_labels_match_pixels(images)


def test_folder_holding_one_zip(tmp_path):
    write_cifar_zip(tmp_path / "data" / "cifar10-jpeg.zip")
    images = load_small(tmp_path / "data", tmp_path / "cache")
    assert images.location.endswith("cifar10-jpeg.zip")


def test_env_var_is_the_fallback_location(tmp_path, monkeypatch):
    path = write_cifar_zip(tmp_path / "c.zip")
    monkeypatch.setenv("BENCH_SUITE_CIFAR10", str(path))
    assert load_small(None, tmp_path / "cache").location == str(path)
    (tmp_path / "shared_root").mkdir()  # a data root without CIFAR-10 in it: the env var still counts
    assert load_small(tmp_path / "shared_root", tmp_path / "cache").location == str(path)


# --------------------------------------------------------------------------- cache


def test_second_load_comes_from_the_cache(tmp_path):
    path = write_cifar_zip(tmp_path / "c.zip")
    first = load_small(path, tmp_path / "cache")
    second = load_small(path, tmp_path / "cache")
    assert not first.from_cache and second.from_cache
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert second.source == first.source and second.checksum == first.checksum
    entries = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert len(entries) == 1
    assert sorted(p.name for p in entries[0].iterdir()) == [
        "meta.json", "x_test.npy", "x_train.npy", "y_test.npy", "y_train.npy"]  # no temp files left


def test_a_changed_source_gets_a_new_cache_entry(tmp_path):
    path = write_cifar_zip(tmp_path / "c.zip", fmt="png")
    load_small(path, tmp_path / "cache")
    write_cifar_zip(tmp_path / "c.zip", fmt="jpg")
    again = load_small(path, tmp_path / "cache")
    assert not again.from_cache and "JPEG" in again.source


@pytest.mark.parametrize("damage", ["truncate", "flip", "pickle", "sidecar"])
def test_corrupt_cache_is_detected_and_rebuilt(tmp_path, damage):
    path = write_cifar_zip(tmp_path / "c.zip")
    good = load_small(path, tmp_path / "cache")
    entry = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    target = entry / "x_train.npy"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:-100])
    elif damage == "flip":
        data = bytearray(target.read_bytes())
        data[-1] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "pickle":  # an object array needs pickle: the cache must refuse to load it
        np.save(target, np.array([object()] * 3, dtype=object), allow_pickle=True)
    else:
        (entry / "meta.json").write_text("{not json")
    with pytest.warns(CorruptCacheWarning, match="corrupt"):
        rebuilt = load_small(path, tmp_path / "cache")
    assert not rebuilt.from_cache
    np.testing.assert_array_equal(rebuilt.x_train, good.x_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_small(path, tmp_path / "cache").from_cache


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_SUITE_CACHE", str(tmp_path / "a"))
    assert resolve_cache_dir(None) == tmp_path / "a"
    assert resolve_cache_dir(tmp_path / "b") == tmp_path / "b"
    monkeypatch.delenv("BENCH_SUITE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert resolve_cache_dir(None) == tmp_path / "x" / "bench_suite"


# --------------------------------------------------------------------------- absent data


def test_no_location_at_all_is_unavailable(no_data_env, tmp_path):  # noqa: F811
    with pytest.raises(DataUnavailable, match="BENCH_SUITE_CIFAR10") as excinfo:
        load_small(None, tmp_path / "cache")
    assert "cifar-10-batches-py" in str(excinfo.value) and "{train,test}" in str(excinfo.value)


def test_missing_root_is_unavailable(no_data_env, tmp_path):  # noqa: F811
    with pytest.raises(DataUnavailable, match="does not exist"):
        load_small(tmp_path / "nowhere", tmp_path / "cache")


def test_empty_folder_is_unavailable(no_data_env, tmp_path):  # noqa: F811
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataUnavailable, match="searched .*empty"):
        load_small(tmp_path / "empty", tmp_path / "cache")


# --------------------------------------------------------------------------- bad data


def test_data_error_is_the_task_contracts_data_error():
    err = DataError("/x/y.png", "image is 33x32", "expected 32x32")
    assert isinstance(err, TaskDataError) and str(err) == "/x/y.png: image is 33x32; expected 32x32"


def test_pickle_batch_with_wrong_md5_names_the_file(tmp_path):
    write_cifar_batches(tmp_path)  # torchvision's own md5 check is on: fixture files fail it
    with pytest.raises(DataError) as excinfo:
        load_cifar10(tmp_path, tmp_path / "cache", expected_counts=BATCH_COUNTS)
    assert_one_line_error(excinfo, "data_batch_1", "md5")


def test_truncated_pickle_batch(tmp_path, skip_torchvision_md5):  # noqa: F811
    folder = write_cifar_batches(tmp_path)
    batch = folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(DataError) as excinfo:
        load_cifar10(tmp_path, tmp_path / "cache", expected_counts=BATCH_COUNTS)
    assert_one_line_error(excinfo, "data_batch_3", "pickle batch")


def test_missing_pickle_batch(tmp_path, skip_torchvision_md5):  # noqa: F811
    folder = write_cifar_batches(tmp_path)
    (folder / "test_batch").unlink()
    with pytest.raises(DataError) as excinfo:
        load_cifar10(tmp_path, tmp_path / "cache", expected_counts=BATCH_COUNTS)
    assert_one_line_error(excinfo, "test_batch", "missing")


def test_pickle_batch_with_wrong_image_size(tmp_path, skip_torchvision_md5):  # noqa: F811
    write_cifar_batches(tmp_path, per_batch=4, image_bytes=16 * 16 * 3)  # 4 images of 16x16x3
    with pytest.raises(DataError) as excinfo:
        load_cifar10(tmp_path, tmp_path / "cache", expected_counts={"train": 20, "test": 10})
    assert_one_line_error(excinfo, "data_batch_1", "32x32x3")


def test_pickle_batches_with_wrong_count(tmp_path, skip_torchvision_md5):  # noqa: F811
    write_cifar_batches(tmp_path)
    with pytest.raises(DataError) as excinfo:
        load_cifar10(tmp_path, tmp_path / "cache")  # the real 50,000 / 10,000 are expected
    assert_one_line_error(excinfo, "cifar-10-batches-py", "30 images", "50,000")


def test_wrong_class_count(tmp_path):
    root = write_cifar_image_folder(tmp_path / "c", classes=[f"class{i}" for i in range(9)])
    with pytest.raises(DataError) as excinfo:
        load_small(root, tmp_path / "cache", expected_counts={"train": 27, "test": 9})
    assert_one_line_error(excinfo, "9 class folders", "expected 10")


def test_wrong_image_count(tmp_path):
    root = write_cifar_image_folder(tmp_path / "c")
    with pytest.raises(DataError) as excinfo:
        load_cifar10(root, tmp_path / "cache")
    assert_one_line_error(excinfo, f"{root}/train", "30 images", "expected 50,000")


def test_wrong_image_size(tmp_path):
    root = write_cifar_image_folder(tmp_path / "c")
    odd = root / "train" / "cat" / "0001.png"
    odd.write_bytes(encode(np.zeros((32, 33, 3), dtype=np.uint8), "png"))
    with pytest.raises(DataError) as excinfo:
        load_small(root, tmp_path / "cache")
    assert_one_line_error(excinfo, str(odd), "33x32", "expected 32x32")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_image(tmp_path, damage):
    root = write_cifar_image_folder(tmp_path / "c", fmt="jpg")
    bad = root / "test" / "dog" / "0000.jpg"
    bad.write_bytes(bad.read_bytes()[:200] if damage == "truncated" else b"not an image at all")
    with pytest.raises(DataError) as excinfo:
        load_small(root, tmp_path / "cache")
    assert_one_line_error(excinfo, str(bad))


def test_truncated_zip(tmp_path):
    path = write_cifar_zip(tmp_path / "c.zip")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError) as excinfo:
        load_small(path, tmp_path / "cache")
    assert_one_line_error(excinfo, str(path), "zip")


def test_zip_member_with_bad_crc(tmp_path):
    path = write_cifar_zip(tmp_path / "c.zip", fmt="png")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("train/bird/0001.png")
    data[info.header_offset + 30 + len(info.filename) + 40] ^= 0xFF  # a byte inside the stored member
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as excinfo:
        load_small(path, tmp_path / "cache")
    assert_one_line_error(excinfo, "train/bird/0001.png")


@pytest.mark.parametrize("rename", [lambda n: "images/" + n.replace("/", "_"), lambda n: "a/b/" + n,
                                    lambda n: n.replace("train/", "training/")])
def test_zip_with_a_different_layout(tmp_path, rename):
    members = {rename(k): v for k, v in cifar_members("png").items()}
    path = write_zip(tmp_path / "c.zip", members)
    with pytest.raises(DataError) as excinfo:
        load_small(path, tmp_path / "cache")
    assert_one_line_error(excinfo, str(path), "expected")


@pytest.mark.parametrize("evil", ["../escape.png", "/tmp/abs.png", "train/cat/../../../up.png", "C:/win.png"])
def test_zip_with_unsafe_member_names_is_refused(tmp_path, evil):
    members = cifar_members("png")
    members[evil] = encode(np.zeros((32, 32, 3), dtype=np.uint8), "png")
    path = write_zip(tmp_path / "inner" / "c.zip", members)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(DataError) as excinfo:
        load_small(path, tmp_path / "cache")
    assert_one_line_error(excinfo, str(path), repr(evil), "..")
    assert set(os.listdir(tmp_path)) - {"cache"} == set(before)  # nothing extracted anywhere
    assert not (tmp_path / "escape.png").exists() and not (tmp_path / "up.png").exists()


@pytest.mark.parametrize("limit", [700, 400])  # 32x32 = 1024 px: warning band (700) and error band (400)
def test_decompression_bomb_guard_stays_on(tmp_path, monkeypatch, limit):
    root = write_cifar_image_folder(tmp_path / "c")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(DataError) as excinfo:
        load_small(root, tmp_path / "cache")
    assert_one_line_error(excinfo, "too large")


def test_oversized_zip_member_is_refused_unread(tmp_path):
    members = cifar_members("png")
    members["train/cat/0000.png"] = b"\0" * (2 << 20)  # 2 MiB: no 32x32 image is that big
    path = write_zip(tmp_path / "c.zip", members)
    with pytest.raises(DataError) as excinfo:
        load_small(path, tmp_path / "cache")
    assert_one_line_error(excinfo, "train/cat/0000.png", "bytes")


def test_download_only_when_allowed_and_its_failure_is_unavailable(no_data_env, tmp_path, monkeypatch):  # noqa: F811
    import torchvision.datasets

    calls = []

    def offline(self):
        calls.append(self.root)
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    with pytest.raises(DataUnavailable):
        load_small(tmp_path / "empty", tmp_path / "cache")
    assert calls == []  # never without the option
    with pytest.raises(DataUnavailable, match="download .* failed .*network unreachable"):
        load_small(tmp_path / "dl", tmp_path / "cache", download=True)
    assert [str(c) for c in calls] == [str(tmp_path / "dl")]
