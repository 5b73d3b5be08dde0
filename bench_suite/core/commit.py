"""The git commit of a bench_suite source tree: asked of git, or read from a ``git archive``.

Standard library only and no relative imports: the build (setup.py) loads this file by its
path to write the commit into a wheel or an sdist (``bench_suite/_build_info.py``), and the
runtime (:mod:`bench_suite.runner.provenance`) uses it for a source tree. git is asked only
when ``root`` is the top level of its work tree, so a package folder that happens to sit inside
someone else's repository (a virtual environment in a user's project) never takes that
repository's commit as its own.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ARCHIVAL_FILE = ".git_archival.txt"  # `git archive` writes the commit into it (export-subst in .gitattributes)
COMMIT_RE = re.compile(r"[0-9a-fA-F]{7,40}")


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def archived_commit(root: Path) -> str | None:
    """The commit ``git archive`` substituted into ``root/.git_archival.txt`` (``node: <sha>``),
    None when the file is absent or unsubstituted (a checkout holds the placeholder)."""
    try:
        text = (root / ARCHIVAL_FILE).read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"(?m)^node:\s*([0-9a-fA-F]{40})\s*$", text)
    return match.group(1).lower() if match else None


def source_commit(root: str | Path) -> dict:
    """``{"git_commit", "git_dirty", "git_commit_source"}`` of the source tree ``root``:

    - ``root`` is the top level of a git work tree: HEAD, and whether tracked files differ from
      it (``git status --porcelain --untracked-files=no``); source ``"git checkout"``;
    - ``root`` is an extracted ``git archive``: the commit written into ``.git_archival.txt``,
      clean by construction; source ``"git archive"``;
    - else commit and dirty None, source ``"unknown: <why>"``.
    """
    root = Path(root).resolve()
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is not None and Path(top).resolve() == root:
        commit = _git(root, "rev-parse", "HEAD")
        if commit is not None:
            status = _git(root, "status", "--porcelain", "--untracked-files=no")
            return {"git_commit": commit.lower(), "git_dirty": bool(status) if status is not None else None,
                    "git_commit_source": "git checkout"}
        why = f"{root} is a git work tree without a commit"
    elif top is not None:
        why = f"{root} is not the top of a git work tree (that is {top}, another repository)"
    else:
        why = f"{root} is not a git checkout (or git is not installed)"
    archived = archived_commit(root)
    if archived is not None:
        return {"git_commit": archived, "git_dirty": False, "git_commit_source": "git archive"}
    return {"git_commit": None, "git_dirty": None, "git_commit_source": f"unknown: {why}"}
