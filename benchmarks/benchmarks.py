"""asv benchmarks of the training engine (CPU, small shapes; see docs/performance.md).

- ``TimeEpoch`` / ``peakmem``: one training epoch (``train_group`` with ``epochs=1``: the
  set-up, the epoch's SGD steps and the final exact evaluation) of one cell, per method and
  width, on a CIFAR-shaped random problem (n = 512, d = 3072, K = 10, batch 128);
- ``TimeGroup``: the same epoch for 8 cells (4 methods x widths 64, 256), fused into one group
  or trained one by one (the unfused engine, ``Runner(fuse=False)``);
- ``TimeGroupMomentum``: the 8 cells fused, with SGD momentum 0.9;
- ``TimeSynthetic``: 50 full-batch gradient-descent steps of the synthetic ablation's 4 cells;
- ``TimeReferenceTrainer``: the reference trainer against the fused engine on one cell of the
  synthetic ablation (50 steps) and of the CIFAR-shaped problem (one epoch);
- ``TrackSmokeLoss`` / ``TrackSmokeAccuracy``: final training loss / accuracy of smoke cells
  (the synthetic ablation's smoke profile, and a random-label CIFAR-shaped stand-in for the
  cifar10_random smoke profile), trained once in ``setup_cache`` and read by every ``track_``.

Only the public API is used (``train_group``, ``TrainConfig``, ``CellSpec``), so the suite
also runs against older commits. One torch thread unless $BENCH_SUITE_ASV_THREADS says more.

    asv run --quick --python=same --show-stderr     # or: nox -s bench
"""

import os

import torch

from bench_suite.grid import expand
from bench_suite.methods import METHODS
from bench_suite.tasks import TASKS, TaskData
from bench_suite.train import CellSpec, TrainConfig, train_group

torch.set_num_threads(int(os.environ.get("BENCH_SUITE_ASV_THREADS", "1")))

ALL_METHODS = ["mli_paired_pgd", "sgd", "constraint_only", "no_mirroring"]
WIDTHS = [64, 256]


def cifar_like(n=512, d=3072, k=10, seed=0):
    """Random inputs with CIFAR-10's shape and random labels (no data set needed)."""
    g = torch.Generator().manual_seed(seed)
    return TaskData(torch.randn(n, d, generator=g), torch.randint(0, k, (n,), generator=g), k, True,
                    "random, CIFAR-shaped")


def cifar_config(epochs=1, **over):
    base = dict(epochs=epochs, batch_size=128, lr_w=0.1, lr_v=0.1, loss="ce", eps=1.0, eps_mode="relative",
                eval_every=epochs)
    return TrainConfig(**{**base, **over})


class TimeEpoch:
    """One epoch of one cell (n = 512, d = 3072, batch 128) per method and width."""

    params = (ALL_METHODS, WIDTHS)
    param_names = ["method", "width"]
    timeout = 120

    def setup(self, method, width):
        self.data = cifar_like()
        self.cells = [CellSpec(METHODS.get(method), width, "relu", cifar_config(), 1)]

    def time_epoch(self, method, width):
        train_group(self.data, self.cells, order_seed=0)

    def peakmem_epoch(self, method, width):
        train_group(self.data, self.cells, order_seed=0)


class TimeGroup:
    """One epoch of 8 cells (4 methods x widths 64, 256): fused into one group, or one by one."""

    params = ["fused", "unfused"]
    param_names = ["engine"]
    timeout = 180

    def setup(self, engine):
        self.data = cifar_like()
        cells = [CellSpec(METHODS.get(m), w, "relu", cifar_config(), 1) for m in ALL_METHODS for w in WIDTHS]
        self.groups = [cells] if engine == "fused" else [[c] for c in cells]

    def time_group_epoch(self, engine):
        for group in self.groups:
            train_group(self.data, group, order_seed=0)

    def peakmem_group_epoch(self, engine):
        for group in self.groups:
            train_group(self.data, group, order_seed=0)


class TimeGroupMomentum:
    """The same 8 fused cells with SGD momentum 0.9 (the cifar10_random optimizer): the momentum
    buffer kept as gamma·B, updated by one GEMM with accumulate."""

    timeout = 180

    def setup(self):
        self.data = cifar_like()
        self.cells = [CellSpec(METHODS.get(m), w, "relu", cifar_config(momentum=0.9, lr_w=0.01, lr_v=0.01), 1)
                      for m in ALL_METHODS for w in WIDTHS]

    def time_group_epoch_momentum(self):
        train_group(self.data, self.cells, order_seed=0)


class TimeSynthetic:
    """50 full-batch gradient-descent steps of the synthetic ablation (4 methods, m = 20, tanh)."""

    timeout = 120

    def setup(self):
        task = TASKS.get("synthetic_ablation")
        cells = expand("synthetic_ablation", train={"epochs": 50, "eval_every": 50})
        self.data = task().load(dict(cells[0].options), data_seed=cells[0].seeds()["data"], data_root=None,
                                cache_dir=None)
        self.specs = [CellSpec(METHODS.get(c.method), c.width, c.activation, c.train, c.seeds()["init"]) for c in cells]
        self.order_seed = cells[0].seeds()["order"]

    def time_synthetic_50_steps(self):
        train_group(self.data, self.specs, order_seed=self.order_seed)


class TimeReferenceTrainer:
    """The reference trainer (issue 10) on the shapes above: 50 full-batch steps of the synthetic
    ablation's mli_paired_pgd cell, and one epoch of one CIFAR-shaped cell (width 64), each
    against the fused engine on the same cell (benchmarks/reference_vs_fused.py has the ci
    shapes). Skipped on commits without the reference trainer."""

    params = (["synthetic", "cifar_like"], ["fused", "reference"])
    param_names = ["problem", "trainer"]
    timeout = 180

    def setup(self, problem, trainer):
        try:
            from bench_suite.train.reference import train_reference
        except ImportError:
            raise NotImplementedError("no reference trainer in this commit") from None
        from dataclasses import replace

        method = METHODS.get("mli_paired_pgd")
        if trainer == "reference":
            method = replace(method, name="mli_paired_pgd_reference", trainer_choice="reference")
        if problem == "synthetic":
            cells = expand("synthetic_ablation", methods=["mli_paired_pgd"], train={"epochs": 50, "eval_every": 50})
            c = cells[0]
            self.data = TASKS.get("synthetic_ablation")().load(dict(c.options), data_seed=c.seeds()["data"],
                                                               data_root=None, cache_dir=None)
            self.cell = CellSpec(method, c.width, c.activation, c.train, c.seeds()["init"])
        else:
            self.data = cifar_like()
            self.cell = CellSpec(method, 64, "relu", cifar_config(momentum=0.9, lr_w=0.01, lr_v=0.01), 1)
        self.train = ((lambda: train_reference(self.data, self.cell, order_seed=0)) if trainer == "reference"
                      else (lambda: train_group(self.data, [self.cell], order_seed=0)))

    def time_train(self, problem, trainer):
        self.train()


# ------------------------------------------------------------------------------------------
# accuracy and loss of smoke cells: trained once (setup_cache), read by every track_
# ------------------------------------------------------------------------------------------
SYNTHETIC_CELLS = [f"synthetic_ablation/{m}" for m in ALL_METHODS]
CIFAR_LIKE_CELLS = [f"cifar_like_smoke/{m}" for m in ALL_METHODS]


class _SmokeCells:
    """Base class: its ``setup_cache`` (one function, so one cache for both subclasses) trains
    the synthetic ablation's smoke profile and a random-label CIFAR-shaped stand-in of the
    cifar10_random smoke profile (n = 1000, d = 3072, m = 64, 2 epochs: accuracy not yet
    saturated), fused per group."""

    timeout = 300

    def setup_cache(self):
        results = {}
        cells = expand("synthetic_ablation", profile="smoke")
        data = TASKS.get("synthetic_ablation")().load(dict(cells[0].options), data_seed=cells[0].seeds()["data"],
                                                      data_root=None, cache_dir=None)
        specs = [CellSpec(METHODS.get(c.method), c.width, c.activation, c.train, c.seeds()["init"]) for c in cells]
        for c, res in zip(cells, train_group(data, specs, order_seed=cells[0].seeds()["order"])):
            results[f"synthetic_ablation/{c.method}"] = res.final
        specs = [CellSpec(METHODS.get(m), 64, "relu", cifar_config(epochs=2), 1) for m in ALL_METHODS]
        for m, res in zip(ALL_METHODS, train_group(cifar_like(n=1000), specs, order_seed=0)):
            results[f"cifar_like_smoke/{m}"] = res.final
        return results


class TrackSmokeLoss(_SmokeCells):
    params = SYNTHETIC_CELLS + CIFAR_LIKE_CELLS
    param_names = ["cell"]
    unit = "loss"

    def track_final_train_loss(self, results, cell):
        return results[cell]["train_loss"]


class TrackSmokeAccuracy(_SmokeCells):
    params = CIFAR_LIKE_CELLS
    param_names = ["cell"]
    unit = "accuracy"

    def track_final_train_accuracy(self, results, cell):
        return results[cell]["train_acc"]
