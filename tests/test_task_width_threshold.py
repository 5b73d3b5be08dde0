"""width_threshold: data, options, shape, profiles (as data), the documented defaults against
the quantities they were derived from, and a run through the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench_suite import theory
from bench_suite.core.config import TrainConfig
from bench_suite.core.seeds import seeds_for
from bench_suite.grid import expand
from bench_suite.model import init_weights
from bench_suite.tasks import TASKS
from bench_suite.tasks.width_threshold import WIDTHS

TASK = TASKS.get("width_threshold")
ROOT = Path(__file__).resolve().parents[1]


def _data(rep=0, **options):
    return TASK().load({**TASK.options, **options}, data_seed=seeds_for(TASK.name, rep)["data"])


def test_data_is_gaussian_with_random_targets_from_the_data_seed():
    a, b, c = _data(0), _data(0), _data(1)
    assert a.x_train.shape == (200, 20) and a.y_train.shape == (200, 1) and a.num_outputs == 1
    assert not a.classification and a.x_test is None
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)
    assert a.source.startswith("synthetic: x ~ N(0, I_20), y ~ N(0, 1), n=200")
    small = _data(0, n=30, d=4)
    assert small.x_train.shape == (30, 4)


def test_options_are_checked_and_the_shape_is_known_without_data():
    assert TASK.shape(TASK.check_options(dict(TASK.options))) == {"n": 200, "d": 20, "k": 1, "n_test": 0}
    with pytest.raises(ValueError, match="option n of width_threshold must be an integer >= 1"):
        TASK.check_options({"n": 0, "d": 20})
    with pytest.raises(ValueError, match="option d must be an integer"):
        TASK.check_options({"n": 10, "d": 2.5})


def test_the_widths_span_both_sides_of_the_threshold():
    n, d = TASK.options["n"], TASK.options["d"]
    ratios = [m * d / (2 * n) for m in WIDTHS]
    assert all(m % 2 == 0 for m in WIDTHS)  # MLI and the paired output need m/2 pairs
    assert 1.0 in ratios and min(ratios) <= 0.3 and max(ratios) >= 4  # about (2n/d)/4 .. 4 (2n/d)
    assert sum(r < 1 for r in ratios) >= 4 and sum(r > 1 for r in ratios) >= 4


@pytest.mark.parametrize("profile", sorted(TASK.profiles))
def test_every_profile_expands_to_valid_cells(profile):
    cells = expand(TASK.name, profile=profile)
    prof = TASK.profiles[profile]
    reps = prof.get("repetitions", prof.get("seeds", 1))
    expected = set()
    for case in prof.get("cases") or [prof]:
        eps = (case.get("train") or {}).get("eps", TASK.train_defaults["eps"])
        expected |= {(m, w, a, eps, r) for m in case["methods"] for w in case["widths"] for a in case["activations"]
                     for r in range(reps)}
    assert {(c.method, c.width, c.activation, c.train.eps, c.repetition) for c in cells} == expected
    assert len(cells) == len(expected) and all(c.profile == profile for c in cells)
    for cell in cells:
        assert cell.train.batch_size is None and cell.train.loss == "mse" and cell.train.eps_mode == "absolute"


def test_profiles_are_the_documented_ones():
    assert {"smoke", "ci", "paper"} <= set(TASK.profiles)
    ci = TASK.profiles["ci"]
    threshold = ci["cases"][0]
    assert ci["device"] == "cpu" and ci["repetitions"] >= 3 and 20 in threshold["widths"]
    assert set(threshold["activations"]) == {"tanh", "relu"} and threshold["methods"] == ["mli_paired_pgd"]
    lecun = ci["cases"][1]
    assert lecun["methods"] == ["constraint_only"] and lecun["train"]["epochs"] == 1  # J at init only
    fixed_v = ci["cases"][2]  # the theorems' J(w; v) beside the method, at its settings
    assert fixed_v["methods"] == ["mli_paired_pgd_fixed_v"] and "train" not in fixed_v and 20 in fixed_v["widths"]
    eps = sorted(c["train"]["eps"] for c in ci["cases"][3:])
    assert eps[0] <= 0.01 and eps[-1] >= 1.0  # two decades
    paper = TASK.profiles["paper"]
    assert set(paper["activations"]) == {"tanh", "softplus", "relu"} and paper["seeds"] >= 5
    assert set(TASK.profiles["ablations"]["methods"]) == {"mli_paired_pgd", "sgd", "constraint_only", "no_mirroring"}
    TrainConfig(**TASK.train_defaults)  # valid


def test_module_imports_no_torch():
    code = "import sys, bench_suite.tasks.width_threshold, bench_suite.theory; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "False"


def test_the_tight_eps_is_in_the_first_order_regime():
    """eps is absolute: the rms pre-activation change is ~eps/sqrt(m) (x ~ N(0, I)), <= 0.041
    over the widths, against pre-activations of rms ~1 at init (the task's docstring)."""
    eps = TASK.train_defaults["eps"]
    assert eps / math.sqrt(min(WIDTHS)) <= 0.041
    data = _data(0)
    w0 = init_weights(min(WIDTHS), 20, 1, "mirrored_lecun", "paired", torch.Generator().manual_seed(0)).w
    pre_rms = float((data.x_train @ w0.T).square().mean().sqrt())
    assert 0.7 < pre_rms < 1.3


def _bounds(activation, width, rep):
    seeds = seeds_for(TASK.name, rep)
    data = _data(rep)
    w0 = init_weights(width, 20, 1, "mirrored_lecun", "paired", torch.Generator().manual_seed(seeds["init"])).w
    return theory.tight_eps_learning_rates(data.x_train, data.y_train, w0, activation=activation,
                                           eps=TASK.train_defaults["eps"])


def test_the_default_learning_rates_follow_their_derivation():
    """lr_w at most ~half the edge-of-stability bound for tanh at m d/(2n) = 2 (m = 40), on the
    ci profile's data; lr_v x V-curvature below 1 at every width (docs/theory.md)."""
    lr_w, lr_v = TASK.train_defaults["lr_w"], TASK.train_defaults["lr_v"]
    for rep in range(3):
        at2 = _bounds("tanh", 40, rep)
        assert 1.5 * lr_w <= at2["lr_w_max"], at2
        for width in (6, 20, 80):
            assert lr_v * _bounds("tanh", width, rep)["v_curvature"] < 1.0
    # softplus is worse conditioned: its bound at ratio 2 is below the default lr_w, so it is
    # only in the paper profile, whose lr_w is at most half its bound
    soft = [_bounds("softplus", 40, rep)["lr_w_max"] for rep in range(3)]
    assert max(soft) < lr_w
    assert TASK.profiles["paper"]["train"]["lr_w"] <= 0.55 * min(soft)


def test_the_ablations_profile_lr_v_is_stable_for_lecun_init_at_init():
    """LeCun init's features are O(1): lr_v times V's curvature (2/n) sigma_max(F)^2 at init must
    stay below 1 for every ablation cell (0.25 diverged no_mirroring at m = 80)."""
    from bench_suite.methods import METHODS
    from bench_suite.model import hidden_features

    prof = TASK.profiles["ablations"]
    lr_v = prof["train"]["lr_v"]
    for rep in range(prof["seeds"]):
        seeds = seeds_for(TASK.name, rep)
        x = _data(rep).x_train.double()
        for name in prof["methods"]:
            method = METHODS.get(name)
            if method.init != "lecun":
                continue
            for width in prof["widths"]:
                w = init_weights(width, 20, 1, "lecun", method.output, torch.Generator().manual_seed(seeds["init"])).w
                feats = hidden_features(x @ w.double().T, "tanh", method.output)
                assert lr_v * 2 / 200 * float(torch.linalg.matrix_norm(feats, 2)) ** 2 < 1.0, (name, width)


def test_plan_prices_the_ci_profile(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "bench_suite", "plan", "--task", "width_threshold", "--profile", "ci",
                          "--store", str(tmp_path / "store"), "--json"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    # 66 threshold cells, 66 one-step LeCun cells for the rank law, 18 fixed-V cells, 30 eps-sweep
    # cells (6 shared)
    assert len(plan["cells"]) == 66 + 66 + 18 + 30 - 6


def test_smoke_profile_runs_through_the_cli(tmp_path):
    """The smoke profile (1000 steps): every cell trains and writes a record with the task's shape;
    the wider net ends lower (a sanity check of the direction, not of the threshold)."""
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "bench_suite", "run", "--task", "width_threshold", "--profile", "smoke",
                          "--store", str(store), "--quiet", "--threads", "1"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    records = [json.loads(p.read_text()) for p in (store / "records").glob("*.json")]
    assert sorted(r["config"]["width"] for r in records) == [10, 10, 20, 20, 40, 40]
    assert all(r["status"] == "done" and r["shape"]["n"] == 200 and r["shape"]["d"] == 20 for r in records)
    assert {r["timing"]["trainer"] for r in records} == {"fused"}
    loss = {r["config"]["width"]: r["final"]["train_loss"] for r in records
            if r["config"]["method"] == "mli_paired_pgd"}
    assert loss[40] < loss[10] < 1.2
    for r in records:  # V frozen: the output layer never moved, so the W block is the whole KKT problem
        if r["config"]["method"] == "mli_paired_pgd_fixed_v":
            assert r["theory"]["kkt"]["kkt_variables"] == "W"


@pytest.mark.slow
def test_the_threshold_at_reduced_scale():
    """relu at the ci defaults, one repetition: m d/(2n) = 0.5 stays at its linearized floor,
    m d/(2n) = 2 memorizes (the ci rows' claim, on two cells)."""
    from bench_suite.methods import METHODS
    from bench_suite.train import CellSpec, train_group

    seeds = seeds_for(TASK.name, 0)
    data = _data(0)
    cfg = TrainConfig(**TASK.train_defaults)
    specs = [CellSpec(METHODS.get("mli_paired_pgd"), m, "relu", cfg, seeds["init"]) for m in (10, 40)]
    low, high = train_group(data, specs, order_seed=seeds["order"], keep_weights=True)
    floor = theory.linearized_loss_floor(data.x_train, data.y_train, low.extra["w0"], low.extra["v0"],
                                         activation="relu", output="paired")["floor"]
    assert low.final["train_loss"] > 0.1 and low.final["train_loss"] == pytest.approx(floor, rel=0.3)
    assert high.final["train_loss"] < 0.01
