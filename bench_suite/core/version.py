"""The package's version and where this copy of it came from, read from its install metadata.

There is one version: ``[project].version`` in pyproject.toml. An installed copy reads it from
its distribution's metadata (``importlib.metadata``); a source tree used without installing
(``PYTHONPATH=.``) reads it from its own pyproject.toml. :func:`own_distribution` finds the
installed distribution that holds *these* files (not another copy of bench_suite elsewhere on
the path), whose PEP 610 ``direct_url.json`` says how it was installed.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

DIST_NAME = "bench_suite"
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the bench_suite/ folder these files are in
SOURCE_ROOT = PACKAGE_DIR.parent  # the source tree (pyproject.toml beside bench_suite/) when run from one


def is_source_tree(root: Path) -> bool:
    """True when ``root`` is bench_suite's own source tree: a pyproject.toml naming the project
    beside this package's folder."""
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False
    return (root / "bench_suite").resolve() == PACKAGE_DIR and bool(
        re.search(r'(?m)^name\s*=\s*"bench[_-]suite"\s*$', text))


def _pyproject_version(root: Path) -> str | None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return str(tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])
    except (OSError, KeyError, ValueError):
        return None


@lru_cache(maxsize=1)
def own_distribution() -> metadata.Distribution | None:
    """The installed distribution whose files are these (a wheel install: its RECORD lists this
    package; an editable install: its direct_url.json points at this source tree), else None
    (run from a source tree on PYTHONPATH, or another copy is the installed one)."""
    try:
        candidates = list(metadata.distributions(name=DIST_NAME))
    except Exception:  # noqa: BLE001 - broken metadata on the path must not stop an import
        return None
    for dist in candidates:
        editable_root = editable_source(dist)
        if editable_root is not None:
            if (editable_root / "bench_suite").resolve() == PACKAGE_DIR:
                return dist
            continue
        try:
            init = Path(dist.locate_file("bench_suite/__init__.py")).resolve()
        except (OSError, TypeError, NotImplementedError):
            continue
        if init.parent == PACKAGE_DIR:
            return dist
    return None


def direct_url(dist: metadata.Distribution | None) -> dict | None:
    """The distribution's PEP 610 ``direct_url.json`` (how it was installed: a VCS URL and
    commit, a local folder, editable or not), None when it has none (an index install)."""
    if dist is None:
        return None
    try:
        text = dist.read_text("direct_url.json")
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def editable_source(dist: metadata.Distribution | None) -> Path | None:
    """The source folder of an editable install (PEP 610 ``dir_info.editable``), else None."""
    info = direct_url(dist)
    if not info or not info.get("dir_info", {}).get("editable"):
        return None
    url = urlparse(info.get("url", ""))
    return Path(unquote(url.path)) if url.scheme == "file" else None


def _version() -> str:
    if is_source_tree(SOURCE_ROOT):  # a source tree (editable or on PYTHONPATH): its own pyproject
        found = _pyproject_version(SOURCE_ROOT)
        if found:
            return found
    dist = own_distribution()
    if dist is not None:
        return dist.version
    return "0+unknown"  # copied files with neither metadata nor pyproject: say so, do not guess


__version__ = _version()
