"""Restricted ImageNet reader on a generated ILSVRC-like tree (1000 fake wnid folders)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from data_fixtures import (
    USED_INDICES,
    ilsvrc_index_of,
    no_data_env,  # noqa: F401 - fixture
    wnid,
    write_ilsvrc_tree,
)
from PIL import Image

from bench_suite.data import DataError, load_restricted_imagenet
from bench_suite.data.imagenet import N_RESTRICTED_WNIDS, RESTRICTED_IMAGENET_RANGES
from bench_suite.tasks.base import DataUnavailable

WNIDS_PER_CLASS = {"dog": 118, "cat": 5, "frog": 3, "turtle": 5, "bird": 21, "primate": 18, "fish": 9, "crab": 4,
                   "insect": 20}


@pytest.fixture(scope="module")
def ilsvrc(tmp_path_factory):
    """A shared, read-only tree: 2 train / 1 val images in each of the 203 used wnid folders."""
    return write_ilsvrc_tree(tmp_path_factory.mktemp("ilsvrc"))


@pytest.fixture
def own_tree(tmp_path):
    """A tree a test may damage."""
    return write_ilsvrc_tree(tmp_path / "ilsvrc", train_per_wnid=1, val_per_wnid=1)


def test_the_ranges_cover_203_classes():
    assert N_RESTRICTED_WNIDS == 203 == len(USED_INDICES)
    assert {name: last - first + 1 for name, first, last in RESTRICTED_IMAGENET_RANGES} == WNIDS_PER_CLASS


def test_load_shapes_labels_and_class_counts(ilsvrc, tmp_path):
    images = load_restricted_imagenet(ilsvrc, tmp_path / "cache", image_size=8)
    assert images.x_train.shape == (2 * 203, 8, 8, 3) and images.x_train.dtype == np.uint8
    assert images.x_test.shape == (203, 8, 8, 3)
    assert images.classes == list(WNIDS_PER_CLASS)
    assert images.info["class_counts_train"] == {c: 2 * n for c, n in WNIDS_PER_CLASS.items()}
    assert images.info["class_counts_test"] == WNIDS_PER_CLASS
    assert images.info["wnids_per_class"] == WNIDS_PER_CLASS
    assert images.checksum.startswith("listing-sha256:")
    assert "Restricted ImageNet" in images.source


def test_labels_follow_the_inclusive_index_ranges(ilsvrc, tmp_path):
    """Each fixture image's color encodes its class index: decode it back and check that the
    super-class label matches the inclusive ranges."""
    images = load_restricted_imagenet(ilsvrc, tmp_path / "cache", image_size=8)
    index = ilsvrc_index_of(images.x_test)
    assert sorted(index.tolist()) == USED_INDICES
    for idx, label in zip(index, images.y_test):
        name, first, last = RESTRICTED_IMAGENET_RANGES[label]
        assert first <= idx <= last, (idx, name)
    assert {151, 268, 30, 32, 319} <= set(index.tolist())  # the range ends are included


def test_caps_per_wnid_and_cache(ilsvrc, tmp_path):
    first = load_restricted_imagenet(ilsvrc, tmp_path / "cache", image_size=8, max_train_per_wnid=1)
    assert first.x_train.shape[0] == 203 and not first.from_cache
    again = load_restricted_imagenet(ilsvrc, tmp_path / "cache", image_size=8, max_train_per_wnid=1)
    assert again.from_cache
    np.testing.assert_array_equal(first.x_train, again.x_train)
    other_size = load_restricted_imagenet(ilsvrc, tmp_path / "cache", image_size=4, max_train_per_wnid=1)
    assert not other_size.from_cache and other_size.x_train.shape[1:] == (4, 4, 3)


def test_found_through_env_var_and_common_subfolders(ilsvrc, tmp_path, monkeypatch, no_data_env):  # noqa: F811
    monkeypatch.setenv("BENCH_SUITE_IMAGENET", str(ilsvrc))
    assert load_restricted_imagenet(None, tmp_path / "cache", image_size=4).location == str(ilsvrc)
    monkeypatch.delenv("BENCH_SUITE_IMAGENET")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "imagenet").symlink_to(ilsvrc)
    assert load_restricted_imagenet(tmp_path / "root", tmp_path / "cache", image_size=4).location.endswith("imagenet")


def test_absent_data_is_unavailable_with_instructions(tmp_path, no_data_env):  # noqa: F811
    for root in (None, tmp_path / "nowhere", tmp_path):
        with pytest.raises(DataUnavailable) as excinfo:
            load_restricted_imagenet(root, tmp_path / "cache")
        message = str(excinfo.value)
        assert "BENCH_SUITE_IMAGENET" in message and "train/<wnid>" in message and "\n" not in message


def test_a_missing_wnid_folder_is_refused(own_tree, tmp_path):
    shutil.rmtree(own_tree / "train" / wnid(999))  # an unused class, yet every index would shift
    with pytest.raises(DataError, match="holds 999 class folders.*1000"):
        load_restricted_imagenet(own_tree, tmp_path / "cache", image_size=4)


def test_a_stray_folder_is_refused(own_tree, tmp_path):
    (own_tree / "train" / "extra").mkdir()
    with pytest.raises(DataError, match="'extra' is not a wnid"):
        load_restricted_imagenet(own_tree, tmp_path / "cache", image_size=4)


def test_flat_or_missing_val_is_refused(own_tree, tmp_path):
    shutil.rmtree(own_tree / "val" / wnid(5))
    with pytest.raises(DataError, match="val.*valprep"):
        load_restricted_imagenet(own_tree, tmp_path / "cache", image_size=4)
    shutil.rmtree(own_tree / "val")
    with pytest.raises(DataError, match="val: folder is missing"):
        load_restricted_imagenet(own_tree, tmp_path / "cache", image_size=4)


def test_an_empty_used_wnid_folder_is_refused(own_tree, tmp_path):
    folder = own_tree / "train" / wnid(151)
    for f in folder.iterdir():
        f.unlink()
    with pytest.raises(DataError, match=f"{wnid(151)}: wnid folder holds no images"):
        load_restricted_imagenet(own_tree, tmp_path / "cache", image_size=4)


def test_a_corrupt_jpeg_names_the_file(own_tree, tmp_path):
    bad = next((own_tree / "val" / wnid(33)).iterdir())
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(DataError) as excinfo:
        load_restricted_imagenet(own_tree, tmp_path / "cache", image_size=4)
    assert str(bad) in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_an_oversized_picture_is_refused(own_tree, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # the fixture's 24x16 = 384 px images are "bombs"
    with pytest.raises(DataError, match="too large"):
        load_restricted_imagenet(own_tree, tmp_path / "cache", image_size=4)


def test_bad_options_are_value_errors(ilsvrc, tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        load_restricted_imagenet(ilsvrc, tmp_path / "cache", image_size=2)
    with pytest.raises(ValueError, match="max_train_per_wnid"):
        load_restricted_imagenet(ilsvrc, tmp_path / "cache", max_train_per_wnid=0)
