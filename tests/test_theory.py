"""bench_suite.theory: the Jacobian at init against autograd and the rank law, the KKT residual,
the linearized loss floor, the log-log slope and the tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from bench_suite import theory
from bench_suite.model import effective_output_weights, hidden_features, init_weights


def _net(n, m, d, k=1, *, init="mirrored_lecun", output="paired", seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    weights = init_weights(m, d, k, init, output, g)
    return x, weights.w.double(), weights.v.double()


def _autograd_jacobian(x, w, v_eff, activation):
    """Reference: d vec(f(X)) / d vec(W) by torch.autograd.functional.jacobian, rows i*K + k."""
    def f(w_):
        return hidden_features(x @ w_.T, activation, "free") @ v_eff  # (n, K)

    jac = torch.autograd.functional.jacobian(f, w)  # (n, K, m, d)
    n, k = jac.shape[:2]
    return jac.reshape(n * k, -1)


# ------------------------------------------------------------------------------------------
# The Jacobian
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["tanh", "softplus", "relu", "gelu"])
@pytest.mark.parametrize("k", [1, 3])
def test_closed_form_jacobian_matches_autograd(activation, k):
    x, w, v = _net(7, 6, 4, k, init="lecun", output="free", seed=k)
    jac = theory.hidden_jacobian(x, w, v, activation)
    assert jac.shape == (7 * k, 6 * 4) and jac.dtype == torch.float64
    torch.testing.assert_close(jac, _autograd_jacobian(x, w, v, activation), rtol=1e-10, atol=1e-12)


def test_jacobian_of_a_paired_net_uses_the_effective_output_weights():
    x, w, v = _net(5, 8, 3, 2)  # MLI, paired: v is (m/2, K)
    v_eff = effective_output_weights(v, "paired")
    jac = theory.hidden_jacobian(x, w, v_eff, "tanh")

    def f(w_):
        return hidden_features(x @ w_.T, "tanh", "paired") @ v

    ref = torch.autograd.functional.jacobian(f, w).reshape(5 * 2, -1)
    torch.testing.assert_close(jac, ref, rtol=1e-10, atol=1e-12)
    # MLI: unit j + m/2's columns are the negatives of unit j's
    torch.testing.assert_close(jac[:, 4 * 3 :], -jac[:, : 4 * 3])


def test_a_one_dimensional_v_means_one_output():
    x, w, v = _net(6, 4, 3, 1, init="lecun", output="free")
    torch.testing.assert_close(theory.hidden_jacobian(x, w, v[:, 0], "tanh"), theory.hidden_jacobian(x, w, v, "tanh"))


def test_mismatched_shapes_say_what_was_expected():
    x, w, v = _net(6, 4, 3, 1, init="lecun", output="free")
    with pytest.raises(ValueError, match=r"w must be \(m, d\) = \(4, 3\)"):
        theory.hidden_jacobian(x, w[:, :2], v, "tanh")


def test_jacobian_stats_rank_convention_is_numpys():
    x, w, v = _net(12, 6, 3, init="lecun", output="free")
    out = theory.jacobian_stats(x, w, v, "tanh", init="lecun")
    jac = theory.hidden_jacobian(x, w, v, "tanh").numpy()
    sv = np.linalg.svd(jac, compute_uv=False)
    assert out["status"] == "done"
    assert out["jacobian_rank"] == np.linalg.matrix_rank(jac) == 12
    assert out["jacobian_rank_tol"] == pytest.approx(sv[0] * max(jac.shape) * np.finfo(np.float64).eps)
    assert out["jacobian_sigma_max"] == pytest.approx(sv[0])
    assert out["jacobian_sigma_min"] == pytest.approx(sv[11])  # the smallest nonzero one, at the rank
    assert out["jacobian_sigma_below"] is None  # full row rank: nothing counted as zero
    assert out["jacobian_rank_predicted"] == 12 and out["jacobian_rank_deficit"] == 0
    assert (out["jacobian_rows"], out["jacobian_cols"], out["jacobian_entries"]) == (12, 18, 216)


def test_sigma_min_is_the_smallest_nonzero_singular_value_under_mli():
    x, w, v = _net(40, 6, 4)  # rank md/2 = 12 < n: the other 12 singular values are ~1e-16
    out = theory.jacobian_stats(x, w, effective_output_weights(v, "paired"), "tanh", init="mirrored_lecun")
    sv = torch.linalg.svdvals(theory.hidden_jacobian(x, w, effective_output_weights(v, "paired"), "tanh"))
    assert out["jacobian_rank"] == 12 == out["jacobian_rank_predicted"]
    assert out["jacobian_sigma_min"] == pytest.approx(float(sv[11])) and out["jacobian_sigma_min"] > 1e-6
    assert out["jacobian_sigma_below"] == pytest.approx(float(sv[12])) and out["jacobian_sigma_below"] < 1e-12


def test_a_cell_too_large_is_skipped_with_its_size_never_computed(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("no Jacobian may be formed above the bound")

    monkeypatch.setattr(theory, "hidden_jacobian", boom)
    x, w, v = _net(10, 4, 3, init="lecun", output="free")
    out = theory.jacobian_stats(x, w, v, "tanh", init="lecun", max_entries=100)
    assert out["status"] == "skipped" and out["jacobian_entries"] == 120 and out["max_entries"] == 100
    assert "120 entries" in out["reason"] and "100" in out["reason"] and "jacobian_rank" not in out
    assert out["jacobian_rank_predicted"] == 10
    assert theory.jacobian_flops(10, 4, 3, max_entries=100) == 0.0


def test_the_default_bound_admits_the_synthetic_ablation_and_not_cifar10():
    assert theory.jacobian_entries(1000, 20, 100) <= theory.MAX_JACOBIAN_ENTRIES
    assert theory.jacobian_entries(5000, 256, 3072, 10) > theory.MAX_JACOBIAN_ENTRIES


def test_svd_flops_follow_golub_van_loan():
    assert theory.svd_flops(200, 400) == theory.svd_flops(400, 200) == 4 * 400 * 200**2 - 4 * 200**3 / 3
    assert theory.jacobian_flops(200, 40, 20) == 2 * 200 * 40 * 20 * 2 + theory.svd_flops(200, 800)


def test_predicted_rank():
    assert theory.predicted_rank(200, 20, 20, init="mirrored_lecun") == 200  # m = 2n/d: exactly n
    assert theory.predicted_rank(200, 18, 20, init="mirrored_lecun") == 180
    assert theory.predicted_rank(200, 10, 20, init="lecun") == 200
    assert theory.predicted_rank(200, 8, 20, init="lecun") == 160
    assert theory.predicted_rank(10, 8, 20, 3, init="mirrored_lecun") == 30  # stacked: nK
    assert theory.predicted_rank(10, 2, 20, 3, init="mirrored_lecun") == 10  # K > m/2: n times m/2
    with pytest.raises(ValueError, match="unknown init"):
        theory.predicted_rank(1, 2, 3, init="xavier")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 40), half=st.integers(1, 12), d=st.integers(2, 8), k=st.integers(1, 3),
       activation=st.sampled_from(["tanh", "softplus"]), init=st.sampled_from(["mirrored_lecun", "lecun"]),
       seed=st.integers(0, 2**31 - 1))
def test_rank_law_smooth_activations(n, half, d, k, activation, init, seed):
    """Gaussian data, (mirrored) LeCun init: rank J = min(nK, md/2) under MLI, min(nK, md) under
    LeCun, for d >= 2 (at d = 1 the float64 rank can fall short: docs/theory.md)."""
    m = 2 * half
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    weights = init_weights(m, d, k, init, "free", g)
    out = theory.jacobian_stats(x, weights.w, weights.v, activation, init=init)
    assert out["jacobian_rank"] == out["jacobian_rank_predicted"], out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 40), half=st.integers(1, 12), d=st.integers(1, 8),
       init=st.sampled_from(["mirrored_lecun", "lecun"]), seed=st.integers(0, 2**31 - 1))
def test_relu_rank_never_exceeds_the_law_or_the_pattern_bound(n, half, d, init, seed):
    m = 2 * half
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    weights = init_weights(m, d, 1, init, "free", g)
    out = theory.jacobian_stats(x, weights.w, weights.v, "relu", init=init)
    assert out["jacobian_rank"] <= min(out["jacobian_rank_predicted"], out["relu_rank_bound"])
    assert out["jacobian_rank"] <= n - out["relu_dead_samples"]


def test_relu_in_one_dimension_has_rank_at_most_two():
    """d = 1: a unit is active on x > 0 or on x < 0 only, so there are two patterns: the law's
    min(n, m) is far off (a structural relu failure, not a tolerance one)."""
    x, w, v = _net(20, 16, 1, init="lecun", output="free", seed=3)
    out = theory.jacobian_stats(x, w, v, "relu", init="lecun")
    assert out["jacobian_rank_predicted"] == 16 and out["jacobian_rank"] <= 2 and out["relu_rank_bound"] <= 2


def test_relu_dead_sample_costs_one_rank():
    x, w, v = _net(30, 40, 4, init="lecun", output="free", seed=5)
    w_dead = torch.where((w @ x[0]).unsqueeze(1) > 0, -w, w)  # flip the units active at x_0: all off there
    assert theory.relu_dead_samples(x, w_dead) >= 1
    out = theory.jacobian_stats(x, w_dead, v, "relu", init="lecun")
    assert out["jacobian_rank_predicted"] == 30
    assert out["jacobian_rank"] <= 30 - out["relu_dead_samples"] and out["jacobian_rank_deficit"] >= 1
    assert out["jacobian_sigma_below"] < 1e-12  # a clean zero, not a tolerance call


def test_activation_derivative_falls_back_to_autograd_for_other_activations():
    z = torch.linspace(-3, 3, 13, dtype=torch.float64)
    gelu = theory.activation_derivative("gelu", z)
    zz = z.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(torch.nn.functional.gelu(zz).sum(), zz)
    torch.testing.assert_close(gelu, ref)
    torch.testing.assert_close(theory.activation_derivative("tanh", z), 1 - torch.tanh(z) ** 2)
    with pytest.raises(ValueError, match="unknown activation"):
        theory.activation_derivative("swish", z)


# ------------------------------------------------------------------------------------------
# The KKT residual
# ------------------------------------------------------------------------------------------
def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_kkt_residual_is_the_gradient_norm_in_the_interior():
    g, delta = _rand(5, 3), 0.1 * _rand(5, 3, seed=1)
    out = theory.kkt_residual(g, delta, radius=10.0)
    assert not out["active"] and out["radial"] is None
    assert out["residual_w"] == pytest.approx(float(g.norm()))
    assert theory.kkt_residual(torch.zeros(5, 3), delta, radius=10.0)["residual_w"] == 0.0  # interior stationary
    assert theory.kkt_residual(g, delta, radius=None)["residual_w"] == pytest.approx(float(g.norm()))
    assert not theory.kkt_residual(g, delta, radius=math.inf)["active"]


def test_kkt_residual_on_the_boundary_is_the_projected_gradient_and_ignores_an_inward_radial_part():
    delta = _rand(4, 6, seed=2)
    radius = float(delta.norm())
    u = delta / radius
    tangent = _rand(4, 6, seed=3)
    tangent = tangent - (tangent * u).sum() * u
    for inward in (0.0, 0.5, 7.0):  # grad = tangent - inward * u: points into the ball
        out = theory.kkt_residual(tangent - inward * u, delta, radius)
        assert out["active"] and out["radial"] == pytest.approx(-inward, abs=1e-12)
        assert out["residual_w"] == pytest.approx(float(tangent.norm()), rel=1e-12)
    # a KKT point on the boundary: the gradient is a negative multiple of delta
    assert theory.kkt_residual(-3.0 * delta, delta, radius)["residual_w"] == pytest.approx(0.0, abs=1e-12)


def test_kkt_residual_counts_an_outward_gradient_in_full():
    delta = _rand(4, 6, seed=4)
    radius = float(delta.norm())
    g = 2.0 * delta + 0.1 * _rand(4, 6, seed=5)  # descent would move inward: not a KKT point
    out = theory.kkt_residual(g, delta, radius)
    assert out["active"] and out["radial"] > 0 and out["residual_w"] == pytest.approx(float(g.norm()))


def test_kkt_residual_equals_the_projected_gradient_map_for_a_small_step():
    """min over lambda >= 0 of ||g + lambda u|| is lim_{t->0} ||W - P(W - t g)|| / t."""
    from bench_suite.model.projection import project_frobenius_ball  # the reference projection

    delta = _rand(3, 5, seed=6)
    radius = float(delta.norm())
    w0 = _rand(3, 5, seed=7)
    for seed in range(5):
        g = _rand(3, 5, seed=10 + seed)
        t = 1e-7
        moved = project_frobenius_ball(w0 + delta - t * g, w0, radius)
        mapped = float((w0 + delta - moved).norm()) / t
        assert theory.kkt_residual(g, delta, radius)["residual_w"] == pytest.approx(mapped, rel=1e-5)


def test_kkt_boundary_tolerance():
    delta = _rand(2, 2, seed=8)
    dist = float(delta.norm())
    assert theory.kkt_residual(delta, delta, dist * (1 + 5e-4))["active"]  # within 0.1% of the radius
    assert not theory.kkt_residual(delta, delta, dist * 1.01)["active"]
    assert not theory.kkt_residual(delta, torch.zeros(2, 2), 1.0)["active"]


def test_kkt_residual_adds_the_output_layer_block():
    delta = _rand(3, 3, seed=9)
    out = theory.kkt_residual(torch.zeros(3, 3), delta, 100.0, grad_v=torch.full((2, 1), 3.0))
    assert out["residual_w"] == 0.0 and out["residual"] == pytest.approx(math.sqrt(18.0))


@pytest.mark.parametrize("loss,classification", [("mse", False), ("mse", True), ("ce", True)])
@pytest.mark.parametrize("output", ["paired", "free"])
def test_loss_and_gradients_are_the_engines(loss, classification, output):
    """The engine's loss (config.TrainConfig): mse = mean over samples of the squared error summed
    over K (one-hot for labels), ce = mean cross-entropy; gradients against a finite difference."""
    init = "mirrored_lecun" if output == "paired" else "lecun"
    x, w, v = _net(9, 6, 4, 3, init=init, output=output, seed=11)
    w = w + 0.05 * _rand(6, 4, seed=12)  # off the MLI point, so the paired features are nonzero
    g = torch.Generator().manual_seed(4)
    y = (torch.randint(0, 3, (9,), generator=g) if classification
         else torch.randn(9, 3, generator=g, dtype=torch.float64))
    value, gw, gv = theory.loss_and_gradients(x, y, w, v, activation="tanh", output=output, loss=loss)
    out = hidden_features(x @ w.T, "tanh", output) @ v
    if loss == "ce":
        expect = float(torch.nn.functional.cross_entropy(out, y))
    else:
        target = torch.nn.functional.one_hot(y, 3).double() if classification else y
        expect = float(((out - target) ** 2).sum(1).mean())
    assert value == pytest.approx(expect, rel=1e-12)
    step = 1e-6 * _rand(*w.shape, seed=13)
    plus = theory.loss_and_gradients(x, y, w + step, v, activation="tanh", output=output, loss=loss)[0]
    minus = theory.loss_and_gradients(x, y, w - step, v, activation="tanh", output=output, loss=loss)[0]
    assert (plus - minus) / 2 == pytest.approx(float((gw * step).sum()), rel=1e-5)
    assert gv.shape == v.shape


def test_ce_needs_labels():
    x, w, v = _net(4, 4, 2, 2, init="lecun", output="free")
    with pytest.raises(ValueError, match="needs integer labels"):
        theory.loss_and_gradients(x, torch.zeros(4, 2), w, v, activation="tanh", output="free", loss="ce")


def test_kkt_stats_normalizes_by_the_gradient_at_init():
    x, w0, v0 = _net(30, 8, 5, seed=14)
    y = _rand(30, 1, seed=15)
    same = theory.kkt_stats(x, y, w=w0, v=v0, w0=w0, v0=v0, activation="tanh", output="paired", loss="mse",
                            radius=1.0)
    # at init: interior (W = W0), and the residual is the gradient itself: 1 by construction
    assert not same["kkt_active"] and same["kkt_residual"] == pytest.approx(1.0)
    assert same["kkt_residual_w"] == pytest.approx(1.0)
    # MLI + paired: dl/dV = 0 at init (both halves' features are equal), so both norms agree
    assert same["grad_norm_init"] == pytest.approx(same["grad_norm_init_w"])
    assert same["loss_init"] == same["loss_final"] == pytest.approx(float((y**2).mean()))


def _pgd(x, y, w0, v0, radius, lr_w, lr_v, steps):
    """Plain projected GD in float64 (the reference loop, not the engine)."""
    w, v = w0.clone(), v0.clone()
    for _ in range(steps):
        _, gw, gv = theory.loss_and_gradients(x, y, w, v, activation="tanh", output="paired", loss="mse")
        w, v = w - lr_w * gw, v - lr_v * gv
        dist = float((w - w0).norm())
        if dist > radius:
            w = w0 + (w - w0) * (radius / dist)
    return w, v


def test_kkt_stats_on_the_boundary_after_projected_gd_with_v_fixed():
    """V fixed (lr_v = 0), too few units to fit (m d/2 = 12 < n = 30): projected GD on W presses
    against the ball and converges to a KKT point of the W subproblem, so the W residual vanishes
    while the (W, V) one is exactly grad_V's share (V was never trained)."""
    x, w0, v0 = _net(30, 8, 3, seed=16)
    y = _rand(30, 1, seed=17)
    w, v = _pgd(x, y, w0, v0, 0.3, 0.3, 0.0, 3000)
    out = theory.kkt_stats(x, y, w=w, v=v, w0=w0, v0=v0, activation="tanh", output="paired", loss="mse", radius=0.3)
    assert out["kkt_active"] and out["kkt_radial_frac"] == pytest.approx(-1.0, abs=1e-9)
    assert out["kkt_residual_w"] < 1e-9
    _, _, gv = theory.loss_and_gradients(x, y, w, v, activation="tanh", output="paired", loss="mse")
    assert out["kkt_residual"] == pytest.approx(float(gv.norm()) / out["grad_norm_init"], rel=1e-6)
    assert out["kkt_residual"] > 0.01


def test_kkt_stats_at_an_interior_minimum_after_projected_gd():
    """Enough units (m d/2 = 12 >= n = 6) and a loose ball: projected GD memorizes inside it, an
    interior stationary point, where both residuals vanish."""
    x, w0, v0 = _net(6, 8, 3, seed=16)
    y = _rand(6, 1, seed=17)
    w, v = _pgd(x, y, w0, v0, 10.0, 0.05, 0.05, 4000)
    out = theory.kkt_stats(x, y, w=w, v=v, w0=w0, v0=v0, activation="tanh", output="paired", loss="mse", radius=10.0)
    assert not out["kkt_active"] and out["kkt_residual"] < 1e-6 and out["loss_final"] < 1e-12


# ------------------------------------------------------------------------------------------
# The linearized loss floor
# ------------------------------------------------------------------------------------------
def test_linearized_floor_is_the_rank_deficit_fraction_of_random_targets():
    """MLI, paired: the floor is the least-squares residual of y on col(J_W) (J_V = 0 at init),
    rank md/2; for random targets its expectation is mean(y^2) (1 - md/(2n))."""
    n, d = 60, 4
    floors = []
    for seed in range(20):
        x, w0, v0 = _net(n, 10, d, seed=seed)
        y = _rand(n, 1, seed=100 + seed)
        out = theory.linearized_loss_floor(x, y, w0, v0, activation="tanh", output="paired")
        assert out["rank"] == 20
        jac = theory.hidden_jacobian(x, w0, effective_output_weights(v0, "paired"), "tanh")
        ls = torch.linalg.lstsq(jac, y, driver="gelsd").solution
        assert out["floor"] == pytest.approx(float(((jac @ ls - y) ** 2).sum()) / n, rel=1e-6)
        floors.append(out["floor"] / float((y**2).mean()))
    assert np.mean(floors) == pytest.approx(1 - 20 / 60, abs=0.05)


def test_linearized_floor_is_zero_at_full_rank_and_counts_the_output_layer_for_lecun():
    x, w0, v0 = _net(30, 20, 4, seed=1)  # MLI: rank md/2 = 40 >= n
    y = _rand(30, 1, seed=2)
    assert theory.linearized_loss_floor(x, y, w0, v0, activation="tanh", output="paired")["floor"] < 1e-20
    x, w0, v0 = _net(30, 6, 4, init="lecun", output="free", seed=3)  # m(d + 1) = 30 = n
    out = theory.linearized_loss_floor(x, y, w0, v0, activation="tanh", output="free")
    assert out["rank"] == 30 and out["floor"] < 1e-20


# ------------------------------------------------------------------------------------------
# The log-log slope
# ------------------------------------------------------------------------------------------
def test_loglog_slope_recovers_a_power_law_and_its_interval_is_scipys():
    rng = np.random.default_rng(0)
    eps = np.repeat([0.01, 0.03, 0.1, 0.3, 1.0], 3)
    loss = 0.5 * eps**2 * np.exp(rng.normal(0, 0.1, eps.size))
    out = theory.loglog_slope(eps, loss)
    fit = stats.linregress(np.log(eps), np.log(loss))
    half = stats.t.ppf(0.975, eps.size - 2) * fit.stderr
    assert out["slope"] == pytest.approx(fit.slope) and out["stderr"] == pytest.approx(fit.stderr)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((fit.slope - half, fit.slope + half))
    assert abs(out["slope"] - 2) < 0.1 and out["ci_low"] < out["slope"] < out["ci_high"]
    assert out["n"] == 15 and out["dropped"] == 0
    assert out["intercept"] == pytest.approx(math.log(0.5), abs=0.1)


def test_loglog_slope_drops_points_it_cannot_log_and_needs_two_eps():
    out = theory.loglog_slope([0.1, 1.0, 10.0, 1.0], [0.0, 1.0, 100.0, float("nan")])
    assert out["n"] == 2 and out["dropped"] == 2 and out["slope"] == pytest.approx(2.0)
    assert out["ci_low"] is None  # two points: no residual degrees of freedom
    none = theory.loglog_slope([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    assert none["slope"] is None and none["n"] == 3


# ------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------
def test_rank_table():
    frame = pd.DataFrame([
        {"init": "mirrored_lecun", "activation": "tanh", "width": 20, "n": 200, "d": 20, "jacobian_rank": 200,
         "jacobian_rank_predicted": 200, "jacobian_sigma_min": 1e-3, "jacobian_sigma_max": 5.0},
        {"init": "mirrored_lecun", "activation": "tanh", "width": 20, "n": 200, "d": 20, "jacobian_rank": 199,
         "jacobian_rank_predicted": 200, "jacobian_sigma_min": 2e-3, "jacobian_sigma_max": 6.0},
        {"init": "lecun", "activation": "tanh", "width": 800, "n": 200, "d": 20, "jacobian_rank": np.nan,
         "jacobian_rank_predicted": 200, "jacobian_sigma_min": np.nan, "jacobian_sigma_max": np.nan},
    ])
    table = theory.rank_table(frame)
    assert len(table) == 1  # the skipped cell is left out
    row = table.iloc[0]
    assert row["m·d/(2n)"] == 1.0 and row["rank"] == "199..200" and row["law holds"] == "1/2"
    assert row["predicted rank"] == 200


def test_threshold_table_counts_memorized_repetitions_and_divergences():
    rows = []
    for width, losses in ((10, [0.5, 0.52]), (40, [1e-8, 2e-8])):
        for rep, value in enumerate(losses):
            rows.append({"method": "mli_paired_pgd", "activation": "tanh", "width": width, "n": 200, "d": 20,
                         "train_loss": value, "status": "done", "repetition": rep})
    rows.append({"method": "mli_paired_pgd", "activation": "tanh", "width": 40, "n": 200, "d": 20,
                 "train_loss": float("nan"), "status": "diverged", "repetition": 2})
    table = theory.threshold_table(pd.DataFrame(rows), memorized_below=0.01)
    assert list(table["m·d/(2n)"]) == [0.5, 2.0]
    assert table.iloc[0]["mli_paired_pgd < 0.01"] == "0/2" and table.iloc[1]["mli_paired_pgd < 0.01"] == "2/3"
    assert "(1 div)" in table.iloc[1]["mli_paired_pgd"]


def test_eps_table_fits_the_slope_per_method_and_width():
    eps = [0.01, 0.1, 1.0] * 2
    frame = pd.DataFrame({"method": "mli_paired_pgd", "activation": "tanh", "width": 40, "eps": eps,
                          "train_loss": [3 * e**2 for e in eps], "kkt_residual": 1e-4, "kkt_active": True})
    per_eps, slopes = theory.eps_table(frame)
    assert len(per_eps) == 3 and per_eps.iloc[0]["active"] == "2/2"
    assert float(slopes.iloc[0]["slope"]) == pytest.approx(2.0) and slopes.iloc[0]["points"] == 6


def test_the_former_name_of_the_record_section_still_works_with_a_warning():
    import bench_suite.train as train
    from bench_suite.methods import METHODS

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, 1, generator=g, dtype=torch.float64)
    method = METHODS.get("mli_paired_pgd")
    w0 = torch.randn(4, 3, generator=g)
    extra = {"w0": w0, "v0": torch.zeros(2, 1), "w": w0, "v": torch.zeros(2, 1)}
    kwargs = dict(width=4, outputs=1, activation="tanh", loss="mse", extra=extra, radius=0.1, finished=True)
    with pytest.warns(DeprecationWarning, match="theory.record_section"):
        old = train.theory_section(method, x, y, init=method.init, output=method.output, **kwargs)
    assert old == theory.record_section(x, y, method=method, **kwargs)


def test_the_parts_at_init_are_computed_once_per_data_and_initial_weights_and_equal_the_direct_ones():
    """The Jacobian at init and the linearized floor are shared by the cells of a sweep (same data,
    same W0/V0): computed once, the same numbers as computing them afresh, never aliased."""
    from bench_suite.methods import METHODS
    from bench_suite.theory import section as sec

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 4, generator=g), torch.randn(12, 1, generator=g)
    method = METHODS.get("mli_paired_pgd")
    w0, v0 = torch.randn(6, 4, generator=g), torch.randn(3, 1, generator=g)
    calls = []

    def section(w_end, radius, w_init=w0):
        extra = {"w0": w_init, "v0": v0, "w": w_end, "v": v0}
        return theory.record_section(x, y, method=method, width=6, outputs=1, activation="tanh", loss="mse",
                                     extra=extra, radius=radius, finished=True)

    sec._AT_INIT.clear()
    real = sec.jacobian_stats
    try:
        sec.jacobian_stats = lambda *a, **k: calls.append(1) or real(*a, **k)
        first = section(w0 + 0.01, 0.1)
        first["jacobian"]["jacobian_rank"] = -1  # a caller's edit does not reach the cache
        second = section(w0 - 0.02, 0.5)  # another lr / radius: the same parts at init
        other = section(w0, 0.1, w_init=w0 * 2)  # other initial weights: computed again
    finally:
        sec.jacobian_stats = real
    assert len(calls) == 2
    sec._AT_INIT.clear()
    fresh = section(w0 - 0.02, 0.5)
    assert second["jacobian"] == fresh["jacobian"] and second["floor"] == fresh["floor"]
    assert second["kkt"] == fresh["kkt"] and second["kkt"] != section(w0 + 0.01, 0.1)["kkt"]
    assert other["jacobian"] != second["jacobian"]
