"""The layering is a contract: stages import only downward and no library module imports the
command line (import-linter, `[tool.importlinter]` in pyproject.toml); docs/architecture.md is
the graph of the code's real imports, regenerated when they change."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                                      "sys.exit(lint_imports_command())"]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the package of `root`, whatever else is installed
    return subprocess.run([*LINT_IMPORTS, "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_import_contracts_hold():
    out = lint_imports(ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "Stages import only downward KEPT" in out.stdout
    assert "No library module imports the command line KEPT" in out.stdout


def test_an_upward_import_breaks_both_contracts(tmp_path):
    # the contract can fail: the core importing the command line breaks the layers and the ban
    shutil.copytree(ROOT / "bench_suite", tmp_path / "bench_suite", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    seeds = tmp_path / "bench_suite" / "core" / "seeds.py"
    seeds.write_text(seeds.read_text() + "\n\ndef _upward():\n    from ..cli import main\n\n    return main\n")
    out = lint_imports(tmp_path)
    assert out.returncode == 1, out.stdout[-3000:]
    assert "Stages import only downward BROKEN" in out.stdout
    assert "No library module imports the command line BROKEN" in out.stdout
    assert "bench_suite.core.seeds -> bench_suite.cli" in out.stdout


def test_every_stage_is_in_the_contract():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import architecture
    finally:
        sys.path.remove(str(ROOT / "tools"))
    stages = {s for level in architecture.layers() for s in level}
    on_disk = {p.name for p in (ROOT / "bench_suite").iterdir()
               if p.is_dir() and (p / "__init__.py").exists()}
    on_disk |= {p.stem for p in (ROOT / "bench_suite").glob("*.py") if not p.stem.startswith("_")}
    assert stages == on_disk


def test_the_committed_diagram_is_the_code_s():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "architecture.py"), "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr + " (regenerate: python tools/architecture.py)"
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert "```mermaid" in text and "cli --> api" in text and "core -->" not in text
