"""nox sessions. They run in the environment nox is started from (``pip install -e ".[dev]"``
first): torch is several GB, so no session builds its own virtualenv."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (the README's test command); extra arguments go to pytest."""
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, benchmarks and scripts."""
    session.run("ruff", "check", "bench_suite", "tests", "benchmarks", "scripts", "noxfile.py", *session.posargs)


@nox.session
def smoke(session: nox.Session) -> None:
    """The `smoke` profile of every task (CPU, about two minutes); extra arguments go to `run`."""
    session.run("python", "-m", "bench_suite", "run", "--profile", "smoke", "--quiet", *session.posargs,
                success_codes=[0, 3])
