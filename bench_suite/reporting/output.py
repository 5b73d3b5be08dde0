"""Where a report (or an export) may write: never over results it did not make.

A folder a command writes holds a manifest (``.report-files`` for ``report``, ``.export-files``
for ``export``: JSON with the store it was made from, relative to the folder, and the files it
wrote). Writing into a folder is refused, unless ``overwrite`` (``--overwrite``), when:

- the folder holds a report made from **another store** (its manifest names a different one);
- a file the command writes is there but **not in its manifest** (someone else's file);
- a file the command writes, or one it would remove, is **tracked by git** (a committed report).

With ``overwrite`` it goes ahead and says what it replaced. Files of an earlier report that this
one does not write again are removed, only those listed in the manifest: a user's own file in
the folder is never touched.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..core.errors import PathProblem
from ..core.files import atomic_write
from . import fmt


class OutputError(PathProblem):
    """The folder holds results this command did not make: one line saying whose and what to pass."""


@dataclass
class Claimed:
    """A folder the command may write: its previous files (the manifest's) and what it says
    about replacing them (one line each, for the user)."""

    folder: Path
    manifest: str
    store_label: str
    previous: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def git_tracked(folder: Path) -> set[str]:
    """Files under ``folder`` that git tracks (paths relative to it, POSIX); empty when git is
    missing or the folder is not in a work tree."""
    if not folder.is_dir():
        return set()
    try:
        proc = subprocess.run(["git", "ls-files", "-z", "--", "."], cwd=folder, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return set()
    if proc.returncode != 0:
        return set()
    return {p for p in proc.stdout.decode("utf-8", "replace").split("\0") if p}


def read_manifest(folder: Path, name: str) -> dict | None:
    """The manifest of ``folder`` (None: none). The old plain-text form (one plot name a
    line, in ``plots/``) reads as files of an unknown store."""
    path = folder / name
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {"store": None, "files": [f"plots/{n}" for n in text.split() if "/" not in n]}
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        return {"store": None, "files": []}
    return data


def claim(folder: Path, store: Path, names: Iterable[str], *, overwrite: bool, manifest: str = ".report-files",
          what: str = "report", option: str = "--dir") -> Claimed:
    """Check that ``folder`` may take the files ``names`` (relative paths; a name ending in
    ``/`` stands for everything under that folder) written from ``store``. Raises
    :class:`OutputError` (one line) when it holds results this command did not make, unless
    ``overwrite``. Nothing is written here."""
    folder = Path(folder)
    store_label = fmt.relative_to(store, folder)
    old = read_manifest(folder, manifest) if folder.is_dir() else None
    previous = [str(f) for f in (old or {}).get("files", []) if _inside(str(f))]
    result = Claimed(folder, manifest, store_label, previous)
    if not folder.is_dir():
        return result
    problems = []
    if old is not None and old.get("store") is not None:
        made_from = (folder / str(old["store"])).resolve()
        if made_from != Path(store).resolve():
            problems.append(f"it holds a {what} made from another store ({old['store']})")
    names = list(names)
    existing = _existing(folder, names)
    foreign = sorted(set(existing) - set(previous) - {manifest})
    if foreign:
        problems.append(f"{len(foreign)} file(s) there were not written by `{what}` ({_few(foreign)})")
    tracked = git_tracked(folder)
    touched = (set(existing) | set(previous) | {manifest}) & tracked
    if touched:
        problems.append(f"{len(touched)} file(s) there are tracked by git, committed results ({_few(sorted(touched))})")
    if problems and not overwrite:
        raise OutputError(f"{option} {folder}: {'; '.join(problems)}; pass --overwrite to replace them "
                          f"(overwrite=True in Python), or write elsewhere with {option} DIR")
    result.messages = [f"overwriting in {folder}: {p}" for p in problems]
    return result


def finish(claimed: Claimed, written: Iterable[Path | str]) -> list[str]:
    """Remove the previous files (the manifest's) that this run did not write again, and write
    the manifest. Returns the removed names."""
    folder = claimed.folder
    now = sorted({Path(p).resolve().relative_to(folder.resolve()).as_posix() for p in written})
    removed = []
    for name in claimed.previous:
        if name not in now and (folder / name).is_file():
            (folder / name).unlink()
            removed.append(name)
    for sub in sorted({str(Path(n).parent) for n in removed} - {"."}, key=len, reverse=True):
        try:
            (folder / sub).rmdir()  # only if it is now empty: a user's file keeps it
        except OSError:
            pass
    atomic_write(folder / claimed.manifest, json.dumps({"made_by": f"bench_suite {claimed.manifest.strip('.')}",
                                                        "store": claimed.store_label, "files": now},
                                                       indent=1, sort_keys=True) + "\n")
    return removed


def _inside(name: str) -> bool:
    """A manifest entry that stays inside its folder (a hand-edited ``../x`` is ignored)."""
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def _existing(folder: Path, names: list[str]) -> list[str]:
    out = []
    for name in names:
        if name.endswith("/"):
            sub = folder / name
            if sub.is_dir():
                out += [p.relative_to(folder).as_posix() for p in sub.rglob("*") if p.is_file()]
        elif (folder / name).exists():
            out.append(name)
    return out


def _few(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def default_folder(store: Path) -> Path:
    """Where a report goes when no folder is named: ``<store>/report`` (beside the records it
    reads, so it is the user's like the store, and two stores never share one)."""
    return Path(store) / "report"


__all__ = ["Claimed", "OutputError", "claim", "default_folder", "finish", "git_tracked", "read_manifest"]
