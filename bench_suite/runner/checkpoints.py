"""Checkpoints of fused groups inside a result store (docs/runner.md, "Checkpoints").

One file per group being trained: ``<store>/checkpoints/<key>.pt``, ``key`` = the first 16 hex
digits of the SHA-256 of the group's sorted cell ids (a cell id covers its config, seeds and
code, so a checkpoint can only be taken up by the very cells that wrote it), plus a small
``<key>.json`` beside it (cells, epoch) that ``plan`` reads without torch.

- The ``.pt`` holds tensors and plain Python only: written with ``torch.save``, read back with
  ``torch.load(weights_only=True)`` (a restricted unpickler: no code from the file runs).
- Writes are atomic: a temporary file in the same folder, ``fsync``, ``rename``, ``fsync`` of
  the folder, so a process killed at any moment leaves the previous checkpoint or the new one.
- A checkpoint that cannot be read or is not for these cells is ignored with one warning line
  (the group restarts from scratch); it is replaced by the next save.
- The runner removes a group's checkpoint once its cells are recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Iterable

from ..core.files import atomic_write

FORMAT = "bench_suite.checkpoint/1"


def group_key(cell_ids: Iterable[str]) -> str:
    """The checkpoint name of the group made of ``cell_ids`` (order does not matter)."""
    return hashlib.sha256("\n".join(sorted(cell_ids)).encode()).hexdigest()[:16]




class CheckpointStore:
    """The ``checkpoints/`` folder of a result store at ``root``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.dir = Path(root) / "checkpoints"

    def path(self, cell_ids: Iterable[str]) -> Path:
        return self.dir / f"{group_key(cell_ids)}.pt"

    def save(self, cell_ids: Iterable[str], state: dict[str, Any]) -> Path:
        """Write ``state`` (``train_group``'s export) for the group of ``cell_ids``, atomically."""
        import torch

        cells = sorted(cell_ids)
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.path(cells)
        payload = {"format": FORMAT, "cells": cells, "state": state}
        atomic_write(path, lambda fh: torch.save(payload, fh))
        meta = {"format": FORMAT, "cells": cells, "epoch": state.get("epoch"), "epochs": state.get("epochs"),
                "written": time.time()}
        atomic_write(path.with_suffix(".json"), lambda fh: fh.write(json.dumps(meta).encode()))
        return path

    def load(self, cell_ids: Iterable[str]) -> tuple[dict[str, Any] | None, str | None]:
        """(state, None) for the group's checkpoint; (None, None) when there is none; (None,
        why) when there is one that cannot be used (unreadable, not ours, other cells)."""
        import torch

        cells = sorted(cell_ids)
        path = self.path(cells)
        if not path.exists():
            return None, None
        try:
            with warnings.catch_warnings():  # a foreign file's pickle details: the one line below says it
                warnings.simplefilter("ignore")
                payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one warning, not a crash
            text = str(exc).strip().splitlines()
            return None, f"unreadable checkpoint {path} ({type(exc).__name__}: {text[0][:160] if text else ''})"
        if not isinstance(payload, dict) or payload.get("format") != FORMAT or not isinstance(payload.get("state"),
                                                                                             dict):
            return None, f"{path} is not a {FORMAT} file"
        if payload.get("cells") != cells:
            return None, f"{path} is for other cells"
        return payload["state"], None

    def remove(self, cell_ids: Iterable[str]) -> None:
        path = self.path(cell_ids)
        for p in (path, path.with_suffix(".json")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def index(self) -> dict[str, dict[str, Any]]:
        """cell id -> {"epoch", "epochs", "key", "written"} of every checkpoint in the folder
        (from the ``.json`` beside each; unreadable ones are left out)."""
        out: dict[str, dict[str, Any]] = {}
        if not self.dir.is_dir():
            return out
        for meta_path in sorted(self.dir.glob("*.json")):
            try:
                meta = json.loads(meta_path.read_text())
                cells = meta["cells"]
                entry = {"epoch": int(meta["epoch"]), "epochs": int(meta["epochs"]), "key": meta_path.stem,
                         "written": meta.get("written")}
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not meta_path.with_suffix(".pt").exists():
                continue
            for cell_id in cells:
                out[cell_id] = entry
        return out

    def remove_containing(self, cell_ids: Iterable[str]) -> int:
        """Remove every checkpoint of a group that holds one of ``cell_ids`` (finished cells:
        a group formed another way, e.g. another --max-group, left it behind)."""
        wanted = set(cell_ids)
        removed = set()
        for cell_id, entry in self.index().items():
            if cell_id in wanted and entry["key"] not in removed:
                for suffix in (".pt", ".json"):
                    with contextlib.suppress(FileNotFoundError):
                        (self.dir / f"{entry['key']}{suffix}").unlink()
                removed.add(entry["key"])
        return len(removed)

    def remove_stale_temp(self, max_age_s: float = 3600.0) -> None:
        """Temporary files a killed write left behind (older than an hour)."""
        if not self.dir.is_dir():
            return
        now = time.time()
        for path in self.dir.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > max_age_s:
                    path.unlink()
