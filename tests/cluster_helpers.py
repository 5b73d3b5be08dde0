"""What the real-cluster tests (tests/test_cluster_dask.py, tests/test_cluster_slurm.py) share:
`run` as a subprocess that never outlives its test, waiting for a condition with a deadline,
and the store's journal."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench_suite.store.result_store import ResultStore

_RUNS: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_run_outlives_its_test():
    """Autouse in every module that imports it: kills the test's `run` subprocesses after it."""
    yield
    while _RUNS:
        proc = _RUNS.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def run_cli(args: list[str], **kw) -> subprocess.Popen:
    """``python -m bench_suite run ARGS`` in the background (text pipes; ``kw`` to Popen)."""
    proc = subprocess.Popen([sys.executable, "-m", "bench_suite", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)
    _RUNS.append(proc)
    return proc


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    """``predicate()``'s first true value, polled until ``timeout`` seconds; fails the test if
    ``proc`` ends first (with its stderr) or the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}:\n{err[-3000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def events(store: Path, kind: str | None = None) -> list[dict]:
    """The store's journal entries (of one ``kind`` of event, or all)."""
    return [e for e in ResultStore(store).events() if kind is None or e["event"] == kind]
