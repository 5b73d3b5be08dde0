"""The code version in provenance: git in a checkout, $BENCH_SUITE_GIT_COMMIT / _DIRTY where the
tree is a copy without .git (the GPU machine's: benchmarks/gpu_session.sh)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench_suite.runner import provenance
from bench_suite.runner.provenance import GIT_COMMIT_ENV, GIT_DIRTY_ENV

ROOT = Path(__file__).resolve().parent.parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def fresh_git_state(monkeypatch):
    monkeypatch.delenv(GIT_COMMIT_ENV, raising=False)
    monkeypatch.delenv(GIT_DIRTY_ENV, raising=False)
    provenance.git_state.cache_clear()
    yield
    provenance.git_state.cache_clear()


@pytest.mark.parametrize(("dirty", "expected"), [("0", False), ("1", True), ("true", True), ("False", False),
                                                 (None, None)])
def test_the_environment_states_the_commit(monkeypatch, dirty, expected):
    monkeypatch.setattr(provenance, "_git", lambda *a: pytest.fail("git asked although the commit was given"))
    monkeypatch.setenv(GIT_COMMIT_ENV, COMMIT.upper())
    if dirty is not None:
        monkeypatch.setenv(GIT_DIRTY_ENV, dirty)
    assert provenance.git_state() == {"git_commit": COMMIT, "git_dirty": expected}


def test_a_malformed_value_is_ignored_with_a_warning(monkeypatch):
    answers = {("rev-parse", "HEAD"): "f" * 40, ("status", "--porcelain", "--untracked-files=no"): ""}
    monkeypatch.setattr(provenance, "_git", lambda *a: answers[a])
    monkeypatch.setenv(GIT_COMMIT_ENV, "HEAD")  # not a commit: git is asked
    with pytest.warns(UserWarning, match="BENCH_SUITE_GIT_COMMIT='HEAD' is not a commit"):
        assert provenance.git_state() == {"git_commit": "f" * 40, "git_dirty": False}
    provenance.git_state.cache_clear()
    monkeypatch.setenv(GIT_COMMIT_ENV, COMMIT)
    monkeypatch.setenv(GIT_DIRTY_ENV, "maybe")
    with pytest.warns(UserWarning, match="recorded as unknown"):
        assert provenance.git_state() == {"git_commit": COMMIT, "git_dirty": None}


def test_a_checkout_answers_from_git():
    state = provenance.git_state()
    if shutil.which("git") is None or state["git_commit"] is None:
        pytest.skip("not a git checkout, or no git here")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert state["git_commit"] == head and isinstance(state["git_dirty"], bool)


def test_a_copy_without_git_takes_the_commit_from_the_environment(tmp_path):
    # the GPU machine gets the tree without .git: git cannot say, the variables can
    shutil.copytree(ROOT / "bench_suite", tmp_path / "bench_suite", ignore=shutil.ignore_patterns("__pycache__"))
    code = "import json; from bench_suite.runner.provenance import git_state; print(json.dumps(git_state()))"
    env = {k: v for k, v in os.environ.items() if k not in (GIT_COMMIT_ENV, GIT_DIRTY_ENV)}
    env.update(PYTHONPATH=str(tmp_path), GIT_CEILING_DIRECTORIES=str(tmp_path.parent))

    def state(**extra):
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, **extra}, capture_output=True,
                             text=True, check=True)
        return json.loads(out.stdout)

    assert state() == {"git_commit": None, "git_dirty": None}
    assert state(**{GIT_COMMIT_ENV: COMMIT, GIT_DIRTY_ENV: "0"}) == {"git_commit": COMMIT, "git_dirty": False}
