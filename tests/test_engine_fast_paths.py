"""The fast paths of the fused engine against a plain per-cell autograd reference.

The engine keeps W = W0 + s·U, reads X·W0ᵀ from a table, follows ||W - W0|| from B x m
quantities (``lowrank``) or re-measures it (``exact``), computes every cell's output layer as
one batched product and its gradients by hand. The reference below is the textbook loop: one
cell, ``x @ W.T`` through autograd, an SGD step, an exact projection. In float64 both must give
the same numbers to ~1e-9 for every method, activation, loss and engine path.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from bench_suite.methods import METHODS
from bench_suite.model import hidden_features, init_weights
from bench_suite.model.projection import project_frobenius_ball
from bench_suite.tasks import TaskData
from bench_suite.train import CUDA_GRAPHS_ENV, NORM_TRACKING_ENV, P0_TABLE_ENV, CellSpec, TrainConfig, train_group


def classification(n=72, d=40, k=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return TaskData(torch.randn(n, d, generator=g).to(dtype), torch.randint(0, k, (n,), generator=g), k, True, "t",
                    x_test=torch.randn(20, d, generator=g).to(dtype), y_test=torch.randint(0, k, (20,), generator=g))


def regression(n=50, d=30, k=2, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return TaskData(torch.randn(n, d, generator=g).to(dtype), torch.randn(n, k, generator=g).to(dtype), k, False, "t")


def spec(method, width=8, activation="tanh", seed=1, **cfg):
    base = dict(epochs=4, batch_size=16, lr_w=0.3, lr_v=0.2, loss="ce", eps=0.3, eps_mode="absolute", eval_every=2)
    return CellSpec(METHODS.get(method), width, activation, TrainConfig(**{**base, **cfg}), seed)


def reference(data: TaskData, cell: CellSpec, order_seed: int):
    """One cell, the obvious way: autograd, SGD (+ momentum), exact projection after each step."""
    cfg, m = cell.config, cell.method
    x, y = data.x_train, data.y_train
    n, d = x.shape
    init = init_weights(cell.width, d, data.num_outputs, m.init, m.output,
                        torch.Generator().manual_seed(cell.init_seed))
    w0 = init.w.to(x.dtype)
    w, v = w0.clone().requires_grad_(True), init.v.to(x.dtype).clone().requires_grad_(True)
    radius = (cfg.eps * float(torch.linalg.vector_norm(init.w.double())) if cfg.eps_mode == "relative" else cfg.eps)
    bw, bv = torch.zeros_like(w), torch.zeros_like(v)
    batch = n if cfg.batch_size is None else min(cfg.batch_size, n)
    gen = torch.Generator().manual_seed(order_seed)

    def loss_of(xb, yb):
        out = hidden_features(xb @ w.T, cell.activation, m.output) @ v
        if cfg.loss == "ce":
            return F.cross_entropy(out, yb)
        target = F.one_hot(yb, data.num_outputs).to(x.dtype) if data.classification else yb
        return (out - target).pow(2).sum(1).mean()

    running = []
    for _ in range(cfg.epochs):
        perm = None if batch >= n else torch.randperm(n, generator=gen)
        total = 0.0
        for s in range(0, n, batch):
            idx = torch.arange(n) if perm is None else perm[s : s + batch]
            loss = loss_of(x[idx], y[idx])
            gw, gv = torch.autograd.grad(loss, [w, v])
            total += loss.item() * len(idx)
            with torch.no_grad():
                bw.mul_(cfg.momentum).add_(gw)
                bv.mul_(cfg.momentum).add_(gv)
                w -= cfg.lr_w * bw
                v -= cfg.lr_v * bv
                if m.constrained:
                    w.copy_(project_frobenius_ball(w, w0, radius))
        running.append(total / n)
    with torch.no_grad():
        final = loss_of(x, y).item()
    return running, final, w.detach(), v.detach()


def assert_matches_reference(data, cells, order_seed=3, rtol=1e-9, **kwargs):
    fused = train_group(data, cells, order_seed=order_seed, keep_weights=True, **kwargs)
    for cell, res in zip(cells, fused):
        running, final, w, v = reference(data, cell, order_seed)
        torch.testing.assert_close(res.curves["train_loss"], running, rtol=rtol, atol=1e-12)
        torch.testing.assert_close(res.final["train_loss"], final, rtol=rtol, atol=1e-12)
        torch.testing.assert_close(res.extra["w"], w, rtol=rtol, atol=1e-12)
        torch.testing.assert_close(res.extra["v"], v, rtol=rtol, atol=1e-12)
    return fused


MIXED = [
    ("mli_paired_pgd", 8, "relu"), ("sgd", 6, "tanh"), ("constraint_only", 4, "softplus"),
    ("no_mirroring", 10, "gelu"), ("mli_paired_pgd", 12, "tanh"), ("sgd", 8, "relu"),
]


@pytest.mark.parametrize("tracking", ["lowrank", "exact"])
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_fused_group_equals_the_autograd_reference(tracking, loss):
    data = classification()
    cells = [spec(meth, width, act, loss=loss) for meth, width, act in MIXED]
    res = assert_matches_reference(data, cells, norm_tracking=tracking)
    assert res[0].timing["engine"].startswith(f"fused/{tracking}/")
    assert any(r.final["proj_active_frac"] > 0 for r in res)  # the projection was exercised


def test_regression_full_batch_and_relative_eps_equal_the_reference():
    data = regression()
    cells = [spec(meth, width, act, loss="mse", batch_size=None, epochs=6, eps=0.05, eps_mode="relative")
             for meth, width, act in MIXED]
    assert_matches_reference(data, cells)


def test_mixed_losses_in_one_group_equal_the_reference():
    data = classification()
    cells = [spec("mli_paired_pgd", 8, "tanh", loss="ce"), spec("sgd", 6, "relu", loss="mse", lr_w=0.1),
             spec("constraint_only", 6, "gelu", loss="mse")]
    assert_matches_reference(data, cells, norm_tracking="lowrank")


def test_momentum_equals_the_reference():
    data = classification()
    cells = [spec(meth, width, act, momentum=mom, lr_w=0.05, lr_v=0.05)
             for (meth, width, act), mom in zip(MIXED, (0.9, 0.5, 0.0, 0.9, 0.3, 0.9))]
    res = assert_matches_reference(data, cells)
    assert res[0].timing["engine"].startswith("fused/exact/")


def test_without_the_x_w0_table_equals_the_reference(monkeypatch):
    monkeypatch.setenv(P0_TABLE_ENV, "0")
    data = classification()
    res = assert_matches_reference(data, [spec(meth, width, act) for meth, width, act in MIXED[:3]],
                                   norm_tracking="lowrank")
    assert "/nop0/" in res[0].timing["engine"]


def test_equal_widths_without_padding_equal_the_reference():
    # all free (or all paired) cells of one width and activation: no gather/scatter of features
    data = classification()
    assert_matches_reference(data, [spec(m, 8, "relu") for m in ("sgd", "constraint_only")])
    assert_matches_reference(data, [spec(m, 8, "tanh") for m in ("mli_paired_pgd", "no_mirroring")])


def test_many_steps_of_lowrank_tracking_keep_the_constraint_exact_at_evaluations():
    # float32, 30 epochs x 5 steps with the projection active: the tracked norm may drift
    # between folds, but every evaluation sees an iterate inside its ball (to rounding)
    data = classification(n=160, d=64, dtype=torch.float32)
    cells = [spec("mli_paired_pgd", 16, "relu", epochs=30, batch_size=32, eps=0.2, eval_every=5, lr_w=0.5),
             spec("constraint_only", 8, "tanh", epochs=30, batch_size=32, eps=0.1, eval_every=5, lr_w=0.5)]
    for res in train_group(data, cells, order_seed=0, keep_weights=True, norm_tracking="lowrank"):
        dist = torch.linalg.vector_norm(res.extra["w"] - res.extra["w0"]).item()
        assert dist <= res.final["radius"] * (1 + 1e-5)
        assert res.final["proj_active_frac"] > 0.5
        assert all(dw <= res.final["radius"] * (1 + 1e-5) for dw in res.curves["dist_w0"])


def test_tracking_paths_agree_in_float32():
    data = classification(n=160, d=64, dtype=torch.float32)
    cells = [spec(meth, width, act, epochs=5, batch_size=32) for meth, width, act in MIXED]
    a = train_group(data, cells, order_seed=1, norm_tracking="lowrank")
    b = train_group(data, cells, order_seed=1, norm_tracking="exact")
    for ra, rb in zip(a, b):
        torch.testing.assert_close(ra.curves["train_loss"], rb.curves["train_loss"], rtol=1e-4, atol=1e-6)


def test_environment_variable_selects_the_tracking(monkeypatch):
    monkeypatch.setenv(NORM_TRACKING_ENV, "lowrank")
    (res,) = train_group(classification(), [spec("mli_paired_pgd")], order_seed=0)
    assert res.timing["engine"].startswith("alone/lowrank/")
    monkeypatch.setenv(NORM_TRACKING_ENV, "sideways")
    with pytest.raises(ValueError, match="norm tracking"):
        train_group(classification(), [spec("mli_paired_pgd")], order_seed=0)


def test_unconstrained_groups_track_nothing_and_report_exact_distance():
    data = classification()
    (res,) = train_group(data, [spec("sgd", width=10)], order_seed=0, keep_weights=True)
    assert res.timing["engine"].startswith("alone/none/")
    dist = torch.linalg.vector_norm(res.extra["w"] - res.extra["w0"]).item()
    assert math.isclose(dist, res.final["dist_w0"], rel_tol=1e-9)


def test_cuda_graph_request_falls_back_to_eager_off_cuda(monkeypatch):
    monkeypatch.setenv(CUDA_GRAPHS_ENV, "1")
    data = classification(dtype=torch.float32)
    (a,) = train_group(data, [spec("mli_paired_pgd")], order_seed=0)
    (b,) = train_group(data, [spec("mli_paired_pgd")], order_seed=0, cuda_graphs=False)
    assert a.timing["engine"].endswith("/eager") and a.curves == {**b.curves, "wall_time": a.curves["wall_time"]}


def test_a_diverging_cell_does_not_touch_its_neighbours_on_every_path(monkeypatch):
    data = classification()
    good = [spec("mli_paired_pgd", 8, "relu", epochs=12, eval_every=4), spec("sgd", 6, "tanh", epochs=12, eval_every=4)]
    bad = spec("no_mirroring", 10, "relu", epochs=12, eval_every=4, lr_w=1e200, lr_v=1e200, eps=1e300)
    for tracking in ("lowrank", "exact"):
        for table in ("512", "0"):
            monkeypatch.setenv(P0_TABLE_ENV, table)
            fused = train_group(data, [good[0], bad, good[1]], order_seed=0, norm_tracking=tracking)
            assert fused[1].status == "diverged", (tracking, table)
            for cell, res in zip(good, (fused[0], fused[2])):
                alone = train_group(data, [cell], order_seed=0, norm_tracking=tracking)[0]
                assert res.status == "done"
                torch.testing.assert_close(res.curves["train_loss"], alone.curves["train_loss"], rtol=1e-10,
                                           atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (checked by benchmarks/gpu_paper_grid.py)")
def test_cuda_graph_epochs_equal_eager_epochs():
    data = classification(n=300, d=64, dtype=torch.float32)
    cells = [spec(meth, width, act, epochs=4, batch_size=64) for meth, width, act in MIXED]
    a = train_group(data, cells, order_seed=0, device="cuda", cuda_graphs=True)
    b = train_group(data, cells, order_seed=0, device="cuda", cuda_graphs=False)
    assert a[0].timing["engine"].endswith("/graph")
    for ra, rb in zip(a, b):
        torch.testing.assert_close(ra.curves["train_loss"], rb.curves["train_loss"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_reduced_precisions_run_and_stay_close_to_fp32(precision):
    # on the CPU tf32 changes nothing; bf16 autocasts the hidden-layer products
    data = classification(n=160, d=64, dtype=torch.float32)
    cells = [spec(meth, width, act, epochs=3, batch_size=32) for meth, width, act in MIXED[:4]]
    ref = train_group(data, cells, order_seed=0)
    low = train_group(data, [CellSpec(c.method, c.width, c.activation, c.config.updated(precision=precision),
                                      c.init_seed) for c in cells], order_seed=0)
    for a, b in zip(ref, low):
        if precision == "tf32":
            assert a.curves["train_loss"] == b.curves["train_loss"]
        else:
            torch.testing.assert_close(b.curves["train_loss"], a.curves["train_loss"], rtol=0.05, atol=0.01)
            assert b.final["dist_w0"] <= (b.final["radius"] or math.inf) * (1 + 1e-5)


@pytest.mark.parametrize("tracking", ["lowrank", "exact"])
def test_folds_inside_an_epoch_equal_the_reference(tracking):
    # 72 samples in batches of 4: 18 steps per epoch, so a fold happens mid-epoch (every FOLD_STEPS)
    data = classification()
    cells = [spec("mli_paired_pgd", batch_size=4, epochs=2, eps=0.05), spec("constraint_only", batch_size=4,
                                                                          epochs=2, eps=0.05)]
    assert_matches_reference(data, cells, norm_tracking=tracking)


@pytest.mark.parametrize("tracking", ["lowrank", "exact"])
def test_a_tiny_radius_stays_finite_in_float32(tracking):
    # a radius far below the step size shrinks s by orders of magnitude per step; before folds
    # every FOLD_STEPS steps, U = (W - W0)/s overflowed float32 and the cell "diverged" (eps = 0.1
    # on the synthetic ablation). The reference, a plain float32 loop, stays finite.
    data = regression(n=200, d=60, k=1, dtype=torch.float32)
    cell = spec("mli_paired_pgd", width=10, batch_size=None, epochs=120, loss="mse", lr_w=2.0, lr_v=0.5,
                eps=1e-4, eval_every=120)
    (res,) = train_group(data, [cell], order_seed=0, norm_tracking=tracking)
    _, final, _, _ = reference(data, cell, 0)
    assert res.status == "done" and math.isfinite(res.final["train_loss"])
    assert res.final["dist_w0"] <= 1e-4 * (1 + 1e-5)
    assert res.final["train_loss"] == pytest.approx(final, rel=1e-3)


def test_a_tiny_radius_cell_leaves_its_group_neighbours_untouched():
    # its folds are partial: a neighbour trains exactly as it does in a group without that cell
    data = regression(n=120, d=40, k=1)
    tiny = spec("mli_paired_pgd", width=10, batch_size=None, epochs=60, loss="mse", lr_w=2.0, lr_v=0.5, eps=1e-4)
    normal = spec("constraint_only", width=6, batch_size=None, epochs=60, loss="mse", eps=0.5)
    # the same cell with a radius it never reaches: the same group layout, but no folds
    other = spec("mli_paired_pgd", width=10, batch_size=None, epochs=60, loss="mse", lr_w=2.0, lr_v=0.5, eps=1e4)
    with_tiny = train_group(data, [tiny, normal], order_seed=0)
    without = train_group(data, [other, normal], order_seed=0)
    assert with_tiny[1].curves["train_loss"] == without[1].curves["train_loss"]
    assert with_tiny[1].final == without[1].final


# ------------------------------------------------------------------------------------------
# The fold schedule of a CUDA device (no host read of s inside an epoch), forced on the CPU:
# the same Python path, only the GEMM kernels differ.
# ------------------------------------------------------------------------------------------
@pytest.fixture
def gpu_cadence(monkeypatch):
    from bench_suite.train.engine import state as state_module

    monkeypatch.setattr(state_module, "FOLD_CHECK_STEPS", {})


@pytest.mark.parametrize("eps", [1e-4, 1e-5])
def test_gpu_cadence_keeps_a_tight_radius_finite_on_the_synthetic_ablation(gpu_cadence, eps):
    # issue 13, 1.1: at the synthetic ablation's defaults with an absolute eps <= 1e-4, U = (W - W0)/s
    # overflowed float32 between two folds 16 steps apart and the constrained cells "diverged"
    from bench_suite.tasks import TASKS

    task = TASKS.get("synthetic_ablation")
    data = task().load(dict(task.options), data_seed=1)
    cfg = TrainConfig(**{**task.train_defaults, "eps": eps, "epochs": 40, "eval_every": 20})
    fused = [m for m in METHODS.names() if METHODS.get(m).trainer == "fused"]  # the engine's methods
    cells = [CellSpec(METHODS.get(m), 20, "tanh", cfg, 5) for m in fused]
    for cell, res in zip(cells, train_group(data, cells, order_seed=3)):
        assert res.status == "done", (cell.method.name, res.reason)
        if cell.method.constrained:
            assert 0.9 < res.final["train_loss"] < 1.2 and res.final["dist_w0"] <= eps * (1 + 1e-5)
            assert res.timing["small_folds"] > 0 and res.timing["refolded_stretches"] == 1


@pytest.mark.parametrize("tracking", ["lowrank", "exact"])
def test_gpu_cadence_small_batches_at_a_tight_radius_equal_the_reference(gpu_cadence, tracking):
    # issue 13, 1.1: batches of 8 with eps = 1e-3 and lr 0.5 reached NaN within 6-12 steps
    data = regression(n=200, d=60, k=1, dtype=torch.float32)
    cells = [spec(meth, width=10, batch_size=8, epochs=3, loss="mse", lr_w=0.5, lr_v=0.5, eps=1e-3, eval_every=3)
             for meth in ("mli_paired_pgd", "constraint_only")]
    for cell, res in zip(cells, train_group(data, cells, order_seed=0, norm_tracking=tracking)):
        running, final, _, _ = reference(data, cell, 0)
        assert res.status == "done", res.reason
        torch.testing.assert_close(res.curves["train_loss"], running, rtol=2e-3, atol=1e-6)
        assert res.final["dist_w0"] <= 1e-3 * (1 + 1e-5)


@pytest.mark.parametrize("tracking", ["lowrank", "exact"])
@pytest.mark.parametrize(("eps", "cadence", "rerun"), [(1e-4, "1", True), (0.05, "4", True), (0.3, "16", False),
                                                      (1.0, "none", False)])
def test_gpu_cadence_equals_the_reference_in_float64(gpu_cadence, tracking, eps, cadence, rerun):
    # each fold cadence the device-side decision picks (none, 16, 4, 1; a re-run stretch at the
    # tightest radius), with and without momentum, beside an unconstrained cell: exact
    data = classification()
    for mom in (0.0, 0.9):
        cells = [spec("mli_paired_pgd", batch_size=4, epochs=6, eps=eps, momentum=mom, lr_w=0.3 - 0.25 * mom),
                 spec("sgd", 6, "gelu", batch_size=4, epochs=6, momentum=mom / 2, lr_w=0.05)]
        res = assert_matches_reference(data, cells, norm_tracking=tracking)
        assert cadence in res[0].timing["fold_cadence_segments"]
        assert (res[0].timing["refolded_stretches"] > 0) is rerun  # the first stretch ran at no cadence


def test_gpu_cadence_a_float32_norm_overflow_re_runs_the_stretch(gpu_cadence, monkeypatch):
    # A CUDA step takes ||U|| per row from one float32 read (no float64 copy of U) and cannot
    # look at it: here s stays above FOLD_DANGER but ||U|| = ||W - W0||/s passes 1.8e19, so the
    # float32 norm overflows; the cell's s becomes 0 and the stretch is re-run at cadence 1,
    # which is the CPU's fold schedule: the same numbers as the CPU's host-checked run
    from bench_suite.train.engine.step import _FusedEngine

    data = classification(n=48, d=40, k=5, dtype=torch.float32)
    cells = [spec("mli_paired_pgd", 8, "relu", batch_size=8, epochs=1, eval_every=1, eps=30.0, momentum=0.9,
                  lr_w=3e4, lr_v=0.01)]
    (device_side,) = train_group(data, cells, order_seed=0)
    assert device_side.status == "done" and device_side.timing["refolded_stretches"] == 1
    # control: the same run with an overflowed norm taken again in float64 (as the CPU does) never
    # leaves s below FOLD_DANGER, so the re-run above came from the float32 norm
    row_sq_norms = _FusedEngine.row_sq_norms
    with monkeypatch.context() as m:
        m.setattr(_FusedEngine, "row_sq_norms", lambda self, a, may_sync: row_sq_norms(self, a, may_sync=True))
        (checked,) = train_group(data, cells, order_seed=0)
    assert checked.timing["refolded_stretches"] == 0
    monkeypatch.undo()  # the CPU's own path: s read on the host after every step
    (host,) = train_group(data, cells, order_seed=0)
    assert host.curves["train_loss"] == device_side.curves["train_loss"] and host.final == device_side.final
