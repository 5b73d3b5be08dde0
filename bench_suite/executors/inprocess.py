"""This process, one device: the plain ``run`` and ``bench_suite.run``. A backend like the
others (the driver plans, reports and sums up), whose one worker is a
:class:`~bench_suite.runner.runner.Runner` here: it keeps what only a run in this process has,
``--time-budget`` (``RunSummary.stopped``, exit code 75), progress callbacks per epoch and
group, and the data check of records found finished (a finished result of other data is
refused, not taken)."""

from __future__ import annotations

from typing import Callable

from ..core.records import Record
from ..grid import Cell
from ..runner.summary import RunSummary
from ..store.result_store import ResultStore
from .driver import Backend


class InProcess(Backend):
    """The cells run here, now, inside ``start``; each record is handed to the driver as it
    is written (or found), the Runner's counts by :meth:`outcome`."""

    name = "local"
    reports_found = True

    def __init__(self, *, on_epoch: Callable[[int, int], None] | None = None,
                 on_group_start: Callable[[list[Cell]], None] | None = None,
                 on_resume: Callable[[list[Cell], int, int], None] | None = None) -> None:
        self.on_epoch = on_epoch
        self.on_group_start = on_group_start
        self.on_resume = on_resume
        self._report: Callable[[Record], None] | None = None
        self.summary: RunSummary | None = None

    def attach(self, report: Callable[[Record], None]) -> None:
        self._report = report

    def start(self, batches, options) -> None:
        import torch

        from ..runner.runner import Runner

        if options.threads:
            torch.set_num_threads(options.threads)
        runner = Runner(
            ResultStore(options.store), device=options.devices[0], data_root=options.data_root,
            cache_dir=options.cache_dir, force=options.force, fuse=options.fuse, max_group=options.max_group,
            run_id=options.run_id, executor=options.executor, poll_s=options.poll_s, on_record=self._report,
            on_epoch=self.on_epoch, on_group_start=self.on_group_start, on_resume=self.on_resume,
            checkpoint_every=options.checkpoint_every, time_budget_s=options.time_budget_s, stop_on_data_error=True,
        )
        self.summary = runner.run([cell for batch in batches for cell in batch])

    def done(self) -> bool:
        return True

    def outcome(self) -> RunSummary | None:
        return self.summary
