"""Checking results against the paper (docs/checks.md): the reference rows (``references``, from
``baselines/``), which records count (``selection``), the statistics (``statistics``), one entry
per kind of check (``kinds``), the theorems' assumptions (``scope``), the verdict table and the
exit code (``verdicts``), and the driver that puts them together (``checks.run_checks``). It
reads the store and never imports the runner.
"""

from .checks import run_checks
from .kinds import KINDS, CheckKind, register_kind
from .references import BaselineError, Reference, load_references, loads_references
from .selection import LEFT_OUT_COLUMNS, SETTING_COLUMNS, USABLE_STATUSES, describe_left_out, explain_skips, select
from .statistics import mean_ci, seeds_to_decide, t_cdf, t_quantile
from .verdicts import (
    AS_EXPECTED,
    FAIL,
    INCONCLUSIVE,
    NOT_A_CHECK,
    OUT_OF_SCOPE,
    PASS,
    SKIPPED,
    UNDECIDED,
    UNEXPECTED,
    VERDICT_COLUMNS,
    VERDICTS,
    exit_code,
    outcomes,
    save_verdicts,
    summary,
)


def __getattr__(name: str):
    # the former single module's names: exit codes live in bench_suite.core.exit_codes, the usable
    # statuses are USABLE_STATUSES
    if name.startswith("EXIT_"):
        from . import checks

        return getattr(checks, name)
    if name == "USABLE":
        import warnings

        warnings.warn("bench_suite.scoring.USABLE is deprecated: use bench_suite.scoring.USABLE_STATUSES",
                      DeprecationWarning, stacklevel=2)
        return USABLE_STATUSES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AS_EXPECTED", "BaselineError", "CheckKind", "FAIL", "INCONCLUSIVE", "KINDS", "LEFT_OUT_COLUMNS",
           "NOT_A_CHECK", "OUT_OF_SCOPE", "PASS", "Reference", "SETTING_COLUMNS", "SKIPPED", "UNDECIDED",
           "UNEXPECTED", "USABLE_STATUSES", "VERDICTS",
           "VERDICT_COLUMNS", "describe_left_out", "exit_code", "explain_skips", "load_references",
           "loads_references", "mean_ci", "outcomes", "register_kind", "run_checks", "save_verdicts",
           "seeds_to_decide", "select", "summary", "t_cdf", "t_quantile"]
