"""The KKT study of one instance of Theorem 2's problem: adversarial starts at each radius
(:func:`make_start`), each solved to a certified KKT point (``kkt_solver.solve``), and the
instance's record part (:func:`measure`: per radius counts and the largest losses, and its
``summary`` for the check, ``kkt_bound.summarize``). The verdict rule is ``kkt_bound``'s."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .kkt_bound import PER_EPS, _max, summarize
from .kkt_solver import TOL, Problem, _project, solve


def instance(n: int, d: int, m: int, seed: int):
    """x ~ N(0, I_d), y ~ N(0, 1) (the width_threshold task's law), W0 MLI (rows of the first
    half ~ N(0, I/d), mirrored), v0 ~ N(0, 1/m) (m/2,): numpy's default_rng(seed)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    half = rng.standard_normal((m // 2, d)) / math.sqrt(d)
    v0 = rng.standard_normal(m // 2) / math.sqrt(m)
    return x, y, np.vstack([half, half]), v0


def _unit(rng, shape):
    z = rng.standard_normal(shape)
    return z / np.linalg.norm(z)


def _ascent(prob: Problem, a, steps: int = 30):
    """Projected gradient ascent on the reduced loss (backtracking on the step), from a."""
    step = 1.0
    ev = prob.evaluate(a)
    for _ in range(steps):
        gn = np.linalg.norm(ev.grad_a)
        if gn == 0:
            break
        while step > 1e-8:
            cand = _project(a + step * ev.grad_a / gn)
            ec = prob.evaluate(cand)
            if ec.loss > ev.loss:
                a, ev, step = cand, ec, step * 2
                break
            step /= 2
        else:
            break
    return a


KINDS = ("interior", "boundary", "sphere", "mli_step", "ascent", "near_mirror", "partial_mirror", "dead_pairs",
         "perturb")


def make_start(kind: str, prob: Problem, v0, rng, found: Sequence[np.ndarray] = ()):
    """A start (normalized a, ||a|| <= 1) of one kind:

    - ``interior``: a uniformly random direction at a radius ~ U(0, 1);
    - ``boundary``: a random direction on the sphere ||a|| = 1;
    - ``sphere``: as ``boundary``, but :func:`solve` then stays on the sphere (``sphere=True``);
    - ``mli_step``: the first projected-gradient step from MLI, a = -grad_a l(0, eps v0) / ||.||;
    - ``ascent``: from a boundary point, 30 steps of projected gradient *ascent* on the reduced
      loss (the region where even the best output layer fits worst);
    - ``near_mirror``: every pair mirrored (a_j = a_{j+m/2}) on the sphere plus 1e-4 noise: next
      to the manifold of degenerate KKT points (W mirrored, v = 0, loss 1/2 ||y||^2; more
      generally v = 0 with G(W)^T y = 0, which the ``ascent`` starts often reach exactly);
    - ``partial_mirror``: a random half of the pairs mirrored up to 1e-8 (a narrower net, below
      the width condition when m <= 4n/d), the rest random;
    - ``dead_pairs``: as ``partial_mirror`` with the half mirrored *exactly*: those pairs have
      g_j = 0, so v_j = 0 (minimum-norm least squares) and a zero gradient; they stay dead and the
      solve ends at a KKT point of the narrower net (a degenerate KKT point of this one);
    - ``perturb``: an earlier KKT point (``found``, normalized) plus noise of norm 0.1, projected;
      a boundary start when none was found yet."""
    m, d, h = prob.m, prob.d, prob.h
    if kind == "interior":
        return _unit(rng, (m, d)) * rng.uniform()
    if kind in ("boundary", "sphere"):
        return _unit(rng, (m, d))
    if kind == "mli_step":
        g = prob.evaluate(np.zeros((m, d)), prob.eps * np.asarray(v0, dtype=np.float64)).grad_a
        return -g / np.linalg.norm(g) if np.linalg.norm(g) > 0 else _unit(rng, (m, d))
    if kind == "ascent":
        return _ascent(prob, _unit(rng, (m, d)))
    if kind == "near_mirror":
        c = rng.standard_normal((h, d))
        a = np.vstack([c, c]) + 1e-4 * _unit(rng, (m, d)) * np.linalg.norm(c)
        return a / np.linalg.norm(a)
    if kind == "partial_mirror":
        a = rng.standard_normal((m, d))
        pairs = rng.choice(h, size=h // 2, replace=False)
        a[h + pairs] = a[pairs] + 1e-8 * rng.standard_normal((len(pairs), d))
        return a / np.linalg.norm(a)
    if kind == "dead_pairs":
        a = rng.standard_normal((m, d))
        pairs = rng.choice(h, size=h // 2, replace=False)
        a[h + pairs] = a[pairs]
        return a / np.linalg.norm(a)
    if kind == "perturb":
        if not len(found):
            return _unit(rng, (m, d))
        base = found[rng.integers(len(found))]
        return _project(base + 0.1 * _unit(rng, (m, d)))
    raise ValueError(f"unknown start kind {kind!r}; valid choices: {', '.join(KINDS)}")


DEFAULT_STARTS = {"interior": 6, "boundary": 6, "sphere": 6, "mli_step": 1, "ascent": 6, "near_mirror": 6,
                  "partial_mirror": 6, "dead_pairs": 3, "perturb": 6}


def study(x, y, w0, v0, eps_values: Iterable[float], *, activation: str = "tanh", train_v: bool = True,
          starts: dict[str, int] | None = None, seed: int = 0, tol: float = TOL, maxiter: int = 3000,
          restarts: int = 8, label: dict[str, Any] | None = None):
    """Solve from many starts at each eps; one row per start.

    ``starts``: kind -> count (:data:`DEFAULT_STARTS`, 46 per eps; ``perturb`` runs last and
    draws from the KKT points found so far at this eps and all earlier ones). ``label``: constant
    columns to add (instance, n, d, m, ...). Columns: the label, ``eps``, ``eps_rel``
    (eps / ||W0||_F), ``kind``, ``start``, and :func:`solve`'s scalars (not w, v); a list of
    dicts (``pandas.DataFrame(rows)`` makes the pilot's frame)."""
    starts = dict(DEFAULT_STARTS if starts is None else starts)
    order = [k for k in KINDS if k in starts and k != "perturb"] + (["perturb"] if "perturb" in starts else [])
    rng = np.random.default_rng(seed)
    w0n = float(np.linalg.norm(w0))
    rows, found = [], []
    for eps in eps_values:
        prob = Problem(x, y, w0, eps, activation, v_fixed=None if train_v else v0)
        for kind in order:
            for i in range(int(starts[kind])):
                a0 = make_start(kind, prob, v0, rng, found)
                w_start, _ = prob.to_original(a0, np.zeros(prob.h))
                out = solve(x, y, w0, v0, eps, w_start, activation=activation, train_v=train_v, tol=tol,
                            maxiter=maxiter, restarts=restarts, sphere=kind == "sphere")
                if out["converged"]:
                    found.append(out["a"])
                row = {k: v for k, v in out.items() if k not in ("w", "v", "a", "b")}
                rows.append({**(label or {}), "eps": float(eps), "eps_rel": float(eps) / w0n, "kind": kind,
                             "start": i, **row})
    return rows


# ------------------------------------------------------------------------------------------
# One instance: the record part
# ------------------------------------------------------------------------------------------
def starts_per_kind(count: int) -> dict[str, int]:
    """``count`` starts of every kind at each radius, one ``mli_step`` (it is deterministic)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"starts per kind must be an integer >= 1, got {count!r}")
    return {k: (1 if k == "mli_step" else count) for k in KINDS}


def eps_grid(eps_min_rel: float, eps_max_rel: float, count: int) -> list[float]:
    """``count`` radii log-spaced over [eps_min_rel, eps_max_rel], relative to ||W0||_F (the
    relative change of a unit's pre-activation: what the theorem's "small eps" is about)."""
    if not (0 < eps_min_rel <= eps_max_rel) or count < 2:
        raise ValueError(f"need 0 < eps_min_rel <= eps_max_rel and >= 2 radii, got {eps_min_rel!r}, "
                         f"{eps_max_rel!r}, {count!r}")
    return [float(v) for v in np.logspace(math.log10(eps_min_rel), math.log10(eps_max_rel), count)]


def measure(x: Any, y: Any, w0: Any, *, activation: str, eps_rel: Sequence[float], starts: int | dict[str, int],
            seed: int | None = None, maxiter: int = 3000, restarts: int = 8) -> dict[str, Any]:
    """The record part of one instance: the study at radii eps = eps_rel x ||W0||_F from
    ``starts`` starts of each kind (:func:`starts_per_kind`; or a dict kind -> count),
    summarized per radius (``kkt_bound.PER_EPS``) and per instance (``summary``). ``x`` (n, d),
    ``y`` (n,) or (n, 1), ``w0`` (m, d) the cell's MLI init (float32 draws are exact in float64).
    ``seed``: the starts' generator, by default one derived from W0's bytes (so a cell's part is
    reproducible). Plain JSON."""
    x = np.asarray(_numpy(x), dtype=np.float64)
    y = np.asarray(_numpy(y), dtype=np.float64).reshape(-1)
    w0 = np.asarray(_numpy(w0), dtype=np.float64)
    n, d = x.shape
    m = w0.shape[0]
    if seed is None:
        seed = int.from_bytes(hashlib.sha256(w0.tobytes()).digest()[:8], "little")
    w0_norm = float(np.linalg.norm(w0))
    eps = [r * w0_norm for r in eps_rel]
    t0 = time.perf_counter()
    kinds = starts_per_kind(starts) if isinstance(starts, int) else dict(starts)
    # one BLAS thread: the matrices are n x m/2; more threads only contend (20x slower on 2 busy cores)
    with threadpool_limits(limits=1):
        rows = study(x, y, w0, np.zeros(m // 2), eps, activation=activation, starts=kinds, seed=seed,
                     maxiter=maxiter, restarts=restarts)
    per_eps: dict[str, list] = {k: [] for k in PER_EPS}
    for e in eps:
        at = [r for r in rows if r["eps"] == e]
        kkt = [r for r in at if r["converged"]]
        nondeg = [r for r in kkt if not r["degenerate"]]
        above = [r for r in nondeg if r["above_floor"]]
        degenerate = [r for r in kkt if r["above_floor"] and r["degenerate"]]
        per_eps["starts"].append(len(at))
        per_eps["kkt_points"].append(len(kkt))
        per_eps["not_certified"].append(len(at) - len(kkt))
        per_eps["unresolved"].append(sum(bool(r["unresolved"]) for r in at))
        per_eps["active"].append(sum(bool(r["active"]) for r in kkt))
        per_eps["above_floor"].append(len(above))
        per_eps["degenerate"].append(len(degenerate))
        per_eps["max_loss"].append(_max(r["loss"] for r in nondeg))
        per_eps["max_floor"].append(_max(r["floor"] for r in nondeg))
        per_eps["max_loss_over_eps2"].append(_max(r["loss_over_eps2"] for r in nondeg))
        per_eps["max_ratio_above"].append(_max(r["loss_over_eps2"] for r in above))
        per_eps["max_degenerate_loss"].append(_max(r["loss"] for r in degenerate))
    part = {"status": "done", "n": n, "d": d, "m": m, "width_ratio": m * d / (2 * n), "activation": activation,
            "half_y2": 0.5 * float(y @ y), "w0_norm": w0_norm, "eps": eps, "eps_rel": [float(r) for r in eps_rel],
            "starts_per_kind": kinds, "seed": str(seed), **per_eps, "time_s": time.perf_counter() - t0}
    part["summary"] = summarize(part)
    return part


def _numpy(value: Any) -> Any:
    return value.detach().cpu().double().numpy() if hasattr(value, "detach") else value
