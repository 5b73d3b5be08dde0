"""A small on-disk cache of decoded datasets: uint8/int64 numpy arrays, in safe formats only.

An entry is a folder ``<cache_dir>/<dataset>-<key>/`` holding one ``.npy`` file per array
(loaded with ``allow_pickle=False``, so a cache file can never run code) and a JSON sidecar
``meta.json`` with each array's shape, dtype and sha256. The key is a hash of the source's
checksum and the reader's parameters, so a changed source or reader gets a new entry.

Writes are atomic (write to a temporary file in the entry folder, then ``os.replace``), the
sidecar is written last (an entry without one is incomplete), and building an entry holds a
file lock, so concurrent runs decode a dataset once. A load checks every array against its
sidecar; a corrupt or truncated entry is reported with a warning and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from filelock import FileLock

from ..core.files import atomic_write

CACHE_ENV = "BENCH_SUITE_CACHE"
FORMAT_VERSION = 1
SIDECAR = "meta.json"

Arrays = dict[str, np.ndarray]


class CorruptCacheWarning(UserWarning):
    """A cache entry failed its check and is being rebuilt."""


class CacheUnwritableWarning(UserWarning):
    """The cache folder cannot be written: the data is decoded in memory (every run)."""


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """``cache_dir``, else ``$BENCH_SUITE_CACHE``, else ``$XDG_CACHE_HOME/bench_suite``, else
    ``~/.cache/bench_suite``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "bench_suite"


def cache_key(**parts: Any) -> str:
    """A short, stable key from JSON-serialisable parts (source checksum, reader version, ...)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _array_digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


class ArrayCache:
    """One cache entry: ``load()`` returns the arrays and metadata, or None if absent/corrupt."""

    def __init__(self, cache_dir: str | os.PathLike | None, dataset: str, key: str) -> None:
        self.root = resolve_cache_dir(cache_dir)
        self.path = self.root / f"{dataset}-{key}"
        self.dataset = dataset
        self.key = key

    @property
    def sidecar(self) -> Path:
        return self.path / SIDECAR

    def load(self, *, warn: bool = True) -> tuple[Arrays, dict[str, Any]] | None:
        if not self.sidecar.is_file():
            return None
        try:
            return self._load_checked()
        except Exception as err:  # anything wrong with an entry means: rebuild it
            if warn:
                warnings.warn(f"cache entry {self.path} is corrupt ({err}); rebuilding it", CorruptCacheWarning,
                              stacklevel=3)
            return None

    def _load_checked(self) -> tuple[Arrays, dict[str, Any]]:
        sidecar = json.loads(self.sidecar.read_text())
        if sidecar.get("format") != FORMAT_VERSION or sidecar.get("key") != self.key:
            raise ValueError(f"{SIDECAR} has format {sidecar.get('format')!r} / key {sidecar.get('key')!r}")
        arrays: Arrays = {}
        for name, spec in sidecar["arrays"].items():
            file = self.path / spec["file"]
            if Path(spec["file"]).name != spec["file"]:
                raise ValueError(f"{SIDECAR} names a file outside the entry: {spec['file']!r}")
            array = np.load(file, allow_pickle=False)
            if list(array.shape) != spec["shape"] or str(array.dtype) != spec["dtype"]:
                raise ValueError(f"{file.name} is {array.dtype}{list(array.shape)}, expected "
                                 f"{spec['dtype']}{spec['shape']}")
            if _array_digest(array) != spec["sha256"]:
                raise ValueError(f"{file.name} does not match its sha256")
            arrays[name] = array
        return arrays, sidecar.get("meta", {})

    def save(self, arrays: Arrays, meta: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        specs = {}
        for name, array in arrays.items():
            if array.dtype == object:
                raise TypeError(f"array {name!r} has dtype object; the cache stores plain numeric arrays only")
            file = f"{name}.npy"
            self._write_atomic(file, lambda fh, a=array: np.save(fh, a, allow_pickle=False))
            specs[name] = {"file": file, "shape": list(array.shape), "dtype": str(array.dtype),
                           "sha256": _array_digest(array)}
        sidecar = {"format": FORMAT_VERSION, "dataset": self.dataset, "key": self.key, "arrays": specs, "meta": meta}
        text = json.dumps(sidecar, indent=1, sort_keys=True)
        self._write_atomic(SIDECAR, lambda fh: fh.write(text.encode()))

    def _write_atomic(self, file: str, write: Callable[[Any], Any]) -> None:
        atomic_write(self.path / file, write, sync=False)  # a cache: rebuilt if lost

    def lock(self) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path) + ".lock")


def cached_arrays(
    cache_dir: str | os.PathLike | None,
    dataset: str,
    key: str,
    build: Callable[[], tuple[Arrays, dict[str, Any]]],
) -> tuple[Arrays, dict[str, Any], bool]:
    """The arrays of entry (dataset, key): loaded if present and intact, else built and saved.

    Returns ``(arrays, meta, hit)``; ``hit`` is False when ``build`` ran.
    """
    entry = ArrayCache(cache_dir, dataset, key)
    # the common case needs no lock: an entry is complete once its sidecar is visible (a corrupt
    # one is reported below, under the lock, so that the warning comes once)
    found = entry.load(warn=False)
    if found is not None:
        return (*found, True)
    try:
        lock = entry.lock()
        lock.acquire()
    except OSError as err:  # a read-only or full cache folder: still usable, decoded in memory
        _unwritable(entry, err)
        arrays, meta = build()
        return arrays, meta, False
    try:
        found = entry.load()  # another process may have built it while we waited
        if found is not None:
            return (*found, True)
        arrays, meta = build()
        try:
            entry.save(arrays, meta)
        except OSError as err:
            _unwritable(entry, err)
    finally:
        lock.release()
    return arrays, meta, False


def _unwritable(entry: ArrayCache, err: OSError) -> None:
    warnings.warn(f"cannot write the decoded-data cache {entry.root} ({err.strerror or err}): decoding in memory "
                  f"this time; give a writable --cache-dir or ${CACHE_ENV}", CacheUnwritableWarning, stacklevel=3)
