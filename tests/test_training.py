import math

import pytest
import torch

from bench_suite.methods import METHODS
from bench_suite.model import hidden_features
from bench_suite.tasks import TaskData
from bench_suite.training import CellSpec, TrainConfig, train_group


def regression_data(n=60, d=12, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return TaskData(torch.randn(n, d, generator=g).to(dtype), torch.randn(n, 1, generator=g).to(dtype), 1, False,
                    "test")


def classification_data(n=80, d=10, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return TaskData(x, torch.randint(0, k, (n,), generator=g), k, True, "test",
                    x_test=torch.randn(30, d, generator=g), y_test=torch.randint(0, k, (30,), generator=g))


def cell(method, width=8, activation="tanh", seed=1, **cfg):
    base = dict(epochs=30, batch_size=None, lr_w=0.5, lr_v=0.5, loss="mse", eps=0.5, eps_mode="absolute")
    return CellSpec(METHODS.get(method), width, activation, TrainConfig(**{**base, **cfg}), seed)


def forward(w, v, x, activation, output):
    return hidden_features(x @ w.T, activation, output) @ v


@pytest.mark.parametrize("method", METHODS.names())
def test_loss_decreases_for_every_method(method):
    data = regression_data()
    (res,) = train_group(data, [cell(method, epochs=60)], order_seed=0)
    assert res.status == "done"
    first, last = res.curves["train_loss"][0], res.final["train_loss"]
    assert last < 0.8 * first, (first, last)


@pytest.mark.parametrize("method", METHODS.names())
def test_each_method_uses_exactly_its_pieces(method):
    m = METHODS.get(method)
    data = regression_data()
    (res,) = train_group(data, [cell(method, width=10, epochs=40, eps=0.05)], order_seed=0, keep_weights=True)
    w0, v0, w, v = (res.extra[k] for k in ("w0", "v0", "w", "v"))
    # init: mirrored halves only for MLI
    assert torch.equal(w0[5:], w0[:5]) is (m.init == "mirrored_lecun")
    # output layer: a paired layer has m/2 trainable output rows, a free one m
    assert v.shape[0] == (5 if m.output == "paired" else 10)
    # constraint: PGD keeps ||W - W0|| <= eps (and is active with this small eps); SGD leaves the ball
    dist = torch.linalg.vector_norm(w - w0).item()
    assert math.isclose(dist, res.final["dist_w0"], rel_tol=1e-4)
    if m.constrained:
        assert dist <= 0.05 * (1 + 1e-5) and res.final["proj_active_frac"] > 0
    else:
        assert dist > 0.05 and res.final["proj_active_frac"] == 0
    # the recorded loss is the loss of the returned weights under the method's output layer
    out = forward(w, v, data.x_train, "tanh", m.output)
    torch.testing.assert_close((out - data.y_train).pow(2).sum(1).mean().item(), res.final["train_loss"],
                               rtol=1e-4, atol=1e-6)


def test_mli_paired_starts_at_zero_output_and_stays_tied():
    data = regression_data()
    (res,) = train_group(data, [cell("mli_paired_pgd", epochs=200, eps=5.0)], order_seed=0, keep_weights=True)
    w0, v0, w, v = (res.extra[k] for k in ("w0", "v0", "w", "v"))
    assert torch.equal(forward(w0, v0, data.x_train, "tanh", "paired"), torch.zeros(60, 1))
    # the first recorded (running) loss is the loss of the zero function: mean y^2
    torch.testing.assert_close(res.curves["train_loss"][0], data.y_train.pow(2).mean().item(), rtol=1e-5, atol=0)
    # after 200 steps the output is still that of a free layer with weights exactly [v; -v]
    free_v = torch.cat([v, -v])
    assert torch.equal(free_v[4:], -free_v[:4])
    torch.testing.assert_close(forward(w, v, data.x_train, "tanh", "paired"),
                               forward(w, free_v, data.x_train, "tanh", "free"), rtol=1e-5, atol=1e-6)
    assert not torch.equal(w[:4], w[4:])  # the hidden halves are free to move apart


def test_same_seed_same_numbers_and_other_seed_other_numbers():
    data = classification_data()
    cfg = dict(epochs=5, batch_size=16, loss="ce", lr_w=0.2, lr_v=0.2, eval_every=2)
    a = train_group(data, [cell("mli_paired_pgd", **cfg)], order_seed=3)[0]
    b = train_group(data, [cell("mli_paired_pgd", **cfg)], order_seed=3)[0]
    c = train_group(data, [cell("mli_paired_pgd", **cfg)], order_seed=4)[0]
    assert a.curves["train_loss"] == b.curves["train_loss"] and a.final == b.final
    assert a.curves["train_loss"] != c.curves["train_loss"]


def test_fused_cells_equal_cells_trained_alone():
    data = classification_data()
    cfg = dict(epochs=4, batch_size=16, loss="ce", lr_w=0.3, lr_v=0.2, eval_every=2)
    cells = [
        cell("mli_paired_pgd", width=8, activation="relu", **cfg),
        cell("sgd", width=6, activation="tanh", **{**cfg, "lr_w": 0.1}),
        cell("constraint_only", width=4, activation="softplus", **cfg),
        cell("no_mirroring", width=10, activation="gelu", **{**cfg, "loss": "mse", "eps": 0.2}),
    ]
    fused = train_group(data, cells, order_seed=7)
    for spec, res in zip(cells, fused):
        alone = train_group(data, [spec], order_seed=7)[0]
        for key in ("train_loss", "train_acc", "eval_train_loss", "test_acc", "dist_w0"):
            torch.testing.assert_close(res.curves[key], alone.curves[key], rtol=1e-5, atol=1e-6)


def test_a_diverging_cell_is_flagged_and_does_not_touch_its_neighbours():
    # float64: this lr/eps regime amplifies rounding ~1e5x over 40 steps, so float32 would hide a leak
    data = regression_data(dtype=torch.float64)
    good = cell("mli_paired_pgd", epochs=40, eval_every=5)
    bad = cell("sgd", epochs=40, eval_every=5, lr_w=1e6, lr_v=1e6, activation="relu")
    fused = train_group(data, [good, bad], order_seed=0)
    alone = train_group(data, [good], order_seed=0)[0]
    assert fused[1].status == "diverged" and "non-finite" in fused[1].reason
    assert fused[0].status == "done"
    torch.testing.assert_close(fused[0].curves["train_loss"], alone.curves["train_loss"], rtol=1e-8, atol=1e-10)


def test_momentum_and_minibatches_work_and_record_curves():
    data = classification_data()
    (res,) = train_group(data, [cell("sgd", epochs=6, batch_size=10, loss="ce", momentum=0.9, lr_w=0.05,
                                     lr_v=0.05, eval_every=3)], order_seed=0)
    assert len(res.curves["epoch"]) == 6 and res.curves["eval_epoch"] == [3, 6]
    assert 0 <= res.final["train_acc"] <= 1 and 0 <= res.final["test_acc"] <= 1
    assert res.final["train_loss"] < res.curves["eval_train_loss"][0] or res.final["train_acc"] > 0.5
    assert res.timing["flops"] > 0


def test_relative_eps_scales_with_w0_norm():
    data = regression_data()
    (res,) = train_group(data, [cell("constraint_only", eps=0.01, eps_mode="relative")], order_seed=0,
                         keep_weights=True)
    assert res.final["radius"] == pytest.approx(0.01 * torch.linalg.vector_norm(res.extra["w0"]).item())


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(lr_w=-1.0), dict(loss="hinge"), dict(eps=0.0),
                                 dict(momentum=1.0), dict(batch_size=0), dict(precision="fp8")])
def test_invalid_training_values_are_refused(bad):
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def test_cross_entropy_on_regression_is_refused():
    with pytest.raises(ValueError, match="classification"):
        train_group(regression_data(), [cell("sgd", loss="ce")], order_seed=0)
