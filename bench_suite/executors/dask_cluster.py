"""Dask: one task per fused group (or chunk of one) on the cluster at ``--scheduler``; each
runs :func:`~bench_suite.executors.worker.run_cells` on the worker's device. ``distributed``
is an optional extra, imported only when this backend is built."""

from __future__ import annotations

import contextlib
from typing import Any

from ..core.errors import exception_line
from .driver import Backend, ClusterLost, require
from .worker import run_cells


class DaskBackend(Backend):
    """One Dask task per batch on the cluster at ``scheduler`` (workers: one GPU each).

    A worker that dies is the scheduler's business (it reruns the worker's tasks elsewhere; the
    store's claims make the rerun skip finished cells). A scheduler that goes away takes every
    task with it (the client's futures are cancelled at once): the run ends there,
    :class:`ClusterLost`."""

    name = "dask"

    def __init__(self, scheduler: str, *, close_timeout_s: float = 10.0) -> None:
        distributed = require("distributed", "dask")
        self.address = scheduler
        self.close_timeout_s = close_timeout_s
        try:
            self.client = distributed.Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {exception_line(exc)}") from None
        self.futures: list[Any] = []
        self.cells_of: dict[str, list[str]] = {}  # future key -> its cells
        self.stopped = False
        # the scheduler is gone (not `lost`: that name is the method Backend.lost, which the
        # driver calls for each cell no task recorded)
        self.scheduler_lost = False
        self.run_id = ""

    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def run_ids(self) -> set[str]:
        return {self.run_id}

    def start(self, batches, options) -> None:
        self.run_id = options.run_id
        opts = options.to_dict()
        self.futures = [
            self.client.submit(run_cells, [c.to_dict() for c in batch], opts, pure=False,
                               key=f"bench_suite-{options.run_id}-{i}")
            for i, batch in enumerate(batches)
        ]
        self.cells_of = {f.key: [c.cell_id for c in batch] for f, batch in zip(self.futures, batches)}

    def poll(self) -> None:
        # futures are cancelled by our stop() or by the connection to the scheduler breaking
        cancelled = not self.stopped and any(f.status == "cancelled" for f in self.futures)
        if cancelled or self.client.status not in ("running", "newly-created"):
            self.scheduler_lost = True
            raise ClusterLost(
                f"lost the Dask scheduler at {self.address} (client {self.client.status}): its tasks are gone; "
                f"finished records are kept: start the scheduler and workers again and re-run the same command"
            )

    def done(self) -> bool:
        self.poll()  # a lost scheduler cancels every future: that is not "done"
        return all(f.done() for f in self.futures)

    def failures(self) -> list[str]:
        out = []
        for future in self.futures:
            if future.status == "error":
                out.append(f"dask task {future.key} failed: {exception_line(future.exception())}")
            elif future.status == "cancelled":
                out.append(f"dask task {future.key} was cancelled")
        return out

    def lost(self, cell_id: str, failures: list[str]) -> tuple[str, dict[str, Any]]:
        key = next((k for k, ids in self.cells_of.items() if cell_id in ids), None)
        mine = [f for f in failures if key is not None and f"dask task {key} " in f]
        return ("; ".join(mine) if mine else f"dask task {key} ended without recording it"), {"dask_task": key}

    def stop(self) -> None:
        self.stopped = True
        with contextlib.suppress(Exception):
            self.client.cancel(self.futures)

    def close(self) -> None:
        if self.scheduler_lost:
            # the run has said the scheduler is gone, in one line: the client's reconnection
            # attempts, cut short by close(), would log pages of tracebacks from its own thread
            _silence_loggers("distributed")
        with contextlib.suppress(Exception):
            self.client.close(timeout=self.close_timeout_s)


def _silence_loggers(prefix: str) -> None:
    import logging

    for name in [prefix, *logging.root.manager.loggerDict]:
        if name == prefix or name.startswith(prefix + "."):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def build(request) -> DaskBackend:
    """``--executor dask --scheduler ADDRESS``."""
    if not request.scheduler:
        raise ValueError("--executor dask needs --scheduler ADDRESS (e.g. tcp://host:8786, as printed by "
                         "`dask scheduler`)")
    return DaskBackend(request.scheduler)
