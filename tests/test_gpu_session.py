"""benchmarks/gpu_session.sh on the CPU at a tiny scale: one GPU call, one repetition, nothing lost.

Each call runs the script in a subprocess as the device would (its own $OUT, a store outside the
tree in WORK, the tree's returned records in SEED_STORE), with a 64-image CIFAR zip and ad hoc
cells (RUN_ARGS); a sitecustomize tells every process's reader to expect the tiny counts.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from data_fixtures import write_cifar_zip

from bench_suite.core.records import Record
from bench_suite.store.result_store import ResultStore

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_session.sh"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TINY = "--option n_train=64 --option n_test=20 --epochs 4 --eval-every 2 --width 16 --activation relu"
NAME = re.compile(r"[A-Za-z0-9._-]+")

# a call takes ~10 s here (several Python start-ups): the tests that make calls are marked slow

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The tiny zip and an environment for the script's subprocesses."""
    tmp = tmp_path_factory.mktemp("gpu_session")
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import bench_suite.data.cifar10 as c\nc.CIFAR10_COUNTS = {'train': 80, 'test': 20}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_SUITE_")}
    env.update(PYTHONPATH=f"{site}:{ROOT}", DATA=str(write_cifar_zip(tmp / "cifar10-tiny.zip",
                                                                     per_class={"train": 8, "test": 2})),
               DEVICE="cpu", PYTHON=sys.executable, OMP_NUM_THREADS="1", TAR_EVERY="1", DOCTOR_SECONDS="2",
               RUN_ARGS=TINY, BENCH_SUITE_GIT_COMMIT=COMMIT, BENCH_SUITE_GIT_DIRTY="0")
    return tmp, env


def session_env(env, out, work, seed, **extra):
    return {**env, "OUT": str(out), "WORK": str(work), "SEED_STORE": str(seed), **extra}


def call(env, cwd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
                          **kwargs)
    check_out(Path(env["OUT"]))
    return proc


def check_out(out: Path) -> None:
    """What a device call brings back: here at most 3 files, at most 2 folders down, plain names."""
    files = [p for p in out.rglob("*") if not p.is_dir()]
    assert len(files) <= 3, files
    for p in files:
        rel = p.relative_to(out)
        assert p.is_file() and not p.is_symlink() and len(rel.parts) <= 3, rel
        assert all(NAME.fullmatch(part) for part in rel.parts), rel


def tarball_records(out: Path) -> list[Record]:
    """The records of $OUT/store.tar.gz, each validated; no checkpoint, lock or temporary file in it."""
    with tarfile.open(out / "store.tar.gz") as tar:
        names = tar.getnames()
        assert not [n for n in names if re.search(r"(^|/)(checkpoints|locks|rejected|runs)(/|$)|\.tmp$", n)], names
        return [Record.from_json(tar.extractfile(m).read().decode(), expected_id=Path(m.name).stem)
                for m in tar.getmembers() if m.isfile() and re.fullmatch(r"\./records/[^/]+\.json", m.name)]


def unpack(out: Path, store: Path) -> None:
    """What docs/performance.md says to do with a call's tarball: unpack it into the tree's store."""
    store.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xzf", str(out / "store.tar.gz"), "-C", str(store)], check=True)


@pytest.fixture(scope="module")
def first_repetition(base):
    """A fresh machine stopped by the budget (the doctor killed at its time limit), then the same
    warm machine (WORK kept) called again."""
    tmp, env = base
    work, seed = tmp / "work1", tmp / "tree1" / "store"
    stopped = call(session_env(env, tmp / "out1", work, seed, BUDGET="0.001"), tmp)
    checkpoints = sorted(p.name for p in (work / "store" / "checkpoints").glob("*"))
    resumed = call(session_env(env, tmp / "out2", work, seed), tmp)
    return tmp, env, stopped, checkpoints, resumed


@pytest.mark.slow
def test_a_budget_stop_then_a_warm_call_resumes_from_the_checkpoint(first_repetition):
    tmp, _, stopped, checkpoints, resumed = first_repetition
    assert stopped.returncode == 75, stopped.stdout + stopped.stderr
    assert "repetition 0 of 0..2" in stopped.stdout and "call again on this warm machine" in stopped.stdout
    assert "doctor: stopped after 2 s (information only)" in stopped.stdout
    assert any(name.endswith(".pt") for name in checkpoints)  # in WORK, outside the tree and $OUT
    (interrupted,) = tarball_records(tmp / "out1")
    assert interrupted.status == "interrupted"
    assert sorted(p.name for p in (tmp / "out1").iterdir()) == ["doctor.txt", "session.log", "store.tar.gz"]
    log = (tmp / "out1" / "session.log").read_text()
    assert "--time-budget 0.001" in log and "exit 75" in log

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "repetition 0 is finished; unfinished now: 1 2" in resumed.stdout
    (done,) = tarball_records(tmp / "out2")
    assert done.status == "done" and done.config["repetition"] == 0 and done.cell_id == interrupted.cell_id
    assert done.timing["resumed_at_epochs"] == [2]  # from the checkpoint the first call left
    assert done.provenance["git_commit"] == COMMIT and done.provenance["git_dirty"] is False


@pytest.mark.slow
def test_a_fresh_machine_with_the_returned_records_runs_the_next_repetition(first_repetition):
    tmp, env, *_ = first_repetition
    tree_store = tmp / "tree2" / "reports" / "paper" / "store"
    unpack(tmp / "out2", tree_store)
    assert [r.status for r in ResultStore(tree_store).records()] == ["done"]
    proc = call(session_env(env, tmp / "out3", tmp / "work3", tree_store), tmp)  # WORK empty: a new machine
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "repetition 1 of 0..2 (unfinished: 1 2)" in proc.stdout
    records = {r.config["repetition"]: r.status for r in tarball_records(tmp / "out3")}
    assert records == {0: "done", 1: "done"}
    # the tree's records were read, not re-run: one cell trained in this call
    assert "1 cells: 0 finished in the store, 1 to run" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("moment", "doctor_s"), [("gpu_session: doctor --device", "30"), ("1 cells:", "2")],
                         ids=["during-doctor", "during-run"])
def test_kill_9_of_the_whole_call_leaves_a_valid_tarball_and_the_log(first_repetition, moment, doctor_s):
    # the device kills a call at its time limit: only what is in $OUT then comes back
    tmp, env, *_ = first_repetition
    tree_store = tmp / f"tree-kill-{doctor_s}" / "store"
    unpack(tmp / "out2", tree_store)
    out = tmp / f"out-kill-{doctor_s}"
    proc = subprocess.Popen(["bash", str(SCRIPT)], env=session_env(env, out, tmp / f"work-kill-{doctor_s}",
                                                                    tree_store, DOCTOR_SECONDS=doctor_s),
                            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    log = out / "session.log"
    deadline = time.monotonic() + 120
    while not (log.exists() and moment in log.read_text()):  # the doctor running, or `run` training
        assert proc.poll() is None and time.monotonic() < deadline, "the call ended before the moment"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    check_out(out)
    assert [(r.config["repetition"], r.status) for r in tarball_records(out)] == [(0, "done")]
    assert "repetition 1 of 0..2" in log.read_text()


@pytest.mark.slow
def test_a_failing_doctor_does_not_stop_the_grid(base):
    tmp, env = base
    fake = tmp / "python-failing-doctor"  # `python -m bench_suite doctor` reports a mismatch
    fake.write_text(f"#!/bin/sh\nif [ \"$3\" = doctor ]; then echo '[FAIL] fused = alone: 0.1'; exit 1; fi\n"
                    f"exec {sys.executable} \"$@\"\n")
    fake.chmod(0o755)
    out = tmp / "out-doctor"
    proc = call(session_env(env, out, tmp / "work-doctor", tmp / "none", PYTHON=str(fake)), tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "doctor: exit 1, a check failed or could not run (information only" in proc.stdout
    assert (out / "doctor.txt").read_text().startswith("[FAIL] fused = alone")
    assert [r.status for r in tarball_records(out)] == ["done"]


def test_no_data_stops_at_once_with_one_line(base):
    tmp, env = base
    ran = tmp / "python-ran"
    fake = tmp / "python-recording"
    fake.write_text(f"#!/bin/sh\ntouch {ran}\nexec {sys.executable} \"$@\"\n")
    fake.chmod(0o755)
    out = tmp / "out-nodata"
    proc = call(session_env(env, out, tmp / "work-nodata", tmp / "none", DATA=str(tmp / "missing.zip"),
                            PYTHON=str(fake)), tmp)
    assert proc.returncode == 66
    (line,) = proc.stdout.splitlines()
    assert "no CIFAR-10 zip at" in line and "missing.zip" in line and "carry .data" in line
    assert not ran.exists()  # no Python started: nothing but the check
    assert [p.name for p in out.iterdir()] == ["session.log"]


def test_print_call_names_this_checkout_s_commit():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    line = subprocess.run(["bash", str(SCRIPT), "--print-call"], capture_output=True, text=True,
                          check=True).stdout.strip()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert re.fullmatch(rf"BENCH_SUITE_GIT_COMMIT={head} BENCH_SUITE_GIT_DIRTY=[01] bash benchmarks/gpu_session.sh",
                        line), line


@pytest.mark.parametrize("path", ["reports/paper/store/checkpoints/ab.pt", "reports/paper/store/locks/ab.lock",
                                  "reports/ci/store/rejected/ab.json", "results/x/store/runs/r1/jobs.json",
                                  "elsewhere/store/checkpoints/ab.json", ".data/cifar10-jpeg.zip"])
def test_gitignore_keeps_a_store_s_working_files_and_the_data_out(path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    assert subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT).returncode == 0, path


def test_the_script_is_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    proc = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
