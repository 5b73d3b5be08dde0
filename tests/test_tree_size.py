"""What a GPU call sends must fit, by design: the tracked tree stays within 4 MiB, so that the
tree and the 59.3 MiB CIFAR-10 zip stay under the call's 64 MiB (docs/performance.md, "The
device call")."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 4 * 2**20


def _tracked() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked tree is what a clone holds")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60, check=True).stdout
    return [ROOT / name for name in out.decode().split("\0") if name]


def _part(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    depth = 3 if parts[0] == "reports" else 1  # reports/<profile>/<file or folder>
    return "/".join(parts[:depth])


def test_the_tracked_tree_stays_within_4_mib():
    sizes = Counter()
    for path in _tracked():
        if path.is_file():
            sizes[_part(path)] += path.stat().st_size
    total = sum(sizes.values())
    largest = ", ".join(f"{name} {size / 2**20:.2f} MiB" for name, size in sizes.most_common(6))
    assert total <= LIMIT, f"the tracked tree is {total / 2**20:.2f} MiB, over 4 MiB; largest parts: {largest}"
