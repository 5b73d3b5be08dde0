"""The plug-in point for kinds of check: the outside example (examples/my_check_kind.py) registers
the kind ``ratio`` with one entry, and its reference file (examples/my_check_kind.toml) is
scored with it, in this process and through ``python -m bench_suite --plugin``."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench_suite.scoring import FAIL, INCONCLUSIVE, PASS, load_references, run_checks
from bench_suite.scoring.kinds import KINDS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def ratio_kind(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("my_check_kind", None)
    module = importlib.import_module("my_check_kind")
    yield module
    KINDS.pop("ratio", None)  # no registration leaks into other tests
    sys.modules.pop("my_check_kind", None)


def _records(ratios, *, tail=True):
    rows = []
    for r, ratio in enumerate(ratios):
        for method, loss in (("mli_paired_pgd", 0.5 * ratio), ("constraint_only", 0.5)):
            rows.append({"task": "synthetic_ablation", "profile": "ci", "protocol": 1, "method": method, "width": 20,
                         "activation": "tanh", "repetition": r, "status": "done", "train_loss": 9.0,
                         "train_loss_tail_median": loss if tail else None})
    return pd.DataFrame(rows)


def test_the_example_kind_is_one_entry_and_its_reference_file_is_scored_with_it(ratio_kind):
    assert KINDS["ratio"] is ratio_kind.RATIO
    (ref,) = load_references(EXAMPLES / "my_check_kind.toml")
    assert (ref.kind, ref.column, ref.versus) == ("ratio", "train_loss_tail_median", "constraint_only")
    assert ref.describe() == ("tail_median(train_loss)[mli_paired_pgd] / tail_median(train_loss)[constraint_only] "
                              "<= 0.8")
    ((_, v),) = run_checks(_records([0.55, 0.57, 0.60, 0.56, 0.58]), [ref]).iterrows()
    assert v.verdict == PASS and v.ours == pytest.approx(0.572) and v.n == 5
    assert v.final_verdict == FAIL and v.final_ours == pytest.approx(1.0)  # the final value, beside: 9 / 9
    assert run_checks(_records([0.9, 0.95, 0.92]), [ref]).verdict.tolist() == [FAIL]
    assert run_checks(_records([0.5, 1.1, 0.7]), [ref]).verdict.tolist() == [INCONCLUSIVE]


def test_without_the_plug_in_the_kind_is_unknown_and_with_it_check_scores_the_committed_store(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLES)])}
    env.pop("BENCH_SUITE_PLUGINS", None)
    args = ["check", "--store", str(ROOT / "reports" / "ci" / "store"), "--baselines",
            str(EXAMPLES / "my_check_kind.toml")]
    bare = subprocess.run([sys.executable, "-m", "bench_suite", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert bare.returncode == 2 and "kind must be one of" in bare.stderr and "Traceback" not in bare.stderr
    plugged = subprocess.run([sys.executable, "-m", "bench_suite", "--plugin", "my_check_kind", *args],
                             capture_output=True, text=True, env=env, cwd=tmp_path)
    assert plugged.returncode == 0, plugged.stderr
    assert "example/ablation/loss-ratio-vs-constraint_only" in plugged.stdout and "n=5/5" in plugged.stdout
