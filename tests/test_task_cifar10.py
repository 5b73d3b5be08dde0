"""cifar10_random: random labels from data_seed, standardization, subsets, profiles, and the
end-to-end memorization check on the real data (BENCH_SUITE_CIFAR10)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from data_fixtures import SMALL_COUNTS, no_data_env, write_cifar_zip  # noqa: F401 - fixture

from bench_suite.methods import METHODS
from bench_suite.tasks import TASKS
from bench_suite.tasks.base import DataUnavailable
from bench_suite.train import CellSpec, TrainConfig, train_group

TASK = TASKS.get("cifar10_random")


@pytest.fixture
def small_cifar(tmp_path, monkeypatch):
    """A 30/10-image CIFAR zip, accepted as CIFAR-10 by lowering the expected counts."""
    monkeypatch.setattr("bench_suite.data.cifar10.CIFAR10_COUNTS", dict(SMALL_COUNTS))
    return write_cifar_zip(tmp_path / "cifar10-jpeg.zip"), tmp_path / "cache"


def load(root, cache, seed=0, **options):
    return TASK().load({**TASK.options, **options}, data_seed=seed, data_root=str(root), cache_dir=str(cache))


def test_random_labels_come_from_the_data_seed(small_cifar):
    root, cache = small_cifar
    a, b, c = load(root, cache, seed=1), load(root, cache, seed=1), load(root, cache, seed=2)
    assert torch.equal(a.y_train, b.y_train) and torch.equal(a.x_train, b.x_train)
    assert not torch.equal(a.y_train, c.y_train)
    assert a.y_train.dtype == torch.int64 and 0 <= int(a.y_train.min()) and int(a.y_train.max()) <= 9
    assert a.label_digest() == b.label_digest() != c.label_digest()


def test_shapes_standardization_and_true_test_labels(small_cifar):
    root, cache = small_cifar
    data = load(root, cache)
    assert data.x_train.shape == (30, 3072) and data.x_train.dtype == torch.float32
    assert data.x_test.shape == (10, 3072) and data.num_outputs == 10 and data.classification
    per_channel = data.x_train.reshape(30, 3, 1024)
    torch.testing.assert_close(per_channel.mean(dim=(0, 2)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(per_channel.std(dim=(0, 2), unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    assert data.y_test.tolist() == list(range(10))  # the true labels, sorted by class in the fixture
    assert data.source == "CIFAR-10, JPEG re-encoding (cifar10-jpeg.zip)"
    assert data.checksum.startswith("sha256:")
    assert sum(data.info["random_label_counts"]) == 30 and data.info["n_train"] == 30
    assert data.info["true_class_counts_train"] == [3] * 10


def test_subsets_are_seeded_and_statistics_follow_them(small_cifar):
    root, cache = small_cifar
    full = load(root, cache, seed=3)
    sub = load(root, cache, seed=3, n_train=12, n_test=4)
    again = load(root, cache, seed=3, n_train=12, n_test=4)
    assert sub.x_train.shape == (12, 3072) and sub.x_test.shape == (4, 3072)
    assert torch.equal(sub.x_train, again.x_train) and torch.equal(sub.y_train, again.y_train)
    per_channel = sub.x_train.reshape(12, 3, 1024)  # standardized with the subset's own statistics
    torch.testing.assert_close(per_channel.mean(dim=(0, 2)), torch.zeros(3), atol=1e-4, rtol=0)
    assert sub.info["channel_mean"] != full.info["channel_mean"]
    assert sum(sub.info["true_class_counts_test"]) == 4


@pytest.mark.parametrize("bad", [0, 31, -1, 2.5, "10", True])
def test_bad_subset_sizes_are_value_errors(small_cifar, bad):
    root, cache = small_cifar
    with pytest.raises(ValueError, match="n_train"):
        load(root, cache, n_train=bad)


def test_download_option_is_a_strict_flag(small_cifar):
    root, cache = small_cifar
    assert load(root, cache, download="false").n == 30  # "false" from the command line is False
    with pytest.raises(ValueError, match="download must be true or false"):
        load(root, cache, download="maybe")


def test_no_data_is_unavailable(no_data_env, tmp_path):  # noqa: F811
    with pytest.raises(DataUnavailable, match="--data-root"):
        TASK().load(dict(TASK.options), data_seed=0, data_root=None, cache_dir=str(tmp_path))


def test_profiles_are_valid_and_keep_m_at_least_2n_over_d():
    assert set(TASK.profiles) >= {"smoke", "ci", "paper"}
    assert TASK.grid["widths"] == [1024, 2048, 4096] and TASK.grid["activations"] == ["relu", "tanh"]
    assert set(TASK.grid["methods"]) == {"mli_paired_pgd", "sgd", "constraint_only", "no_mirroring"}
    paper = TASK.profiles["paper"]
    assert paper["device"] == "cuda" and paper["methods"] == ["mli_paired_pgd"]
    assert paper["widths"] == [1024, 2048, 4096] and paper["activations"] == ["relu", "tanh"]
    assert TASK.train_defaults["epochs"] == 1000 and not paper.get("train", {}).get("epochs")
    for name, profile in TASK.profiles.items():
        config = TrainConfig(**{**TASK.train_defaults, **profile.get("train", {})})
        options = {**TASK.options, **profile.get("options", {})}
        assert set(options) == set(TASK.options), name
        n = options["n_train"] or 50_000
        for method in profile.get("methods", TASK.grid["methods"]):
            METHODS.get(method)
        for width in profile.get("widths", TASK.grid["widths"]):
            assert width >= 2 * n / 3072, (name, width)
        assert config.loss == "ce"
    assert TASK.profiles["ci"]["device"] == "cpu" and len(TASK.profiles["ci"]["methods"]) == 4


@pytest.mark.realdata
@pytest.mark.slow
def test_real_cifar10_random_labels_are_memorized(cifar10_path, tmp_path_factory):
    """n = 5000 random labels, width 256 (m >= 2n/d = 3.3), ReLU, plain SGD, 100 epochs:
    the training labels are memorized (>= 0.95) while the true test labels stay near chance."""
    torch.set_num_threads(1)
    task = TASK()
    start = time.perf_counter()
    data = task.load({**task.options, "n_train": 5000, "n_test": 2000}, data_seed=12345, data_root=cifar10_path,
                     # $BENCH_SUITE_CACHE if set (a warm cache skips the ~8 s decode), else a fresh one
                     cache_dir=None if os.environ.get("BENCH_SUITE_CACHE") else str(tmp_path_factory.mktemp("c")))
    load_s = time.perf_counter() - start
    assert data.n == 5000 and data.dim == 3072 and "CIFAR-10" in data.source
    assert abs(data.info["random_equals_true_frac"] - 0.1) < 0.03
    config = TrainConfig(**{**task.train_defaults, "epochs": 100, "eval_every": 25})
    cell = CellSpec(METHODS.get("sgd"), 256, "relu", config, init_seed=1)
    (result,) = train_group(data, [cell], order_seed=2)
    print(f"load {load_s:.1f} s, train {result.timing['train_time_s']:.1f} s, "
          f"train acc {result.final['train_acc']:.3f}, test acc {result.final['test_acc']:.3f}")
    assert result.status == "done"
    assert result.final["train_acc"] >= 0.95
    assert result.final["test_acc"] < 0.15  # true test labels: nothing to learn from random ones


def test_random_label_frequencies_are_uniform(small_cifar):
    root, cache = small_cifar
    counts = np.zeros(10)
    for seed in range(40):
        counts += np.bincount(load(root, cache, seed=seed).y_train.numpy(), minlength=10)
    assert counts.sum() == 1200 and counts.min() > 80 and counts.max() < 160  # 120 expected per class
