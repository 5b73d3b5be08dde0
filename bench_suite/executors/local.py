"""Several devices of this machine: one worker process per device, each given every cell
(``python -m bench_suite.executors JOBFILE --device D``), pinned to its GPU
(``CUDA_VISIBLE_DEVICES``, then ``torch.cuda.set_device``); the store's claims split the work.
Their logs go to ``<store>/runs/<run_id>/``. A process pool would not do: each worker needs
its own environment (its GPU alone)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .driver import Backend


def parse_devices(text: str, *, check: bool = True) -> list[str]:
    """``0,1`` -> cuda:0, cuda:1; ``cpu,cpu`` -> two CPU workers; ``cuda:2`` as is. ``check``:
    each must be a device this machine has (imports torch; ``run`` checks them before it starts)."""
    devices = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        devices.append(f"cuda:{part}" if part.isdigit() else part)
    if not devices:
        raise ValueError("--devices needs at least one device, e.g. 0,1 or cpu,cpu")
    if not check:
        return devices
    from ..runner.runner import resolve_device  # torch: the devices must be there

    for device in devices:
        resolve_device(device)  # one-line error for an unknown or absent device
    return devices



def worker_launch(device: str, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The ``--device`` argument and the environment of the local worker for ``device``.

    A ``cuda:N`` worker sees its GPU alone (``CUDA_VISIBLE_DEVICES`` = the N-th GPU this process
    sees: the parent's own list when it has one, e.g. the GPUs SLURM gave a job) and runs on
    ``cuda:0``; a CPU worker sees no GPU. Source: CUDA's device enumeration; our choice."""
    env = dict(env)
    if device.startswith("cuda:"):
        index = int(device.split(":", 1)[1])
        visible = env.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            ids = [v.strip() for v in visible.split(",") if v.strip()]
            if index >= len(ids):
                raise ValueError(f"--devices {device}: this process sees {len(ids)} GPU(s) "
                                 f"(CUDA_VISIBLE_DEVICES={visible!r})")
            env["CUDA_VISIBLE_DEVICES"] = ids[index]
        else:
            env["CUDA_VISIBLE_DEVICES"] = str(index)
        return "cuda:0", env
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return device, env


STOP_WAIT_S = 30  # how long a worker gets to record its cells after the forwarded SIGINT


class LocalDevices(Backend):
    """One subprocess per device, each given every cell; their logs go to ``runs/<run_id>/``."""

    name = "devices"

    def __init__(self, devices: list[str]) -> None:
        self.devices = devices
        self.procs: list[tuple[subprocess.Popen, Path, str]] = []

    def workers(self) -> int:
        return len(self.devices)

    def launches(self, jobfile: Path, env: dict[str, str]) -> list[tuple[list[str], dict[str, str], str]]:
        """(argv, environment, label) of each worker."""
        out = []
        for i, device in enumerate(self.devices):
            arg, worker_env = worker_launch(device, env)
            label = f"{device}#{i}"
            out.append(([sys.executable, "-m", "bench_suite.executors", str(jobfile), "--device", arg,
                         "--label", label], worker_env, label))
        return out

    def start(self, batches, options) -> None:
        run_dir = Path(options.store) / "runs" / options.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        jobfile = run_dir / f"job-{os.getpid()}.json"
        cells = [c.to_dict() for batch in batches for c in batch]  # every worker gets every cell: claims split them
        jobfile.write_text(json.dumps({"cells": cells, "options": options.to_dict()}))
        for i, (argv, env, label) in enumerate(self.launches(jobfile, dict(os.environ))):
            log_path = run_dir / f"worker-{os.getpid()}-{i}.log"
            with open(log_path, "w") as log:
                proc = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                    # its own process group: a terminal's Ctrl-C reaches only us, and we forward
                    # one SIGINT (a second one could cut the worker's "interrupted" records short)
                    start_new_session=True,
                )
            self.procs.append((proc, log_path, label))

    def done(self) -> bool:
        return all(proc.poll() is not None for proc, _, _ in self.procs)

    def failures(self) -> list[str]:
        out = []
        for proc, log_path, label in self.procs:
            if proc.returncode not in (0, None):
                out.append(f"worker {label} exited with code {proc.returncode} "
                           f"({_last_line(log_path)}; log: {log_path})")
        return out

    def stop(self) -> None:
        for proc, _, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_WAIT_S
        for proc, log_path, label in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()  # reaped: SIGKILL cannot be ignored, so this returns at once
                print(f"worker {label} did not stop within {STOP_WAIT_S} s of the interrupt and was killed: its "
                      f"unfinished cells have no record; re-run to train them (from their last checkpoint, if any; "
                      f"log: {log_path})",
                      file=sys.stderr, flush=True)



def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip()[:200] if lines else "empty log"


def build(request) -> Backend:
    """``--executor local``: this process (one device, or none named), else a worker per device."""
    devices = request.devices or []
    if len(devices) > 1:
        return LocalDevices(devices)
    from .inprocess import InProcess

    return InProcess(on_epoch=request.on_epoch, on_group_start=request.on_group_start, on_resume=request.on_resume)
