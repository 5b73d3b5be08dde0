"""Theorem 2's ball-constrained problem solved to KKT points in float64, with a certificate per
point (issue 21, ask 4; docs/theory.md, "Theorem 2 as a bound").

The problem (slides, "How to fix issue 2" and "Trainability results")::

    min_{W, v}  l(W, v) = 1/2 sum_i (y_i - f(x_i; W, v))^2      (the paper's loss; the engine's mse is (2/n) l)
    s.t.        ||W - W0||_F <= eps                              (v is free: it is trained)

    f(x; W, v) = sum_{j < m/2} v_j (sigma(w_j . x) - sigma(w_{j+m/2} . x))    (the paired output)

with W0 the mirrored LeCun init (w_{j+m/2} = w_j) and a smooth sigma (tanh, softplus). Theorem 2
(informal): for m >= 2n/d every KKT point has l = O(eps^2). V is a variable: with v held at v0
the claim is false for any y != 0 (paired units share w0_j, so |f| = O(eps |v0|) and l -> 1/2
||y||^2), which is why ``mli_paired_pgd_fixed_v`` is Theorem 1's J(w; v) setting, not this one.

How it is solved (numpy and scipy, no torch):

- **Normalized coordinates.** W = W0 + eps a, v = b / eps, so the constraint is ||a||_F <= 1 and,
  to first order, f = sum_j b_j sigma'(w0_j . x) (a_j - a_{j+m/2}) . x: the problem is O(1) in
  (a, b) at every eps (in (W, v) its conditioning degrades like 1/eps^2).
- **Cancellation-free features.** A pair's feature is one difference, g_ij = (sigma(A) -
  sigma(B)) / eps with A - B = eps (a_j - a_{j+m/2}) . x_i formed directly (tanh: sinh(A - B) /
  (cosh A cosh B), overflow-safe; softplus: log1p(expit(B) expm1(A - B))). Subtracting two
  rounded sigma values puts a floor of ~u |v| on every output, and |v| grows like 1/eps or
  faster: a log-log slope of such losses against eps measures the evaluation, not the theorem.
- **Variable projection** (Golub & Pereyra): for a given W the loss is linear least squares in v,
  so v = v*(W) (``numpy.linalg.lstsq``) and the reduced loss L(W) = l(W, v*(W)) is minimized
  over the ball by SLSQP (``scipy.optimize.minimize``) with its exact gradient
  grad_W l(W, v*(W)) (envelope theorem), restarted from its end point while not certified
  (one BFGS model often stalls where |v| is huge). grad_v l = 0 holds by construction and is
  still measured in the residual.
- ``train_v=False`` holds v = v0 (the fixed-output reading), only to show why it is not Theorem 2.

Certificates of a point (:func:`certify`), all in float64:

- ``kkt_residual``: :func:`bench_suite.theory.kkt.kkt_residual` in (W, v) units (grad_v in
  quadrature), with the boundary at relative distance :data:`ACTIVE_RTOL` (the projection here is
  exact in float64);
- ``kkt_residual_rel``: the same in (a, b) over ||J||_2 ||r|| (J = df / d(a, b), r = y - f): in
  [0, 1] since ||J^T r|| <= ||J||_2 ||r||, independent of eps and of y's scale. A point is a KKT
  point when it is <= :data:`TOL`;
- ``floor``: the float64 floor of the loss there, 1/2 (e_eval + e_solve)^2, e_eval = ||gamma s||
  a first-order forward-error bound of the computed residual (gamma = (d + m/2 + 4) u, u =
  2^-53, s_i the sum of the magnitudes of every term entering r_i) and e_solve = (m/2) u (1 +
  2 kappa(G)) ||y|| the accuracy of a backward-stable least-squares residual (Higham, Accuracy
  and Stability of Numerical Algorithms, 2nd ed. 2002, Thm 20.3; kappa(G) of the n x m/2
  features the solve uses). An exactly zero-loss point computes to at most this, so a loss
  above it is certainly not 0; a loss at or below it counts as a zero-loss (global) point when
  the floor is resolved (<= :data:`FLOOR_RTOL` x 1/2 ||y||^2), else it is ``unresolved``;
- ``dead_pairs`` / ``degenerate``: pairs contributing ~nothing (||v_j g_j|| <= :data:`DEAD_RTOL`
  ||y||). v = 0 with G(W)^T y = 0 (every mirrored W, for one) satisfies every KKT condition at
  loss 1/2 ||y||^2 at any width: saddles the bound's verdict reports apart.

Single-threaded use is the most reproducible (set OMP_NUM_THREADS=1 before numpy loads).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from .kkt import kkt_residual

U = np.finfo(np.float64).eps / 2  # unit roundoff, 2^-53
TOL = 1e-8  # kkt_residual_rel threshold for "is a KKT point"
# A loss at its floor certifies a zero-loss point only where the floor itself is small: at most
# FLOOR_RTOL x 1/2 ||y||^2 (the zero predictor's loss, MLI's at init). Where |v| is astronomically
# large (a pair collapsed onto itself) the floor can reach the loss scale; such a point is
# unresolved in float64, not certified. 1e-10: in the pilot every certified floor was <= 2e-12 x
# 1/2 ||y||^2, and 1e-10 x 1/2 ||y||^2 is below 1e-3 of the smallest eps^2 swept.
FLOOR_RTOL = 1e-10
ACTIVE_RTOL = 1e-9  # ||a|| >= 1 - ACTIVE_RTOL counts as on the boundary (the solver projects exactly)
# A pair j is dead when its contribution ||v_j (sigma(w_j . X) - sigma(w_{j+m/2} . X))|| <= DEAD_RTOL ||y||.
# A KKT point with v_j = 0 asks nothing of w_j, w_{j+m/2} but <g_j, r> = 0 (a KKT point of the net
# without pair j); certified to kkt_residual_rel <= 1e-8 such a v_j shows up at ~1e-9 ||y||, a pair
# that fits contributes ~||y|| / sqrt(m/2) >= 0.1 ||y|| in the pilot: 1e-6 separates the two.
DEAD_RTOL = 1e-6

ACTIVATIONS = ("tanh", "softplus")


# ------------------------------------------------------------------------------------------
# The network in normalized coordinates
# ------------------------------------------------------------------------------------------
def _tanh_diff(a, b, s):
    """tanh(a) - tanh(b) = sinh(s) / (cosh a cosh b), s = a - b, written with exponents <= 0 so it
    neither overflows nor cancels: sign(s) 2 e^(|s| - |a| - |b|) (1 - e^(-2|s|)) / ((1 + e^(-2|a|))
    (1 + e^(-2|b|))) (|s| <= |a| + |b|)."""
    aa, ab, as_ = np.abs(a), np.abs(b), np.abs(s)
    return (np.sign(s) * 2.0 * np.exp(np.minimum(as_ - aa - ab, 0.0)) * -np.expm1(-2.0 * as_)
            / ((1.0 + np.exp(-2.0 * aa)) * (1.0 + np.exp(-2.0 * ab))))


def _softplus_diff(a, b, s):
    """softplus(a) - softplus(b) = log1p(expit(b) expm1(s)), s = a - b; for |s| > 1 (no
    cancellation to avoid, and expm1 could overflow) the plain difference."""
    small = np.abs(s) <= 1.0
    with np.errstate(over="ignore"):
        near = np.log1p(expit(b) * np.expm1(np.where(small, s, 0.0)))
    return np.where(small, near, np.logaddexp(0.0, a) - np.logaddexp(0.0, b))


def _sigma(activation: str):
    """(sigma, sigma', diff) with diff(A, B, S) = sigma(A) - sigma(B) given S = A - B exactly."""
    if activation == "tanh":
        return np.tanh, lambda z: 1.0 - np.tanh(z) ** 2, _tanh_diff
    if activation == "softplus":
        return lambda z: np.logaddexp(0.0, z), expit, _softplus_diff
    raise ValueError(f"unknown activation {activation!r}; valid choices: {', '.join(ACTIVATIONS)}")


@dataclass
class Evaluation:
    """Everything at one point (a, b) of the normalized coordinates."""
    loss: float          # 1/2 ||r||^2
    r: np.ndarray        # (n,) y - f
    g: np.ndarray        # (n, h) normalized paired features (sigma(A) - sigma(B)) / eps
    grad_a: np.ndarray   # (m, d)
    grad_b: np.ndarray   # (h,)
    b: np.ndarray        # (h,)
    dA: np.ndarray       # (n, h) sigma'(A)
    dB: np.ndarray       # (n, h) sigma'(B)


def _used_condition(g) -> float:
    """sigma_max / the smallest singular value of g that numpy.linalg.lstsq (rcond=None) keeps
    (those above eps * max(n, h) * sigma_max): the condition number of the columns the
    least-squares output layer actually uses; 1 for g = 0."""
    sv = np.linalg.svd(g, compute_uv=False)
    if not sv.size or sv[0] == 0:
        return 1.0
    kept = sv[sv > np.finfo(np.float64).eps * max(g.shape) * sv[0]]
    return float(kept[0] / kept[-1])


class Problem:
    """min over (W, v) of 1/2 ||y - f(X; W, v)||^2 s.t. ||W - W0||_F <= eps, in the coordinates
    a = (W - W0) / eps (m, d), b = eps v (m/2,).

    ``x``: (n, d) inputs; ``y``: (n,) targets; ``w0``: (m, d), m even (the ball's centre: MLI
    for the theorem, any W0 works); ``eps`` > 0 absolute radius (Frobenius, W's units);
    ``v_fixed``: None (v is trained: Theorem 2) or the (m/2,) output weights held fixed."""

    def __init__(self, x, y, w0, eps: float, activation: str = "tanh", v_fixed=None):
        self.x = np.ascontiguousarray(x, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64).reshape(-1)
        self.w0 = np.asarray(w0, dtype=np.float64)
        n, d = self.x.shape
        m = self.w0.shape[0]
        if self.y.shape != (n,):
            raise ValueError(f"y must have n = {n} entries to match x, got {np.asarray(y).shape}")
        if self.w0.shape != (m, d) or m % 2:
            raise ValueError(f"w0 must be (m, d) with d = {d} and m even, got {self.w0.shape}")
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a positive finite radius, got {eps!r}")
        self.n, self.d, self.m, self.h, self.eps = n, d, m, m // 2, float(eps)
        self.activation = activation
        self.sig, self.dsig, self.diff = _sigma(activation)
        h = self.h
        self.P1 = self.x @ self.w0[:h].T
        self.P2 = self.x @ self.w0[h:].T
        self.C = self.x @ (self.w0[:h] - self.w0[h:]).T  # exactly 0 under MLI
        self.b_fixed = None if v_fixed is None else self.eps * np.asarray(v_fixed, dtype=np.float64).reshape(h)

    # coordinates ---------------------------------------------------------------------------
    def to_normalized(self, w, v=None):
        a = (np.asarray(w, dtype=np.float64) - self.w0) / self.eps
        return a, (None if v is None else self.eps * np.asarray(v, dtype=np.float64).reshape(-1))

    def to_original(self, a, b):
        return self.w0 + self.eps * a, b / self.eps

    # evaluation ----------------------------------------------------------------------------
    def features(self, a):
        h, e, x = self.h, self.eps, self.x
        A = self.P1 + e * (x @ a[:h].T)
        B = self.P2 + e * (x @ a[h:].T)
        S = self.C + e * (x @ (a[:h] - a[h:]).T)
        return self.diff(A, B, S) / e, A, B

    def best_b(self, g):
        """The output weights: least squares (v free) or the fixed ones."""
        if self.b_fixed is not None:
            return self.b_fixed
        return np.linalg.lstsq(g, self.y, rcond=None)[0]

    def evaluate(self, a, b=None) -> Evaluation:
        g, A, B = self.features(a)
        if b is None:
            b = self.best_b(g)
        r = self.y - g @ b
        dA, dB = self.dsig(A), self.dsig(B)
        c = r[:, None] * b[None, :]
        grad_a = np.vstack([-(c * dA).T @ self.x, (c * dB).T @ self.x])
        return Evaluation(0.5 * float(r @ r), r, g, grad_a, -g.T @ r, b, dA, dB)

    def jacobian(self, ev: Evaluation) -> np.ndarray:
        """d f / d(a, b), (n, m d + h); a flattened row-major as (m, d)."""
        x, b = self.x, ev.b
        ja1 = (b[None, :] * ev.dA)[:, :, None] * x[:, None, :]
        ja2 = -(b[None, :] * ev.dB)[:, :, None] * x[:, None, :]
        cols = [np.concatenate([ja1, ja2], axis=1).reshape(self.n, -1)]
        if self.b_fixed is None:
            cols.append(ev.g)
        return np.hstack(cols)

    def loss_floor(self, a, ev: Evaluation) -> float:
        """The float64 floor of the loss at (a, b): the first-order forward-error bound of its
        evaluation plus, when v is the least-squares one, the accuracy of that solve (module
        docstring). A point whose exact (reduced) loss is 0 computes to at most this."""
        h, e, x = self.h, self.eps, self.x
        ax = np.abs(x)
        w1 = np.abs(self.w0[:h] + e * a[:h])
        w2 = np.abs(self.w0[h:] + e * a[h:])
        sep = np.abs(a[:h] - a[h:])
        rel_g = 1.0 + ax @ w1.T + ax @ w2.T  # the arguments of cosh / expit and sigma's own rounding
        s = np.abs(self.y) + (np.abs(ev.b)[None, :] * (np.abs(ev.g) * rel_g + ax @ sep.T
                                                         + np.abs(self.C) / e)).sum(axis=1)
        gamma = (self.d + h + 4) * U
        evaluation = math.sqrt(float(np.sum((gamma * s) ** 2)))
        if self.b_fixed is not None:
            return 0.5 * evaluation**2
        # v = v*(W) from a backward-stable least-squares solve: its residual is exact only to
        # ~ c u (1 + 2 kappa(G)) ||y|| (Higham 2002, Thm 20.3), c = m/2 our choice
        kappa = _used_condition(ev.g)
        solve = h * U * (1.0 + 2.0 * kappa) * float(np.linalg.norm(self.y))
        return 0.5 * (evaluation + solve) ** 2


def certify(prob: Problem, a, b=None, *, tol: float = TOL) -> dict[str, Any]:
    """The certificate of one point (normalized a; b None = least squares): loss, floor, the
    residuals (absolute in (W, v) units, relative in (a, b)), active, multiplier, converged."""
    a = np.asarray(a, dtype=np.float64)
    ev = prob.evaluate(a, b)
    train_v = prob.b_fixed is None
    e = prob.eps
    # original units: grad_W = grad_a / eps, grad_v = eps grad_b, delta = eps a, radius eps
    orig = kkt_residual(ev.grad_a / e, e * a, e, grad_v=(e * ev.grad_b) if train_v else None,
                        active_rtol=ACTIVE_RTOL)
    norm = kkt_residual(ev.grad_a, a, 1.0, grad_v=ev.grad_b if train_v else None, active_rtol=ACTIVE_RTOL)
    jn = float(np.linalg.norm(prob.jacobian(ev), 2))
    rn = float(np.linalg.norm(ev.r))
    rel = norm["residual"] / (jn * rn) if jn * rn > 0 else 0.0
    # stationarity on the sphere ||a|| = 1 whatever the multiplier's sign (for sphere solves)
    na = float(np.linalg.norm(a))
    tangent = ev.grad_a - (np.sum(ev.grad_a * a) / na**2) * a if na > 0 else ev.grad_a
    sphere_rel = (math.hypot(float(np.linalg.norm(tangent)), float(np.linalg.norm(ev.grad_b)) if train_v else 0.0)
                  / (jn * rn) if jn * rn > 0 else 0.0)
    gnorm = float(np.linalg.norm(ev.grad_a))
    radial_frac = float(np.sum(ev.grad_a * a)) / (na * gnorm) if na > 0 and gnorm > 0 else None
    floor = prob.loss_floor(a, ev)
    at_floor = ev.loss <= floor
    resolved = floor <= FLOOR_RTOL * 0.5 * float(prob.y @ prob.y)
    sep = np.linalg.norm(a[:prob.h] - a[prob.h:], axis=1)
    contrib = np.abs(ev.b) * np.linalg.norm(ev.g, axis=0)  # ||v_j (sigma(w_j X) - sigma(w_j' X))||
    dead = int(np.sum(contrib <= DEAD_RTOL * np.linalg.norm(prob.y))) if train_v else 0  # v0 fixed: none
    return {
        "loss": ev.loss,
        "loss_over_eps2": ev.loss / e**2,
        "floor": floor,
        "above_floor": not at_floor,
        "kkt_residual": orig["residual"],
        "kkt_residual_w": orig["residual_w"],
        "kkt_residual_rel": rel,
        "sphere_residual_rel": sphere_rel,
        "radial_frac": radial_frac,
        "converged": bool((at_floor and resolved) or (not at_floor and rel <= tol)),
        "converged_by": ("floor" if resolved else None) if at_floor else ("residual" if rel <= tol else None),
        "unresolved": bool(at_floor and not resolved),
        "active": norm["active"],
        "dist_rel": norm["dist"],
        "lam": orig["lam"],
        "v_norm": float(np.linalg.norm(ev.b)) / e,
        "min_pair_sep": float(sep.min()),
        "dead_pairs": dead,
        "degenerate": dead > 0,
        "cond_g": _used_condition(ev.g),
    }


# ------------------------------------------------------------------------------------------
# The solver
# ------------------------------------------------------------------------------------------
def _project(a):
    nrm = np.linalg.norm(a)
    return a / nrm if nrm > 1.0 else a


def _slsqp(prob: Problem, a0, maxiter: int, sphere: bool = False):
    scale = max(0.5 * float(prob.y @ prob.y), 1e-300)
    shape = a0.shape

    def fun(z):
        # SLSQP may try points outside the ball; those are evaluated as they are (the features
        # saturate, nothing overflows); a failed least-squares solve there is a large value
        if not np.isfinite(z).all() or z @ z > 1e6:  # far outside the ball: reject the trial point
            return 1e30, np.zeros_like(z)
        try:
            with np.errstate(all="ignore"):
                ev = prob.evaluate(z.reshape(shape))
        except np.linalg.LinAlgError:
            return 1e30, np.zeros_like(z)
        if not np.isfinite(ev.loss):
            return 1e30, np.zeros_like(z)
        return ev.loss / scale, ev.grad_a.ravel() / scale

    cons = {"type": "eq" if sphere else "ineq", "fun": lambda z: 1.0 - z @ z, "jac": lambda z: -2.0 * z}
    res = minimize(fun, a0.ravel(), jac=True, method="SLSQP", constraints=[cons],
                   options={"maxiter": maxiter, "ftol": 1e-30})
    a = res.x.reshape(shape)
    if sphere and np.linalg.norm(a) > 0:
        return a / np.linalg.norm(a), int(res.nit), str(res.message)
    return _project(a), int(res.nit), str(res.message)


def solve(x, y, w0, v0, eps: float, start, *, activation: str = "tanh", train_v: bool = True,
          tol: float = TOL, maxiter: int = 3000, restarts: int = 8, sphere: bool = False) -> dict[str, Any]:
    """One KKT point of min l(W, v) s.t. ||W - W0||_F <= eps, from ``start``.

    ``x`` (n, d), ``y`` (n,), ``w0`` (m, d) the ball's centre (MLI), ``v0`` (m/2,) the paired
    output's initial weights (used only when ``train_v`` is False: then v = v0 throughout),
    ``eps`` the absolute radius, ``start`` an (m, d) W inside the ball (projected onto it if
    not). With ``train_v`` v is the least-squares output layer of the current W (v's start is
    irrelevant). SLSQP runs to its own stop (``maxiter`` iterations at most) and is restarted
    from its end point (a fresh quasi-Newton model) up to ``restarts`` times while the point is
    not certified: where the reduced problem is ill-conditioned (|v| large, a pair nearly
    collapsed) one BFGS run often stalls far above the floor and the next one reaches it.

    ``sphere``: first descend on the boundary, ||W - W0||_F = eps (an equality constraint; two
    runs at most), to hunt boundary stationary points. ``sphere_stationary`` says whether that
    phase ended stationary on the sphere (``sphere_residual_rel`` <= tol) and
    ``sphere_radial_frac`` the sign of the gradient there (< 0: it points into the ball, so the
    point is a KKT point of the ball problem; > 0: it is not). Unless that point is already a
    certified KKT point, the ball problem is then solved from it as above, so every start ends
    with the ball problem's certificate.

    Returns the :func:`certify` dict plus ``nit`` (SLSQP iterations, all runs), ``runs``,
    ``message`` (SLSQP's last), ``time_s``, ``loss_start``, ``sphere_stationary``,
    ``sphere_radial_frac`` (None without ``sphere``), ``w`` (m, d) and ``v`` (m/2,), and the
    certified point itself in normalized coordinates, ``a`` = (w - w0) / eps and ``b`` = eps v
    (converting back and forth rounds; where |v| is huge that moves the gradient)."""
    t0 = time.perf_counter()
    prob = Problem(x, y, w0, eps, activation, v_fixed=None if train_v else v0)
    a, _ = prob.to_normalized(start)
    a = _project(a)
    loss_start = prob.evaluate(a).loss
    nit, runs, msg = 0, 0, ""
    sphere_stationary, sphere_radial = None, None
    if sphere:
        a = a / np.linalg.norm(a) if np.linalg.norm(a) > 0 else _project(np.ones_like(a))
        cert = certify(prob, a, tol=tol)
        for _ in range(2):
            if cert["converged"] or cert["sphere_residual_rel"] <= tol:
                break
            a, k, msg = _slsqp(prob, a, maxiter, sphere=True)
            nit, runs = nit + k, runs + 1
            cert = certify(prob, a, tol=tol)
        sphere_stationary = bool(cert["converged"] or cert["sphere_residual_rel"] <= tol)
        sphere_radial = cert["radial_frac"]
    cert = certify(prob, a, tol=tol)
    ball_runs = 0
    while not cert["converged"] and ball_runs <= restarts:
        a, k, msg = _slsqp(prob, a, maxiter)
        nit, runs, ball_runs = nit + k, runs + 1, ball_runs + 1
        cert = certify(prob, a, tol=tol)
    b = prob.evaluate(a).b
    w, v = prob.to_original(a, b)
    return {**cert, "nit": nit, "runs": runs, "message": msg, "time_s": time.perf_counter() - t0,
            "loss_start": loss_start, "sphere_stationary": sphere_stationary, "sphere_radial_frac": sphere_radial,
            "w": w, "v": v, "a": a, "b": b}
