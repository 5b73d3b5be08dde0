"""Files written so that nothing is ever half-written, readable as the user's umask allows.

:func:`atomic_write` writes a temporary file in the target's folder, flushes and fsyncs it,
gives it the mode a plain ``open()`` would (``0o666`` less the umask: a colleague can read a
shared store when the umask allows it), renames it over the target and fsyncs the folder, so a
process killed at any moment leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

from .errors import PathProblem


def _umask() -> int:
    """The process's umask: read from /proc where it can be (setting it to read it is not
    thread-safe), else set and set back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename in ``path`` survive a power cut (not every file system allows it: ignored)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[IO[bytes]], Any], *,
                 sync: bool = True) -> Path:
    """Write ``data`` (bytes, text as UTF-8, or a function writing to a binary file) to ``path``
    atomically; creates the folder. ``sync=False`` skips the fsyncs (scratch files). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync:
        fsync_dir(path.parent)
    return path


def writable_dir(path: str | os.PathLike, option: str) -> Path:
    """``path`` as a folder this process can write (created if needed), or :class:`PathProblem`
    naming ``option`` (the command-line option or API argument that gave it)."""
    if not str(path).strip():
        raise PathProblem(f"{option}: an empty path; give a folder")
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise PathProblem(f"{option} {p}: exists and is not a folder; give a folder path")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PathProblem(f"{option} {p}: cannot create it ({exc.strerror or exc}); give a writable folder") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise PathProblem(f"{option} {p}: not writable by this user; give a writable folder")
    return p
