"""Reading an archive's members in memory, never extracting, and refusing unsafe member names.

Nothing is ever written from an archive to disk, so a hostile archive cannot overwrite files;
still, an archive whose member names are absolute or climb out with ``..`` is refused outright
(it was not made by a dataset packer). Member sizes are capped before reading, so a member
that claims to be huge (a zip bomb) is refused without inflating it.
"""

from __future__ import annotations

import os
import posixpath
import re
import zipfile
import zlib
from pathlib import Path

from .contract import DataError, one_line

# folders that archivers add and that are not data (macOS resource forks)
IGNORED_PREFIXES = ("__MACOSX/",)
_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_member_name(name: str) -> bool:
    """True for names that are absolute (``/x``, ``C:x``, ``\\x``) or contain a ``..`` component."""
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return True
    return ".." in re.split(r"[/\\]", name)


class SafeZip:
    """A zip archive opened for in-memory reads of its regular members."""

    def __init__(self, path: str | os.PathLike, *, max_member_bytes: int, expected: str) -> None:
        """``expected`` says what the archive should contain (it ends every error message)."""
        self.path = Path(path)
        self.max_member_bytes = max_member_bytes
        self.expected = expected
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
            raise DataError(self.path, f"not a readable zip archive ({one_line(err)})",
                            f"expected {expected}; re-download or re-create the archive") from err
        self.members = self._checked_members()

    def _checked_members(self) -> list[zipfile.ZipInfo]:
        members = []
        for info in self._zip.infolist():
            if unsafe_member_name(info.filename):
                raise DataError(self.path, f"member name {info.filename!r} is absolute or climbs out with '..'",
                                f"refusing this archive (expected {self.expected}); re-create it with relative names")
            if info.is_dir() or info.filename.startswith(IGNORED_PREFIXES):
                continue
            members.append(info)
        return members

    def read(self, info: zipfile.ZipInfo) -> bytes:
        """The bytes of one member, after checking its declared size (the CRC is checked by zipfile)."""
        where = f"{self.path}!{info.filename}"
        if info.file_size > self.max_member_bytes:
            raise DataError(where, f"member is {info.file_size:,} bytes, more than {self.max_member_bytes:,}",
                            f"expected {self.expected}; this is not such an archive")
        try:
            with self._zip.open(info) as fh:
                data = fh.read(self.max_member_bytes + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as err:
            raise DataError(where, f"member cannot be read ({one_line(err)})",
                            "the archive is truncated or corrupt; re-download or re-create it") from err
        if len(data) > self.max_member_bytes:  # the header lied about the size
            raise DataError(where, f"member inflates past {self.max_member_bytes:,} bytes",
                            f"expected {self.expected}; this is not such an archive")
        return data

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> "SafeZip":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def member_parts(name: str) -> list[str]:
    """The path components of a member name (``a/b/c.jpg`` -> ``['a', 'b', 'c.jpg']``)."""
    return [p for p in posixpath.normpath(name).split("/") if p not in ("", ".")]
