import os

import pytest
import torch

# 2-core CI machine: one intra-op thread keeps runs deterministic and avoids oversubscription
torch.set_num_threads(1)


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def cifar10_path():
    """The real CIFAR-10 source given by $BENCH_SUITE_CIFAR10 (CI passes the shared zip)."""
    path = os.environ.get("BENCH_SUITE_CIFAR10")
    if not path or not os.path.exists(path):
        pytest.skip("real CIFAR-10 not given: set BENCH_SUITE_CIFAR10 to the zip or folder")
    return path
