"""The code version in provenance, however the package is installed: $BENCH_SUITE_GIT_COMMIT /
_DIRTY for a copy without .git (the GPU machine's: benchmarks/gpu_session.sh), git in the
package's own source tree only, the commit a build or `git archive` wrote, PEP 610's
direct_url.json; "unknown" and why where nothing can be known. Installed copies (wheel, sdist,
editable) are tested in tests/test_packaging.py."""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bench_suite.core import commit as commit_mod
from bench_suite.core import version
from bench_suite.core.env import EnvVarError
from bench_suite.runner import provenance
from bench_suite.runner.provenance import GIT_COMMIT_ENV, GIT_DIRTY_ENV

ROOT = Path(__file__).resolve().parent.parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"
HAS_GIT = shutil.which("git") is not None


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def make_repo(path: Path) -> str:
    """A git repository at ``path`` with one commit; returns its HEAD."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q")
    (path / "README").write_text("a user's project\n")
    git(path, "add", "README")
    git(path, "-c", "user.name=u", "-c", "user.email=u@example.org", "commit", "-q", "-m", "x")
    return git(path, "rev-parse", "HEAD")


@pytest.fixture(autouse=True)
def fresh_git_state(monkeypatch):
    monkeypatch.delenv(GIT_COMMIT_ENV, raising=False)
    monkeypatch.delenv(GIT_DIRTY_ENV, raising=False)
    provenance.git_state.cache_clear()
    yield
    provenance.git_state.cache_clear()


@pytest.mark.parametrize(("dirty", "expected"), [("0", False), ("1", True), ("true", True), ("False", False),
                                                 ("off", False), ("", False), (None, None)])
def test_the_environment_states_the_commit(monkeypatch, dirty, expected):
    monkeypatch.setattr(provenance, "source_commit", lambda root: pytest.fail("git asked though the commit was given"))
    monkeypatch.setenv(GIT_COMMIT_ENV, COMMIT.upper())
    if dirty is not None:
        monkeypatch.setenv(GIT_DIRTY_ENV, dirty)
    assert provenance.git_state() == {"git_commit": COMMIT, "git_dirty": expected,
                                      "git_commit_source": "$BENCH_SUITE_GIT_COMMIT"}


def test_a_malformed_commit_is_ignored_with_a_warning_and_a_junk_dirty_flag_is_an_error(monkeypatch):
    monkeypatch.setenv(GIT_COMMIT_ENV, "HEAD")  # not a commit: the other sources are asked
    with pytest.warns(UserWarning, match="BENCH_SUITE_GIT_COMMIT='HEAD' is not a commit"):
        state = provenance.git_state()
    assert state["git_commit"] != "HEAD"
    provenance.git_state.cache_clear()
    monkeypatch.setenv(GIT_COMMIT_ENV, COMMIT)
    monkeypatch.setenv(GIT_DIRTY_ENV, "maybe")
    with pytest.raises(EnvVarError, match=r"\$BENCH_SUITE_GIT_DIRTY='maybe' is not a switch"):
        provenance.git_state()


@pytest.mark.skipif(not HAS_GIT, reason="no git here")
def test_the_source_tree_answers_from_git():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    state = provenance.git_state()
    assert state["git_commit"] == git(ROOT, "rev-parse", "HEAD")
    assert state["git_dirty"] == bool(git(ROOT, "status", "--porcelain", "--untracked-files=no"))
    assert state["git_commit_source"] == "git checkout"


@pytest.mark.skipif(not HAS_GIT, reason="no git here")
def test_git_is_asked_only_at_the_top_of_a_work_tree(tmp_path):
    outer = tmp_path / "project"
    head = make_repo(outer)
    inner = outer / ".venv" / "lib" / "site-packages"
    inner.mkdir(parents=True)
    assert commit_mod.source_commit(outer)["git_commit"] == head
    state = commit_mod.source_commit(inner)  # a folder inside someone else's repository
    assert state["git_commit"] is None and state["git_dirty"] is None
    assert state["git_commit_source"].startswith("unknown: ") and "another repository" in state["git_commit_source"]


def test_a_git_archive_names_its_commit(tmp_path):
    (tmp_path / ".git_archival.txt").write_text(f"node: {COMMIT}\n")
    env_ceiling = os.environ.get("GIT_CEILING_DIRECTORIES")
    os.environ["GIT_CEILING_DIRECTORIES"] = str(tmp_path.parent)
    try:
        assert commit_mod.source_commit(tmp_path) == {"git_commit": COMMIT, "git_dirty": False,
                                                      "git_commit_source": "git archive"}
        # a checkout holds the placeholder, which names nothing
        (tmp_path / ".git_archival.txt").write_text("node: $Format:%H$\n")
        assert commit_mod.archived_commit(tmp_path) is None
    finally:
        if env_ceiling is None:
            os.environ.pop("GIT_CEILING_DIRECTORIES")
        else:
            os.environ["GIT_CEILING_DIRECTORIES"] = env_ceiling


def test_the_repository_archival_file_is_substituted_by_git_archive(tmp_path):
    # the placeholder git archive fills in (export-subst): both files must stay as they are
    assert (ROOT / ".git_archival.txt").read_text() == "node: $Format:%H$\n"
    assert ".git_archival.txt export-subst" in (ROOT / ".gitattributes").read_text().splitlines()
    if not HAS_GIT or not (ROOT / ".git").exists():
        return
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD", ".git_archival.txt"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        text = tar.extractfile(".git_archival.txt").read().decode()
    (tmp_path / ".git_archival.txt").write_text(text)
    assert commit_mod.archived_commit(tmp_path) == git(ROOT, "rev-parse", "HEAD")


def test_a_build_info_module_names_the_commit(monkeypatch):
    module = type(sys)("bench_suite._build_info")
    module.GIT_COMMIT, module.GIT_DIRTY, module.GIT_COMMIT_SOURCE = COMMIT, False, "the build, from a git checkout"
    monkeypatch.setitem(sys.modules, "bench_suite._build_info", module)
    monkeypatch.setattr(version, "is_source_tree", lambda root: False)  # as in site-packages
    assert provenance.git_state() == {"git_commit": COMMIT, "git_dirty": False,
                                      "git_commit_source": "the build, from a git checkout"}


def test_a_vcs_install_names_the_commit_of_its_direct_url(monkeypatch):
    monkeypatch.setattr(version, "is_source_tree", lambda root: False)
    monkeypatch.setattr(provenance, "_build_info", lambda: None)
    info = {"url": "https://example.org/bench_suite.git", "vcs_info": {"vcs": "git", "commit_id": COMMIT}}
    monkeypatch.setattr(version, "direct_url", lambda dist: info)
    state = provenance.git_state()
    assert state["git_commit"] == COMMIT and state["git_dirty"] is False
    assert state["git_commit_source"] == "direct_url.json (https://example.org/bench_suite.git)"


def test_nothing_known_says_unknown_and_why(monkeypatch):
    monkeypatch.setattr(version, "is_source_tree", lambda root: False)
    monkeypatch.setattr(provenance, "_build_info", lambda: None)
    monkeypatch.setattr(version, "direct_url", lambda dist: None)
    state = provenance.git_state()
    assert state["git_commit"] is None and state["git_dirty"] is None
    assert state["git_commit_source"].startswith("unknown: ") and GIT_COMMIT_ENV in state["git_commit_source"]


def test_a_copy_without_git_takes_the_commit_from_the_environment(tmp_path):
    # the GPU machine gets the tree without .git: git cannot say, the variables can
    shutil.copytree(ROOT / "bench_suite", tmp_path / "bench_suite", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    code = "import json; from bench_suite.runner.provenance import git_state; print(json.dumps(git_state()))"
    env = {k: v for k, v in os.environ.items() if k not in (GIT_COMMIT_ENV, GIT_DIRTY_ENV)}
    env.update(PYTHONPATH=str(tmp_path), GIT_CEILING_DIRECTORIES=str(tmp_path.parent))

    def state(**extra):
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, **extra}, capture_output=True,
                             text=True, check=True)
        return json.loads(out.stdout)

    unknown = state()
    assert unknown["git_commit"] is None and unknown["git_dirty"] is None
    assert unknown["git_commit_source"].startswith(f"unknown: {tmp_path} is not a git checkout")
    assert state(**{GIT_COMMIT_ENV: COMMIT, GIT_DIRTY_ENV: "0"}) == {
        "git_commit": COMMIT, "git_dirty": False, "git_commit_source": "$BENCH_SUITE_GIT_COMMIT"}


def test_records_carry_the_commit_and_its_source(tmp_path):
    from bench_suite.core.records import COLUMNS

    assert "git_commit_source" in {c.name for c in COLUMNS}
    prov = provenance.collect(__import__("torch").device("cpu"), "fp32")
    assert {"git_commit", "git_dirty", "git_commit_source", "bench_suite"} <= set(prov)
    assert prov["bench_suite"] == version.__version__


def test_one_version_from_pyproject_or_the_metadata():
    import bench_suite

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert bench_suite.__version__ == declared
    # written in one place: no version literal in the package's sources
    for path in (ROOT / "bench_suite").rglob("*.py"):
        assert f'"{declared}"' not in path.read_text(encoding="utf-8"), path


def test_the_commit_is_read_when_a_run_starts_not_when_its_records_are_written(fresh_git_state, tmp_path):
    """A checkout committed to during a long run must not relabel the run's later records: the
    Runner asks for the git state once, when it is made (the code it runs is imported by then)."""
    from bench_suite.runner.runner import Runner
    from bench_suite.store.result_store import ResultStore

    assert provenance.git_state.cache_info().currsize == 0
    Runner(ResultStore(tmp_path / "s"), device="cpu")
    assert provenance.git_state.cache_info().currsize == 1
