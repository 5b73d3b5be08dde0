"""nox sessions run the interpreter nox runs in, not whichever `python` comes first on PATH."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_a_session_works_from_a_venv_that_is_not_activated(tmp_path):
    pytest.importorskip("nox")
    # PATH holds a `python` that is not this interpreter (and cannot import bench_suite or torch)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python").write_text("#!/bin/sh\necho 'the wrong python' >&2\nexit 97\n")
    (fake_bin / "python").chmod(0o755)
    env = {**os.environ, "PATH": os.pathsep.join([str(fake_bin), "/usr/bin", "/bin"])}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run([sys.executable, "-m", "nox", "-s", "lint", "--no-color"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the wrong python" not in proc.stdout + proc.stderr
    assert shutil.which("python", path=env["PATH"]) == str(fake_bin / "python")
