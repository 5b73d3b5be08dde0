"""Checking results against the paper: the reference rows (``baselines/``), which records count,
one scorer per kind of check, verdicts. It reads the store and never imports the runner.
"""

from .checks import FAIL, INCONCLUSIVE, PASS, SKIPPED, VERDICT_COLUMNS, exit_code, run_checks, save_verdicts, summary
from .references import Reference, load_references

__all__ = ["FAIL", "INCONCLUSIVE", "PASS", "SKIPPED", "VERDICT_COLUMNS", "Reference", "exit_code", "load_references",
           "run_checks", "save_verdicts", "summary"]
