"""The result store: one JSON record per cell under ``<root>/records/<cell_id>.json``.

- Writes are atomic (write a temporary file in the same folder, fsync, rename), so a run killed
  at any moment leaves either the old record or the new one, never a torn file.
- A finished record (``done`` or ``diverged``) is never replaced by a non-finished one
  (``error``, ``skipped``, ``interrupted``) unless the caller forces it: no finished result is
  lost to a later failure.
- Concurrent runners coordinate through per-cell lock files (``filelock``): a runner trains a
  cell only while it holds the cell's lock, and re-reads the store after taking it. The OS
  releases the lock when a process dies, so a killed runner never blocks a cell for ever.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import filelock

FINISHED = ("done", "diverged")
STATUSES = ("done", "diverged", "error", "skipped", "interrupted")

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

    def _path(self, cell_id: str) -> Path:
        return self.records_dir / f"{cell_id}.json"

    def get(self, cell_id: str) -> dict[str, Any] | None:
        path = self._path(cell_id)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            # not written by us (our writes are atomic): treat as absent so the cell re-runs
            warnings.warn(f"ignoring unreadable record {path}: {exc}; the cell will be re-run", stacklevel=2)
            return None

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
        return True

    @contextlib.contextmanager
    def claim(self, cell_ids: list[str]) -> Iterator[list[str]]:
        """Take the locks of as many of ``cell_ids`` as are free; yield the ids taken."""
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
