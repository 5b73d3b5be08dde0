"""Running cells into a store: the runner (groups, data, trainers, checkpoints, records), the
plan and its cost, how cells group, provenance. Executors (bench_suite/executors) drive it.
"""

# what the former module bench_suite.runner held, imported on first use: `plan` and the cost
# model import this package's light modules without torch
_RUNNER = ("DATA_ROOT_ENV", "RunSummary", "Runner", "make_record", "new_run_id", "resolve_device")


def __getattr__(name: str):
    if name in _RUNNER:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_RUNNER)
