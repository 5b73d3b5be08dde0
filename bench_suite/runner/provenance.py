"""Where a result came from: code version, software versions, device and precision."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__

if TYPE_CHECKING:  # pragma: no cover
    import torch


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


# The commit of a tree that has no .git (the copy a GPU machine gets: benchmarks/gpu_session.sh),
# given by whoever sent it: 7 to 40 hex digits, and "1"/"0" (or true/false) for uncommitted changes
GIT_COMMIT_ENV = "BENCH_SUITE_GIT_COMMIT"
GIT_DIRTY_ENV = "BENCH_SUITE_GIT_DIRTY"
_COMMIT = re.compile(r"[0-9a-fA-F]{7,40}")
_FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


@lru_cache(maxsize=1)
def git_state() -> dict:
    """``{"git_commit", "git_dirty"}`` of this code. ``$BENCH_SUITE_GIT_COMMIT`` (and
    ``$BENCH_SUITE_GIT_DIRTY``) when set: an explicit statement, for a copied tree without
    ``.git``; else ``git rev-parse HEAD`` and whether tracked files differ from it (``git status
    --porcelain --untracked-files=no``) in the package's checkout; None for what neither says.
    A malformed value is ignored with a warning (git is asked instead)."""
    commit = os.environ.get(GIT_COMMIT_ENV, "").strip()
    if commit:
        if _COMMIT.fullmatch(commit):
            dirty_text = os.environ.get(GIT_DIRTY_ENV, "").strip().lower()
            if dirty_text and dirty_text not in _FLAGS:
                warnings.warn(f"${GIT_DIRTY_ENV}={dirty_text!r} is not 1/0/true/false: recorded as unknown",
                              stacklevel=2)
            return {"git_commit": commit.lower(), "git_dirty": _FLAGS.get(dirty_text)}
        warnings.warn(f"${GIT_COMMIT_ENV}={commit!r} is not a commit (7 to 40 hex digits): ignored, asking git",
                      stacklevel=2)
    commit = _git("rev-parse", "HEAD")
    dirty = None
    if commit is not None:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    return {"git_commit": commit, "git_dirty": dirty}


def device_name(device: "torch.device") -> str:
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_name()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def probe_device_name(device: str) -> tuple[str, str]:
    """(device type, model name) that ``device`` ("auto", "cpu", "cuda", "cuda:N", ...) means on
    this machine, without importing torch (for ``plan``'s time estimates): NVIDIA GPUs are
    found with ``nvidia-smi``; "auto" is CUDA when one is listed, else the CPU."""
    kind, _, index = device.partition(":")
    if kind in ("auto", "cuda"):
        names = _nvidia_gpus()
        if names:
            i = int(index) if index.isdigit() else 0
            return "cuda", names[min(i, len(names) - 1)]
        if kind == "cuda":
            return "cuda", f"CUDA device {index or 0}"
        return "cpu", cpu_name()
    return kind, cpu_name() if kind == "cpu" else kind


def _nvidia_gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def collect(device: "torch.device", precision: str) -> dict:
    """Provenance of a run on ``device`` (data source, checksum, protocol and code digest are
    added by the runner, which knows the cell)."""
    import torch

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
        "numpy": _numpy_version(),
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device": device.type,
        "device_name": device_name(device),
        **_cuda_details(device),
        "precision": precision,
        # the flags the engine sets for the cell's training (training.precision_context), not
        # the process-wide values at the time this record is written
        "tf32_matmul": bool(cuda and precision == "tf32"),
        "tf32_cudnn": bool(cuda and precision == "tf32"),
        "bf16_autocast": precision == "bf16",
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "torch_threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        **scheduler_context(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _numpy_version() -> str | None:
    try:
        import numpy

        return numpy.__version__
    except ImportError:  # pragma: no cover - numpy is a dependency
        return None


def _cuda_details(device: "torch.device") -> dict:
    if device.type != "cuda":
        return {}
    import torch

    props = torch.cuda.get_device_properties(device)
    return {
        "cuda_capability": f"{props.major}.{props.minor}",
        "gpu_memory_gb": round(props.total_memory / 2**30, 1),
    }


def scheduler_context() -> dict:
    """Where in a cluster this ran: the SLURM job / array task, or the Dask worker (only the
    keys that apply; Dask is looked up only when it is already imported, i.e. inside a worker)."""
    out = {}
    slurm = {"slurm_job_id": "SLURM_JOB_ID", "slurm_array_job_id": "SLURM_ARRAY_JOB_ID",
             "slurm_array_task_id": "SLURM_ARRAY_TASK_ID"}
    for key, env in slurm.items():
        if os.environ.get(env):
            out[key] = os.environ[env]
    if "distributed" in sys.modules:
        try:
            out["dask_worker"] = sys.modules["distributed"].get_worker().address
        except (ValueError, AttributeError):  # not inside a Dask task
            pass
    return out
