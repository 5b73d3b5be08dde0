"""CIFAR-100 readers: the md5-gated cifar-100-python pickles, image folders and zips, fine and
coarse labels, the cache, other data sets passed over, and every kind of bad input."""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest
from data_fixtures import (
    CIFAR100_SMALL_COUNTS,
    cifar100_image,
    cifar100_members,
    mnist_members,
    no_data_env,  # noqa: F401 - fixture
    skip_cifar100_md5,  # noqa: F401 - fixture
    write_cifar100_image_folder,
    write_cifar100_python,
    write_cifar100_zip,
    write_cifar_zip,
    write_mnist_zip,
    write_zip,
)

import bench_suite.data.cifar100 as cifar100
from bench_suite.data import DataError
from bench_suite.data.cifar100 import PUBLISHED_MD5, load_cifar100
from bench_suite.data.classnames import (
    CIFAR100_COARSE_CLASSES,
    CIFAR100_COARSE_OF_FINE,
    CIFAR100_FINE_CLASSES,
    CIFAR100_SUPERCLASSES,
)
from bench_suite.tasks.base import DataUnavailable

# fine label index -> coarse label index as published with the data set (e.g. the widely used
# `sparse2coarse` table): an independent check of classnames' name-based superclass table
PUBLISHED_COARSE_OF_FINE = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11, 6, 11, 5, 10, 7, 6, 13, 15, 3, 15,
    0, 11, 1, 10, 12, 14, 16, 9, 11, 5, 5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13, 16, 19, 2, 4, 6, 19, 5, 5, 8, 19,
    18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]


def load_small(root, cache, **kwargs):
    kwargs.setdefault("expected_counts", CIFAR100_SMALL_COUNTS)
    return load_cifar100(root, cache, **kwargs)


def assert_one_line_error(excinfo, *needles):
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def assert_images_match_labels(images):
    """Each fixture image's red channel is 2 x its fine label (data_fixtures.cifar100_image)."""
    for x, fine, coarse in ((images.x_train, images.y_train, images.y_train_coarse),
                            (images.x_test, images.y_test, images.y_test_coarse)):
        np.testing.assert_array_equal(x[:, 0, 0, 0], 2 * fine)
        np.testing.assert_array_equal(coarse, np.asarray(PUBLISHED_COARSE_OF_FINE)[fine])


# --------------------------------------------------------------------------- the class tables


def test_class_tables_match_the_published_ones():
    import torchvision.datasets

    assert len(CIFAR100_FINE_CLASSES) == 100 and len(set(CIFAR100_FINE_CLASSES)) == 100
    assert list(CIFAR100_FINE_CLASSES) == sorted(CIFAR100_FINE_CLASSES)
    assert len(CIFAR100_COARSE_CLASSES) == 20 and all(len(v) == 5 for v in CIFAR100_SUPERCLASSES.values())
    assert list(CIFAR100_COARSE_OF_FINE) == PUBLISHED_COARSE_OF_FINE
    tv = torchvision.datasets.CIFAR100
    assert {name: md5 for name, md5 in tv.train_list + tv.test_list} == {"train": PUBLISHED_MD5["train"],
                                                                         "test": PUBLISHED_MD5["test"]}
    assert (tv.meta["filename"], tv.meta["md5"]) == ("meta", PUBLISHED_MD5["meta"])
    assert tv.base_folder == "cifar-100-python"


# --------------------------------------------------------------------------- the python release


def test_pickles_in_every_location(tmp_path, skip_cifar100_md5):  # noqa: F811
    folder = write_cifar100_python(tmp_path / "data")
    shutil.copytree(folder, tmp_path / "renamed")
    for root in (tmp_path / "data", folder, tmp_path / "renamed"):
        images = load_small(root, tmp_path / "cache")
        assert images.x_train.shape == (200, 32, 32, 3) and images.x_test.shape == (100, 32, 32, 3)
        assert images.x_train.dtype == np.uint8 and images.y_train.dtype == np.int64
        assert images.source == "CIFAR-100, python pickles (cifar-100-python)"
        assert images.checksum.startswith("sha256:")
        assert images.classes == list(CIFAR100_FINE_CLASSES)
        assert images.coarse_classes == list(CIFAR100_COARSE_CLASSES)
        assert images.y_train[:3].tolist() == [0, 1, 2]  # interleaved as in the real file
        assert_images_match_labels(images)
        np.testing.assert_array_equal(images.x_train[101], cifar100_image(1, 1))  # CHW rows -> HWC


def test_fixture_is_what_torchvision_reads(tmp_path, monkeypatch, skip_cifar100_md5):  # noqa: F811
    """The fixture is the real layout: torchvision's CIFAR100 class (its md5 check replaced)
    reads the same images and fine labels."""
    import torchvision.datasets
    import torchvision.datasets.cifar

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    write_cifar100_python(tmp_path)
    tv = torchvision.datasets.CIFAR100(str(tmp_path), train=True, download=False)
    ours = load_small(tmp_path, tmp_path / "cache")
    np.testing.assert_array_equal(tv.data, ours.x_train)
    assert tv.targets == ours.y_train.tolist() and tv.classes == ours.classes


def test_a_file_without_the_published_md5_is_never_unpickled(tmp_path, monkeypatch):
    write_cifar100_python(tmp_path)  # the real md5 check is on: fixture files cannot pass it
    calls = []
    monkeypatch.setattr(cifar100._ArrayUnpickler, "load", lambda self: calls.append(self))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: calls.append(a))
    with pytest.raises(DataError) as excinfo:
        load_small(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, "cifar-100-python/meta", "md5 differs from the published one",
                          PUBLISHED_MD5["meta"], "refusing to unpickle")
    assert calls == []


def test_only_numpy_array_globals_are_resolved_even_with_a_matching_md5(tmp_path, skip_cifar100_md5):  # noqa: F811
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = write_cifar100_python(tmp_path)
    (folder / "train").write_bytes(pickle.dumps({"data": Evil()}, protocol=2))
    with pytest.raises(DataError) as excinfo:
        load_small(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, "cifar-100-python/train", "is not allowed")
    assert not marker.exists()


def test_second_load_comes_from_the_cache(tmp_path, skip_cifar100_md5):  # noqa: F811
    write_cifar100_python(tmp_path)
    first, second = load_small(tmp_path, tmp_path / "cache"), load_small(tmp_path, tmp_path / "cache")
    assert not first.from_cache and second.from_cache
    np.testing.assert_array_equal(first.y_test_coarse, second.y_test_coarse)
    assert second.coarse_classes == list(CIFAR100_COARSE_CLASSES)


def test_coarse_labels_that_disagree_with_the_superclass_table(tmp_path, skip_cifar100_md5):  # noqa: F811
    shifted = [(c + 1) % 20 for c in CIFAR100_COARSE_OF_FINE]
    write_cifar100_python(tmp_path, coarse_of_fine=shifted)
    with pytest.raises(DataError) as excinfo:
        load_small(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, "cifar-100-python/train", "disagree with the official superclass table")


def test_meta_with_other_class_names(tmp_path, skip_cifar100_md5):  # noqa: F811
    write_cifar100_python(tmp_path, fine_names=[f"c{i}" for i in range(100)])
    with pytest.raises(DataError) as excinfo:
        load_small(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, "cifar-100-python/meta", "fine_label_names", "expected the official 100")


@pytest.mark.parametrize("damage, needles", [
    ("truncated", ["cannot be read as a CIFAR-100 pickle"]),
    ("not a dict", ["holds a list, not a dict"]),
    ("no coarse", ["has no coarse_labels entry"]),
    ("wrong size", ["data is uint8(200, 1024)", "(N, 3072)"]),
    ("fine past 99", ["fine labels span 0..100"]),
])
def test_bad_pickle_files_name_the_file(tmp_path, skip_cifar100_md5, damage, needles):  # noqa: F811
    folder = write_cifar100_python(tmp_path)
    path = folder / "train"
    entry = pickle.loads(path.read_bytes())
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        if damage == "not a dict":
            entry = [entry]
        elif damage == "no coarse":
            del entry["coarse_labels"]
        elif damage == "wrong size":
            entry["data"] = entry["data"][:, :1024]
        else:
            entry["fine_labels"][5] = 100
        path.write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(DataError) as excinfo:
        load_small(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, str(path), *needles)


def test_missing_pickle_file_and_wrong_counts(tmp_path, skip_cifar100_md5):  # noqa: F811
    folder = write_cifar100_python(tmp_path)
    with pytest.raises(DataError) as excinfo:
        load_cifar100(tmp_path, tmp_path / "cache")  # the real 50,000 / 10,000 are expected
    assert_one_line_error(excinfo, "cifar-100-python", "200 images", "expected 50,000 for CIFAR-100")
    (folder / "test").unlink()
    with pytest.raises(DataError) as excinfo:
        load_small(tmp_path, tmp_path / "cache")
    assert_one_line_error(excinfo, "cifar-100-python/test", "missing")


# --------------------------------------------------------------------------- image folders and zips


def test_image_folder_fine_labels_sorted_and_coarse_from_the_table(tmp_path):
    root = write_cifar100_image_folder(tmp_path / "c100")
    images = load_small(root, tmp_path / "cache")
    assert images.source == "CIFAR-100, PNG images (c100)" and images.checksum.startswith("listing-sha256:")
    assert images.y_train.tolist() == [c for c in range(100) for _ in range(2)]
    assert images.coarse_classes == list(CIFAR100_COARSE_CLASSES)
    assert_images_match_labels(images)


@pytest.mark.parametrize("prefix", ["", "cifar100/"])
def test_zip_layouts(tmp_path, prefix):
    path = write_cifar100_zip(tmp_path / "cifar100-png.zip", prefix=prefix)
    images = load_small(path, tmp_path / "cache")
    assert images.source == "CIFAR-100, PNG images (cifar100-png.zip)"
    assert_images_match_labels(images)


def test_folder_of_zips_takes_the_cifar100_one(tmp_path):
    write_cifar_zip(tmp_path / "data" / "cifar10-jpeg.zip")
    write_cifar100_zip(tmp_path / "data" / "cifar-100-png.zip")
    write_mnist_zip(tmp_path / "data" / "mnist.zip")
    assert load_small(tmp_path / "data", tmp_path / "cache").location.endswith("cifar-100-png.zip")


def test_tree_with_a_class_that_is_not_cifar100s(tmp_path):
    classes = list(CIFAR100_FINE_CLASSES[:-1]) + ["wormhole"]
    root = write_cifar100_image_folder(tmp_path / "c", classes=classes)
    with pytest.raises(DataError) as excinfo:
        load_small(root, tmp_path / "cache")
    assert_one_line_error(excinfo, f"{root}/train", "wormhole", "lacks worm")


def test_tree_with_99_classes_and_wrong_image_size(tmp_path):
    root = write_cifar100_image_folder(tmp_path / "c", classes=CIFAR100_FINE_CLASSES[:99])
    with pytest.raises(DataError) as excinfo:
        load_small(root, tmp_path / "cache", expected_counts={"train": 198, "test": 99})
    assert_one_line_error(excinfo, f"{root}/train", "99 class folders", "expected 100 (apple")
    members = cifar100_members()
    members["test/bed/0000.png"] = mnist_members()["train/0/00000.png"]  # a 28x28 picture
    path = write_zip(tmp_path / "c.zip", members)
    with pytest.raises(DataError) as excinfo:
        load_small(path, tmp_path / "cache")
    assert_one_line_error(excinfo, "test/bed/0000.png", "28x28", "expected 32x32")


# --------------------------------------------------------------------------- where it is looked for


def test_other_data_sets_are_passed_over(no_data_env, tmp_path, monkeypatch):  # noqa: F811
    cifar10 = write_cifar_zip(tmp_path / "cifar10-jpeg.zip")
    with pytest.raises(DataUnavailable) as excinfo:
        load_small(cifar10, tmp_path / "cache")
    assert_one_line_error(excinfo, str(cifar10), "an image tree of CIFAR-10", "not of CIFAR-100",
                          "BENCH_SUITE_CIFAR100", "cifar-100-python")
    monkeypatch.setenv("BENCH_SUITE_CIFAR100", str(write_cifar100_zip(tmp_path / "c100.zip")))
    assert load_small(cifar10, tmp_path / "cache").location.endswith("c100.zip")  # the env var, after


def test_no_data_is_unavailable(no_data_env, tmp_path):  # noqa: F811
    with pytest.raises(DataUnavailable) as excinfo:
        load_small(None, tmp_path / "cache")
    assert_one_line_error(excinfo, "no location given", "BENCH_SUITE_CIFAR100", "cifar-100-python", "train, test, meta")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataUnavailable, match="searched .*empty"):
        load_small(tmp_path / "empty", tmp_path / "cache")
