"""Switches in the environment (BENCH_SUITE_DEBUG, BENCH_SUITE_CUDA_GRAPHS, ...) parse one way
everywhere: 0/false/no/off/empty off, 1/true/yes/on on, anything else one line naming the
variable (exit 2 on the command line, before any work)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench_suite.cli import main
from bench_suite.core.env import FLAGS, OFF, ON, EnvVarError, check_flags, env_flag, env_flag_or_none, parse_flag

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("text", [*OFF, " 0 ", "False", "NO", "Off"])
def test_off(text):
    assert parse_flag("BENCH_SUITE_X", text) is False


@pytest.mark.parametrize("text", [*ON, " 1", "TRUE", "Yes", "ON "])
def test_on(text):
    assert parse_flag("BENCH_SUITE_X", text) is True


@pytest.mark.parametrize("text", ["2", "maybe", "enabled", "-1", "tru"])
def test_junk_is_one_line_naming_the_variable(text):
    with pytest.raises(EnvVarError) as info:
        parse_flag("BENCH_SUITE_X", text)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"$BENCH_SUITE_X={text!r} is not a switch")


def test_unset_is_the_default(monkeypatch):
    monkeypatch.delenv("BENCH_SUITE_X", raising=False)
    assert env_flag("BENCH_SUITE_X") is False and env_flag("BENCH_SUITE_X", default=True) is True
    assert env_flag_or_none("BENCH_SUITE_X") is None
    monkeypatch.setenv("BENCH_SUITE_X", "")
    assert env_flag("BENCH_SUITE_X", default=True) is False and env_flag_or_none("BENCH_SUITE_X") is False


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_a_junk_switch_stops_the_command_line_once_before_any_work(monkeypatch, capsys, tmp_path, name):
    monkeypatch.setenv(name, "maybe")
    code = main(["run", "--task", "synthetic_ablation", "--profile", "smoke", "--store", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0] == (f"bench-suite: error: ${name}='maybe' is not a switch: give 1, true, yes or on (on); "
                      f"0, false, no, off or empty (off)")
    assert not (tmp_path / "s").exists()  # nothing ran
    monkeypatch.setenv(name, "0")
    check_flags()  # a valid value passes


def test_debug_zero_means_off(monkeypatch, capsys):
    # a task typo: one line, no traceback, with BENCH_SUITE_DEBUG=0 as without it
    for value in ("0", "false", ""):
        monkeypatch.setenv("BENCH_SUITE_DEBUG", value)
        assert main(["run", "--task", "no_such_task"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_debug_on_prints_the_traceback(monkeypatch, capsys):
    monkeypatch.setenv("BENCH_SUITE_DEBUG", "yes")
    assert main(["run", "--task", "no_such_task"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_the_engine_reads_cuda_graphs_as_a_switch(monkeypatch):
    from bench_suite.train.engine import state

    monkeypatch.setenv("BENCH_SUITE_CUDA_GRAPHS", "off")
    assert state._env_flag("BENCH_SUITE_CUDA_GRAPHS") is False
    monkeypatch.setenv("BENCH_SUITE_CUDA_GRAPHS", "junk")
    with pytest.raises(EnvVarError, match="BENCH_SUITE_CUDA_GRAPHS"):
        state._env_flag("BENCH_SUITE_CUDA_GRAPHS")


def test_no_switch_is_read_any_other_way():
    """Every BENCH_SUITE_* variable read as a switch is in FLAGS and read through core.env: no
    raw read of the variable's text (tested for truth, or compared by hand) anywhere."""
    sources = [p for folder in ("bench_suite", "tests", "benchmarks", "examples")
               for p in (ROOT / folder).rglob("*.py")]
    constants = set()
    for path in sources:
        constants |= {name for name, value in re.findall(r"(\w+)\s*=\s*\"(BENCH_SUITE_[A-Z0-9_]+)\"",
                                                           path.read_text(encoding="utf-8")) if value in FLAGS}
    tokens = "|".join(sorted(constants | {f'"{name}"' for name in FLAGS}))
    raw_read = re.compile(rf"(os\.environ\.get\(|os\.getenv\(|os\.environ\[)\s*({tokens})\b(?!\]\s*=[^=])")
    offenders = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in sources
                 if path != ROOT / "bench_suite" / "core" / "env.py"
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if raw_read.search(line)]
    assert not offenders, "\n".join(offenders)
    assert {"DEBUG_ENV", "CUDA_GRAPHS_ENV", "GIT_DIRTY_ENV"} <= constants  # the scan sees the names in use


def test_a_subprocess_sees_the_same_rule(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "BENCH_SUITE_DEBUG": "0"}
    out = subprocess.run([sys.executable, "-m", "bench_suite", "run", "--task", "no_such_task"], cwd=tmp_path,
                         env=env, capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("python -m bench_suite: error: unknown task 'no_such_task'")
