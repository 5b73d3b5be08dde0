"""The ablation study's profiles (synthetic_ablation, ``ablation_*``) expand to the study's settings.

The expected settings are written out here as literal data: those of the study as docs/ablation.md
describes it (and as the retired scripts/ablation_study.py ran it), so a change to a profile
fails here instead of silently moving the doc's tables.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest

from bench_suite.grid import GridError, expand, export_profiles, load_profile_file
from bench_suite.tasks import TASKS

TASK = "synthetic_ablation"
METHODS = ("mli_paired_pgd", "sgd", "constraint_only", "no_mirroring", "mli_paired_pgd_fixed_v",
           "mli_paired_pgd_per_neuron")


def _settings(*, n=1000, d=100, widths=(20,), activations=("tanh",), lrs=((0.1, 0.1),), eps=(1.0,), epochs=2000,
              eval_every=200, eps_of_width=None):
    """(n, d, m, activation, lr_w, lr_v, eps, epochs, eval_every) of each setting."""
    out = set()
    for m, act, (lw, lv), e in itertools.product(widths, activations, lrs, eps):
        out.add((n, d, m, act, lw, lv, eps_of_width(m) if eps_of_width else e, epochs, eval_every))
    return out


def _quarter_sqrt(m):
    return 0.25 * math.sqrt(m)


EXPECTED = {
    "ablation_naive": _settings(lrs=((1.0, 1.0),), eps=(1.0, 5.0), epochs=5000, eval_every=500),
    "ablation_lr": _settings(lrs=[(lr, lr) for lr in (0.01, 0.1, 0.5, 1.0)]),
    "ablation_lr_wv": _settings(lrs=list(itertools.product((0.01, 0.1), (0.1, 1.0, 10.0)))),
    "ablation_eps": _settings(eps=(0.1, 0.3, 1.0, 3.0, 10.0)),
    "ablation_steps": _settings(lrs=((0.1, 0.1), (0.01, 0.1)), epochs=10000, eval_every=250),
    "ablation_activation": _settings(activations=("tanh", "relu", "softplus"), lrs=((0.01, 0.01), (0.1, 0.1))),
    "ablation_softplus": _settings(activations=("softplus",), lrs=((0.03, 0.03), (0.05, 0.05)), epochs=5000,
                                   eval_every=250),
    "ablation_width": _settings(widths=(10, 20, 40, 80), eps_of_width=_quarter_sqrt),
    "ablation_wide_d": _settings(d=500, widths=(4, 8, 16), eps_of_width=_quarter_sqrt),
    "ablation_smoke": _settings(n=64, d=16, widths=(8,), eps=(0.5, 1.0), epochs=50, eval_every=25),
}
SEEDS = {name: 2 if name == "ablation_smoke" else 3 for name in EXPECTED}


def _key(cell):
    t = cell.train
    return (cell.options["n"], cell.options["d"], cell.width, cell.activation, t.lr_w, t.lr_v, t.eps, t.epochs,
            t.eval_every)


def test_the_task_declares_exactly_these_ablation_profiles():
    from bench_suite.tasks.synthetic import MAP_PROFILES  # the maps: tests/test_ablation_map.py

    declared = {name for name in TASKS.get(TASK).profiles if name.startswith("ablation_")}
    assert declared - set(MAP_PROFILES) == set(EXPECTED)


@pytest.mark.parametrize("profile", sorted(EXPECTED))
def test_profile_expands_to_the_study_settings(profile):
    cells = expand(TASK, profile=profile)
    settings = EXPECTED[profile]
    # every setting x the six methods x the repetitions, each cell once
    assert len(cells) == len(settings) * len(METHODS) * SEEDS[profile]
    assert len({c.cell_id for c in cells}) == len(cells)
    assert {_key(c) for c in cells} == settings
    for setting in settings:
        here = [c for c in cells if _key(c) == setting]
        assert sorted((c.method, c.repetition) for c in here) == sorted(
            itertools.product(METHODS, range(SEEDS[profile])))
    for c in cells:  # what the study pins, whatever the task defaults become
        t = c.train
        assert (t.batch_size, t.loss, t.momentum, t.precision, t.eps_mode) == (None, "mse", 0.0, "fp32", "absolute")
        assert c.profile == profile


def test_width_sweeps_use_the_exact_radius_quarter_sqrt_m():
    for profile in ("ablation_width", "ablation_wide_d"):
        for c in expand(TASK, profile=profile):
            assert c.train.eps == 0.25 * math.sqrt(c.width)  # exactly, not a rounded copy


def test_profiles_shared_settings_are_shared_cells():
    """A configuration two sweeps declare is one cell (one id), trained once into the store."""
    lr = {c.cell_id for c in expand(TASK, profile="ablation_lr")}
    eps = {c.cell_id for c in expand(TASK, profile="ablation_eps")}
    shared = [c for c in expand(TASK, profile="ablation_eps") if c.cell_id in lr]
    assert lr & eps and {(c.train.eps, c.train.lr_w, c.train.lr_v) for c in shared} == {(1.0, 0.1, 0.1)}


def test_ablation_profiles_are_plain_data_and_survive_toml(tmp_path, monkeypatch):
    from bench_suite.grid import profiles as grid  # where the loaded profile files are held

    monkeypatch.setattr(grid, "_FILE_PROFILES", {})  # the copies stay in this test
    profiles = TASKS.get(TASK).profiles
    for name in EXPECTED:
        assert json.loads(json.dumps(profiles[name])) == profiles[name]
    # every exported profile gets a new name: a file may not shadow a built-in profile
    text = export_profiles([TASK]).replace(f"[{TASK}.", f"[{TASK}.copy_")
    path = tmp_path / "profiles.toml"
    path.write_text(text)
    load_profile_file(path)
    for name in EXPECTED:
        original = {c.cell_id for c in expand(TASK, profile=name)}
        assert {c.cell_id for c in expand(TASK, profile="copy_" + name)} == original


def test_an_exported_file_loads_with_one_profile_renamed_and_edited(tmp_path, monkeypatch):
    # README: `list --profiles --export > mine.toml`, edit, `--profile-file mine.toml`: the
    # unchanged copies of built-in profiles are ignored, an edited one must get another name
    import re

    from bench_suite.grid import profiles as grid  # where the loaded profile files are held

    monkeypatch.setattr(grid, "_FILE_PROFILES", {})
    text = export_profiles()
    path = tmp_path / "mine.toml"
    path.write_text(text)
    load_profile_file(path)  # every table an unchanged built-in: nothing to refuse
    renamed = re.sub(r"^\[synthetic_ablation\.smoke([].])", r"[synthetic_ablation.my_smoke\1", text, flags=re.M)
    path.write_text(renamed)
    load_profile_file(path)
    assert {c.cell_id for c in expand(TASK, profile="my_smoke")} == {c.cell_id for c in expand(TASK, profile="smoke")}
    edited = re.sub(r"(\[synthetic_ablation\.smoke\.train\]\n(?:[^\[].*\n)*?)epochs = 200\n", r"\1epochs = 7\n", text)
    assert edited != text
    path.write_text(edited)
    with pytest.raises(GridError, match="synthetic_ablation.smoke is a built-in profile, changed here"):
        load_profile_file(path)
