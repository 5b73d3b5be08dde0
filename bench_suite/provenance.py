"""Where a result came from: code version, software versions, device and precision."""

from __future__ import annotations

import datetime as _dt
import platform
import socket
import subprocess
from functools import lru_cache
from pathlib import Path

import torch

from . import __version__


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@lru_cache(maxsize=1)
def git_state() -> dict:
    commit = _git("rev-parse", "HEAD")
    dirty = None
    if commit is not None:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    return {"git_commit": commit, "git_dirty": dirty}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect(device: torch.device, precision: str) -> dict:
    """Provenance of a run on ``device`` (data source and protocol are added by the runner)."""
    cuda = device.type == "cuda"
    try:
        import torchvision

        tv = torchvision.__version__
    except ImportError:  # pragma: no cover - torchvision is a dependency
        tv = None
    return {
        **git_state(),
        "bench_suite": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": tv,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device": device.type,
        "device_name": device_name(device),
        "precision": precision,
        "tf32_matmul": bool(cuda and precision == "tf32"),
        "torch_threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
