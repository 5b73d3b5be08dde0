"""The result store: one JSON record per cell under ``<root>/records/<cell_id>.json``.

Layout (docs/runner.md): ``records/`` (the results), ``locks/`` (one lock file per cell ever
claimed), ``events.jsonl`` (an append-only journal: which process started and finished which
cell, for audits and tests) and ``runs/<run_id>/`` (job files and logs of parallel executors).

- Writes are atomic (write a temporary file in the same folder, fsync, rename), so a run killed
  at any moment leaves either the old record or the new one, never a torn file.
- A finished record (``done`` or ``diverged``) is never replaced by a non-finished one
  (``error``, ``skipped``, ``interrupted``, ``lost``) unless the caller forces it: no finished result is
  lost to a later failure.
- Concurrent runners coordinate through per-cell lock files (``filelock``): a runner trains a
  cell only while it holds the cell's lock, and re-reads the store after taking it. The OS
  releases the lock when a process dies, so a killed runner never blocks a cell for ever.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import filelock

FINISHED = ("done", "diverged")
STATUSES = ("done", "diverged", "error", "skipped", "interrupted", "lost")

DATAFRAME_COLUMNS = [
    "cell_id", "name", "profile", "protocol", "status", "reason", "task", "method", "width", "activation",
    "repetition", "epochs", "train_loss", "train_acc", "test_loss", "test_acc", "dist_w0", "proj_active_frac",
    "train_time_s", "wall_time_s", "flops", "group_tflops_per_s", "n", "d", "m", "k", "width_ratio", "device",
    "device_name", "precision", "data_source", "git_commit", "git_dirty",
]


class ResultStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.records_dir = self.root / "records"
        self.locks_dir = self.root / "locks"
        self.runs_dir = self.root / "runs"
        self.events_path = self.root / "events.jsonl"

    def _path(self, cell_id: str) -> Path:
        return self.records_dir / f"{cell_id}.json"

    def get(self, cell_id: str) -> dict[str, Any] | None:
        path = self._path(cell_id)
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
            # not written by us (our writes are atomic): treat as absent so the cell re-runs
            warnings.warn(f"ignoring unreadable record {path}: {exc}; the cell will be re-run", stacklevel=2)
            return None
        if not isinstance(record, dict) or record.get("status") not in STATUSES:
            warnings.warn(f"ignoring malformed record {path} (no valid status); the cell will be re-run",
                          stacklevel=2)
            return None
        return record

    def stamp(self, cell_id: str) -> tuple[int, int] | None:
        """(inode, mtime) of a cell's record file, or None: a cheap "has it changed?" test for
        watchers (every write replaces the file, so the inode changes)."""
        try:
            st = self._path(cell_id).stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def is_finished(self, cell_id: str) -> bool:
        record = self.get(cell_id)
        return record is not None and record.get("status") in FINISHED

    def write(self, record: dict[str, Any], *, force: bool = False) -> bool:
        """Atomically write ``record``; returns False when it would replace a finished record
        with a non-finished one (kept as it is unless ``force``)."""
        if record.get("status") not in STATUSES:
            raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
        cell_id = record["cell_id"]
        if not force and record["status"] not in FINISHED and self.is_finished(cell_id):
            return False
        self.records_dir.mkdir(parents=True, exist_ok=True)
        # allow_nan: a diverged cell's curves hold NaN/Inf, which Python's json reads back
        text = json.dumps(record, indent=1, sort_keys=True, allow_nan=True)
        fd, tmp = tempfile.mkstemp(dir=self.records_dir, prefix=f".{cell_id}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._path(cell_id))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.records_dir)  # the rename itself survives a power cut
        return True

    def remove_stale_temp(self, max_age_s: float = 3600.0) -> int:
        """Delete temporary files of writes that a killed process left behind (a live write
        holds its temporary file for milliseconds, so an hour-old one is an orphan)."""
        removed = 0
        if not self.records_dir.is_dir():
            return 0
        now = time.time()
        for path in self.records_dir.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > max_age_s:
                    path.unlink()
                    removed += 1
        return removed

    @contextlib.contextmanager
    def claim(self, cell_ids: list[str]) -> Iterator[list[str]]:
        """Take the locks of as many of ``cell_ids`` as are free (without waiting); yield the
        ids taken. The lock files stay on disk: deleting a lock file another process may be
        about to open would let two processes hold "the" lock at once."""
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        held: list[tuple[str, filelock.FileLock]] = []
        try:
            for cell_id in cell_ids:
                lock = filelock.FileLock(str(self.locks_dir / f"{cell_id}.lock"))
                try:
                    lock.acquire(timeout=0)
                except filelock.Timeout:
                    continue
                held.append((cell_id, lock))
            yield [cell_id for cell_id, _ in held]
        finally:
            for _, lock in held:
                lock.release()

    def log_event(self, event: str, cell_id: str, **fields: Any) -> None:
        """Append one line to ``events.jsonl``. One ``write`` of a short line in append mode
        lands whole on a local file system. Each event *starts* with a newline, so a line torn
        by a crash (no newline at its end) never swallows the next event; it alone is skipped."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"t": round(time.time(), 3), "event": event, "cell_id": cell_id, "pid": os.getpid(),
                           "host": socket.gethostname(), **fields}, sort_keys=True)
        fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, ("\n" + line).encode())
        finally:
            os.close(fd)

    def events(self) -> list[dict[str, Any]]:
        """The journal's events, oldest first (unparsable lines skipped)."""
        out = []
        try:
            lines = self.events_path.read_text().splitlines()
        except FileNotFoundError:
            return out
        for line in lines:
            if not line.strip():
                continue
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line)
                if isinstance(event, dict):
                    out.append(event)
        return out

    def records(self) -> list[dict[str, Any]]:
        """Every readable record, sorted by name then id (deterministic)."""
        out = []
        if self.records_dir.is_dir():
            for path in sorted(self.records_dir.glob("*.json")):
                record = self.get(path.stem)
                if record is not None:
                    out.append(record)
        return sorted(out, key=lambda r: (r.get("name", ""), r.get("cell_id", "")))

    def to_dataframe(self):
        """All records as a pandas DataFrame, one row per cell (columns: ``DATAFRAME_COLUMNS``)."""
        import pandas as pd

        return pd.DataFrame([flatten(r) for r in self.records()], columns=DATAFRAME_COLUMNS)


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One DataFrame row from one record (see docs/design.md)."""
    config = record.get("config", {})
    final = record.get("final", {}) or {}
    timing = record.get("timing", {}) or {}
    shape = record.get("shape", {}) or {}
    prov = record.get("provenance", {}) or {}
    return {
        "cell_id": record.get("cell_id"),
        "name": record.get("name"),
        "profile": record.get("profile"),
        "protocol": record.get("protocol"),
        "status": record.get("status"),
        "reason": record.get("reason"),
        "task": config.get("task"),
        "method": config.get("method"),
        "width": config.get("width"),
        "activation": config.get("activation"),
        "repetition": config.get("repetition"),
        "epochs": (config.get("train") or {}).get("epochs"),
        **{k: final.get(k) for k in ("train_loss", "train_acc", "test_loss", "test_acc", "dist_w0",
                                     "proj_active_frac")},
        **{k: timing.get(k) for k in ("train_time_s", "wall_time_s", "flops", "group_tflops_per_s")},
        **{k: shape.get(k) for k in ("n", "d", "m", "k", "width_ratio")},
        **{k: prov.get(k) for k in ("device", "device_name", "precision", "data_source", "git_commit", "git_dirty")},
    }


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened/fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
