"""Reports: the markdown report and its sections (ablation study, theory), written from the
store's records and the verdicts. Reads results; never runs anything.
"""

from .markdown import write_report

__all__ = ["write_report"]
