"""The result store: one JSON record per cell under ``<root>/records/<cell_id>.json``.

Layout (docs/runner.md): ``records/`` (the results), ``curves/`` (the records' curves as
parquet, :mod:`bench_suite.store.curves`), ``locks/`` (one lock file per cell ever claimed),
``events.jsonl`` (an append-only journal: which process started and finished which cell, for
audits and tests) and ``runs/<run_id>/`` (job files and logs of parallel executors).

- Writes are atomic (write a temporary file in the same folder, fsync, rename), so a run killed
  at any moment leaves either the old record or the new one, never a torn file.
- A record's curves are written (``curves/<cell_id>.parquet``) before the record, so a record
  never names curves that are not there; :meth:`ResultStore.pack` merges them into one file.
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
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import filelock

from ..core.curves import thin_curves
from ..core.errors import PathProblem
from ..core.files import atomic_write
from ..core.records import FINISHED, Record, RecordError, to_frame
from .curves import CurveStore, CurveWarning, PackResult


class RecordWarning(UserWarning):
    """A record file that cannot be used (unreadable, foreign, of another version): one line."""


class ResultStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.records_dir = self.root / "records"
        self.locks_dir = self.root / "locks"
        self.runs_dir = self.root / "runs"
        self.events_path = self.root / "events.jsonl"
        self.rejected: dict[Path, str] = {}  # record files that could not be used, and why
        self.curve_files = CurveStore(self.root, self.locks_dir)
        self.curves_refused: dict[str, str] = {}  # cell id -> why its stored curves were not loaded

    def _path(self, cell_id: str) -> Path:
        return self.records_dir / f"{cell_id}.json"

    def get(self, cell_id: str, *, with_curves: bool = False) -> Record | None:
        """The cell's record, validated (:meth:`Record.from_json`), or None when there is none or
        it cannot be used (one :class:`RecordWarning` per file naming it and why; the cell then
        re-runs, and ``check``/``report`` leave the file out and say so: :attr:`rejected`).
        ``with_curves``: its stored curves loaded too (:meth:`attach_curves`)."""
        path = self._path(cell_id)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self._reject(path, f"unreadable ({exc})")
            return None
        try:
            record = Record.from_json(text, expected_id=cell_id)
        except RecordError as exc:
            self._reject(path, str(exc))
            return None
        return self.attach_curves([record])[0] if with_curves else record

    def _reject(self, path: Path, why: str) -> None:
        if path not in self.rejected:
            self.rejected[path] = why
            warnings.warn(f"ignoring record {path}: {why} (`run` re-runs its cell and keeps this file in "
                          f"{self.root / 'rejected'}; `check` and `report` leave it out)", RecordWarning, stacklevel=3)

    def _keep_aside(self, path: Path) -> None:
        """A file there that is not a usable record (unreadable, edited, of another version) is
        moved to ``<store>/rejected/`` before a new record takes its name: never lost."""
        if not path.exists():
            return
        try:
            Record.from_json(path.read_text(), expected_id=path.stem)
            return  # a good record: replaced as usual (a --force re-run)
        except (RecordError, OSError, UnicodeDecodeError):
            pass
        aside = self.root / "rejected"
        aside.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = aside / f"{path.stem}.{stamp}.{os.getpid()}.json"
        os.replace(path, target)

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
        return record is not None and record.status in FINISHED

    def write(self, record: Record, *, force: bool = False) -> bool:
        """Atomically write ``record``; returns False when it would replace a finished record
        with a non-finished one (kept as it is unless ``force``)."""
        if not isinstance(record, Record):
            raise TypeError(f"ResultStore.write takes a Record, got {type(record).__name__}")
        cell_id = record.cell_id
        if not force and record.status not in FINISHED and self.is_finished(cell_id):
            return False
        if record.schema >= 3 and record.curves is not None:  # first: a record never names missing curves
            self.curve_files.write(cell_id, thin_curves(record.curves))
        self.records_dir.mkdir(parents=True, exist_ok=True)
        self._keep_aside(self._path(cell_id))
        atomic_write(self._path(cell_id), record.to_json())
        return True

    def remove_stale_temp(self, max_age_s: float = 3600.0) -> int:
        """Delete temporary files of writes that a killed process left behind (a live write
        holds its temporary file for milliseconds, so an hour-old one is an orphan)."""
        removed = self.curve_files.remove_stale_temp(max_age_s)
        if not self.records_dir.is_dir():
            return removed
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
        """Append one line to ``events.jsonl`` (JSON Lines: each event a line ending in a newline).
        One ``write`` of a short line in append mode lands whole on a local file system. A line torn
        by a crash (the file does not end in a newline) is ended first, so it never swallows the
        next event; it alone is skipped (two writers ending it at once leave an empty line, skipped too)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"t": round(time.time(), 3), "event": event, "cell_id": cell_id, "pid": os.getpid(),
                           "host": socket.gethostname(), **fields}, sort_keys=True) + "\n"
        fd = os.open(self.events_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)  # less the umask, as open()
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            if size and os.lseek(fd, size - 1, os.SEEK_SET) >= 0 and os.read(fd, 1) != b"\n":
                line = "\n" + line  # a torn line, or a journal whose events started with their newline
            os.write(fd, line.encode())
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

    def exists(self) -> bool:
        """Whether the store's folder is there (``check``/``report`` of a store that is not: an error)."""
        return self.root.is_dir()

    def records(self, *, with_curves: bool = False) -> list[Record]:
        """Every usable record, sorted by name then id (deterministic); the files left out are
        in :attr:`rejected`. ``with_curves``: their stored curves loaded too (:meth:`attach_curves`)."""
        out = []
        if self.records_dir.is_dir():
            for path in sorted(self.records_dir.glob("*.json")):
                record = self.get(path.stem)
                if record is not None:
                    out.append(record)
        out = sorted(out, key=lambda r: (r.name, r.cell_id))
        return self.attach_curves(out) if with_curves else out

    # ----- curves -----
    def attach_curves(self, records: list[Record]) -> list[Record]:
        """``records`` with their curves in memory (``Record.curves``; the same objects where
        there is nothing to load). A schema-3 record's curves are read from ``curves/`` and
        verified against its ``curves_digest``; curves that are missing or do not match are left
        out (``curves`` None) with one :class:`~bench_suite.store.curves.CurveWarning` per record,
        and :attr:`curves_refused` says why: the record itself still counts (its ``final`` is
        in the digest-checked record). Records of schema 1 and 2 hold their curves already."""
        wanted = {r.cell_id: r.curves_digest for r in records if r.curves is None and r.curves_digest}
        if not wanted:
            return list(records)
        found, problems = self.curve_files.read(wanted)
        out = []
        for record in records:
            if record.cell_id in found:
                record = record.replace(curves=found[record.cell_id])
            elif record.cell_id in problems:
                why = problems[record.cell_id]
                if self.curves_refused.get(record.cell_id) != why:
                    self.curves_refused[record.cell_id] = why
                    warnings.warn(f"leaving out the curves of {record.name} ({record.cell_id}): {why}; the record "
                                  f"still counts (re-run the cell with --force to store its curves again)",
                                  CurveWarning, stacklevel=3)
            out.append(record)
        return out

    def curves(self, cell_ids: list[str] | None = None) -> dict[str, dict[str, list]]:
        """``{cell_id: {curve: values}}`` of the records of ``cell_ids`` (default: every record)
        whose curves could be loaded (:meth:`attach_curves`): ``epoch``/``eval_epoch`` and the
        curves indexed by them, as ``Record.curves``."""
        if cell_ids is None:
            records = self.records()
        else:
            records = [r for r in (self.get(c) for c in cell_ids) if r is not None]
        return {r.cell_id: r.curves for r in self.attach_curves(records) if r.curves is not None}

    def pack(self, *, timeout_s: float = 60.0) -> PackResult:
        """Merge the loose curves files (those matching their records) and any earlier pack into
        one ``curves/pack-<sha256>.parquet`` and delete what was merged
        (:meth:`~bench_suite.store.curves.CurveStore.pack`). Safe while other processes write
        cells: a loose file is deleted only while holding its cell's claim. Raises
        ``filelock.Timeout`` when another process packs for longer than ``timeout_s``."""
        digests = {r.cell_id: r.curves_digest for r in self.records() if r.curves_digest}
        return self.curve_files.pack(digests, self.claim, timeout_s=timeout_s)

    def verify_curves(self) -> list[str]:
        """One line per problem with the stored curves: a pack whose bytes do not match its name
        (or unreadable), a record whose curves are missing or do not match its digest."""
        with warnings.catch_warnings():  # said once, by the caller
            warnings.simplefilter("ignore", CurveWarning)
            lines = self.curve_files.verify_packs()
            self.attach_curves(self.records())
        lines += [f"curves of record {cell_id}: {why}" for cell_id, why in sorted(self.curves_refused.items())]
        return lines

    def to_dataframe(self):
        """All records as the flat, typed results table (``bench_suite.core.records.COLUMNS``)."""
        return to_frame(self.records())


def existing_store(path: str | os.PathLike, option: str = "--store") -> ResultStore:
    """The store at ``path``, which must exist and hold a ``records/`` folder (a typo must not pass
    CI as an empty store), else :class:`PathProblem` naming ``option`` (the CLI's ``--store`` or
    the API's ``store=``)."""
    if not str(path).strip():
        raise PathProblem(f"{option}: an empty path; give the folder of a result store")
    p = Path(path).expanduser()
    cli = not option.endswith("=")  # the API names a keyword (store=), the command line an option or operand
    where = f"{option} {p}" if cli else f"{option}{str(p)!r}"
    if not p.exists():
        make = f"`bench-suite run --store {p}`" if cli else "bench_suite.run(store=...)"
        raise PathProblem(f"{where}: no such result store (run {make} first, or give the folder that holds records/)")
    if not p.is_dir():
        raise PathProblem(f"{where}: not a folder")
    if not (p / "records").is_dir():
        raise PathProblem(f"{where}: not a result store (it has no records/ folder)")
    return ResultStore(p)
