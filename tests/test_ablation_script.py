"""scripts/ablation_study.py runs a tiny sweep and prints markdown tables (seconds)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ablation_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("ablation_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_smoke_sweep_prints_tables(study, capsys):
    assert study.main(["--sweep", "smoke", "--seeds", "2", "--detail"]) == 0
    out = capsys.readouterr().out
    assert "### sweep `smoke`" in out
    header = next(line for line in out.splitlines() if line.startswith("|") and "mli_paired_pgd" in line)
    for col in ("eps", "sgd", "constraint_only", "no_mirroring", "ordering holds"):
        assert col in header
    assert "Each method at its own best eps" in out
    assert "proj. active" in out
    # two settings x (mean ± sd) rows
    assert sum(" ± " in line for line in out.splitlines() if line.startswith("|")) >= 3


def test_sgd_is_deduplicated_and_numbers_are_finite(study):
    settings = study.SWEEPS["smoke"]()
    outcomes = study.run_settings(settings, 1, verbose=False)
    assert len(outcomes) == len(settings) * 4
    sgd = [o.train_loss for o in outcomes if o.method == "sgd"]
    assert sgd[0] == sgd[1]  # unconstrained: eps does not matter, trained once
    assert all(math.isfinite(o.train_loss) for o in outcomes)
    for o in outcomes:  # constrained cells stay inside their ball
        if o.radius is not None:
            assert o.dist_w0 <= o.radius * (1 + 1e-5)


def test_list_sweeps(study, capsys):
    assert study.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ("eps", "lr", "lr_wv", "steps", "activation", "width", "wide_d"):
        assert name in out
