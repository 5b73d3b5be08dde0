"""restricted_imagenet: features, labels and class counts from a fake ILSVRC tree; its smoke/ci
profiles skip cleanly (DataUnavailable with instructions) when no ImageNet is there."""

from __future__ import annotations

import pytest
import torch
from data_fixtures import no_data_env, write_ilsvrc_tree  # noqa: F401 - fixture

from bench_suite.methods import METHODS
from bench_suite.tasks import TASKS
from bench_suite.tasks.base import DataUnavailable
from bench_suite.train import CellSpec, TrainConfig, train_group

TASK = TASKS.get("restricted_imagenet")


@pytest.fixture(scope="module")
def ilsvrc(tmp_path_factory):
    return write_ilsvrc_tree(tmp_path_factory.mktemp("ilsvrc"), train_per_wnid=2, val_per_wnid=1)


def test_load_features_labels_and_counts(ilsvrc, tmp_path):
    options = {**TASK.options, "image_size": 8}
    data = TASK().load(options, data_seed=0, data_root=str(ilsvrc), cache_dir=str(tmp_path))
    assert data.x_train.shape == (406, 3 * 8 * 8) and data.x_train.dtype == torch.float32
    assert data.x_test.shape == (203, 192) and data.num_outputs == 9 and data.classification
    per_channel = data.x_train.reshape(406, 3, 64)
    torch.testing.assert_close(per_channel.mean(dim=(0, 2)), torch.zeros(3), atol=1e-4, rtol=0)
    assert torch.bincount(data.y_test).tolist() == [118, 5, 3, 5, 21, 18, 9, 4, 20]
    assert data.info["class_counts_train"]["dog"] == 236 and data.info["n_test"] == 203
    assert data.checksum.startswith("listing-sha256:")
    # it trains: one short fused group of the two compared methods
    config = TrainConfig(**{**TASK.train_defaults, "epochs": 2, "eval_every": 1})
    cells = [CellSpec(METHODS.get(m), 16, "relu", config, init_seed=0) for m in TASK.grid["methods"]]
    results = train_group(data, cells, order_seed=0)
    assert all(r.status == "done" and r.final["test_acc"] is not None for r in results)


@pytest.mark.parametrize("profile", ["smoke", "ci"])
def test_cpu_profiles_skip_cleanly_without_imagenet(profile, tmp_path, no_data_env):  # noqa: F811
    options = {**TASK.options, **TASK.profiles[profile].get("options", {})}
    with pytest.raises(DataUnavailable) as excinfo:
        TASK().load(options, data_seed=0, data_root=None, cache_dir=str(tmp_path))
    message = str(excinfo.value)
    assert "BENCH_SUITE_IMAGENET" in message and "train/<wnid>/*.JPEG" in message and "val/<wnid>" in message


def test_profiles_are_valid():
    assert set(TASK.profiles) >= {"smoke", "ci", "paper"}
    assert set(TASK.grid["methods"]) == {"mli_paired_pgd", "sgd"}
    for name, profile in TASK.profiles.items():
        TrainConfig(**{**TASK.train_defaults, **profile.get("train", {})})
        assert set({**TASK.options, **profile.get("options", {})}) == set(TASK.options), name
        for method in profile.get("methods", TASK.grid["methods"]):
            METHODS.get(method)
    assert TASK.profiles["paper"]["device"] == "cuda"
