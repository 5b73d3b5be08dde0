"""Scale-out, and the one path every run takes: cells run on a backend through
:func:`~bench_suite.executors.driver.drive`.

Cells are independent and the result store (on a filesystem every worker sees) is the only
coordination: each worker runs an ordinary :class:`~bench_suite.runner.runner.Runner` against
the same store path, and the store's per-cell claims make workers share the work (no cell is
trained twice) and pick up the cells of a worker that died (none is lost).

One file per job:

- ``driver.py``: the backend contract (:class:`Backend`), :func:`drive`, :class:`WorkerOptions`,
  the errors every backend shares. Torch-free.
- ``registry.py``: executors by name (``run --executor NAME``), :func:`register_executor`. Torch-free.
- ``session.py``: what ``run`` and ``bench_suite.run`` call (:func:`run_grid`): the store, the
  estimate and the confirmation rule, the backend, ``drive``, the curves packed at the end.
- ``worker.py``: the worker side (:func:`run_cells`; ``python -m bench_suite.executors JOBFILE``).
- ``inprocess.py``: this process (the plain ``run``); ``local.py``: a worker process per device
  (``--devices``); ``dask_cluster.py``: a Dask cluster; ``slurm.py`` and ``slurm_queue.py``:
  SLURM through submitit.

Every wait is bounded: a Dask scheduler that goes away, or a SLURM controller that does not
answer for ``cluster_timeout_s``, ends the run with ``exit_codes.CLUSTER_LOST`` (records already
written are kept; the same command later collects what the jobs wrote meanwhile).
Dask and submitit are optional extras, imported only when their executor is built.

The names below import on first use, so ``import bench_suite.executors`` stays light.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "driver": ("Backend", "ClusterLost", "CodeMismatch", "MissingExtra", "SubmitError", "TimeLimitReached",
               "WorkerOptions", "drive", "require", "say", "suggest_max_group"),
    "registry": ("EXECUTORS", "Executor", "ExecutorRequest", "build_backend", "register_executor"),
    "session": ("ConfirmationNeeded", "RunRequest", "pack_curves", "preflight", "run_grid"),
    "worker": ("WorkerRunner", "default_threads", "pin_device", "rebuild_cells", "run_cells", "worker_main"),
    "inprocess": ("InProcess",),
    "local": ("LocalDevices", "parse_devices", "worker_launch"),
    "dask_cluster": ("DaskBackend",),
    "slurm": ("CellsJob", "SlurmBackend"),
    "slurm_queue": ("ControllerError", "JobState", "SlurmParams", "TrackedJob", "controller_answers", "default_gpus",
                    "explain_sbatch_error", "in_flight", "sacct_states", "squeue_states", "submitted_jobs"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))


__all__ = sorted(_MODULE_OF)
