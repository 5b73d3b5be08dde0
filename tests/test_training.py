import math

import pytest
import torch

from bench_suite.methods import METHODS
from bench_suite.model import hidden_features
from bench_suite.tasks import TaskData
from bench_suite.train import CellSpec, TrainConfig, train_group


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


# the fused engine's methods (the others run on the reference trainer: tests/test_reference_trainer.py)
FUSED = [name for name in METHODS.names() if METHODS.get(name).trainer == "fused"]


@pytest.mark.parametrize("method", FUSED)
def test_loss_decreases_for_every_method(method):
    data = regression_data()
    (res,) = train_group(data, [cell(method, epochs=60)], order_seed=0)
    assert res.status == "done"
    first, last = res.curves["train_loss"][0], res.final["train_loss"]
    if "v" in METHODS.get(method).frozen:  # only W moves, inside its ball: it plateaus at 0.87x here
        assert last < 0.95 * first and res.final["dist_w0"] > 0.5 * (1 - 1e-4), (first, last)
    else:
        assert last < 0.8 * first, (first, last)


@pytest.mark.parametrize("method", FUSED)
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


# ------------------------------------------------------------------------------------------
# issue 13, section 1: divergence judged on the weights, MLI exactly 0 at init, float64 metrics
# ------------------------------------------------------------------------------------------
def test_a_blown_up_constrained_net_is_diverged_not_done():
    # the issue's repro: saturated tanh keeps the loss finite while the weights are inf/NaN
    from bench_suite.tasks import TASKS

    data = TASKS.get("synthetic_ablation")().load({"n": 50, "d": 10}, data_seed=1)
    for tracking in ("exact", "lowrank"):
        (res,) = train_group(data, [cell("mli_paired_pgd", width=4, epochs=50, lr_w=1e6, lr_v=1e6, eps=1.0,
                                         eval_every=100)], order_seed=0, norm_tracking=tracking)
        assert res.status == "diverged", (tracking, res.final)
        assert "W - W0" in res.reason or "V" in res.reason, res.reason
        # when it happened (full batch: within 16 steps), not only the next check (every 64 steps here)
        first, last = (int(x) for x in res.reason.split("between epochs ")[1].split()[:3:2])
        assert last - first == 15 and last < 50 and res.curves["epoch"][-1] == 50


def test_output_weights_beyond_the_limit_are_diverged_with_a_finite_loss():
    # float64, W held in its ball: an output layer at too large a step size grows without bound
    # while the (float64) loss stays finite
    from bench_suite.train.engine import loop as epochs_module

    data = regression_data(dtype=torch.float64)
    (res,) = train_group(data, [cell("constraint_only", epochs=60, lr_w=0.1, lr_v=1e3, eval_every=10)],
                         order_seed=0)
    limit = epochs_module.WEIGHT_NORM_LIMIT
    assert res.status == "diverged" and f"{limit:g}" in res.reason and "||V||" in res.reason, res.reason
    assert all(math.isfinite(x) for x in res.curves["train_loss"])


def test_the_run_command_records_the_issues_repro_as_diverged(tmp_path, capsys):
    from bench_suite.cli import main
    from bench_suite.store.result_store import ResultStore

    code = main(["run", "--task", "synthetic_ablation", "--method", "mli_paired_pgd", "--width", "4", "--option",
                 "n=50", "--option", "d=10", "--epochs", "50", "--lr", "1e6", "--no-fuse", "--quiet",
                 "--store", str(tmp_path)])
    (record,) = ResultStore(tmp_path).records()
    assert code == 1 and record.status == "diverged", record.reason


@pytest.mark.parametrize("table", ["512", "0"])
@pytest.mark.parametrize("width", [6, 10, 20])
def test_mli_output_is_exactly_zero_at_init_alone_and_fused(monkeypatch, table, width):
    # mirrored rows w_j = w_{j+m/2} must give bit-identical pre-activations (X·W0ᵀ columns): with
    # lr 0 the output stays exactly 0, so the running loss is the zero function's and the running
    # accuracy that of argmax 0, whichever cells share the group
    monkeypatch.setenv("BENCH_SUITE_P0_TABLE_MB", table)
    data = classification_data(n=300, d=100, k=5)
    cfg = dict(epochs=2, batch_size=None, loss="ce", lr_w=0.0, lr_v=0.0, eval_every=2)
    mli = cell("mli_paired_pgd", width=width, activation="relu", **cfg)
    alone = train_group(data, [mli], order_seed=0)[0]
    fused = train_group(data, [cell("sgd", width=7, activation="relu", **cfg), mli,
                               cell("no_mirroring", width=12, activation="relu", **cfg)], order_seed=0)[1]
    zero_acc = (data.y_train == 0).double().mean().item()
    for res in (alone, fused):
        assert res.curves["train_acc"] == [zero_acc, zero_acc]
        assert res.curves["train_loss"][0] == pytest.approx(math.log(5), rel=1e-6)
    assert alone.curves["train_loss"] == fused.curves["train_loss"]


def test_accuracies_fractions_and_relative_radius_are_float64():
    data = classification_data(n=72, d=10, k=4)
    (res,) = train_group(data, [cell("constraint_only", epochs=3, batch_size=5, loss="ce", eps=0.01,
                                     eps_mode="relative", eval_every=1)], order_seed=0, keep_weights=True)
    n_test = data.x_test.shape[0]
    for key, n in (("train_acc", 72), ("eval_train_acc", 72), ("test_acc", n_test)):
        for acc in res.curves[key]:
            assert acc == round(acc * n) / n, (key, acc)  # a count over n in float64, not float32
    steps = math.ceil(72 / 5)
    for e, frac in zip(res.curves["eval_epoch"], res.curves["proj_active_frac"]):
        assert frac == round(frac * steps * e) / (steps * e)
    w0 = res.extra["w0"]
    assert res.final["radius"] == 0.01 * torch.linalg.vector_norm(w0.double()).item()


def test_a_failed_fused_group_is_said_once_and_recorded_as_trained_alone(tmp_path, monkeypatch, capsys):
    # issue 13, 2.1: e.g. a CUDA out-of-memory in the fused group; the cells are re-trained one by
    # one, and both stderr and the records say so
    import bench_suite.train.dispatch as trainers_module
    from bench_suite.grid import expand
    from bench_suite.runner.runner import Runner
    from bench_suite.store.result_store import ResultStore

    real = trainers_module.train_group  # what the runner's train_cells calls for fused methods

    def fails_when_fused(data, specs, **kwargs):
        if len(specs) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.90 GiB")
        return real(data, specs, **kwargs)

    monkeypatch.setattr(trainers_module, "train_group", fails_when_fused)
    cells = expand("synthetic_ablation", methods=["sgd", "mli_paired_pgd", "constraint_only"],
                   options={"n": 40, "d": 8}, train={"epochs": 3, "eval_every": 3})
    summary = Runner(ResultStore(tmp_path), device="cpu").run(cells)
    err = capsys.readouterr().err
    assert err.count("warning: the fused group of 3 cells") == 1 and "OutOfMemoryError" in err
    assert [r.status for r in summary.records] == ["done"] * 3
    for record in summary.records:
        timing = record.timing
        assert timing["engine"].startswith("alone/") and timing["group_size"] == 1
        assert "OutOfMemoryError: CUDA out of memory" in timing["fallback"]


def test_flops_count_the_extra_gemm_without_the_x_w0_table(monkeypatch):
    from bench_suite.core.flops import step_flops

    data = classification_data(n=80, d=10, k=4)
    spec = cell("mli_paired_pgd", width=8, epochs=2, batch_size=16, loss="ce", eval_every=2)
    (with_table,) = train_group(data, [spec], order_seed=0)
    monkeypatch.setenv("BENCH_SUITE_P0_TABLE_MB", "0")  # no room for the table: x·W0ᵀ every step
    (without,) = train_group(data, [spec], order_seed=0)
    assert "/p0/" in with_table.timing["engine"] and "/nop0/" in without.timing["engine"]
    steps = 2 * 5
    evals = 2.0 * (80 + 30) * 10 * 8
    assert with_table.timing["flops"] == step_flops(16, 10, 8, 4, "paired") * steps + evals
    assert without.timing["flops"] == (step_flops(16, 10, 8, 4, "paired") + 2.0 * 16 * 10 * 8) * steps + evals
    torch.testing.assert_close(without.curves["train_loss"], with_table.curves["train_loss"], rtol=1e-5, atol=1e-6)


def test_the_table_budget_looks_at_the_free_memory_on_cuda(monkeypatch):
    from bench_suite.train.engine import state as state_module

    monkeypatch.delenv("BENCH_SUITE_P0_TABLE_MB", raising=False)
    monkeypatch.setattr(state_module, "free_device_memory", lambda device: 6 * 2**30)
    assert state_module.p0_table_budget(torch.device("cuda")) == 3 * 2**30  # half the free 6 GiB, not 8 GiB
    monkeypatch.setattr(state_module, "free_device_memory", lambda device: 64 * 2**30)
    assert state_module.p0_table_budget(torch.device("cuda")) == 8192 * 2**20
    monkeypatch.setenv("BENCH_SUITE_P0_TABLE_MB", "100000")
    assert state_module.p0_table_budget(torch.device("cuda")) == 32 * 2**30
