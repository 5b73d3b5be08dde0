"""nox sessions. They run in the environment nox is started from (``pip install -e ".[dev]"``
first): torch is several GB, so no session builds its own virtualenv of everything (``install``
builds one that reuses this one's packages). Every session calls the interpreter nox itself runs
in (``PYTHON``), so ``/path/to/venv/bin/python -m nox -s smoke`` works without activating the venv."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import nox

PYTHON = sys.executable  # the interpreter running nox, not whichever `python` is first on PATH
ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tools"))
import reusing_venv  # noqa: E402 - tools/reusing_venv.py: a venv that reuses this one's torch

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


# ------------------------------------------------------------------------------------------
# The package as a user installs it
# ------------------------------------------------------------------------------------------
def _floor_setuptools() -> str:
    """The oldest setuptools pyproject.toml's build-system declares (``setuptools>=X``)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    (floor,) = [m.group(1) for r in requires if (m := re.fullmatch(r"setuptools\s*>=\s*([\w.]+)", r.strip()))]
    return floor


def _source_commit() -> dict:
    """This checkout's commit as the build sees it (bench_suite/core/commit.py, loaded by path)."""
    spec = importlib.util.spec_from_file_location("_commit", ROOT / "bench_suite" / "core" / "commit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.source_commit(ROOT)


def _verdicts(path: Path) -> dict:
    """What must agree between two checks of one store: the rows, summary and exit code."""
    data = json.loads(path.read_text())
    return {"verdicts": data["verdicts"], "summary": data["summary"], "exit_code": data["exit_code"]}


@nox.session
def install(session: nox.Session) -> None:
    """The package as a user gets it, outside the source tree (issue 20).

    Builds the sdist and, from it, the wheel (``python -m build``: build isolation, the newest
    setuptools), and a wheel with exactly the setuptools floor pyproject.toml declares (same
    files); installs the wheel into a fresh virtual environment that reuses this environment's
    dependencies; then, in a temporary folder outside the repository, runs ``bench-suite run
    --task synthetic_ablation --profile smoke``, ``bench-suite check --profile ci --store
    <copy of reports/ci/store>`` and ``bench-suite report``, and checks: the installed copy is
    the one running; its verdicts equal the source tree's; the run's records name this
    checkout's commit (or say "unknown" when it is no git checkout). ``-- --keep`` keeps the
    temporary folder. Needs PyPI (or its mirror) for the build's setuptools only.
    """
    keep = "--keep" in session.posargs
    tmp = Path(tempfile.mkdtemp(prefix="bench-suite-install-"))  # outside the repository
    session.log(f"working in {tmp}")
    started = time.monotonic()

    # 1. build: sdist, then the wheel from it; and a wheel with the declared setuptools floor
    dist = tmp / "dist"
    session.run(PYTHON, "-m", "build", "--outdir", str(dist), str(ROOT), silent=True)
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    floor = _floor_setuptools()
    floor_env = tmp / "floor-env"
    session.run(PYTHON, "-m", "venv", str(floor_env))
    floor_python = str(floor_env / "bin" / "python")
    session.run(floor_python, "-m", "pip", "install", "-q", f"setuptools=={floor}")
    unpacked = tmp / "sdist"
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(unpacked, filter="data")
        else:  # our own sdist
            archive.extractall(unpacked)
    (source,) = unpacked.iterdir()
    session.run(floor_python, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "-w",
                str(tmp / "floor-dist"), str(source))
    (floor_wheel,) = (tmp / "floor-dist").glob("*.whl")
    names = [sorted(n for n in zipfile.ZipFile(w).namelist() if ".dist-info/" not in n) for w in (wheel, floor_wheel)]
    if names[0] != names[1]:
        session.error(f"the wheel built with setuptools=={floor} holds other files: {set(names[0]) ^ set(names[1])}")
    session.log(f"setuptools=={floor} (the declared floor) builds the same wheel")
    for needed in ("bench_suite/py.typed", "bench_suite/_build_info.py", "bench_suite/scoring/baselines/ci.toml"):
        if needed not in names[0]:
            session.error(f"the wheel lacks {needed}")

    # 2. a fresh virtual environment with the wheel
    python = reusing_venv.create(tmp / "venv", PYTHON)
    bin_dir = python.parent
    session.run(str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BENCH_SUITE_") and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"

    def user(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        session.log(f"(in {cwd}) {' '.join(args)}")
        out = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
        sys.stderr.write(out.stderr[-2000:])
        return out

    work = tmp / "work"
    work.mkdir()
    where = user(str(python), "-c", "import bench_suite, json; from bench_suite.scoring.references import "
                 "default_baselines_path as d; print(json.dumps([bench_suite.__file__, bench_suite.__version__, "
                 "str(d())]))", cwd=work)
    location, version, baselines = json.loads(where.stdout)
    if not location.startswith(str(tmp / "venv")) or not baselines.startswith(str(tmp / "venv")):
        session.error(f"not the installed copy: bench_suite at {location}, references at {baselines}")
    session.log(f"bench_suite {version} from {location}")

    # 3. the user's three commands
    runs = user(str(bin_dir / "bench-suite"), "run", "--task", "synthetic_ablation", "--profile", "smoke", "--quiet",
                "--store", "results", cwd=work)
    if runs.returncode != 0:
        session.error(f"bench-suite run exited {runs.returncode}")
    shutil.copytree(ROOT / "reports" / "ci" / "store", work / "ci-store")
    installed = user(str(bin_dir / "bench-suite"), "check", "--profile", "ci", "--store", "ci-store", "--save",
                     "verdicts", cwd=work)
    source_env = {**env, "PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "")}
    session.log("the same check from the source tree")
    reference = subprocess.run([PYTHON, "-m", "bench_suite", "check", "--profile", "ci", "--store",
                                str(ROOT / "reports" / "ci" / "store"), "--save", str(tmp / "verdicts-source")],
                               cwd=ROOT, env=source_env, capture_output=True, text=True)
    if installed.returncode != reference.returncode:
        session.error(f"check exited {installed.returncode} installed, {reference.returncode} from the source tree")
    if _verdicts(work / "verdicts" / "verdicts.json") != _verdicts(tmp / "verdicts-source" / "verdicts.json"):
        session.error("the installed copy's verdicts differ from the source tree's")
    session.log(f"verdicts equal the source tree's: {_verdicts(work / 'verdicts' / 'verdicts.json')['summary']}")
    report = user(str(bin_dir / "bench-suite"), "report", "--profile", "ci", "--store", "ci-store",
                  "--reports-dir", "reports", cwd=work)
    if report.returncode != 0 or not list((work / "reports").rglob("report.md")):
        session.error(f"bench-suite report exited {report.returncode} (or wrote no report.md)")

    # 4. the records name this checkout's commit, or say they cannot
    expected = _source_commit()
    got = user(str(python), "-c", "import json, bench_suite as bs; r = bs.load_results('results'); print(json.dumps("
               "sorted({(c, d, s) for c, d, s in zip(r.git_commit.astype(object).where(r.git_commit.notna(), None), "
               "r.git_dirty.astype(object).where(r.git_dirty.notna(), None), r.git_commit_source)})))", cwd=work)
    states = [tuple(s) for s in json.loads(got.stdout)]
    if expected["git_commit"] is not None:
        want = [(expected["git_commit"], expected["git_dirty"], f"the build, from a {expected['git_commit_source']}")]
        if states != want:
            session.error(f"the records say {states}, expected {want}")
    elif len(states) != 1 or states[0][0] is not None or not states[0][2].startswith("unknown: "):
        session.error(f"no commit can be known here, yet the records say {states}")
    session.log(f"the records name their code: {states[0]}")
    session.log(f"install session: {time.monotonic() - started:.0f} s")
    if keep:
        session.log(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
