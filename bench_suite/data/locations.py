"""Where a data set is looked for: ``data_root`` first, then the data set's environment variable.

Every reader (CIFAR-10, CIFAR-100, MNIST) searches the same way: ``data_root`` (``--data-root``
or ``$BENCH_SUITE_DATA_ROOT``, resolved by the runner) wins; its own variable
(``$BENCH_SUITE_CIFAR10``, ...) is the fallback, also when ``data_root`` is set but holds
nothing of this data set, so one data root can serve several tasks while a data set lies
elsewhere. A location that holds another known data set (:class:`OtherDataset`) is passed over
the same way. When nothing is found the search ends in :class:`DataUnavailable` listing every
place it looked and what to pass.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from .contract import DataError, DataUnavailable, OtherDataset

S = TypeVar("S")


class Search:
    """One search for one data set; iterate :meth:`sources`, report passed-over ones with :meth:`skip`."""

    def __init__(self, dataset: str, data_root: str | os.PathLike | None, env_var: str) -> None:
        self.dataset = dataset
        self.env_var = env_var
        self.bases = [b for b in (data_root, os.environ.get(env_var) or None) if b is not None]
        self.searched: list[str] = []

    def sources(self, source_at: Callable[[Path], S | None]) -> Iterator[tuple[Path, S]]:
        """``(location, source)`` for each location where ``source_at`` recognises a layout."""
        for base in self.bases:
            root = Path(base).expanduser()
            if not root.exists():
                self.searched.append(f"{root} (does not exist)")
                continue
            source = source_at(root)
            if source is None:
                self.searched.append(str(root))
                continue
            yield root, source

    def skip(self, root: Path, err: OtherDataset) -> None:
        self.searched.append(f"{root} ({err})")

    def unavailable(self, layout: str, hint: str = "") -> DataUnavailable:
        where = f"searched {', '.join(self.searched)}" if self.searched else "no location given"
        return DataUnavailable(
            f"{self.dataset} not found ({where}): pass --data-root (or set BENCH_SUITE_DATA_ROOT or "
            f"{self.env_var}) to {layout}{hint}"
        )


def pick_zip(root: Path, name_pattern: str, dataset: str) -> Path | None:
    """The zip archive in folder ``root`` that holds the data set: the only one, or of several
    the only one whose file name matches ``name_pattern`` (a regular expression, searched
    case-insensitively); None when the folder holds no zip."""
    zips = sorted(p for p in root.iterdir() if p.suffix.lower() == ".zip" and p.is_file())
    if len(zips) > 1:
        zips = [p for p in zips if re.search(name_pattern, p.name, re.IGNORECASE)] or zips
    if len(zips) > 1:
        raise DataError(root, f"folder holds {len(zips)} zip archives ({', '.join(p.name for p in zips)})",
                        f"pass the path of the {dataset} zip itself")
    return zips[0] if zips else None
