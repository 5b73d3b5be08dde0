"""The reference trainer (bench_suite/train/reference.py) and the dispatch by method
(bench_suite/train/dispatch.py): what the new methods compute, schedules, plug-in training steps,
divergence, checkpoints, and records that name their trainer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bench_suite.grid import expand
from bench_suite.methods import METHODS, Method
from bench_suite.model import TwoLayerNet
from bench_suite.runner.runner import Runner
from bench_suite.store.result_store import ResultStore
from bench_suite.tasks import TaskData
from bench_suite.train import CellSpec, TrainConfig, train_group
from bench_suite.train.dispatch import train_cells
from bench_suite.train.engine.loop import Checkpointing, TrainingStopped
from bench_suite.train.reference import TrainStepError, default_step, train_reference


def classification(n=48, d=12, k=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return TaskData(torch.randn(n, d, generator=g).to(dtype), torch.randint(0, k, (n,), generator=g), k, True, "t",
                    x_test=torch.randn(16, d, generator=g).to(dtype), y_test=torch.randint(0, k, (16,), generator=g))


def regression(n=40, d=10, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return TaskData(torch.randn(n, d, generator=g).to(dtype), torch.randn(n, 1, generator=g).to(dtype), 1, False, "r")


def spec(method, width=8, activation="tanh", seed=3, **cfg):
    base = dict(epochs=6, batch_size=16, lr_w=0.2, lr_v=0.1, loss="ce", eps=0.3, eps_mode="absolute", eval_every=2)
    m = METHODS.get(method) if isinstance(method, str) else method
    return CellSpec(m, width, activation, TrainConfig(**{**base, **cfg}), seed)


@pytest.fixture
def scratch_methods():
    added: list[str] = []

    def add(method: Method) -> Method:
        METHODS._items[method.name] = method  # noqa: SLF001 - a test registration, removed below
        added.append(method.name)
        return method

    yield add
    for name in added:
        METHODS._items.pop(name, None)  # noqa: SLF001


# ------------------------------------------------------------------------------------------
# what the new methods compute
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fixed_v_keeps_v_at_v0_bit_for_bit_on_both_trainers(dtype):
    data = classification(dtype=dtype)
    cell = spec("mli_paired_pgd_fixed_v", momentum=0.9, lr_v=5.0)  # any lr_v: V does not move
    (fused,) = train_group(data, [cell], order_seed=1, keep_weights=True)
    ref = train_reference(data, cell, order_seed=1, keep_weights=True)
    for res in (fused, ref):
        assert torch.equal(res.extra["v"], res.extra["v0"].to(dtype))
        assert res.final["dist_w0"] > 0 and res.status == "done"
    torch.testing.assert_close(fused.extra["w"], ref.extra["w"], rtol=1e-9 if dtype == torch.float64 else 1e-4,
                               atol=1e-12 if dtype == torch.float64 else 1e-6)


def test_adam_uses_torchs_adam_whose_first_step_is_lr_times_the_gradients_sign():
    data = regression(dtype=torch.float64)
    cell = spec("adam", loss="mse", epochs=1, batch_size=None, eval_every=1, lr_w=1e-3, lr_v=1e-3, eps=1.0)
    res = train_reference(data, cell, order_seed=0, keep_weights=True)
    net = TwoLayerNet(10, 8, 1, "tanh", "lecun", "free", generator=torch.Generator().manual_seed(3)).double()
    loss = (net(data.x_train) - data.y_train).square().sum(1).mean()
    gw, gv = torch.autograd.grad(loss, [net.w, net.v])
    # Adam's first update is -lr * g / (|g| + eps) with bias correction: -lr * sign(g) where |g| >> 1e-8
    big = gw.abs() > 1e-6
    step = res.extra["w"] - res.extra["w0"].double()
    torch.testing.assert_close(step[big], -1e-3 * gw.sign()[big], rtol=1e-4, atol=0)
    torch.testing.assert_close(res.extra["v"] - res.extra["v0"].double(), -1e-3 * gv.sign(), rtol=1e-4, atol=0)
    assert res.timing["engine"] == "reference/Adam/none" and res.final["radius"] is None


def test_per_neuron_keeps_each_unit_in_its_own_ball_and_the_total_in_the_frobenius_ball():
    data = classification()
    eps = 0.3
    cell = spec("mli_paired_pgd_per_neuron", width=8, eps=eps, lr_w=1.0, epochs=4)
    res = train_reference(data, cell, order_seed=0, keep_weights=True)
    rows = torch.linalg.vector_norm(res.extra["w"] - res.extra["w0"].double(), dim=1)
    assert float(rows.max()) <= eps / math.sqrt(8) * (1 + 1e-12)
    assert res.final["dist_w0"] <= eps * (1 + 1e-12) and res.final["radius"] == eps
    assert res.final["proj_active_frac"] > 0.5  # the projection was exercised
    # the Frobenius-ball method at the same radius moves its units unevenly: another problem
    frob = train_reference(data, spec("mli_paired_pgd", width=8, eps=eps, lr_w=1.0, epochs=4), order_seed=0,
                           keep_weights=True)
    frob_rows = torch.linalg.vector_norm(frob.extra["w"] - frob.extra["w0"].double(), dim=1)
    assert float(frob_rows.max()) > eps / math.sqrt(8) * 1.01


def test_a_schedule_sets_each_steps_learning_rate(scratch_methods):
    """SGD with the linear schedule against the textbook loop with lr_t = lr (1 - t/T)."""
    method = scratch_methods(Method("sgd_linear", "sgd, linear decay", init="lecun", output="free", constrained=False,
                                    lr_schedule="linear"))
    data = regression()
    cell = spec(method, loss="mse", epochs=5, batch_size=None, eval_every=5, lr_w=0.3, lr_v=0.2)
    res = train_reference(data, cell, order_seed=0, keep_weights=True)
    net = TwoLayerNet(10, 8, 1, "tanh", "lecun", "free", generator=torch.Generator().manual_seed(3)).double()
    for t in range(5):
        loss = (net(data.x_train) - data.y_train).square().sum(1).mean()
        gw, gv = torch.autograd.grad(loss, [net.w, net.v])
        with torch.no_grad():
            net.w -= 0.3 * (1 - t / 5) * gw
            net.v -= 0.2 * (1 - t / 5) * gv
    torch.testing.assert_close(res.extra["w"], net.w.detach(), rtol=1e-12, atol=1e-14)
    assert "/schedule=linear" in res.timing["engine"]


# ------------------------------------------------------------------------------------------
# plug-in training steps
# ------------------------------------------------------------------------------------------
def _counting_step(model, batch, state):
    state.memory["steps"] = state.memory.get("steps", 0) + 1
    state.memory["last_lr"] = state.optimizer.param_groups[0]["lr"]
    return default_step(model, batch, state)


def test_a_training_step_of_its_own_sees_the_state_and_its_memory(scratch_methods):
    seen = {}

    def step(model, batch, state):
        seen.update(step=state.step, epoch=state.epoch, total=state.total_steps, radius=state.radius)
        assert torch.equal(state.w0, model.w.detach()) or state.step > 0
        return _counting_step(model, batch, state)

    method = scratch_methods(Method("counting", "counts", init="mirrored_lecun", output="paired", constrained=True,
                                    train_step=step))
    data = classification()
    res = train_reference(data, spec(method, epochs=3), order_seed=0)
    assert seen == {"step": 8, "epoch": 2, "total": 9, "radius": 0.3}  # 3 epochs x 3 steps (48 / 16)
    assert res.status == "done" and res.timing["trainer"] == "reference" and "/step=" in res.timing["engine"]


def test_a_training_step_that_raises_is_that_cells_error_record_and_the_grid_goes_on(tmp_path, scratch_methods):
    def broken(model, batch, state):
        if state.step == 2:
            raise RuntimeError("the plug-in's bug\nsecond line")
        return default_step(model, batch, state)

    def bad_outputs(model, batch, state):
        loss, out = default_step(model, batch, state)
        return loss, out[:, :0]

    scratch_methods(Method("broken", "raises", init="lecun", output="free", constrained=False, train_step=broken))
    scratch_methods(Method("bad_outputs", "wrong shape", init="lecun", output="free", constrained=False,
                           train_step=bad_outputs))
    cells = expand("synthetic_ablation", methods=["broken", "sgd", "bad_outputs", "adam"], widths=[4],
                   options={"n": 32, "d": 6}, train={"epochs": 4, "eval_every": 2})
    summary = Runner(ResultStore(tmp_path), device="cpu").run(cells)
    by = {r.method: r for r in summary.records}
    assert by["broken"].status == "error" and by["bad_outputs"].status == "error"
    assert by["sgd"].status == "done" and by["adam"].status == "done"
    reason = by["broken"].reason
    assert "\n" not in reason and "method 'broken': train_step at step 2 (epoch 3) raised RuntimeError: the " \
                                  "plug-in's bug second line" in reason
    assert "returned outputs (32, 0); expected (32, 1)" in by["bad_outputs"].reason
    assert summary.exit_code == 1


def test_a_projection_that_returns_another_shape_at_run_time_is_an_error_record(tmp_path, scratch_methods):
    # passes the 6 x 5 probe, fails on the real W (8 x 6): found at the first step
    scratch_methods(Method("shrinks", "x", init="lecun", output="free", constrained=True,
                           projection=lambda w, w0, r: w if w.shape[0] == 6 else w[:2]))
    cells = expand("synthetic_ablation", methods=["shrinks"], widths=[8], options={"n": 16, "d": 6},
                   train={"epochs": 2, "eval_every": 2})
    (record,) = Runner(ResultStore(tmp_path), device="cpu").run(cells).records
    assert record.status == "error" and "projection returned (2, 6) for W of shape (8, 6)" in record.reason


# ------------------------------------------------------------------------------------------
# divergence, the same as the engine's
# ------------------------------------------------------------------------------------------
def test_a_blow_up_is_diverged_at_the_same_epoch_with_the_same_reason_as_the_fused_engine():
    data = regression(dtype=torch.float32)
    cell = spec("sgd", loss="mse", batch_size=None, epochs=300, eval_every=100, lr_w=50.0, lr_v=50.0)
    (fused,) = train_group(data, [cell], order_seed=0)
    forced = Method("sgd_ref", "sgd on the reference trainer", init="lecun", output="free", constrained=False,
                    trainer_choice="reference")
    ref = train_reference(data, CellSpec(forced, cell.width, cell.activation, cell.config, cell.init_seed),
                          order_seed=0)
    assert fused.status == ref.status == "diverged"
    assert fused.timing["epochs"] == ref.timing["epochs"] < 300
    # the same rule fired; the engine looks at the weights' health every 16 steps, the reference
    # trainer after every epoch, so it names the epoch inside the engine's range
    what = "the hidden weights became non-finite"
    assert fused.reason.startswith(what + " between epochs 1 and 16") and ref.reason.startswith(what + " in epoch ")
    assert 1 <= int(ref.reason.split(" in epoch ")[1].split()[0]) <= 16


# ------------------------------------------------------------------------------------------
# checkpoints: a stop and a resume give the uninterrupted numbers
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["adam", "mli_paired_pgd_per_neuron", "counting"])
def test_stop_then_resume_gives_the_same_numbers(method, scratch_methods):
    if method == "counting":
        scratch_methods(Method("counting", "counts", init="mirrored_lecun", output="paired", constrained=True,
                               train_step=_counting_step, optimizer="RMSprop", lr_schedule="cosine"))
    data = classification()
    cell = spec(method, epochs=8, eval_every=2, lr_w=0.01 if method != "mli_paired_pgd_per_neuron" else 0.5)
    whole = train_reference(data, cell, order_seed=4, keep_weights=True)
    saved = []
    hooks = Checkpointing(save=lambda st: saved.append(st), stop=lambda s: "test stop" if not saved else None)
    with pytest.raises(TrainingStopped) as info:
        train_reference(data, cell, order_seed=4, checkpoint=hooks)
    assert info.value.epoch == 2 and len(saved) == 1
    state = torch.load(_roundtrip(saved[0]), weights_only=True)  # what the checkpoint store reads back
    resumed = train_reference(data, cell, order_seed=4, keep_weights=True, checkpoint=Checkpointing(resume=state))
    assert resumed.timing["resumed_at_epochs"] == [2]
    assert resumed.curves.keys() == whole.curves.keys()
    for key in whole.curves:
        if key != "wall_time":
            assert resumed.curves[key] == whole.curves[key], key
    assert resumed.final == whole.final
    assert torch.equal(resumed.extra["w"], whole.extra["w"]) and torch.equal(resumed.extra["v"], whole.extra["v"])


def _roundtrip(state):
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return buf


def test_a_checkpoint_of_another_cell_is_refused_and_training_starts_over():
    data = classification()
    cell = spec("adam", epochs=4, lr_w=0.01)
    saved = []
    with pytest.raises(TrainingStopped):
        train_reference(data, cell, order_seed=0,
                        checkpoint=Checkpointing(save=saved.append, stop=lambda s: "stop"))
    other = spec("adam", epochs=4, lr_w=0.02)
    problems = []
    res = train_reference(data, other, order_seed=0,
                          checkpoint=Checkpointing(resume=saved[0], invalid=problems.append))
    assert res.status == "done" and "resumed_at_epochs" not in res.timing
    assert problems and "differs in: config" in problems[0]


def test_the_runner_checkpoints_and_resumes_a_reference_cell(tmp_path):
    cells = expand("synthetic_ablation", methods=["adam"], widths=[4], options={"n": 64, "d": 6},
                   train={"epochs": 300, "eval_every": 100})
    store = ResultStore(tmp_path)
    runner = Runner(store, device="cpu", checkpoint_every=0)
    runner.on_epoch = lambda done, total: runner.request_stop("preempted") if done == 10 else None
    summary = runner.run(cells)
    assert summary.stopped == "preempted" and summary.records[0].status == "interrupted"
    assert summary.checkpointed and summary.checkpointed[0]["epoch"] == 64  # the first segment end
    again = Runner(store, device="cpu").run(cells)
    (record,) = again.records
    assert record.status == "done" and record.timing["resumed_at_epochs"] == [64]
    fresh = Runner(ResultStore(tmp_path / "fresh"), device="cpu").run(cells).records[0]
    assert fresh.curves["train_loss"] == record.curves["train_loss"] and fresh.final == record.final


# ------------------------------------------------------------------------------------------
# dispatch and records
# ------------------------------------------------------------------------------------------
def test_the_runner_sends_each_cell_to_its_trainer_and_the_record_says_which(tmp_path):
    import bench_suite as bs

    methods = sorted(METHODS.names())
    cells = expand("synthetic_ablation", methods=methods, widths=[6], options={"n": 40, "d": 8},
                   train={"epochs": 10, "eval_every": 5})
    summary = Runner(ResultStore(tmp_path), device="cpu").run(cells)
    assert all(r.status == "done" for r in summary.records), [r.reason for r in summary.records]
    trainers = {r.method: r.timing["trainer"] for r in summary.records}
    assert trainers == {m: METHODS.get(m).trainer for m in methods}
    assert trainers["adam"] == trainers["mli_paired_pgd_per_neuron"] == "reference"
    assert trainers["mli_paired_pgd_fixed_v"] == trainers["mli_paired_pgd"] == "fused"
    fused_sizes = {r.timing["group_size"] for r in summary.records if r.timing["trainer"] == "fused"}
    assert fused_sizes == {5}  # the fused methods share one group; each reference cell runs alone
    frame = bs.load_results(tmp_path)
    assert dict(zip(frame["method"], frame["trainer"])) == trainers
    # seeds pair across trainers: the same W0 for methods of the same init, the same labels
    w0 = {r.method: r.w0_digest for r in summary.records}
    assert w0["adam"] == w0["sgd"] == w0["constraint_only"] and w0["mli_paired_pgd_per_neuron"] == w0["mli_paired_pgd"]
    assert len({r.label_digest for r in summary.records}) == 1
    # the theory section fits the problem: V frozen -> the W block; per-unit balls -> not the ball's KKT
    theory = {r.method: r.theory["kkt"] for r in summary.records}
    assert theory["mli_paired_pgd_fixed_v"]["kkt_variables"] == "W"
    assert theory["mli_paired_pgd_fixed_v"]["kkt_residual"] == theory["mli_paired_pgd_fixed_v"]["kkt_residual_w"]
    assert theory["mli_paired_pgd_per_neuron"]["status"] == "skipped"


def test_train_group_refuses_a_method_it_cannot_express():
    with pytest.raises(ValueError, match="method 'adam' needs the reference trainer"):
        train_group(classification(), [spec("adam")], order_seed=0)
    with pytest.raises(ValueError, match="one cell at a time"):
        train_cells(classification(), [spec("adam"), spec("mli_paired_pgd_per_neuron")], order_seed=0)


def test_bf16_runs_on_the_reference_trainer():
    data = classification(dtype=torch.float32)
    res = train_reference(data, spec("adam", precision="bf16", lr_w=0.01), order_seed=0)
    full = train_reference(data, spec("adam", lr_w=0.01), order_seed=0)
    assert res.status == "done" and abs(res.final["train_loss"] - full.final["train_loss"]) < 0.05


def test_the_reference_loss_is_the_engines_mean_of_the_summed_squared_error():
    data = classification()
    cell = spec("mli_paired_pgd_per_neuron", loss="mse", epochs=1, batch_size=None, eval_every=1)
    res = train_reference(data, cell, order_seed=0, keep_weights=True)
    net = TwoLayerNet(12, 8, 3, "tanh", "mirrored_lecun", "paired").double()
    with torch.no_grad():
        net.w.copy_(res.extra["w"])
        net.v.copy_(res.extra["v"])
        loss = (net(data.x_train) - F.one_hot(data.y_train, 3).double()).square().sum(1).mean()
    assert res.final["train_loss"] == pytest.approx(float(loss), rel=1e-12)


def test_train_step_errors_are_one_line():
    err = TrainStepError("method 'x': train_step at step 0 (epoch 1) raised ValueError: no")
    assert "\n" not in str(err)


# ------------------------------------------------------------------------------------------
# the new methods on the tasks of the "done when": synthetic_ablation and cifar10_random
# ------------------------------------------------------------------------------------------
NEW = ["mli_paired_pgd_fixed_v", "adam", "mli_paired_pgd_per_neuron"]


def test_the_new_methods_run_on_the_synthetic_ablation_smoke_profile(tmp_path):
    from bench_suite.cli import main

    store = tmp_path / "store"
    assert main(["run", "--task", "synthetic_ablation", "--profile", "smoke", "--method", ",".join(NEW),
                 "--option", "n=200", "--store", str(store), "--quiet", "--threads", "1"]) == 0
    records = {r.method: r for r in ResultStore(store).records()}
    assert set(records) == set(NEW) and all(r.status == "done" for r in records.values())
    assert {m: r.timing["trainer"] for m, r in records.items()} == {
        "mli_paired_pgd_fixed_v": "fused", "adam": "reference", "mli_paired_pgd_per_neuron": "reference"}


def test_the_new_methods_run_on_cifar10_random_smoke(tmp_path, cifar10_path):
    from bench_suite.cli import main

    store = tmp_path / "store"
    assert main(["run", "--task", "cifar10_random", "--profile", "smoke", "--method", ",".join(NEW),
                 "--data-root", cifar10_path, "--store", str(store), "--quiet", "--threads", "1"]) == 0
    records = {r.method: r for r in ResultStore(store).records()}
    assert set(records) == set(NEW)
    for method, record in records.items():
        assert record.status == "done" and record.timing["trainer"] == METHODS.get(method).trainer
        assert record.shape["d"] == 3072 and 0 <= record.final["test_acc"] <= 1
    assert records["adam"].config["train"]["momentum"] == 0.0  # the task's 0.9 is SGD's; Adam has its betas


def test_plan_prices_reference_cells_at_the_reference_trainers_rate(tmp_path):
    from bench_suite.runner.cost import CostModel

    cells = expand("synthetic_ablation", methods=["sgd", "adam"], widths=[6], options={"n": 40, "d": 8},
                   train={"epochs": 20, "eval_every": 20})
    store = ResultStore(tmp_path)
    records = Runner(store, device="cpu").run(cells).records
    by = {r.method: r for r in records}
    model = CostModel(store.records)
    device = by["sgd"].provenance["device_name"]
    per_step = by["sgd"].timing["flops"] / 20
    fused, reference = model.rate(device, per_step), model.rate(device, per_step, trainer="reference")
    assert fused[0] == pytest.approx(by["sgd"].timing["group_tflops_per_s"] * 1e12)
    assert reference[0] == pytest.approx(by["adam"].timing["group_tflops_per_s"] * 1e12)
    assert fused[1] == reference[1] == 1  # each from its own trainer's record only
