"""The machine-readable tables: the results (one row per record) and the curves (long form),
as CSV and parquet. ``export`` writes both; ``report`` writes the results beside its pages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from ..core.curves import x_key

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..core.records import Record

CURVE_COLUMNS = ["cell_id", "task", "profile", "method", "width", "activation", "repetition", "epoch", "metric",
                 "value"]


def curves_frame(records: Iterable["Record"]) -> "pd.DataFrame":
    """The curves of ``records`` (those in memory: ``Record.curves``) in long form
    (``CURVE_COLUMNS``): one row per cell, epoch and metric that has a value there. A point stored
    as null (None: the metric is not defined for the cell, as ``test_acc`` of a regression task
    or of a task without a test split) has no row; a NaN value (a diverged run) is a row."""
    import pandas as pd

    columns: dict[str, list] = {c: [] for c in CURVE_COLUMNS}
    for r in records:
        curves = r.curves or {}
        base = {"cell_id": r.cell_id, "task": r.task, "profile": r.profile, "method": r.method,
                "width": r.config.get("width"), "activation": r.config.get("activation"),
                "repetition": r.config.get("repetition")}
        for metric, values in sorted(curves.items()):
            if metric in ("epoch", "eval_epoch"):
                continue
            points = [(x, y) for x, y in zip(curves.get(x_key(metric)) or [], values) if y is not None]
            n = len(points)
            for col, value in base.items():
                columns[col] += [value] * n
            columns["epoch"] += [x for x, _ in points]
            columns["metric"] += [metric] * n
            columns["value"] += [y for _, y in points]
    frame = pd.DataFrame(columns, columns=CURVE_COLUMNS)
    for col in ("width", "repetition", "epoch"):
        frame[col] = frame[col].astype("Int64")
    for col in ("cell_id", "task", "profile", "method", "activation", "metric"):
        frame[col] = frame[col].astype("string")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    return frame


def write_table(frame: "pd.DataFrame", out_dir: str | os.PathLike, name: str) -> list[Path]:
    """``out_dir/<name>.csv`` and ``.parquet`` (parquet needs pyarrow; without it only CSV),
    each written atomically; the paths written."""
    from ..core.files import atomic_write

    out = Path(out_dir)
    written = [atomic_write(out / f"{name}.csv", lambda fh: frame.to_csv(fh, index=False, lineterminator="\n"))]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return written
    written.append(atomic_write(out / f"{name}.parquet", lambda fh: frame.to_parquet(fh, index=False)))
    return written


def write_tables(results: "pd.DataFrame", curves: "pd.DataFrame | None", out_dir: str | os.PathLike) -> list[Path]:
    """``results.{csv,parquet}`` and (unless ``curves`` is None) ``curves.{csv,parquet}`` in
    ``out_dir`` (created); the paths written."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = write_table(results, out_dir, "results")
    if curves is not None:
        written += write_table(curves, out_dir, "curves")
    return written


__all__ = ["CURVE_COLUMNS", "curves_frame", "write_table", "write_tables"]
