"""A template executor plug-in: each fused group in a subprocess of its own, one after another.

Copy this file, rename what it registers, keep the shape. Use it from any folder, with the
folder that holds it on PYTHONPATH (it is not part of the package):

    export PYTHONPATH=/path/to/examples
    python -m bench_suite --plugin my_executor run --profile smoke --executor one_at_a_time
    # from Python: bs.run(..., plugins=["my_executor"], executor="one_at_a_time",
    #                     executor_options={"device": "cpu"})

The contract (bench_suite/executors/driver.py, ``Backend``): ``start(batches, options)`` gets
the fused groups to run (lists of ``Cell``) and the ``WorkerOptions``; ``done()`` says when
every worker has stopped. A worker is anything that runs
``bench_suite.executors.run_cells([cell.to_dict() ...], options.to_dict())`` or
``python -m bench_suite.executors JOBFILE``: it writes each cell's record into the store at
``options.store``, which the driver reads (so the progress, the table and the exit code work
as for the built-in executors). Optional: ``poll()`` (called about once a second),
``failures()`` (one line per worker that failed), ``lost(cell_id, failures)`` (why a cell has
no record: the driver then records it ``lost``), ``stop()`` (Ctrl-C), ``close()``.
``register_executor(name, build)`` makes ``--executor name`` call ``build(request)``;
``request.options`` holds ``bench_suite.run``'s ``executor_options``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench_suite.executors import Backend, register_executor


class OneAtATime(Backend):
    """Each batch (a fused group) in ``python -m bench_suite.executors JOBFILE``, in turn."""

    name = "one_at_a_time"  # recorded in each record's provenance ("executor")

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.queue: list[tuple[int, Path]] = []
        self.batch_of: dict[str, int] = {}  # cell id -> its batch
        self.proc: subprocess.Popen | None = None
        self.current: tuple[int, Path] | None = None
        self.failed: list[str] = []

    def start(self, batches, options) -> None:
        run_dir = Path(options.store) / "runs" / options.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        for i, batch in enumerate(batches):
            jobfile = run_dir / f"batch-{i}.json"
            jobfile.write_text(json.dumps({"cells": [c.to_dict() for c in batch], "options": options.to_dict()}))
            self.queue.append((i, jobfile))
            self.batch_of.update({c.cell_id: i for c in batch})
        self._next()

    def _next(self) -> None:
        self.proc = self.current = None
        if self.queue:
            self.current = i, jobfile = self.queue.pop(0)
            with open(jobfile.with_suffix(".log"), "w") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "bench_suite.executors", str(jobfile), "--device", self.device,
                     "--label", f"batch{i}"], stdout=log, stderr=subprocess.STDOUT)

    def poll(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            if self.proc.returncode != 0:
                i, jobfile = self.current
                self.failed.append(f"batch {i} exited with code {self.proc.returncode} "
                                   f"(log: {jobfile.with_suffix('.log')})")
            self._next()

    def done(self) -> bool:
        return self.proc is None and not self.queue

    def failures(self) -> list[str]:
        return list(self.failed)

    def lost(self, cell_id: str, failures: list[str]) -> tuple[str, dict[str, Any]]:
        i = self.batch_of.get(cell_id)
        mine = [f for f in failures if f.startswith(f"batch {i} ")]
        return ("; ".join(mine) or f"batch {i} ended without recording it"), {"batch": i}

    def stop(self) -> None:
        self.queue.clear()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # the worker records its group interrupted
            self.proc.wait(timeout=60)


register_executor("one_at_a_time", lambda request: OneAtATime(**request.options),
                  "each fused group in a subprocess of its own, one after another (examples/my_executor.py)")
