"""kkt_bound: Theorem 2 tested as the bound it is, in float64 (issue 21, ask 4; docs/theory.md)."""

from __future__ import annotations

from typing import Any

from ..data.gaussian import GaussianRegression
from .base import Task, register_task

# one case per data shape (n, d): its widths m = 2n/d and 4n/d (m d/(2n) = 1, 2)
_SHAPES = ((40, 4), (30, 6), (20, 10))
_PAPER_CASES = [{"options": {"n": n, "d": d}, "widths": [2 * n // d, 4 * n // d]} for n, d in _SHAPES]
# below the width condition (m d/(2n) = 0.5, 0.6): out of the theorem's scope, where bad KKT
# points exist: what shows that the bound's check can fail (reported, not scored); 6 radii and
# one start of each kind, as the pilot's control (its KKT points have real losses and take the
# solver ~10x longer per start)
_CONTROL_CASES = [{"options": {"n": n, "d": d, "eps_count": 6, "starts": 1}, "widths": [m]}
                  for n, d, m in ((40, 4, 10), (30, 6, 6))]


@register_task
class KktBound(GaussianRegression, Task):
    """Theorem 2's problem, min over (W, v) of the paper's loss 1/2 sum_i (y_i - f(x_i))^2 s.t.
    ||W - W0||_F <= eps with v free (the paired output; W0 the mirrored LeCun init), solved to
    certified KKT points in float64 from many adversarial starts at each of ``eps_count`` radii
    log-spaced over [``eps_min_rel``, ``eps_max_rel``] x ||W0||_F (bench_suite/theory/kkt_solver.py,
    kkt_study.py). A cell is one instance: the width_threshold law's data (x ~ N(0, I_d), y ~
    N(0, 1), ``n``, ``d``), a width m and an activation (smooth: tanh, softplus), the cell's MLI
    init; its record's theory section holds the study (``kkt_bound``: per radius the starts, the
    certified KKT points, those above their float64 floor, the degenerate ones apart, the largest
    loss / eps^2) and the check scores the bound on the cells with m d/(2n) >= 1
    (baselines/theory.toml, kind ``kkt_bound``).

    The cell is not trained: one step at learning rate 0 in float64 (``precision`` fp64), so the
    record's weights are the init the study starts from; the work is the study (seconds per
    instance at the ci profile's size, minutes at the paper profile's). ``starts`` is the number of
    starts of each kind at each radius (interior, boundary, on the sphere, ascent, near the mirrored
    manifold, half mirrored, dead pairs, perturbed KKT points; the first projected-gradient step
    from MLI once). Our choices, from the pilot (docs/theory.md): 12 radii over two decades of
    eps / ||W0||_F (the relative change of a unit's pre-activation), 3 starts of each kind.
    """

    name = "kkt_bound"
    version = 1
    classification = False
    description = "Theorem 2 as a bound: certified float64 KKT points near MLI, max loss/eps^2 (m d/(2n) >= 1 scored)"
    report_sections = ("kkt_points",)
    options: dict[str, Any] = {"n": 20, "d": 10, "eps_min_rel": 1e-3, "eps_max_rel": 1e-1, "eps_count": 12,
                               "starts": 3}
    train_defaults: dict[str, Any] = {
        "epochs": 1, "batch_size": None, "lr_w": 0.0, "lr_v": 0.0, "momentum": 0.0, "loss": "mse", "eps": 1.0,
        "eps_mode": "relative", "eval_every": 1, "precision": "fp64",
    }
    grid: dict[str, list] = {"methods": ["mli_paired_pgd"], "widths": [4, 8], "activations": ["tanh"]}
    profiles: dict[str, dict[str, Any]] = {
        "smoke": {
            "description": "one instance (n 20, d 10, m 8: m d/(2n) = 2), tanh, 4 radii, one start of each kind",
            "device": "cpu", "repetitions": 1, "widths": [8], "activations": ["tanh"],
            "options": {"eps_count": 4, "starts": 1},
        },
        "ci": {
            "description": "n 20, d 10 at m d/(2n) = 1 and 2 (m 4, 8), tanh, 6 radii, one start of each kind; and "
                           "below the width condition n 12, d 2, m 4 (m d/(2n) = 1/3: out of scope, not scored), "
                           "4 radii",
            "device": "cpu", "repetitions": 1, "activations": ["tanh"],
            "cases": [
                {"widths": [4, 8], "options": {"n": 20, "d": 10, "eps_count": 6, "starts": 1}},
                {"widths": [4], "options": {"n": 12, "d": 2, "eps_count": 4, "starts": 1}},
            ],
        },
        "paper": {
            "description": "the pilot's instances: (n, d) in (40, 4), (30, 6), (20, 10) at m d/(2n) = 1 and 2, tanh "
                           "and softplus, 12 radii, 3 starts of each kind; and two out-of-scope controls (m d/(2n) "
                           "= 0.5, 0.6, tanh, 6 radii, one start of each kind)",
            "device": "cpu", "repetitions": 1,
            "cases": [*({**c, "activations": ["tanh", "softplus"]} for c in _PAPER_CASES),
                      *({**c, "activations": ["tanh"]} for c in _CONTROL_CASES)],
        },
    }
    defaults_rationale = (
        "docs/theory.md (the pilot of issue 21): no training (lr 0, one step, fp64): the cell provides the "
        "instance; radii 1e-3..1e-1 x ||W0||_F, the regime where the Taylor remainder the theorem rests on is "
        "small; a start of each adversarial kind at each radius; rules fixed before any data (bench_suite/theory/"
        "kkt_bound.py)."
    )

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        out = super().check_options(options)
        lo, hi = out["eps_min_rel"], out["eps_max_rel"]
        if not 0 < lo <= hi:
            raise ValueError(f"options eps_min_rel and eps_max_rel of {cls.name} need 0 < eps_min_rel <= eps_max_rel, "
                             f"got {lo!r} and {hi!r}")
        for key, least in (("eps_count", 2), ("starts", 1)):
            if out[key] < least:
                raise ValueError(f"option {key} of {cls.name} must be an integer >= {least}, got {out[key]!r}")
        return out

    @classmethod
    def theory_parts(cls, options: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {"kkt_bound": {key: options[key] for key in ("eps_min_rel", "eps_max_rel", "eps_count", "starts")}}
