"""The package installed the three ways a user does (sdist, wheel, editable) carries its reference
rows and names its code: the rows are package data (bench_suite/scoring/baselines, a link to
baselines/ in the source tree), the commit is written in at build time, an editable install asks
git in its own source tree, and a venv inside someone else's repository never takes that
repository's commit. `nox -s install` runs the user's commands against such an install."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from bench_suite.core.commit import source_commit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import reusing_venv  # noqa: E402

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

pytestmark = pytest.mark.slow
BASELINES = sorted(p.name for p in (ROOT / "baselines").glob("*.toml"))
PROBE = """
import json, bench_suite
from bench_suite.runner.provenance import git_state
from bench_suite.scoring.references import default_baselines_path, load_references
print(json.dumps({"file": bench_suite.__file__, "version": bench_suite.__version__, "state": git_state(),
                  "baselines": str(default_baselines_path()), "rows": len(load_references())}))
"""


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BENCH_SUITE_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


def probe(python: Path, cwd: Path) -> dict:
    out = subprocess.run([str(python), "-c", PROBE], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def pip_install(python: Path, *args: str) -> None:
    out = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", *args],
                         env=clean_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]


def build(source: Path, out: Path) -> tuple[Path, Path]:
    """sdist, then the wheel from it (python -m build, this environment's setuptools)."""
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
                          env=clean_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


def declared_references() -> int:
    from bench_suite.scoring.references import load_references

    return len(load_references(ROOT / "baselines"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout of bench_suite")
    return build(ROOT, tmp_path_factory.mktemp("dist"))


def test_the_build_floor_is_the_license_expression_s():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert requires == ["setuptools>=77.0.1"]  # PEP 639 `license = "MIT"` (77.0.0 was yanked)
    import setuptools

    major, minor, *_ = (int(x) for x in setuptools.__version__.split(".")[:2])
    assert (major, minor) >= (77, 0), "the tests build without isolation: install the test extra's setuptools"


def test_the_sdist_holds_the_rows_as_files_and_the_commit(built):
    sdist, _ = built
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1]: m for m in archive.getmembers() if "/" in m.name}
        for name in BASELINES:
            member = members[f"bench_suite/scoring/baselines/{name}"]
            assert member.isfile()  # the link resolved: the sdist is usable without the repository
            assert archive.extractfile(member).read() == (ROOT / "baselines" / name).read_bytes()
        info = archive.extractfile(members["bench_suite/_build_info.py"]).read().decode()
    assert not any(m.issym() or m.islnk() for m in members.values())
    state = source_commit(ROOT)
    assert f"GIT_COMMIT = {state['git_commit']!r}" in info and f"GIT_DIRTY = {state['git_dirty']!r}" in info


def test_the_wheel_holds_rows_build_info_types_and_metadata(built):
    _, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name in BASELINES:
            assert archive.read(f"bench_suite/scoring/baselines/{name}") == (ROOT / "baselines" / name).read_bytes()
        assert "bench_suite/py.typed" in names
        info = archive.read("bench_suite/_build_info.py").decode()
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = archive.read(meta_name).decode()
        (eps_name,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = archive.read(eps_name).decode()
    assert f"GIT_COMMIT = {source_commit(ROOT)['git_commit']!r}" in info
    assert "License-Expression: MIT" in meta and "Project-URL: Paper, https://arxiv.org/abs/2210.12001" in meta
    assert "Classifier: Typing :: Typed" in meta and "Requires-Dist: pyarrow" in meta
    assert "bench-suite = bench_suite.cli:main" in entry_points


def test_a_wheel_installed_in_a_venv_inside_a_user_s_project(built, tmp_path):
    _, wheel = built
    project = tmp_path / "my_project"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    (project / "notes.txt").write_text("mine\n")
    subprocess.run(["git", "add", "notes.txt"], cwd=project, check=True)
    subprocess.run(["git", "-c", "user.name=u", "-c", "user.email=u@example.org", "commit", "-q", "-m", "mine"],
                   cwd=project, check=True)
    theirs = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    python = reusing_venv.create(project / ".venv")
    pip_install(python, str(wheel))
    got = probe(python, project)
    assert got["file"].startswith(str(project / ".venv")) and got["baselines"].startswith(str(project / ".venv"))
    assert got["rows"] == declared_references()
    state = source_commit(ROOT)
    assert got["state"] == {"git_commit": state["git_commit"], "git_dirty": state["git_dirty"],
                            "git_commit_source": "the build, from a git checkout"}
    assert got["state"]["git_commit"] != theirs
    assert got["version"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_a_copy_without_git_built_and_installed_says_unknown_not_the_user_s_commit(tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copytree(ROOT / "bench_suite", copy / "bench_suite", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    _, wheel = build(copy, tmp_path / "dist")
    project = tmp_path / "my_project"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    python = reusing_venv.create(project / ".venv")
    pip_install(python, str(wheel))
    got = probe(python, project)
    assert got["rows"] == declared_references()
    assert got["state"]["git_commit"] is None and got["state"]["git_dirty"] is None
    why = got["state"]["git_commit_source"]
    assert why.startswith("unknown: the build wrote none (") and "BENCH_SUITE_GIT_COMMIT" in why


def test_an_editable_install_reads_its_source_tree(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout of bench_suite")
    python = reusing_venv.create(tmp_path / "venv")
    pip_install(python, "-e", str(ROOT))
    got = probe(python, tmp_path)
    assert got["file"] == str(ROOT / "bench_suite" / "__init__.py")
    assert Path(got["baselines"]).resolve() == (ROOT / "baselines").resolve()  # the link: one copy
    assert got["rows"] == declared_references()
    state = source_commit(ROOT)
    assert got["state"] == state and state["git_commit_source"] == "git checkout"


def test_the_link_is_the_one_copy():
    link = ROOT / "bench_suite" / "scoring" / "baselines"
    assert link.is_symlink() and os.readlink(link) == "../../baselines"
    from bench_suite.scoring.references import packaged_baselines

    assert sorted(p.name for p in packaged_baselines().iterdir() if p.name.endswith(".toml")) == BASELINES
