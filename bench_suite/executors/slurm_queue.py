"""SLURM's side of the SLURM executor, without submitting anything: job states from squeue
(sacct only for a job squeue has forgotten: accounting is often disabled), what an ending
state means for the cells, sbatch's refusals in one line, and the jobs a store's earlier runs
submitted (``runs/<run_id>/jobs.json``), which ``plan`` shows and ``run`` adopts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import exception_line
from ..core.files import atomic_write
from ..grid import Cell
from .driver import _first_line

# states a job leaves only by ending (squeue / sacct spelling); anything else is still alive
# (PENDING, RUNNING, CONFIGURING, COMPLETING, REQUEUED, SUSPENDED, ...)
SLURM_ENDED = ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
               "BOOT_FAIL", "DEADLINE", "REVOKED", "GONE")
# what an ending state means for the cells the job did not record, and what to do about it
SLURM_STATE_HINTS = {
    "CANCELLED": "by scancel, or an administrator",
    "TIMEOUT": "killed at its time limit: raise --time-limit, or split fused groups with --max-group",
    "OUT_OF_MEMORY": "killed for using more memory than it asked for: raise --mem-gb",
    "NODE_FAIL": "its node failed",
    "FAILED": "its process failed: see the job's log",
    "PREEMPTED": "preempted and not requeued",
    "BOOT_FAIL": "its node did not boot",
    "DEADLINE": "not started before its deadline",
    "COMPLETED": "ended without writing a result: see the job's log",
    "GONE": "left the queue without a result; its final state is unknown (sacct does not answer: accounting "
            "is disabled)",
}


@dataclass
class SlurmParams:
    partition: str | None = None
    gpus_per_job: int | None = None  # None: 1 when a cell's profile asks for a GPU (device "cuda"), else 0
    cpus_per_job: int | None = None
    mem_gb: float | None = None
    time_limit_min: int = 240
    max_jobs: int = 16  # slurm_array_parallelism: array tasks running at once
    requeues: int = 3  # submitit's max_num_timeout: requeues after a time limit (preemptions: unlimited)
    extra: dict[str, Any] = field(default_factory=dict)  # slurm_additional_parameters (account, qos, ...)
    cluster: str | None = None  # submitit cluster: None (detect: slurm), "slurm", "local" or "debug"
    poll_s: float = 10.0  # how often to ask squeue for the jobs' states
    cluster_timeout_s: float = 300.0  # how long an unanswering controller is waited for
    # a job that ended without a result file: how long to wait for the file or a requeue (at least the
    # cluster's KillWait + 10 s on a real cluster: a requeued job shows an ending state until its step ends)
    grace_s: float = 15.0


@dataclass
class JobState:
    state: str  # squeue's %T (PENDING, RUNNING, COMPLETED, ...), sacct's first word, or GONE
    reason: str | None = None  # squeue's %r (Priority, Resources, BeginTime, ...)
    node: str | None = None
    raw_id: str | None = None  # squeue's %A: the job's own id (an array task has one too)

    @property
    def ended(self) -> bool:
        return self.state in SLURM_ENDED

    def describe(self) -> str:
        text = self.state
        if self.state == "PENDING" and self.reason and self.reason != "None":
            text += f" ({self.reason})"
        elif self.state == "RUNNING" and self.node:
            text += f" on {self.node}"
        return text


class ControllerError(RuntimeError):
    """squeue / sbatch could not reach the SLURM controller."""


def default_gpus(cells: list[Cell]) -> int:
    """GPUs per job when ``--gpus-per-job`` is not given: 1 when a cell's profile declares
    ``device: cuda``, else 0 (a CPU cell never asks for a GPU; our choice)."""
    for cell in cells:
        profile = cell.task_cls.profiles.get(cell.profile or "", {})
        if profile.get("device") == "cuda":
            return 1
    return 0


def squeue_states(job_ids: list[str], *, timeout_s: float = 60.0) -> dict[str, JobState]:
    """The states of ``job_ids`` (``51`` or ``51_3``) that the controller still knows (ended
    jobs stay listed for its MinJobAge, 300 s by default), one per array task. Raises
    :class:`ControllerError` when the controller does not answer."""
    if not job_ids:
        return {}
    arrays = sorted({j.split("_", 1)[0] for j in job_ids})
    try:
        proc = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(arrays), "-o", "%i|%A|%T|%r|%N"],
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ControllerError(f"squeue did not answer within {timeout_s:.0f} s") from None
    except OSError as exc:
        raise ControllerError(f"squeue: {exc}") from None
    if proc.returncode != 0:
        message = _first_line(proc.stderr) or f"squeue exited with code {proc.returncode}"
        if "invalid job id" in message.lower():  # a single id the controller has forgotten
            return {}
        raise ControllerError(message)
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3:
            continue
        job, raw, state = parts[0], parts[1], parts[2]
        out[job] = JobState(state, parts[3] if len(parts) > 3 else None, (parts[4] or None) if len(parts) > 4 else None,
                            raw)
    return out


def sacct_states(job_ids: list[str], *, timeout_s: float = 60.0) -> dict[str, JobState] | None:
    """Final states from the accounting database, or None when sacct does not answer
    (accounting disabled: "Slurm accounting storage is disabled")."""
    if not job_ids or shutil.which("sacct") is None:
        return None
    try:
        proc = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(job_ids)],
                              capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            out[parts[0]] = JobState(parts[1].split()[0] if parts[1] else "UNKNOWN")
    return out


def controller_answers() -> tuple[bool, str]:
    """``scontrol ping``: whether a SLURM controller answers (instant; sbatch retries ~10 s)."""
    try:
        proc = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, exception_line(exc)
    text = (proc.stdout + proc.stderr).strip()
    return (" is UP" in text), _first_line(text) or f"scontrol ping exited with code {proc.returncode}"


def kill_wait_s() -> float | None:
    """The cluster's KillWait in seconds (``scontrol show config``; SLURM's default is 30), or
    None when it cannot be read. A job step being killed, e.g. for a requeue, may take that long
    to end, and squeue shows the job in an ending state meanwhile."""
    try:
        proc = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"^KillWait\s*=\s*(\d+)", proc.stdout, re.MULTILINE)
    return float(match.group(1)) if proc.returncode == 0 and match else None


def explain_sbatch_error(message: str, params: SlurmParams, gpus: int | None = None) -> str:
    """sbatch's refusal in one line, with what to change (our wording)."""
    text = message.lower()
    if "generic resource" in text or "gres" in text:
        hint = (f"the partition has no GPUs of that kind: --gpus-per-job 0 for CPU jobs, or a GPU partition with "
                f"--partition (asked: {params.gpus_per_job if gpus is None else gpus} GPU(s) per job)")
    elif "account" in text or "association" in text:
        hint = "pass an account you may use: --slurm-arg account=NAME (`sacctmgr show assoc user=$USER`)"
    elif "partition" in text:
        hint = f"`sinfo -s` lists the partitions; pass one with --partition (asked: {params.partition!r})"
    elif "contact slurm controller" in text or "connection refused" in text or "connect failure" in text:
        hint = "the SLURM controller does not answer: check `scontrol ping` / `sinfo`, or ask the administrators"
    elif "time limit" in text:
        hint = f"--time-limit {params.time_limit_min} exceeds the partition's limit (`sinfo -o '%P %l'`)"
    elif "memory" in text:
        hint = "--mem-gb exceeds what the partition's nodes have (`sinfo -o '%P %m'`)"
    elif "array" in text:
        hint = "too many jobs for one array (MaxArraySize): fuse more cells per job (drop --max-group)"
    else:
        hint = ("check --partition, --gpus-per-job, --cpus-per-job, --mem-gb, --time-limit and --slurm-arg "
                "against `sinfo`")
    return f"sbatch refused the jobs: {message}; {hint}; nothing was submitted"


@dataclass
class TrackedJob:
    job_id: str  # as squeue shows it: 51 or 51_3
    cells: list[str]
    folder: str  # submitit's folder pattern (with %j)
    run_id: str
    state: JobState = field(default_factory=lambda: JobState("SUBMITTED"))
    ended_at: float | None = None  # monotonic time it was first seen ended without a result
    final: bool = False
    outcome: str | None = None  # "result", "error: ..." or "lost"

    def paths(self):
        from submitit.core.utils import JobPaths

        return JobPaths(self.folder, job_id=self.job_id, task_id=0)


def _log_of(job: TrackedJob) -> str:
    path = job.paths().stderr
    return str(path) if path.exists() else "none (the job never started)"


def _jobs_file(store_root: str | os.PathLike, run_id: str) -> Path:
    return Path(store_root) / "runs" / run_id / "jobs.json"


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True), sync=False)


def submitted_jobs(store_root: str | os.PathLike) -> list[TrackedJob]:
    """Every SLURM job this store's runs submitted (``runs/*/jobs.json``), with its last
    recorded state."""
    out = []
    runs = Path(store_root) / "runs"
    for path in sorted(runs.glob("*/jobs.json")) if runs.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            for job_id, job in data["jobs"].items():
                st = job.get("state") or {}
                out.append(TrackedJob(job_id, list(job["cells"]), data["folder"], data["run_id"],
                                      JobState(st.get("state", "SUBMITTED"), st.get("reason"), st.get("node"),
                                               st.get("raw_id"))))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours, or torn by a crash: it only informs
    return out


def in_flight(store_root: str | os.PathLike, cell_ids: list[str] | None = None, *,
              live: bool = True) -> dict[str, TrackedJob]:
    """cell id -> the SLURM job that holds it and is still queued or running (the newest, when
    several do). States come from squeue when ``live`` (else, or when the controller does not
    answer, the last recorded ones); a job with a result file has ended."""
    wanted = None if cell_ids is None else set(cell_ids)
    jobs = [j for j in submitted_jobs(store_root)
            if not j.state.ended and (wanted is None or wanted.intersection(j.cells))]
    try:
        jobs = [j for j in jobs if not j.paths().result_pickle.exists()]
    except ImportError:  # a store copied to a machine without submitit: its jobs are not ours to follow
        return {}
    if live and jobs and shutil.which("squeue"):
        try:
            states = squeue_states([j.job_id for j in jobs])
        except ControllerError:
            states = None
        if states is not None:
            for job in jobs:
                job.state = states.get(job.job_id, JobState("GONE"))
    out: dict[str, TrackedJob] = {}
    for job in jobs:  # oldest run first: a newer submission of the same cell wins
        if job.state.ended:
            continue
        for cell_id in job.cells:
            if wanted is None or cell_id in wanted:
                out[cell_id] = job
    return out



def _sbatch_message(exc: BaseException) -> str:
    """sbatch's error lines, without their "sbatch: error: " prefixes, in one line."""
    lines = []
    for line in str(exc).splitlines():
        line = line.strip()
        for prefix in ("sbatch: error: ", "sbatch: "):
            if line.startswith(prefix):
                line = line[len(prefix):]
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines)[:400] or type(exc).__name__
