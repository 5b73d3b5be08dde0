"""What a run returns: one record per cell and the counts that explain them (torch-free, so
the driver of the executors and ``plan`` import it without torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core import exit_codes
from ..core.records import FAILED, Record, Status


@dataclass
class RunSummary:
    run_id: str = ""
    records: list[Record] = field(default_factory=list)  # one per cell: written, found or lost
    cached: int = 0  # cells found finished in the store when first looked at: not re-run
    by_others: int = 0  # cells another runner finished (or recorded) while this one ran
    claimed_elsewhere: int = 0  # cells another runner still held when this one stopped waiting
    failures: list[str] = field(default_factory=list)  # workers / jobs that failed (parallel executors)
    stopped: str | None = None  # why the run stopped early (time budget, request_stop), if it did
    checkpointed: list[dict[str, Any]] = field(default_factory=list)  # {"cells", "epoch", "epochs"} per group
    submitted: list[str] = field(default_factory=list)  # cluster jobs this run submitted (SLURM ids)
    adopted: list[str] = field(default_factory=list)  # jobs of earlier runs this run waited for / left running
    waited: bool = True  # False: the jobs were submitted and left running (`--no-wait`)

    def count(self, status: str) -> int:
        return sum(1 for r in self.records if r.status == status)

    def __repr__(self) -> str:  # a notebook shows the counts, not every record's curves
        counts = ", ".join(f"{s.value} {self.count(s.value)}" for s in Status if self.count(s.value))
        return (f"RunSummary(run {self.run_id}: {len(self.records)} cells: {counts or 'none'}; "
                f"exit code {self.exit_code})")

    def to_frame(self):
        """The records of this run as the flat results table (``records.COLUMNS``)."""
        from ..core.records import to_frame

        return to_frame(self.records)

    @property
    def exit_code(self) -> int:
        """``exit_codes.OK`` all done; ``FAILED`` any cell errored, diverged, was interrupted,
        was lost or was held elsewhere to the end; ``SKIPPED`` nothing failed but some were
        skipped (no data); ``STOPPED`` stopped early (checkpointed: re-run to continue)."""
        if self.stopped:
            return exit_codes.STOPPED
        if self.claimed_elsewhere or any(r.status in FAILED for r in self.records):
            return exit_codes.FAILED
        if any(r.status == Status.SKIPPED for r in self.records):
            return exit_codes.SKIPPED
        return exit_codes.OK

    def absorb(self, other: "RunSummary") -> None:
        """Add the counts and the early stop of a summary made by a runner of this run (an
        in-process backend's); its records were reported one by one already."""
        self.cached += other.cached
        self.by_others += other.by_others
        self.claimed_elsewhere += other.claimed_elsewhere
        self.stopped = self.stopped or other.stopped
        self.checkpointed += other.checkpointed
