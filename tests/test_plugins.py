"""The plug-in contract: the template plug-in (examples/my_method_plugin.py) runs from outside the
package, and ``plugin-check`` / ``bench_suite.testing`` pass it and fail broken plug-ins.

Everything runs in subprocesses from a temporary folder with PYTHONPATH pointing at the package
and at examples/, as a plug-in author would (and so no plug-in registration leaks into this
process's registries)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _bench(tmp_path, *args, extra_path=None):
    paths = [str(ROOT), str(EXAMPLES)] + ([str(extra_path)] if extra_path else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    env.pop("BENCH_SUITE_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "bench_suite", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path)


@pytest.mark.slow
def test_the_template_plug_in_runs_from_outside_the_package(tmp_path):
    listed = _bench(tmp_path, "--plugin", "my_method_plugin", "list")
    assert listed.returncode == 0, listed.stderr
    assert "mli_paired_pgd_clipped" in listed.stdout and "teacher_student" in listed.stdout
    store = tmp_path / "store"
    proc = _bench(tmp_path, "--plugin", "my_method_plugin", "run", "--task", "teacher_student", "--profile", "smoke",
                  "--store", str(store), "--quiet", "--threads", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = {r["config"]["method"]: r for r in (json.loads(p.read_text()) for p in (store / "records").glob("*"))}
    assert set(records) == {"mli_paired_pgd_clipped", "mli_paired_pgd"}
    mine, builtin = records["mli_paired_pgd_clipped"], records["mli_paired_pgd"]
    assert mine["status"] == builtin["status"] == "done"
    assert mine["timing"]["trainer"] == "reference" and builtin["timing"]["trainer"] == "fused"
    assert mine["timing"]["engine"].endswith("/step=clipped_step")
    assert mine["w0_digest"] == builtin["w0_digest"] and mine["label_digest"] == builtin["label_digest"]
    # a plug-in method's cells carry its code's fingerprint (its functions' source)
    assert mine["provenance"]["code_version"]["method"] != builtin["provenance"]["code_version"]["method"]
    assert mine["final"]["train_loss"] != builtin["final"]["train_loss"]  # clipping at norm 0.1 is active
    # a plug-in method on a built-in task, beside the built-ins
    proc = _bench(tmp_path, "--plugin", "my_method_plugin", "run", "--task", "synthetic_ablation", "--profile",
                  "smoke", "--method", "mli_paired_pgd_clipped", "--option", "n=64", "--option", "d=16", "--width",
                  "8", "--store", str(tmp_path / "s2"), "--quiet", "--threads", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_plugin_check_passes_the_template(tmp_path):
    proc = _bench(tmp_path, "plugin-check", "my_method_plugin")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "plugin-check my_method_plugin: 7 ok, 0 failed, 0 skipped"
    names = [line.split("] ", 1)[1].split(":", 2)[:2] for line in lines[1:-1]]
    assert ["method mli_paired_pgd_clipped", " determinism"] in names
    assert ["task teacher_student", " seed pairing"] in names


def test_the_pytest_helper_passes_the_template(tmp_path):
    code = ("from bench_suite.testing import assert_plugin_contract\n"
            "checks = assert_plugin_contract('my_method_plugin')\n"
            "print(len(checks), sorted({c.status for c in checks}))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLES)])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "7 ['ok']"


BROKEN = {
    # a step that draws from the global generator: not reproducible from the seeds
    "noisy_plugin": """
        import torch
        from bench_suite.methods import METHODS, Method
        from bench_suite.train.reference import default_step

        def noisy(model, batch, state):
            with torch.no_grad():
                model.w.add_(1e-3 * torch.randn(model.w.shape, dtype=model.w.dtype))
            return default_step(model, batch, state)

        METHODS.add("noisy", Method("noisy", "x", init="lecun", output="free", constrained=False, train_step=noisy))
    """,
    # a step that raises: its cells are error records
    "raising_plugin": """
        from bench_suite.methods import METHODS, Method

        def boom(model, batch, state):
            raise ZeroDivisionError("oops")

        METHODS.add("boom", Method("boom", "x", init="lecun", output="free", constrained=False, train_step=boom))
    """,
    "empty_plugin": """
        x = 1
    """,
}


def _write(tmp_path, name):
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(BROKEN[name]))
    return folder


def test_plugin_check_fails_a_non_deterministic_step(tmp_path):
    proc = _bench(tmp_path, "plugin-check", "noisy_plugin", extra_path=_write(tmp_path, "noisy_plugin"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "[FAIL] method noisy: determinism: a second run differs" in proc.stdout


def test_plugin_check_fails_a_raising_step_with_its_reason(tmp_path):
    proc = _bench(tmp_path, "plugin-check", "raising_plugin", extra_path=_write(tmp_path, "raising_plugin"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    fail = next(line for line in proc.stdout.splitlines() if line.startswith("[FAIL] method boom: record"))
    assert "ended error" in fail and "ZeroDivisionError: oops" in fail


def test_plugin_check_of_a_plug_in_that_registers_nothing_or_is_missing(tmp_path):
    proc = _bench(tmp_path, "plugin-check", "empty_plugin", extra_path=_write(tmp_path, "empty_plugin"))
    assert proc.returncode == 1 and "registers no method and no task" in proc.stdout
    proc = _bench(tmp_path, "plugin-check", "no_such_plugin_module")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "cannot be found" in lines[0], proc.stderr
