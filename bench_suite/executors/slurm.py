"""SLURM through submitit: one array task per fused group (or chunk of one).

The submitting process (:class:`SlurmBackend`) follows the jobs with ``squeue`` (``sacct`` only
as a fallback: accounting is often disabled), prints one line per state change, records the
cells of a job that died ``lost`` with the job's id and state, and writes what it submitted to
``runs/<run_id>/jobs.json`` so that the same command run again collects instead of submitting
a second time. Inside a job, :class:`CellsJob` runs the cells and handles the time limit.
Why not submitit's futures: waiting on one polls ``sacct`` (it never returns without
accounting), and a future has no job state, no queue to re-attach to and no bound on an
unreachable controller. submitit is an optional extra, imported only when this backend is built.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from ..core.errors import exception_line
from ..core.records import FINISHED
from ..grid import Cell
from ..runner.runner import Runner, record_unfinished
from ..store.result_store import ResultStore
from .driver import (
    Backend,
    ClusterLost,
    SubmitError,
    TimeLimitReached,
    WorkerOptions,
    _first_line,
    _id_list,
    require,
    say,
)
from .slurm_queue import (
    SLURM_STATE_HINTS,
    ControllerError,
    JobState,
    SlurmParams,
    TrackedJob,
    _jobs_file,
    _log_of,
    _sbatch_message,
    _write_json,
    controller_answers,
    default_gpus,
    explain_sbatch_error,
    in_flight,
    kill_wait_s,
    sacct_states,
    squeue_states,
)
from .worker import _slurm_job_here, _status_of, rebuild_cells, run_cells


class _JobWatch:
    """What a SLURM job's time-limit handler needs to know: the Runner and its current group."""

    def __init__(self) -> None:
        self.runner: Runner | None = None
        self.group: list[Cell] = []
        self.signalled = False
        self.graceful = False

    def group_start(self, group: list[Cell]) -> None:
        self.group = list(group)

    def on_time_limit(self, signum: int, frame: Any) -> None:
        if self.signalled:  # a second signal while winding down
            return
        self.signalled = True
        # the graceful stop (issue 13): the Runner writes a checkpoint of the group in training at
        # its next segment end and returns from run(); the job then requeues and the requeued job
        # resumes the group from its checkpoint. (A runner without it: training stops right here.)
        stop = getattr(self.runner, "request_stop", None)
        if callable(stop):
            self.graceful = True
            stop(f"the SLURM job's time limit is near ({signal.Signals(signum).name}); the job is requeued")
            return
        raise TimeLimitReached(f"signal {signal.Signals(signum).name}")


class CellsJob:
    """What a SLURM job runs (submitit pickles it): :func:`run_cells`, plus the time limit.

    It follows submitit's checkpointing protocol (``submitit.helpers.Checkpointable``: a
    callable with a ``checkpoint`` method returning the call to make in the requeued job), by
    duck typing so that this module imports without submitit. SLURM signals USR2
    ``signal_delay_s`` (90 s) before the time limit, or on a preemption. submitit's own
    handler would act right there, in the middle of training: for a callable it cannot
    requeue it raises (the Runner then records an ordinary error and retrains a fused group
    cell by cell), else it requeues and exits at once, leaving nothing recorded. So the job
    installs its own handler, which stops the Runner (:class:`_JobWatch`), records the cells
    of the group in training ``interrupted`` with the limit named, then hands over to
    submitit's handler, which calls :meth:`checkpoint`, requeues the job and exits. After
    ``requeues`` time limits submitit refuses to requeue; the unfinished cells are then
    recorded ``error`` with the limit named ("cannot finish within --time-limit").
    """

    def __init__(self, time_limit_min: int, requeues: int) -> None:
        self.time_limit_min = time_limit_min
        self.requeues = requeues
        self.stops = 0  # time-limit / preemption signals so far (kept across requeues: pickled)

    def __call__(self, cell_dicts: list[dict[str, Any]], options: dict[str, Any]) -> list[dict[str, Any]]:
        watch = _JobWatch()
        previous: Any = None
        try:
            previous = signal.getsignal(signal.SIGUSR2)
            signal.signal(signal.SIGUSR2, watch.on_time_limit)
        except (AttributeError, ValueError):  # no USR2 here, or not the main thread (debug executor)
            previous = None
        try:
            out = run_cells(cell_dicts, options, watch=watch)
            if not watch.signalled:
                return out
        except TimeLimitReached:
            pass
        return self._after_signal(watch, previous, cell_dicts, options)

    def checkpoint(self, cell_dicts: list[dict[str, Any]], options: dict[str, Any]) -> Any:
        """The call the requeued job makes: the same cells (finished ones are found in the store;
        with the checkpoints of issue 13 the interrupted group resumes from its checkpoint)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, cell_dicts, options)

    def _after_signal(self, watch: _JobWatch, previous: Any, cell_dicts: list[dict[str, Any]],
                      options: dict[str, Any]) -> list[dict[str, Any]]:
        self.stops += 1  # before checkpoint() pickles us: the requeued job knows how often it was stopped
        opts = WorkerOptions(**options)
        store = ResultStore(opts.store)
        cells = rebuild_cells(cell_dicts)
        job = _slurm_job_here() or f"pid {os.getpid()}"
        limit = f"--time-limit {self.time_limit_min} min"

        def unfinished(candidates: list[Cell]) -> list[Cell]:
            out = []
            for cell in candidates:
                record = store.get(cell.cell_id)
                if record is None or record.status not in FINISHED:
                    out.append(cell)
            return out

        def record_all(candidates: list[Cell], status: str, reason: str, *, skip_ours: bool) -> None:
            # a cell another job holds is left alone; one finished meanwhile, or (graceful stop)
            # recorded by our own Runner, stands
            record_unfinished(store, candidates, status, lambda cell: (reason, {"time_limit_min": self.time_limit_min}),
                              run_id=opts.run_id, executor=opts.executor, event={"job": job},
                              keep=lambda old: old.finished or (skip_ours and old.run_id == opts.run_id))

        left = unfinished(cells)
        if not left:  # the signal came after the last cell: nothing to requeue
            return [{"cell_id": c.cell_id, "status": _status_of(store, c)} for c in cells]
        in_training = unfinished(watch.group)
        record_all(in_training, "interrupted",
                   f"time limit: SLURM job {job} was signalled before its time limit ({limit}) while training this "
                   f"cell; the job is requeued and the cell resumes", skip_ours=watch.graceful)
        why = "no submitit job environment here to requeue it"
        if callable(previous):
            try:
                previous(signal.SIGUSR2, None)  # submitit: checkpoint(), `scontrol requeue`, sys.exit
            except Exception as exc:  # noqa: BLE001 - submitit refuses to requeue (timed out too many times)
                why = f"not requeued again, --requeues {self.requeues}; submitit: {_first_line(str(exc))}"
        record_all(unfinished(cells), "error",
                   f"time limit: SLURM job {job} reached its time limit ({limit}) {self.stops} time(s) without "
                   f"finishing this cell ({why}): raise --time-limit, or split fused groups with --max-group",
                   skip_ours=False)
        return [{"cell_id": c.cell_id, "status": _status_of(store, c)} for c in cells]



class SlurmBackend(Backend):
    """One SLURM array task per batch, submitted through submitit (jobs write the store).

    submitit submits; the jobs are followed here: result files (cheap, every second), squeue
    every ``poll_s`` (sacct only for a job squeue has forgotten), one line per state change.
    A job that ended without a result is final after ``grace_s``, at least the cluster's
    KillWait + 10 s (a shared filesystem may show the file late, and a job being requeued shows
    an ending state until its step has ended, up to KillWait); its unrecorded
    cells become ``lost`` records naming the job and its state.
    On submitit's ``local``/``debug`` clusters (no SLURM) submitit's own job objects are used."""

    name = "slurm"

    def __init__(self, params: SlurmParams, *, on_message: Callable[[str], None] = say) -> None:
        self.submitit = require("submitit", "slurm")
        if params.cluster is None and self.submitit.AutoExecutor.which() != "slurm":
            # submitit would fall back to running the jobs here; say so instead of surprising
            raise ValueError("--executor slurm: no SLURM found here (no sbatch/srun); submit from a SLURM login "
                             "node, or add --submitit-cluster local to run the jobs on this machine")
        self.params = params
        self.real = params.cluster in (None, "slurm")
        self.say = on_message
        self.jobs: dict[str, TrackedJob] = {}
        self.own: list[str] = []  # job ids this run submitted
        self.adopted: list[str] = []  # job ids of earlier runs this run waits for
        self.handles: dict[str, Any] = {}  # job id -> submitit Job (this run's submissions)
        self.run_id = ""
        self.store = ""
        self._last_query = -math.inf
        self._unreachable_since: float | None = None
        self._sacct_works: bool | None = None
        self.grace_s = params.grace_s  # raised to the cluster's KillWait + 10 s by _preflight

    def workers(self) -> int:
        return self.params.max_jobs

    def run_ids(self) -> set[str]:
        return {self.run_id} | {self.jobs[j].run_id for j in self.adopted}

    def job_ids(self) -> list[str]:
        return list(self.own)

    def adopted_ids(self) -> list[str]:
        return list(self.adopted)

    # -- submitting --------------------------------------------------------------------------

    def _preflight(self) -> None:
        if not self.real or shutil.which("scontrol") is None:  # no scontrol: sbatch will say it
            return
        ok, text = controller_answers()
        if not ok:
            raise SubmitError(f"the SLURM controller does not answer ({text}): check `scontrol ping` / `sinfo`, or "
                              f"ask the administrators; nothing was submitted")
        kill_wait = kill_wait_s()
        if kill_wait is not None:
            self.grace_s = max(self.grace_s, kill_wait + 10.0)

    def adopt(self, cells: list[Cell], options: WorkerOptions) -> set[str]:
        self.run_id, self.store = options.run_id, options.store
        self._preflight()
        if not self.real or options.force:  # --force re-runs: earlier jobs would only skip finished cells
            return set()
        taken = in_flight(options.store, [c.cell_id for c in cells])
        for job in {j.job_id: j for j in taken.values()}.values():
            self.jobs[job.job_id] = job
            self.adopted.append(job.job_id)
            self.say(f"slurm job {job.job_id} (run {job.run_id}) already holds {len(job.cells)} of these cells, "
                     f"{job.state.describe()}: not submitted again")
        return set(taken)

    def start(self, batches, options) -> None:
        self.run_id, self.store = options.run_id, options.store
        if not batches:
            return
        p = self.params
        gpus = p.gpus_per_job
        why = ""
        if gpus is None:
            gpus = default_gpus([c for batch in batches for c in batch])
            why = (" (no cell's profile runs on cuda; --gpus-per-job G asks for G)" if gpus == 0
                   else " (a cell's profile runs on cuda; --gpus-per-job G to change)")
        run_dir = Path(options.store) / "runs" / options.run_id
        folder = run_dir / "submitit" / "%j"
        existed = run_dir.exists()
        executor = self.submitit.AutoExecutor(folder=folder, cluster=p.cluster, slurm_max_num_timeout=p.requeues,
                                              local_max_num_timeout=p.requeues)
        params: dict[str, Any] = dict(
            name=f"bench_suite-{options.run_id}", timeout_min=p.time_limit_min, cpus_per_task=p.cpus_per_job,
            mem_gb=p.mem_gb, tasks_per_node=1, nodes=1, slurm_partition=p.partition,
            slurm_array_parallelism=p.max_jobs, slurm_additional_parameters=dict(p.extra) or None,
        )
        if gpus:  # never `--gpus-per-node=0`: a partition without GPUs refuses any gres request
            params["gpus_per_node"] = gpus
        executor.update_parameters(**params)
        # a job with several GPUs runs one worker process per GPU (SLURM sets which GPUs)
        devices = [f"cuda:{i}" for i in range(gpus)] if gpus > 1 else (["cuda"] if gpus == 1 else ["cpu"])
        opts = {**options.to_dict(), "devices": devices}
        from submitit.core.utils import FailedSubmissionError, UncompletedJobError

        handles: list[Any] = []
        try:
            # submitit echoes sbatch's stderr before raising it: it is said once, below
            with contextlib.redirect_stderr(io.StringIO()), executor.batch():
                for batch in batches:
                    job = CellsJob(p.time_limit_min, p.requeues)
                    handles.append(executor.submit(job, [c.to_dict() for c in batch], opts))
        except (UncompletedJobError, FailedSubmissionError, OSError, subprocess.SubprocessError) as exc:
            if not existed:  # nothing was submitted: leave no run folder behind
                shutil.rmtree(run_dir, ignore_errors=True)
                for empty in (run_dir.parent, run_dir.parent.parent):
                    with contextlib.suppress(OSError):
                        empty.rmdir()  # only when empty
            raise SubmitError(explain_sbatch_error(_sbatch_message(exc), p, gpus)) from None
        store = ResultStore(options.store)
        for handle, batch in zip(handles, batches):
            job = TrackedJob(handle.job_id, [c.cell_id for c in batch], str(folder), options.run_id)
            self.jobs[job.job_id] = job
            self.own.append(job.job_id)
            self.handles[job.job_id] = handle
            for cell in batch:
                store.log_event("submit", cell.cell_id, run_id=options.run_id, job=job.job_id)
        self._save()
        first = self.own[0].split("_", 1)[0]
        what = f"array job {first} ({len(self.own)} tasks)" if len(self.own) > 1 else f"job {self.own[0]}"
        self.say(f"slurm: submitted {sum(len(b) for b in batches)} cell(s) as {what}, {gpus} GPU(s) each{why}, "
                 f"time limit {p.time_limit_min} min; logs in {run_dir / 'submitit'}")

    def _save(self) -> None:
        """This run's submissions and their last seen states (``runs/<run_id>/jobs.json``)."""
        own = [self.jobs[j] for j in self.own]
        if not own:
            return
        _write_json(_jobs_file(self.store, self.run_id), {
            "executor": "slurm", "run_id": self.run_id, "folder": own[0].folder,
            "time_limit_min": self.params.time_limit_min,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "jobs": {j.job_id: {"cells": j.cells, "state": asdict(j.state), "outcome": j.outcome} for j in own},
        })

    # -- following -----------------------------------------------------------------------------

    def _set_state(self, job: TrackedJob, state: JobState) -> bool:
        changed = (state.state, state.reason, state.node) != (job.state.state, job.state.reason, job.state.node)
        if changed:
            job.state = state
            self.say(f"slurm job {job.job_id}: {state.describe()}")
        return changed

    def poll(self) -> None:
        if not self.real:
            for job_id, handle in self.handles.items():
                job = self.jobs[job_id]
                if not job.final and handle.done():
                    job.final, job.outcome = True, "result"
                    self._set_state(job, JobState("COMPLETED"))
            return
        now = time.monotonic()
        changed = False
        live = [j for j in self.jobs.values() if not j.final]
        for job in live:
            if job.paths().result_pickle.exists():
                job.final, job.outcome = True, "result"
                if not job.state.ended:
                    self._set_state(job, JobState("COMPLETED", raw_id=job.state.raw_id))
                changed = True
        live = [j for j in live if not j.final]
        if live and now - self._last_query >= self.params.poll_s:
            self._last_query = now
            try:
                states = squeue_states([j.job_id for j in live])
            except ControllerError as exc:
                self._unreachable(now, str(exc))
                states = None
            else:
                if self._unreachable_since is not None:
                    self.say("slurm: the controller answers again")
                self._unreachable_since = None
            if states is not None:
                missing = [j.job_id for j in live if j.job_id not in states]
                if missing and self._sacct_works is not False:
                    found = sacct_states(missing)
                    self._sacct_works = found is not None
                    states.update(found or {})
                for job in live:
                    state = states.get(job.job_id, JobState("GONE", raw_id=job.state.raw_id))
                    if state.raw_id is None:
                        state.raw_id = job.state.raw_id
                    changed |= self._set_state(job, state)
                    if not state.ended:
                        job.ended_at = None  # e.g. requeued
                    elif job.ended_at is None:
                        job.ended_at = now
        for job in live:
            if job.ended_at is None:
                continue
            # no ending state is final at once: a job that completed, or that the queue has forgotten,
            # may still have a result file on its way through a shared filesystem, and a job that
            # submitit requeues at its time limit shows FAILED for a moment before it is PENDING
            # again (seen on a real cluster: the requeued cells were counted lost); a later poll
            # within grace_s that finds it alive resets ended_at
            waited = now - job.ended_at
            if waited >= self.grace_s:
                if job.paths().result_pickle.exists():
                    job.outcome = "result"
                else:
                    job.outcome = "lost"
                job.final = True
                changed = True
        if changed:
            self._save()

    def _unreachable(self, now: float, message: str) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = now
            self.say(f"slurm: the controller does not answer ({message}); waiting up to "
                     f"{self.params.cluster_timeout_s:.0f} s for it")
        elif now - self._unreachable_since >= self.params.cluster_timeout_s:
            waiting = [j.job_id for j in self.jobs.values() if not j.final]
            raise ClusterLost(
                f"the SLURM controller has not answered for {now - self._unreachable_since:.0f} s ({message}); "
                f"jobs {_id_list(waiting)} may still run and write their records: re-run the same command later to "
                f"collect them (`plan` shows their last known state)"
            )

    def done(self) -> bool:
        return all(job.final for job in self.jobs.values())

    def _error(self, job: TrackedJob) -> str | None:
        """The job's own exception (read from submitit's result file), in one line."""
        if job.outcome != "result":
            return None
        handle = self.handles.get(job.job_id)
        if handle is None:
            handle = self.submitit.SlurmJob(folder=job.folder, job_id=job.job_id)
        try:
            exc = handle.exception()
        except Exception as err:  # noqa: BLE001 - an unreadable result file is itself the failure
            return exception_line(err)
        if exc is None:
            return None
        lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.startswith("---")]
        # submitit wraps the job's traceback: its last line is the exception itself
        trace = [line for line in lines if not line.startswith(("Job (task", "You can check", "or at paths", "- /"))]
        return trace[-1][:300] if trace else exception_line(exc)

    def failures(self) -> list[str]:
        out = []
        for job in self.jobs.values():
            logs = _log_of(job)
            if job.outcome == "lost":
                hint = SLURM_STATE_HINTS.get(job.state.state, "")
                out.append(f"slurm job {job.job_id} ended {job.state.state} without a result"
                           f"{f' ({hint})' if hint else ''}; logs: {logs}")
            else:
                error = self._error(job)
                if error:
                    out.append(f"slurm job {job.job_id} failed: {error}; logs: {logs}")
        return out

    def lost(self, cell_id: str, failures: list[str]) -> tuple[str, dict[str, Any]]:
        job = next((j for j in self.jobs.values() if cell_id in j.cells), None)
        if job is None:
            return super().lost(cell_id, failures)
        state = job.state.state
        hint = SLURM_STATE_HINTS.get(state, "")
        error = self._error(job)
        what = f"failed: {error}" if error else f"ended {state}{f' ({hint})' if hint else ''}"
        prov: dict[str, Any] = {"slurm_job": job.job_id, "slurm_state": state}
        array, _, task = job.job_id.partition("_")
        prov["slurm_job_id"] = job.state.raw_id or job.job_id
        if task:
            prov.update(slurm_array_job_id=array, slurm_array_task_id=task)
        return f"SLURM job {job.job_id} {what} before recording this cell; logs: {_log_of(job)}", prov

    def stop(self) -> None:
        for job_id in self.own:
            handle = self.handles.get(job_id)
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.cancel(check=False)

    def close(self) -> None:
        self._save()


def build(request) -> SlurmBackend:
    """``--executor slurm``: SlurmParams from ``request.slurm``."""
    return SlurmBackend(SlurmParams(**request.slurm), on_message=request.on_message or say)
