"""The result store: one JSON record per cell (``records/``), curves in a parquet sidecar
(``curves/``), an event journal, claims for concurrent runners, and maintenance (migrate, pack,
prune). The runner writes it; ``check`` and ``report`` read it; it imports neither.
"""

from .result_store import RecordWarning, ResultStore, existing_store

__all__ = ["RecordWarning", "ResultStore", "existing_store"]
