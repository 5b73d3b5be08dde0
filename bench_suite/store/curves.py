"""The curves of a result store's records (schema 3), as parquet files in ``<store>/curves/``.

Layout (docs/runner.md "The store"): each record's stored (thinned) curves are written
*loose*, ``curves/<cell_id>.parquet``, before the record itself, so a record never names curves
that are not there; :meth:`CurveStore.pack` merges the loose files and any earlier pack into
one ``curves/pack-<h>.parquet``, ``h`` the first 32 hex digits of the SHA-256 of the file's bytes,
and deletes what it merged. Every file is long form, zstd-compressed, one row per point:

    cell_id (dictionary string), metric (dictionary string), epoch (int32), value (float64, null: not defined)

rows ordered by cell, metric, then as the curve runs. ``epoch`` is the point's x value
(``bench_suite.core.curves.x_key``); the record's ``epoch``/``eval_epoch`` lists are rebuilt from it.

Reading (:meth:`CurveStore.read`) takes, for each cell, the first of its loose file and the packs
(newest first) whose curves match the record's ``curves_digest``; a pack whose bytes do not
match its name is refused (one warning line naming it). A cell found nowhere is looked for
once more after listing the folder again (a pack may just have replaced its loose file).

Concurrency: loose files are written atomically (temporary file, fsync, rename) by the process
that holds the cell's claim (``ResultStore.claim``), so writers never collide. ``pack`` runs
under a store-wide lock, merges only loose files that match their record (a file written for a
record not yet written, or left by a killed writer, stays loose), and deletes a merged loose
file only while holding the cell's claim and only if it is still the file it read.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

import filelock

from ..core.curves import EPOCH_X, EVAL_X, x_key
from ..core.errors import BenchSuiteError
from ..core.files import atomic_write, fsync_dir
from ..core.records import curves_digest

PACK_PREFIX = "pack-"
PACK_LOCK = "curves-pack.lock"
COMPRESSION = "zstd"


class CurveWarning(UserWarning):
    """Stored curves that cannot be used (a pack whose name does not match its bytes, curves that
    do not match their record, a file that cannot be read): one line; the records still count."""


@dataclass
class PackResult:
    """What :meth:`CurveStore.pack` did: the pack written (None: nothing to do), the cells in it,
    the loose files merged and deleted, those left loose and why, the older packs deleted."""

    pack: Path | None = None
    cells: int = 0
    merged: list[str] = field(default_factory=list)
    kept_loose: dict[str, str] = field(default_factory=dict)
    removed_packs: list[str] = field(default_factory=list)


class CurveFileError(BenchSuiteError, ValueError):
    """A curves file that cannot be used; the message says why (one line)."""


def to_table(curves_by_cell: dict[str, dict[str, list]]):
    """The long-form arrow table of ``{cell_id: stored curves}`` (rows ordered by cell, metric, point)."""
    import pyarrow as pa

    cells, metrics, epochs, values = [], [], [], []
    for cell_id in sorted(curves_by_cell):
        curves = curves_by_cell[cell_id]
        for metric in sorted(k for k in curves if k not in (EPOCH_X, EVAL_X)):
            xs = curves[x_key(metric)]
            cells += [cell_id] * len(xs)
            metrics += [metric] * len(xs)
            epochs += xs
            values += curves[metric]
    return pa.table({
        "cell_id": pa.array(cells, pa.string()).dictionary_encode(),
        "metric": pa.array(metrics, pa.string()).dictionary_encode(),
        "epoch": pa.array(epochs, pa.int32()),
        "value": pa.array(values, pa.float64()),
    })


def table_bytes(table) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression=COMPRESSION, use_dictionary=["cell_id", "metric"])
    return sink.getvalue()


def from_bytes(data: bytes, where: str) -> dict[str, dict[str, list]]:
    """``{cell_id: curves}`` of a curves file's bytes; :class:`CurveFileError` when it is not one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise CurveFileError(f"{where}: not a parquet file ({str(exc).splitlines()[0] if str(exc) else exc})") \
            from None
    expected = {"cell_id": pa.string(), "metric": pa.string(), "epoch": pa.int32(), "value": pa.float64()}
    for name, kind in expected.items():
        if name not in table.column_names:
            raise CurveFileError(f"{where}: has no column {name!r}; a curves file has {', '.join(expected)}")
        col_type = table.schema.field(name).type
        if pa.types.is_dictionary(col_type):
            col_type = col_type.value_type
        if col_type != kind:
            raise CurveFileError(f"{where}: column {name!r} is {col_type}, not {kind}")
    cells = table.column("cell_id").to_pylist()
    metrics = table.column("metric").to_pylist()
    epochs = table.column("epoch").to_pylist()
    values = table.column("value").to_pylist()
    out: dict[str, dict[str, list]] = {}
    points: dict[tuple[str, str], tuple[list, list]] = {}
    for i, (cell, metric) in enumerate(zip(cells, metrics)):
        if cell is None or metric is None or epochs[i] is None:
            raise CurveFileError(f"{where}: row {i} has a null cell_id, metric or epoch")
        key = (cell, metric)
        if key not in points:
            points[key] = ([], [])
        points[key][0].append(epochs[i])
        points[key][1].append(values[i])
    for (cell, metric), (xs, ys) in points.items():
        curves = out.setdefault(cell, {})
        curves[metric] = ys
        xname = x_key(metric)
        if metric in (EPOCH_X, EVAL_X):  # x values are not curves of their own
            raise CurveFileError(f"{where}: cell {cell} has rows of metric {metric!r}, the name of x values")
        if curves.setdefault(xname, xs) != xs:
            raise CurveFileError(f"{where}: the curves of cell {cell} indexed by {xname} disagree on its values")
    return out


class CurveStore:
    """The ``curves/`` folder of a store rooted at ``root``; ``locks_dir`` holds the pack lock."""

    def __init__(self, root: str | os.PathLike, locks_dir: str | os.PathLike) -> None:
        self.dir = Path(root) / "curves"
        self.locks_dir = Path(locks_dir)
        self._packs: dict[str, dict[str, dict[str, list]] | None] = {}  # by file name (immutable content)
        self.refused: dict[Path, str] = {}  # files that could not be used, and why

    # ----- names -----
    def loose_path(self, cell_id: str) -> Path:
        return self.dir / f"{cell_id}.parquet"

    def listing(self) -> tuple[dict[str, Path], list[Path]]:
        """The loose files by cell id, and the packs, newest first."""
        loose: dict[str, Path] = {}
        packs: list[tuple[float, str, Path]] = []
        if not self.dir.is_dir():
            return loose, []
        for path in self.dir.glob("*.parquet"):
            if path.name.startswith(PACK_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    packs.append((path.stat().st_mtime, path.name, path))
            elif not path.name.startswith("."):
                loose[path.stem] = path
        return loose, [p for _, _, p in sorted(packs, reverse=True)]

    # ----- writing -----
    def write(self, cell_id: str, curves: dict[str, list]) -> Path:
        """Write a cell's stored curves as its loose file, atomically; the file it replaces (a
        re-run) is gone. Returns the path."""
        return self._atomic(self.loose_path(cell_id), table_bytes(to_table({cell_id: curves})))

    def _atomic(self, path: Path, data: bytes) -> Path:
        return atomic_write(path, data)

    # ----- reading -----
    def _refuse(self, path: Path, why: str) -> None:
        if path not in self.refused:
            self.refused[path] = why
            warnings.warn(f"ignoring curves file {path}: {why}", CurveWarning, stacklevel=4)

    def read_pack(self, path: Path) -> dict[str, dict[str, list]] | None:
        """A pack's curves, its bytes checked against its name; None (and one warning) when they
        do not match or it cannot be read. ``FileNotFoundError`` when it is gone (packed away)."""
        if path.name in self._packs:
            return self._packs[path.name]
        data = path.read_bytes()
        named = path.stem[len(PACK_PREFIX):]
        actual = hashlib.sha256(data).hexdigest()[:32]
        result: dict[str, dict[str, list]] | None = None
        if named != actual:
            self._refuse(path, f"its bytes have SHA-256 {actual}..., not the {named} its name says: "
                               f"changed after it was written")
        else:
            try:
                result = from_bytes(data, path.name)
            except CurveFileError as exc:
                self._refuse(path, str(exc))
        self._packs[path.name] = result
        return result

    def read_loose(self, path: Path) -> dict[str, list] | None:
        """A loose file's curves (None, and one warning, when unusable); ``FileNotFoundError`` when gone."""
        data = path.read_bytes()
        try:
            found = from_bytes(data, path.name)
        except CurveFileError as exc:
            self._refuse(path, str(exc))
            return None
        return found.get(path.stem)

    def read(self, digests: dict[str, str]) -> tuple[dict[str, dict[str, list]], dict[str, str]]:
        """The stored curves of the cells of ``digests`` (cell id -> the record's ``curves_digest``),
        each verified: ``(curves by cell id, why not by cell id)``. For each cell the first match
        among its loose file and the packs (newest first) is taken. Refused files warn once each;
        the cells not found are for the caller to report (it names the record)."""
        found: dict[str, dict[str, list]] = {}
        problems: dict[str, str] = {}
        for _ in range(2):  # once more after listing again: a pack may just have replaced loose files
            loose, packs = self.listing()
            again = False
            for cell_id, digest in digests.items():
                if cell_id in found:
                    continue
                other: list[str] = []
                for path in ([loose[cell_id]] if cell_id in loose else []) + packs:
                    try:
                        curves = (self.read_loose(path) if path in loose.values()
                                  else (self.read_pack(path) or {}).get(cell_id))
                    except FileNotFoundError:
                        again = True
                        continue
                    if curves is None:
                        continue
                    if curves_digest(curves) == digest:
                        found[cell_id] = curves
                        problems.pop(cell_id, None)
                        break
                    other.append(path.name)
                else:
                    again = again or not other
                    problems[cell_id] = (f"its curves in {', '.join(other)} do not match the record's curves_digest"
                                         if other else f"no curves for it in {self.dir}")
            if not again:
                break
        return found, problems

    # ----- packing -----
    def pack(self, digests: dict[str, str], claim: Callable[[list[str]], ContextManager[list[str]]],
             *, timeout_s: float = 60.0) -> PackResult:
        """Merge the loose files that match their record (``digests``: cell id -> the record's
        ``curves_digest``) and every readable pack into one pack; delete what was merged. A
        loose file not matching its record stays loose (its record may be on its way); a cell of
        an older pack not superseded is carried over; a refused pack stays where it is.
        ``claim(cell_ids)`` takes cells' claims (``ResultStore.claim``). Raises
        ``filelock.Timeout`` when another process packs for longer than ``timeout_s``."""
        result = PackResult()
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(self.locks_dir / PACK_LOCK), timeout=timeout_s):
            loose, packs = self.listing()
            readable: list[tuple[Path, dict[str, dict[str, list]]]] = []
            for path in packs:
                with contextlib.suppress(FileNotFoundError):
                    content = self.read_pack(path)
                    if content is not None:
                        readable.append((path, content))
            merged: dict[str, dict[str, list]] = {}
            for _, content in reversed(readable):  # oldest first: a newer pack's version wins ...
                merged.update(content)
            for _, content in readable:  # ... unless only an older one matches the record
                for cell_id, curves in content.items():
                    if cell_id in digests and curves_digest(merged[cell_id]) != digests[cell_id] \
                            and curves_digest(curves) == digests[cell_id]:
                        merged[cell_id] = curves
            taken: list[tuple[str, Path, tuple[int, int]]] = []
            for cell_id, path in sorted(loose.items()):
                try:
                    stamp = _stamp(path)
                    curves = self.read_loose(path)
                except FileNotFoundError:
                    continue
                if curves is None:
                    result.kept_loose[cell_id] = "unreadable"
                elif cell_id not in digests:
                    result.kept_loose[cell_id] = "no record names these curves (yet)"
                elif curves_digest(curves) != digests[cell_id]:
                    result.kept_loose[cell_id] = "they do not match the record's curves_digest"
                else:
                    merged[cell_id] = curves
                    taken.append((cell_id, path, stamp))
            if not taken and len(readable) <= 1:
                return result  # nothing to merge
            data = table_bytes(to_table(merged))
            target = self.dir / f"{PACK_PREFIX}{hashlib.sha256(data).hexdigest()[:32]}.parquet"
            if not target.exists():
                self._atomic(target, data)
            result.pack, result.cells = target, len(merged)
            for path, _ in readable:
                if path != target:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    result.removed_packs.append(path.name)
            for cell_id, path, stamp in taken:
                with claim([cell_id]) as held:
                    # a writer holding the claim may have replaced the file since we read it: keep the new one
                    if held and _same_file(path, stamp):
                        path.unlink()
                        result.merged.append(cell_id)
                    else:
                        result.kept_loose[cell_id] = "rewritten or being rewritten meanwhile"
            fsync_dir(self.dir)
        return result

    def remove_stale_temp(self, max_age_s: float = 3600.0) -> int:
        """Delete temporary files of writes that a killed process left behind."""
        import time

        removed = 0
        if not self.dir.is_dir():
            return 0
        now = time.time()
        for path in self.dir.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > max_age_s:
                    path.unlink()
                    removed += 1
        return removed

    def verify_packs(self) -> list[str]:
        """One line per pack that is refused (its bytes do not match its name, or unreadable)."""
        _, packs = self.listing()
        for path in packs:
            with contextlib.suppress(FileNotFoundError):
                self.read_pack(path)
        return [f"{path}: {why}" for path, why in sorted(self.refused.items()) if path.name.startswith(PACK_PREFIX)]


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns)


def _same_file(path: Path, stamp: tuple[int, int]) -> bool:
    try:
        return _stamp(path) == stamp
    except FileNotFoundError:
        return False



__all__ = ["CurveFileError", "CurveStore", "CurveWarning", "PackResult", "from_bytes", "to_table"]
