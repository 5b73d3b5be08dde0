"""Theorem 2 as a bound (issue 21, ask 4): the float64 KKT solver (bench_suite/theory/kkt_solver.py),
the study of an instance (kkt_study.py) and the verdict rule (kkt_bound.py); the harness path
(the kkt_bound task, its record part, the check kind) is in tests/test_theory_checks.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from bench_suite import theory
from bench_suite.theory import kkt_bound, kkt_study
from bench_suite.theory import kkt_solver as ks


def _random_point(n=12, d=3, m=6, eps=0.05, seed=0, activation="tanh"):
    x, y, w0, v0 = kkt_study.instance(n, d, m, seed)
    prob = ks.Problem(x, y, w0, eps, activation)
    rng = np.random.default_rng(seed + 1)
    return prob, 0.3 * rng.standard_normal((m, d)), rng.standard_normal(m // 2), x, y, w0, v0


# ------------------------------------------------------------------------------------------
# The maths: features, loss, gradients
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ks.ACTIVATIONS)
def test_gradients_match_central_differences(activation):
    prob, a, b, *_ = _random_point(activation=activation)
    ev = prob.evaluate(a, b)
    rng = np.random.default_rng(7)
    da, db = rng.standard_normal(a.shape), rng.standard_normal(b.shape)
    h = 1e-6
    fd = (prob.evaluate(a + h * da, b + h * db).loss - prob.evaluate(a - h * da, b - h * db).loss) / (2 * h)
    assert np.sum(ev.grad_a * da) + ev.grad_b @ db == pytest.approx(fd, rel=1e-7)


@pytest.mark.parametrize("activation", ks.ACTIVATIONS)
def test_jacobian_matches_the_gradient(activation):
    prob, a, b, *_ = _random_point(activation=activation)
    ev = prob.evaluate(a, b)
    grad = -prob.jacobian(ev).T @ ev.r  # d(1/2 ||y - f||^2) = -J^T r
    assert np.allclose(grad, np.concatenate([ev.grad_a.ravel(), ev.grad_b]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ks.ACTIVATIONS)
def test_paired_features_equal_the_plain_difference_and_its_tight_limit(activation):
    prob, a, _, x, _, w0, _ = _random_point(activation=activation)
    g, _, _ = prob.features(a)
    w = w0 + prob.eps * a
    h = prob.h
    plain = (prob.sig(x @ w[:h].T) - prob.sig(x @ w[h:].T)) / prob.eps
    assert np.allclose(g, plain, rtol=1e-9, atol=1e-12)
    # eps -> 0: g -> sigma'(w0_j . x) (a_j - a_{j+h}) . x, which the plain difference loses to rounding
    tiny = ks.Problem(x, prob.y, w0, 1e-12, activation)
    limit = prob.dsig(x @ w0[:h].T) * (x @ (a[:h] - a[h:]).T)
    assert np.allclose(tiny.features(a)[0], limit, rtol=1e-9, atol=1e-13)


def test_features_do_not_overflow_far_outside_the_ball():
    prob, a, *_ = _random_point()
    for activation in ks.ACTIVATIONS:
        p = ks.Problem(prob.x, prob.y, prob.w0, prob.eps, activation)
        g, _, _ = p.features(1e6 * a)
        assert np.isfinite(g).all()


def test_loss_and_gradients_equal_bench_suite_in_original_units():
    """The same problem as bench_suite's: its mse is (2/n) x the paper's 1/2 sum of squares."""
    import torch

    prob, a, b, x, y, _, _ = _random_point()
    w, v = prob.to_original(a, b)
    loss, gw, gv = theory.loss_and_gradients(torch.tensor(x), torch.tensor(y).unsqueeze(1), torch.tensor(w),
                                             torch.tensor(v).unsqueeze(1), activation="tanh", output="paired",
                                             loss="mse")
    ev = prob.evaluate(a, b)
    n = prob.n
    assert ev.loss == pytest.approx(n / 2 * loss, rel=1e-12)
    assert np.allclose(ev.grad_a / prob.eps, n / 2 * gw.numpy(), rtol=1e-10, atol=1e-12)
    assert np.allclose(prob.eps * ev.grad_b, n / 2 * gv.numpy().ravel(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------
# The KKT residual
# ------------------------------------------------------------------------------------------
def test_kkt_residual_takes_numpy_and_torch_alike():
    import torch

    rng = np.random.default_rng(3)
    delta = rng.standard_normal((4, 3))
    r = float(np.linalg.norm(delta))
    u = delta / r
    cases = [(rng.standard_normal((4, 3)), 2 * r),  # interior
             (rng.standard_normal((4, 3)) - 5 * u, r),  # boundary, gradient pointing in
             (rng.standard_normal((4, 3)) * 0.1 + 5 * u, r)]  # boundary, pointing out
    gv = rng.standard_normal((2, 1))
    for g, radius in cases:
        ours = theory.kkt_residual(g, delta, radius, grad_v=gv)
        theirs = theory.kkt_residual(torch.tensor(g), torch.tensor(delta), radius, grad_v=torch.tensor(gv))
        assert ours == theirs


def test_kkt_residual_on_a_convex_ball_problem_solved_by_hand():
    """min 1/2 ||z - c||^2 s.t. ||z|| <= 1, ||c|| > 1: z* = c / ||c||, lambda* = ||c|| - 1."""
    c = np.array([[3.0, -4.0], [1.0, 2.0]])
    zs = c / np.linalg.norm(c)
    out = theory.kkt_residual(zs - c, zs, 1.0)
    assert out["active"] and out["residual"] == pytest.approx(0.0, abs=1e-14)
    assert out["lam"] == pytest.approx(np.linalg.norm(c) - 1.0, rel=1e-14)
    # off the solution along the sphere: the tangent gradient is left
    zr = np.array([[1.0, 0.0], [0.0, 0.0]])
    assert theory.kkt_residual(zr - c, zr, 1.0)["residual"] > 1.0


# ------------------------------------------------------------------------------------------
# Known KKT points
# ------------------------------------------------------------------------------------------
def test_an_interior_global_minimizer_has_residual_zero_and_the_solver_reaches_the_floor():
    """Targets made by a net inside the ball: that point has loss 0 (at the float64 floor), so it
    is an interior KKT point; the solver from another start reaches the floor too."""
    n, d, m = 10, 4, 8  # m >= 2n/d = 5
    x, _, w0, _ = kkt_study.instance(n, d, m, 5)
    rng = np.random.default_rng(5)
    eps = 0.2
    a_star, b_star = 0.5 * kkt_study._unit(rng, (m, d)), rng.standard_normal(m // 2)
    teacher = ks.Problem(x, np.zeros(n), w0, eps)
    y = teacher.features(a_star)[0] @ b_star
    prob = ks.Problem(x, y, w0, eps)
    cert = ks.certify(prob, a_star)  # v = least squares, here b_star
    assert cert["loss"] <= cert["floor"] and cert["converged_by"] == "floor"
    assert not cert["active"] and cert["kkt_residual"] < 1e-10 * np.linalg.norm(y)
    w_start, _ = prob.to_original(kkt_study._unit(rng, (m, d)), np.zeros(m // 2))
    out = ks.solve(x, y, w0, None, eps, w_start)
    assert out["converged_by"] == "floor" and out["loss"] <= out["floor"]
    assert np.linalg.norm(out["w"] - w0) <= eps * (1 + 1e-12)


def _circle_slope(t: float, eps: float) -> float:
    """d/dt of tanh(1/2 + eps cos t) - tanh(1/2 - eps sin t), up to the factor eps."""
    return (math.cos(t) / math.cosh(0.5 - eps * math.sin(t)) ** 2
            - math.sin(t) / math.cosh(0.5 + eps * math.cos(t)) ** 2)


def test_the_solver_finds_a_boundary_kkt_point_solved_by_hand():
    """n = d = 1, m = 2, v fixed at 1, y = 10 (out of reach): maximize tanh(w1) - tanh(w2) on
    the circle |(w1, w2) - (1/2, 1/2)| = eps; with delta = eps (cos t, -sin t) the optimum is the
    root of eps (cos t sech^2(1/2 - eps sin t) - sin t sech^2(1/2 + eps cos t)) = 0."""
    x, y, w0, eps = np.array([[1.0]]), np.array([10.0]), np.array([[0.5], [0.5]]), 0.3

    def slope(t):
        return _circle_slope(t, eps)

    t = brentq(slope, 0.0, math.pi / 2, xtol=1e-15)
    w_hand = w0 + eps * np.array([[math.cos(t)], [-math.sin(t)]])
    out = ks.solve(x, y, w0, np.array([1.0]), eps, w0 + np.array([[0.05], [0.0]]), train_v=False)
    assert out["converged_by"] == "residual" and out["active"]
    assert np.allclose(out["w"], w_hand, atol=1e-8)
    f = math.tanh(w_hand[0, 0]) - math.tanh(w_hand[1, 0])
    assert out["loss"] == pytest.approx(0.5 * (10.0 - f) ** 2, rel=1e-12)
    assert out["lam"] > 0
    on_sphere = ks.solve(x, y, w0, np.array([1.0]), eps, w0 + np.array([[0.0], [0.3]]), train_v=False, sphere=True)
    assert on_sphere["converged_by"] == "residual" and np.allclose(on_sphere["w"], w_hand, atol=1e-8)
    assert on_sphere["sphere_stationary"] and on_sphere["sphere_radial_frac"] < 0


def test_a_sphere_stationary_point_with_an_outward_gradient_is_not_a_kkt_point():
    """Same net: the sphere's other stationary point (F = tanh(w1) - tanh(w2) minimal, the root
    of the same slope in (pi, 3 pi / 2)) has the largest loss, and there the loss gradient points
    out of the ball: stationary on the sphere, not a KKT point of the ball problem."""
    x, y, w0, eps = np.array([[1.0]]), np.array([10.0]), np.array([[0.5], [0.5]]), 0.3

    def slope(t):
        return _circle_slope(t, eps)

    t = brentq(slope, math.pi, 1.5 * math.pi, xtol=1e-15)
    prob = ks.Problem(x, y, w0, eps, v_fixed=np.array([1.0]))
    cert = ks.certify(prob, np.array([[math.cos(t)], [-math.sin(t)]]))
    assert cert["active"] and cert["sphere_residual_rel"] < 1e-12
    assert cert["radial_frac"] == pytest.approx(1.0) and cert["lam"] == 0.0
    assert not cert["converged"] and cert["kkt_residual_rel"] > 0.5


def test_mli_with_zero_output_weights_is_a_degenerate_kkt_point():
    """(W0, v = 0): grad_W = 0 (v = 0) and grad_v = -G^T r = 0 (G = 0 under MLI), so every KKT
    condition holds exactly at loss 1/2 ||y||^2 for any eps: the literal 'every KKT point' of
    the slides needs these (dead pairs) excluded."""
    x, y, w0, _ = kkt_study.instance(20, 4, 10, 2)
    prob = ks.Problem(x, y, w0, 0.01)
    cert = ks.certify(prob, np.zeros_like(w0))
    assert cert["kkt_residual"] == 0.0 and cert["converged"]
    assert cert["loss"] == pytest.approx(0.5 * y @ y, rel=1e-15) and cert["above_floor"]
    assert cert["dead_pairs"] == prob.h and cert["degenerate"]


def test_zero_output_weights_with_features_orthogonal_to_y_are_a_degenerate_kkt_point_off_the_mirror():
    """v = 0 and G(W)^T y = 0 at a W whose pairs are apart: grad_v = -G^T y = 0 and grad_W = 0
    (v = 0), so this is a KKT point at loss 1/2 ||y||^2 at any width (what ``ascent`` starts reach)."""
    x, y0, w0, _ = kkt_study.instance(12, 3, 2, 4)
    rng = np.random.default_rng(4)
    a = 0.7 * kkt_study._unit(rng, w0.shape)
    prob0 = ks.Problem(x, y0, w0, 0.1)
    g = prob0.features(a)[0][:, 0]
    y = y0 - (g @ y0) / (g @ g) * g  # now g is orthogonal to y
    prob = ks.Problem(x, y, w0, 0.1)
    cert = ks.certify(prob, a, np.zeros(1))
    assert cert["kkt_residual_rel"] < 1e-14 and cert["converged"] and not cert["active"]
    assert cert["loss"] == pytest.approx(0.5 * y @ y) and cert["degenerate"] and cert["min_pair_sep"] > 0.1
    assert np.abs(prob.evaluate(a).b).max() < 1e-10  # least squares agrees: v* = 0


def test_a_converged_result_satisfies_the_kkt_conditions_it_claims():
    """Below the width condition (m d / 2n = 1/3) KKT points with a loss far above the floor
    exist; check each condition of one directly."""
    n, d, m, eps = 12, 2, 4, 0.05
    x, y, w0, v0 = kkt_study.instance(n, d, m, 11)
    prob = ks.Problem(x, y, w0, eps)
    rng = np.random.default_rng(11)
    w_start, _ = prob.to_original(kkt_study._unit(rng, (m, d)), np.zeros(m // 2))
    out = ks.solve(x, y, w0, v0, eps, w_start)
    assert out["converged_by"] == "residual" and out["above_floor"]
    a, b = out["a"], out["b"]
    assert np.array_equal(b, prob.evaluate(a).b)  # v is the least-squares output layer of W
    ev = prob.evaluate(a, b)
    scale = np.linalg.norm(prob.jacobian(ev), 2) * np.linalg.norm(ev.r)
    assert np.linalg.norm(ev.grad_b) <= 1e-8 * scale  # stationary in v
    dist = eps * np.linalg.norm(a)
    assert dist <= eps * (1 + 1e-12)  # feasible
    if out["active"]:  # grad_W + lambda (W - W0) / ||W - W0|| = 0, lambda >= 0 (here in (a, b) units)
        assert out["lam"] >= 0 and dist == pytest.approx(eps, rel=1e-9)
        resid = ev.grad_a + out["lam"] * eps * a / np.linalg.norm(a)
    else:
        resid = ev.grad_a
    assert np.linalg.norm(resid) <= 1e-8 * scale
    assert out["kkt_residual_rel"] <= ks.TOL


# ------------------------------------------------------------------------------------------
# Starts, study, scoring
# ------------------------------------------------------------------------------------------
def test_every_start_kind_is_feasible():
    prob, *_ , v0 = _random_point()
    rng = np.random.default_rng(0)
    for kind in kkt_study.KINDS:
        a = kkt_study.make_start(kind, prob, v0, rng, [np.zeros((prob.m, prob.d))])
        assert a.shape == (prob.m, prob.d) and np.linalg.norm(a) <= 1 + 1e-12
    with pytest.raises(ValueError, match="unknown start kind"):
        kkt_study.make_start("nope", prob, v0, rng)


def test_study_returns_one_row_per_start():
    x, y, w0, v0 = kkt_study.instance(8, 4, 4, 1)
    rows = kkt_study.study(x, y, w0, v0, [0.01, 0.1], starts={"boundary": 1, "perturb": 1}, label={"n": 8})
    assert len(rows) == 4 and {r["kind"] for r in rows} == {"boundary", "perturb"}
    assert {"n", "eps", "eps_rel", "loss", "floor", "kkt_residual_rel", "converged", "active"} <= set(rows[0])


def _summary(**kw):
    base = {"starts": 120, "kkt_points": 120, "not_certified": 0, "unresolved": 0, "active": 20, "above_floor": 0,
            "degenerate": 0, "above_small": 0, "above_large": 0, "r_small": None, "c_hat": None, "max_loss": 1e-25,
            "max_floor": 1e-22, "max_loss_over_eps2": 1e-20, "max_degenerate_loss": None}
    base.update(kw)
    base["above_floor"] = base["above_small"] + base["above_large"]
    return base


def test_the_bound_verdicts():
    word, text = kkt_bound.instance_verdict(_summary())
    assert word == "PASS" and "no bad KKT points near MLI" in text and "untestable" in text
    # a rate-2 law: loss/eps^2 the same on both halves; a rate-1 law grows it 10x a decade
    assert kkt_bound.instance_verdict(_summary(above_small=6, above_large=6, r_small=0.7, c_hat=0.7))[0] == "PASS"
    assert kkt_bound.instance_verdict(_summary(above_small=6, above_large=6, r_small=7.0, c_hat=0.7))[0] == "FAIL"
    word, text = kkt_bound.instance_verdict(_summary(above_small=1, above_large=0, r_small=3.0))
    assert word == "INCONCLUSIVE" and "too few" in text
    stalled = _summary(not_certified=7, kkt_points=113)  # > 5 %: no PASS on a search that did not finish
    assert kkt_bound.instance_verdict(stalled)[0] == "INCONCLUSIVE"
    refuted = _summary(not_certified=60, kkt_points=60, above_small=6, above_large=6, r_small=7.0, c_hat=0.7)
    assert kkt_bound.instance_verdict(refuted)[0] == "FAIL"  # certified counterexamples, whatever the rest did
    dead = _summary(degenerate=12, max_degenerate_loss=8.1)  # v = 0 saddles: reported apart, not scored
    word, text = kkt_bound.instance_verdict(dead)
    assert word == "PASS" and "12 degenerate" in text


def test_the_verdict_over_instances_states_when_the_rate_is_untestable():
    out = kkt_bound.bound_verdict([_summary(), _summary(degenerate=2, max_degenerate_loss=8.1)])
    assert out["verdict"] == "PASS" and out["above_floor"] == 0
    assert "no bad KKT points near MLI; the eps^2 rate is untestable on these instances" in out["note"]
    assert "2 degenerate" in out["note"]
    mixed = kkt_bound.bound_verdict([_summary(), _summary(above_small=6, above_large=6, r_small=7.0, c_hat=0.7)])
    assert mixed["verdict"] == "FAIL" and mixed["above_floor"] == 12 and mixed["max_ratio"] == 7.0
    assert kkt_bound.bound_verdict([])["verdict"] == "SKIPPED"


def test_an_instance_in_scope_has_no_bad_kkt_points_and_one_below_the_width_condition_fails():
    """The record part end to end on two tiny instances (seconds): at m d/(2n) = 2 every
    non-degenerate KKT point is at its floor (PASS, the rate untestable); at m d/(2n) = 1/3 (out
    of scope: n = 12, d = 2, m = 4) KKT points with real losses exist and their loss / eps^2
    grows as eps shrinks: the bound FAILs, so the check can fail."""
    x, y, w0, _ = kkt_study.instance(10, 4, 10, 2)
    part = kkt_study.measure(x, y, w0, activation="tanh", eps_rel=kkt_study.eps_grid(1e-3, 1e-1, 3), starts=1)
    s = part["summary"]
    assert part["status"] == "done" and len(part["eps"]) == 3 and s["starts"] == 3 * len(kkt_study.KINDS)
    assert s["above_floor"] == 0 and kkt_bound.instance_verdict(s)[0] == "PASS"
    import json

    assert json.loads(json.dumps(part)) == part  # plain JSON: it goes into the record
    x, y, w0, _ = kkt_study.instance(12, 2, 4, 11)
    low = kkt_study.measure(x, y, w0, activation="tanh", eps_rel=kkt_study.eps_grid(1e-3, 1e-1, 4),
                            starts={"boundary": 2})
    ls = low["summary"]
    assert ls["above_small"] >= 3 and ls["above_large"] >= 3 and ls["r_small"] > 2 * ls["c_hat"]
    assert kkt_bound.instance_verdict(ls)[0] == "FAIL"


def test_study_settings_fail_in_one_line():
    with pytest.raises(ValueError, match="starts per kind"):
        kkt_study.starts_per_kind(0)
    with pytest.raises(ValueError, match="eps_min_rel"):
        kkt_study.eps_grid(0.1, 0.01, 4)


def test_a_huge_floor_does_not_certify():
    """A pair collapsed to 1e-13 with v_0 ~ 1e13 (what an unconverged solve can drift to): the
    least-squares floor reaches ~1e-5 of the loss scale, so a loss at that floor is unresolved
    in float64, not a certified zero-loss point."""
    x, _, w0, _ = kkt_study.instance(12, 3, 4, 6)
    rng = np.random.default_rng(6)
    a = 0.5 * kkt_study._unit(rng, w0.shape)
    a[2] = a[0] + 1e-13 * rng.standard_normal(3)  # pair 0 collapsed
    b = np.array([1e13, 1.0])
    prob0 = ks.Problem(x, np.zeros(12), w0, 0.1)
    prob = ks.Problem(x, prob0.features(a)[0] @ b, w0, 0.1)
    cert = ks.certify(prob, a, b)
    assert cert["floor"] > ks.FLOOR_RTOL * 0.5 * prob.y @ prob.y
    assert cert["loss"] <= cert["floor"] and cert["unresolved"] and not cert["converged"]


def test_bad_input_fails_in_one_line():
    x, y, w0, _ = kkt_study.instance(8, 4, 4, 1)
    with pytest.raises(ValueError, match="eps must be a positive"):
        ks.Problem(x, y, w0, 0.0)
    with pytest.raises(ValueError, match="m even"):
        ks.Problem(x, y, w0[:3], 0.1)
    with pytest.raises(ValueError, match="unknown activation"):
        ks.Problem(x, y, w0, 0.1, "relu")


def test_the_task_checks_its_study_options_in_one_line_and_asks_for_its_part():
    from bench_suite.grid import GridError, expand
    from bench_suite.tasks import TASKS, Task

    with pytest.raises((GridError, ValueError), match="eps_min_rel <= eps_max_rel"):
        expand("kkt_bound", options={"eps_min_rel": 0.5, "eps_max_rel": 0.1})
    with pytest.raises((GridError, ValueError), match="option starts"):
        expand("kkt_bound", options={"starts": 0})
    task = TASKS.get("kkt_bound")
    assert task.theory_parts(task.options) == {"kkt_bound": {"eps_min_rel": 1e-3, "eps_max_rel": 1e-1,
                                                             "eps_count": 12, "starts": 3}}
    assert Task.theory_parts({}) == {} and TASKS.get("width_threshold").theory_parts({"n": 1, "d": 1}) == {}
    ratios = {c.width * c.options["d"] / (2 * c.options["n"]) for c in expand("kkt_bound", profile="paper")}
    assert ratios == {0.5, 0.6, 1.0, 2.0}  # the pilot's instances and the two out-of-scope controls
