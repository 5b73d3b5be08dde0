"""nox sessions. They run in the environment nox is started from (``pip install -e ".[dev]"``
first): torch is several GB, so no session builds its own virtualenv. Every session calls the
interpreter nox itself runs in (``PYTHON``), so ``/path/to/venv/bin/python -m nox -s smoke``
works without activating the venv."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import nox

PYTHON = sys.executable  # the interpreter running nox, not whichever `python` is first on PATH
ROOT = Path(__file__).resolve().parent

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (the README's test command); extra arguments go to pytest."""
    session.run(PYTHON, "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, benchmarks, tools and build files; the layering contract
    (import-linter, `[tool.importlinter]` in pyproject.toml); the architecture diagram is current."""
    session.run(PYTHON, "-m", "ruff", "check", "bench_suite", "tests", "benchmarks", "tools", "examples", "noxfile.py",
                "setup.py", *session.posargs)
    env = {"PYTHONPATH": str(ROOT)}  # this tree's package, whatever is installed
    session.run(PYTHON, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                "sys.exit(lint_imports_command())", "--no-cache", env=env)
    session.run(PYTHON, str(ROOT / "tools" / "architecture.py"), "--check", env=env)


@nox.session
def smoke(session: nox.Session) -> None:
    """The `smoke` profile of every task (CPU, about two minutes); extra arguments go to `run`."""
    session.run(PYTHON, "-m", "bench_suite", "run", "--profile", "smoke", "--quiet", *session.posargs,
                success_codes=[0, 3])


def _store_args(posargs: list[str]) -> list[str]:
    """The `--store DIR` (old spelling `--out`) of the run, passed on to check and report: one store."""
    for i, arg in enumerate(posargs):
        if arg in ("--out", "--store") and i + 1 < len(posargs):
            return ["--store", posargs[i + 1]]
        if arg.startswith(("--out=", "--store=")):
            return ["--store", arg.split("=", 1)[1]]
    return []


@nox.session
def reproduce(session: nox.Session) -> None:
    """run -> check -> report: the `paper` profile on a CUDA device, else the `ci` profile.

    Extra arguments go to `run` (e.g. `nox -s reproduce -- --data-root PATH --repetitions 3`); a
    `--profile` among them overrides the choice. The report is written whatever the verdicts;
    the session fails only if `check` finds a FAIL (or a step errors).
    """
    posargs = list(session.posargs)
    profile = None
    for i, arg in enumerate(posargs):
        if arg == "--profile" and i + 1 < len(posargs):
            profile = posargs[i + 1]
        elif arg.startswith("--profile="):
            profile = arg.split("=", 1)[1]
    if profile is None:
        has_cuda = session.run(PYTHON, "-c", "import torch; print(int(torch.cuda.is_available()))",
                               silent=True).strip().endswith("1")
        profile = "paper" if has_cuda else "ci"
        posargs = ["--profile", profile, *posargs]
    session.log(f"profile: {profile}")
    store = _store_args(posargs)
    # run: 1 = some cell errored/diverged, 3 = some skipped (data missing): both still get checked and reported
    session.run(PYTHON, "-m", "bench_suite", "run", "--quiet", *posargs, success_codes=[0, 1, 3])
    session.run(PYTHON, "-m", "bench_suite", "report", "--profile", profile, *store)
    # the gate: the verdicts again (cheap, read from the store); any FAIL (exit 1) fails the session
    session.run(PYTHON, "-m", "bench_suite", "check", "--profile", profile, *store, success_codes=[0, 3])


@nox.session
def bench(session: nox.Session) -> None:
    """asv benchmarks (benchmarks/benchmarks.py) in this environment: asv builds nothing.

    ``nox -s bench``: a quick run of the working tree (each benchmark once, about 20 s on 2
    cores); it fails when a benchmark raises, never on a timing.

    ``nox -s bench -- A B``: the suite (this working tree's benchmarks/) against the package of
    commit A, then of commit B, each exported with ``git archive`` and put first on the
    benchmarks' path (ASV_PYTHONPATH); results go to .asv/results under each commit's hash,
    then ``asv compare A B`` prints the changes. This is what ``asv continuous A B`` does, which
    asv refuses in an "existing" environment (no commit ranges there). Timings never fail it.
    """
    asv = [PYTHON, "-m", "asv"]
    session.run(*asv, "machine", "--yes", silent=True)  # asv needs a machine description once
    if not session.posargs:
        # this working tree's package first on the benchmarks' path, whatever bench_suite is installed
        session.run(*asv, "run", "--quick", "--python=same", "--show-stderr", env={"ASV_PYTHONPATH": str(ROOT)})
        return
    if len(session.posargs) != 2:
        session.error("usage: nox -s bench [-- BASE_COMMIT HEAD_COMMIT]")
    hashes = []
    for rev in session.posargs:
        sha = session.run("git", "rev-parse", "--verify", f"{rev}^{{commit}}", silent=True, external=True).strip()
        # absolute: asv runs the benchmarks from another working directory
        src = (Path(session.create_tmp()) / f"bench-src-{sha[:12]}").resolve()
        _export_package(sha, src)
        # 2: some benchmark failed (e.g. it uses an API the older commit lacks); shown, not fatal
        session.run(*asv, "run", "--python=same", "--set-commit-hash", sha, "--show-stderr",
                    env={"ASV_PYTHONPATH": str(src)}, success_codes=[0, 2])
        hashes.append(sha)
    session.run(*asv, "compare", "--split", "--factor", "1.1", *hashes)


def _export_package(commit: str, dest: Path) -> None:
    """``bench_suite/`` as it is in ``commit``, written under ``dest`` (replaced)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    tar = subprocess.run(["git", "archive", "--format=tar", commit, "bench_suite"], check=True,
                         capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            archive.extractall(dest, filter="data")
        else:  # our own repository's archive
            archive.extractall(dest)
