"""Same cell, same number (issue 21, ask 8): on the CPU a cell's float32 training does not depend
on the cells it is fused with. The case that parted (the default synthetic job's mli_paired_pgd
cell, fused 0.3766 vs alone 0.3570) came from the output layer's weight gradient, a GEMV whose
kernel MKL picks by the group's padded feature count; ``_FusedEngine.output_grad`` sums each
entry in an order of its own cell. What these tests cannot promise: CUDA (cuBLAS picks its
kernels, split-K included, by the fused matrices' shapes): docs/design.md, "Same cell, same
number", and ``doctor``'s float32 check measure it there."""

from __future__ import annotations

import pytest
import torch

from bench_suite.core.config import TrainConfig
from bench_suite.data.contract import TaskData
from bench_suite.methods import METHODS
from bench_suite.train import CellSpec, train_group

pytestmark = pytest.mark.skipif(not torch.backends.mkl.is_available(),
                                reason="the CPU's GEMMs are row-invariant in MKL (measured); other BLAS not checked")


def _same(a, b) -> None:
    assert a.status == b.status
    for key in ("train_loss", "eval_train_loss", "test_loss", "dist_w0", "train_acc"):
        if key in a.curves:
            assert a.curves[key] == b.curves[key], key
    assert torch.equal(a.extra["w"], b.extra["w"]) and torch.equal(a.extra["v"], b.extra["v"])


def test_a_regression_cell_trains_the_same_alone_and_beside_wider_cells():
    # the synthetic ablation's setting, smaller: full-batch GD, lr 0.1, a tight ball; the old
    # output-layer GEMV parted fused from alone within 10 steps here
    g = torch.Generator().manual_seed(3)
    data = TaskData(torch.randn(300, 30, generator=g), torch.randn(300, 1, generator=g), 1, False, "gaussian")
    cfg = TrainConfig(epochs=120, batch_size=None, lr_w=0.1, lr_v=0.1, loss="mse", eps=1.0, eps_mode="absolute",
                      eval_every=40)
    cell = CellSpec(METHODS.get("mli_paired_pgd"), 20, "tanh", cfg, 11)
    beside = [CellSpec(METHODS.get(m), w, a, cfg, 11) for m, w, a in (
        ("sgd", 40, "tanh"), ("no_mirroring", 80, "relu"), ("mli_paired_pgd_fixed_v", 6, "softplus"))]
    (alone,) = train_group(data, [cell], order_seed=5, keep_weights=True)
    fused = train_group(data, [*beside[:1], cell, *beside[1:]], order_seed=5, keep_weights=True)
    assert alone.timing["group_size"] == 1 and fused[1].timing["group_size"] == 4
    _same(alone, fused[1])


def test_a_classification_cell_trains_the_same_alone_and_beside_other_cells():
    g = torch.Generator().manual_seed(4)
    data = TaskData(torch.randn(256, 48, generator=g), torch.randint(0, 10, (256,), generator=g), 10, True, "labels",
                    x_test=torch.randn(64, 48, generator=g), y_test=torch.randint(0, 10, (64,), generator=g))
    cfg = TrainConfig(epochs=6, batch_size=32, lr_w=0.05, lr_v=0.05, momentum=0.9, loss="ce", eps=0.5,
                      eps_mode="relative", eval_every=2)
    cell = CellSpec(METHODS.get("mli_paired_pgd"), 16, "relu", cfg, 7)
    beside = [CellSpec(METHODS.get(m), w, a, cfg, 7)
              for m, w, a in (("sgd", 64, "relu"), ("constraint_only", 128, "tanh"))]
    (alone,) = train_group(data, [cell], order_seed=9, keep_weights=True)
    fused = train_group(data, [cell, *beside], order_seed=9, keep_weights=True)
    _same(alone, fused[0])


def test_the_output_gradient_is_the_batched_product():
    g = torch.Generator().manual_seed(0)
    from bench_suite.train.engine.step import _FusedEngine

    for k in (1, 3):
        dout, featpad = torch.randn(4, k, 50, generator=g), torch.randn(4, 12, 50, generator=g)
        torch.testing.assert_close(_FusedEngine.output_grad(dout, featpad), torch.bmm(dout, featpad.transpose(1, 2)))
