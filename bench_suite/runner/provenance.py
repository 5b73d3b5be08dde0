"""Where a result came from: the commit of the code (however it was installed), software versions,
device and precision."""

from __future__ import annotations

import datetime as _dt
import importlib
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

from ..core import version
from ..core.commit import source_commit
from ..core.env import env_flag_or_none

if TYPE_CHECKING:  # pragma: no cover
    import torch


# The commit of a tree that has no .git (the copy a GPU machine gets: benchmarks/gpu_session.sh),
# given by whoever sent it: 7 to 40 hex digits, and a switch (core.env) for uncommitted changes
GIT_COMMIT_ENV = "BENCH_SUITE_GIT_COMMIT"
GIT_DIRTY_ENV = "BENCH_SUITE_GIT_DIRTY"
_COMMIT = re.compile(r"[0-9a-fA-F]{7,40}")


def _build_info() -> dict | None:
    """What the build wrote into a wheel (``bench_suite/_build_info.py``, made by setup.py):
    None in a source tree, which has no such module."""
    try:  # by name: the module exists only in a built copy
        _build_info = importlib.import_module("bench_suite._build_info")
    except ImportError:
        return None
    return {"git_commit": _build_info.GIT_COMMIT, "git_dirty": _build_info.GIT_DIRTY,
            "git_commit_source": _build_info.GIT_COMMIT_SOURCE}


def _direct_url_commit() -> dict | None:
    """The commit pip recorded for a VCS install (PEP 610 ``vcs_info.commit_id``), else None."""
    info = version.direct_url(version.own_distribution())
    commit = ((info or {}).get("vcs_info") or {}).get("commit_id")
    if isinstance(commit, str) and _COMMIT.fullmatch(commit):
        return {"git_commit": commit.lower(), "git_dirty": False,
                "git_commit_source": f"direct_url.json ({info.get('url', 'a VCS URL')})"}
    return None


@lru_cache(maxsize=1)
def git_state() -> dict:
    """``{"git_commit", "git_dirty", "git_commit_source"}`` of the code running now, however it
    was installed; the first of these that knows:

    1. ``$BENCH_SUITE_GIT_COMMIT`` (and the switch ``$BENCH_SUITE_GIT_DIRTY``): an explicit
       statement, for a copied tree without ``.git`` (a malformed commit is ignored with a
       warning; a junk dirty value is :class:`~bench_suite.core.env.EnvVarError`);
    2. a source tree (editable install, or on PYTHONPATH): git, only when the tree is the top
       level of its repository, or the commit a ``git archive`` wrote into it
       (:func:`bench_suite.core.commit.source_commit`);
    3. a wheel: the commit its build wrote into ``bench_suite/_build_info.py``;
    4. a VCS install: the commit in PEP 610's ``direct_url.json``;

    else commit and dirty None and ``git_commit_source`` ``"unknown: <why>"``. git is never asked
    about a folder that merely contains the package (a virtual environment inside a user's
    project would give that project's commit)."""
    commit = os.environ.get(GIT_COMMIT_ENV, "").strip()
    if commit:
        if _COMMIT.fullmatch(commit):
            return {"git_commit": commit.lower(), "git_dirty": env_flag_or_none(GIT_DIRTY_ENV),
                    "git_commit_source": f"${GIT_COMMIT_ENV}"}
        warnings.warn(f"${GIT_COMMIT_ENV}={commit!r} is not a commit (7 to 40 hex digits): ignored",
                      stacklevel=2)
    whys = []
    if version.is_source_tree(version.SOURCE_ROOT):
        state = source_commit(version.SOURCE_ROOT)
        if state["git_commit"] is not None:
            return state
        whys.append(state["git_commit_source"].removeprefix("unknown: "))
    built = _build_info()
    if built is not None:
        if built["git_commit"] is not None:
            return built
        whys.append(f"the build wrote none ({built['git_commit_source'].removeprefix('unknown: ')})")
    from_url = _direct_url_commit()
    if from_url is not None:
        return from_url
    if not whys:
        whys.append(f"{version.PACKAGE_DIR} is neither a source tree nor a built install")
    return {"git_commit": None, "git_dirty": None,
            "git_commit_source": f"unknown: {'; '.join(whys)}; set ${GIT_COMMIT_ENV} to state it"}


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
        "bench_suite": version.__version__,
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
