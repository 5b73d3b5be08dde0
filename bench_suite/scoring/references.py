"""Reference rows (the paper's numbers and claims) read from ``baselines/*.toml``.

This is the one reader of the reference files; ``scoring.py`` scores results against what it
returns. The file format is described in ``docs/checks.md``. In short::

    protocol = 1                      # the record protocol these rows apply to

    [[group]]                         # shared fields + one inline table per row
    kind = "value"
    task = "cifar10_random"
    profile = "paper"
    method = "mli_paired_pgd"
    source = "Table 3"
    rows = [
      { width = 1024, activation = "relu", metric = "train_acc", value = 0.9931, tolerance = 0.01 },
    ]

    [[reference]]                     # or a single row
    kind = "comparison"
    task = "synthetic_ablation"
    profile = "paper"
    method = "mli_paired_pgd"
    versus = "sgd"
    metric = "train_loss"
    direction = "lower"

Row kinds:

- ``value``: ``|measured - value| <= tolerance`` (direction ``within``);
- ``threshold``: ``measured >= bound`` (``at_least``) or ``<= bound`` (``at_most``), loosened
  by ``tolerance`` (default 0);
- ``kkt_bound``: Theorem 2 as a bound (the ``kkt_bound`` task's records): per instance, C is
  estimated on the larger-eps half of its radii and tested on the smaller (``bound`` is the slack,
  2); ``bench_suite.theory.kkt_bound.bound_verdict`` has the rule;
- ``comparison``: the per-repetition difference ``method - versus`` on the same task, profile,
  width and activation against ``bound`` (default 0): ``lower`` (< bound), ``higher`` (> bound),
  ``at_most`` (<= bound), ``at_least`` (>= bound); ``tolerance`` loosens the edge in favour
  of the claim.

``width`` / ``activation`` may be a value, a list, or omitted (= every width / activation
that has results for that task, method and profile).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..core.records import SCORED_METRICS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

KINDS = ("value", "threshold", "comparison", "slope", "kkt_bound")
DIRECTIONS: dict[str, tuple[str, ...]] = {
    "value": ("within",),
    "threshold": ("at_least", "at_most"),
    "comparison": ("lower", "higher", "at_least", "at_most"),
    "slope": ("at_least", "at_most", "within"),
    "kkt_bound": ("at_most",),
}
# the per-cell metrics of the results table a reference row may score (final metrics, and the
# theory section's measurements: bench_suite/core/records.py)
METRICS = SCORED_METRICS
# how a row's repetitions are combined: "mean" (a t-interval over repetitions) or "every" (each
# repetition must satisfy the row: a law that must hold in every sampled cell)
STATISTICS = ("mean", "every")
# the columns `only` and a slope's `x` may name (numeric columns of the results table)
FILTER_COLUMNS = SCORED_METRICS + ("eps", "lr_w", "lr_v", "momentum", "width_ratio", "epochs", "width", "radius")

ROW_FIELDS = (
    "id", "kind", "task", "profile", "method", "versus", "width", "activation", "metric", "direction",
    "value", "bound", "tolerance", "source", "claim", "known_deviation", "statistic", "only", "x",
)
FILE_FIELDS = ("protocol", "title", "description", "group", "reference")

ENV_VAR = "BENCH_SUITE_BASELINES"


class BaselineError(ValueError):
    """A malformed reference file or row; the message names the file and the row."""


@dataclass(frozen=True)
class Reference:
    """One reference row. ``widths`` / ``activations`` None means "every one with results"."""

    id: str
    kind: str
    task: str
    profile: str
    method: str
    metric: str
    direction: str
    protocol: int
    versus: str | None = None
    widths: tuple[int, ...] | None = None
    activations: tuple[str, ...] | None = None
    value: float | None = None  # kind "value": the paper's number
    bound: float | None = None  # "threshold": the bound; "comparison": bound on method - versus
    tolerance: float = 0.0
    source: str = ""
    claim: str = ""
    file: str = ""
    # a documented, measured non-reproduction (where it is written up): the row is still scored and
    # reported as FAIL, but an expected FAIL does not fail `check`; an unexpected PASS does (the
    # write-up is then stale). Never set this to make a row pass: only with a study that shows it.
    known_deviation: str = ""
    statistic: str = "mean"  # see STATISTICS
    # records scored only where these columns meet these bounds: ((column, "at_most"|"at_least", value), ...)
    only: tuple = ()
    x: str | None = None  # kind "slope": the column of the x axis (log-log fit of metric against x)

    @property
    def target(self) -> float:
        """The number the measurement is scored against (value, or bound)."""
        return float(self.value if self.value is not None else self.bound)  # type: ignore[arg-type]

    def acceptance(self) -> tuple[float, float, bool, bool]:
        """The interval a measurement must lie in to pass: (low, high, low_closed, high_closed)."""
        t, tol = self.target, self.tolerance
        if self.direction == "within":
            return t - tol, t + tol, True, True
        if self.direction == "at_least":
            return t - tol, math.inf, True, False
        if self.direction == "higher":
            return t - tol, math.inf, False, False
        if self.direction == "at_most":
            return -math.inf, t + tol, False, True
        if self.direction == "lower":
            return -math.inf, t + tol, False, False
        raise BaselineError(f"{self.id}: unknown direction {self.direction!r}")  # pragma: no cover

    def describe(self) -> str:
        """A one-line human statement of the row, e.g. ``train_acc within 0.9931 ± 0.01``."""
        if self.kind == "value":
            return f"{self.metric} within {self.target:g} ± {self.tolerance:g}"
        if self.kind == "slope":
            op = {"at_least": ">=", "at_most": "<=", "within": "within"}[self.direction]
            tail = f" ± {self.tolerance:g}" if self.direction == "within" else ""
            return f"slope of log {self.metric} against log {self.x} {op} {self.target:g}{tail}"
        if self.kind == "kkt_bound":
            return (f"per instance, max loss/eps^2 of non-degenerate KKT points above the float64 floor on the "
                    f"smaller-eps half <= {self.target:g} x that on the larger-eps half")
        lhs = self.metric
        if self.kind == "comparison":
            lhs = f"{self.metric}[{self.method}] - {self.metric}[{self.versus}]"
        op = {"at_least": ">=", "at_most": "<=", "lower": "<", "higher": ">"}[self.direction]
        tol = f" (tolerance {self.tolerance:g})" if self.tolerance else ""
        return f"{lhs} {op} {self.target:g}{tol}"


def default_baselines_path() -> Path:
    """``$BENCH_SUITE_BASELINES`` if set, else the repository's ``baselines/`` folder."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "baselines"


def load_references(path: str | Path | Iterable[str | Path] | None = None) -> list[Reference]:
    """Read reference rows from a TOML file, a folder of them (``*.toml``, sorted), or a list.

    ``None`` reads :func:`default_baselines_path`. Ids must be unique across everything read.
    """
    if path is None:
        path = default_baselines_path()
    paths: list[Path]
    if isinstance(path, (str, Path)):
        p = Path(path)
        if p.is_dir():
            paths = sorted(p.glob("*.toml"))
        elif p.is_file():
            paths = [p]
        else:
            raise BaselineError(f"no reference file or folder at {p}")
    else:
        paths = [Path(p) for p in path]
    refs: list[Reference] = []
    for p in paths:
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise BaselineError(f"{p}: not valid TOML: {exc}") from exc
        refs.extend(parse_references(data, file=str(p)))
    _check_unique(refs)
    return refs


def loads_references(text: str, *, file: str = "<string>") -> list[Reference]:
    """Parse reference rows from TOML text (handy in tests)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BaselineError(f"{file}: not valid TOML: {exc}") from exc
    return parse_references(data, file=file)


def parse_references(data: dict[str, Any], *, file: str = "<dict>") -> list[Reference]:
    """Turn one parsed reference file into :class:`Reference` rows (validated)."""
    unknown = sorted(set(data) - set(FILE_FIELDS))
    if unknown:
        raise BaselineError(f"{file}: unknown top-level key(s) {unknown}; allowed: {list(FILE_FIELDS)}")
    protocol = data.get("protocol")
    if not isinstance(protocol, int) or isinstance(protocol, bool) or protocol < 1:
        raise BaselineError(f"{file}: needs a top-level `protocol = <positive integer>`, got {protocol!r}")
    raw_rows: list[tuple[str, dict[str, Any]]] = []
    for gi, group in enumerate(_table_list(data, "group", file)):
        rows = group.get("rows")
        if not isinstance(rows, list) or not rows:
            raise BaselineError(f"{file}: group #{gi + 1} needs a non-empty `rows = [ {{...}}, ... ]`")
        shared = {k: v for k, v in group.items() if k != "rows"}
        for ri, row in enumerate(rows):
            if not isinstance(row, dict):
                raise BaselineError(f"{file}: group #{gi + 1} row #{ri + 1} is not a table")
            raw_rows.append((f"group #{gi + 1} row #{ri + 1}", {**shared, **row}))
    for ri, row in enumerate(_table_list(data, "reference", file)):
        raw_rows.append((f"reference #{ri + 1}", dict(row)))
    refs = [_make_reference(row, protocol=protocol, where=f"{file}: {where}", file=file) for where, row in raw_rows]
    _check_unique(refs)
    return refs


def _table_list(data: dict[str, Any], key: str, file: str) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BaselineError(f"{file}: `{key}` must be an array of tables ([[{key}]])")
    return value


def _make_reference(row: dict[str, Any], *, protocol: int, where: str, file: str) -> Reference:
    unknown = sorted(set(row) - set(ROW_FIELDS))
    if unknown:
        raise BaselineError(f"{where}: unknown field(s) {unknown}; allowed: {list(ROW_FIELDS)}")
    kind = row.get("kind", "value")
    if kind not in KINDS:
        raise BaselineError(f"{where}: kind must be one of {list(KINDS)}, got {kind!r}")
    for name in ("task", "profile", "method", "metric"):
        if not isinstance(row.get(name), str) or not row[name]:
            raise BaselineError(f"{where}: needs `{name}` (a non-empty string)")
    metric = row["metric"]
    if metric not in METRICS:
        raise BaselineError(f"{where}: metric must be one of {list(METRICS)}, got {metric!r}")
    direction = row.get("direction", "within" if kind == "value" else None)
    statistic = row.get("statistic", "mean")
    if statistic not in STATISTICS:
        raise BaselineError(f"{where}: statistic must be one of {list(STATISTICS)}, got {statistic!r}")
    if statistic == "every" and kind not in ("value", "threshold"):
        raise BaselineError(f"{where}: statistic 'every' applies to value and threshold rows")
    x = row.get("x")
    if kind == "slope":
        if x not in FILTER_COLUMNS:
            raise BaselineError(f"{where}: a slope row needs `x`, one of {list(FILTER_COLUMNS)}, got {x!r}")
    elif x is not None:
        raise BaselineError(f"{where}: `x` only belongs to slope rows")
    only = _only(row.get("only"), where)
    if direction not in DIRECTIONS[kind]:
        raise BaselineError(f"{where}: a {kind} row needs direction in {list(DIRECTIONS[kind])}, got {direction!r}")
    versus = row.get("versus")
    if kind == "comparison":
        if not isinstance(versus, str) or not versus:
            raise BaselineError(f"{where}: a comparison row needs `versus` (the other method)")
        if versus == row["method"]:
            raise BaselineError(f"{where}: a comparison needs two different methods, got {versus!r} twice")
    elif versus is not None:
        raise BaselineError(f"{where}: `versus` only belongs to comparison rows")
    value = _number(row, "value", where)
    bound = _number(row, "bound", where)
    if kind == "value":
        if value is None:
            raise BaselineError(f"{where}: a value row needs `value` (the paper's number)")
        if bound is not None:
            raise BaselineError(f"{where}: a value row takes `value`, not `bound`")
        if "tolerance" not in row:
            raise BaselineError(f"{where}: a value row needs an explicit `tolerance`")
    elif kind == "slope" and direction == "within":
        if value is None or bound is not None:
            raise BaselineError(f"{where}: a slope row with direction within takes `value` (and `tolerance`)")
    else:
        if value is not None:
            raise BaselineError(f"{where}: a {kind} row takes `bound`, not `value`")
        if kind in ("threshold", "slope", "kkt_bound") and bound is None:
            raise BaselineError(f"{where}: a {kind} row needs `bound`")
        if bound is None:
            bound = 0.0
    tolerance = _number(row, "tolerance", where)
    tolerance = 0.0 if tolerance is None else tolerance
    if tolerance < 0:
        raise BaselineError(f"{where}: tolerance must be >= 0, got {tolerance}")
    widths = _axis(row, "width", int, where)
    if widths is not None and any(w < 1 for w in widths):
        raise BaselineError(f"{where}: widths must be positive integers, got {list(widths)}")
    activations = _axis(row, "activation", str, where)
    ref_id = row.get("id") or _auto_id(row, kind, widths, activations)
    if not isinstance(ref_id, str):
        raise BaselineError(f"{where}: id must be a string, got {ref_id!r}")
    for name in ("source", "claim", "known_deviation"):
        if not isinstance(row.get(name, ""), str):
            raise BaselineError(f"{where}: `{name}` must be a string")
    return Reference(
        id=ref_id, kind=kind, task=row["task"], profile=row["profile"], method=row["method"], metric=metric,
        direction=direction, protocol=protocol, versus=versus, widths=widths, activations=activations,
        value=value, bound=bound, tolerance=tolerance, source=row.get("source", ""), claim=row.get("claim", ""),
        file=file, known_deviation=row.get("known_deviation", ""), statistic=statistic, only=only, x=x,
    )


def _only(value: Any, where: str) -> tuple:
    """``only = { column = { at_most = v } , ... }`` as ((column, op, v), ...)."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise BaselineError(f"{where}: `only` must be a table {{ column = {{ at_most = v }} }}")
    out = []
    for column, cond in sorted(value.items()):
        if column not in FILTER_COLUMNS:
            raise BaselineError(f"{where}: `only` names {column!r}, not one of {list(FILTER_COLUMNS)}")
        if not isinstance(cond, dict) or not cond or set(cond) - {"at_most", "at_least"}:
            raise BaselineError(f"{where}: `only.{column}` must be {{ at_most = v }} and/or {{ at_least = v }}")
        for op, bound in sorted(cond.items()):
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
                raise BaselineError(f"{where}: `only.{column}.{op}` must be a finite number, got {bound!r}")
            out.append((column, op, float(bound)))
    return tuple(out)


def _number(row: dict[str, Any], key: str, where: str) -> float | None:
    if key not in row:
        return None
    v = row[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise BaselineError(f"{where}: `{key}` must be a finite number, got {v!r}")
    return float(v)


def _axis(row: dict[str, Any], key: str, typ: type, where: str) -> tuple | None:
    if key not in row:
        return None
    v = row[key]
    values = v if isinstance(v, list) else [v]
    if not values or not all(isinstance(x, typ) and not isinstance(x, bool) for x in values):
        raise BaselineError(f"{where}: `{key}` must be a {typ.__name__} or a non-empty list of them, got {v!r}")
    if len(set(values)) != len(values):
        raise BaselineError(f"{where}: `{key}` lists a value twice: {v!r}")
    return tuple(values)


def _auto_id(row: dict[str, Any], kind: str, widths, activations) -> str:
    who = row["method"] + (f"-vs-{row['versus']}" if kind == "comparison" else "")
    parts = [row["task"], row["profile"], who, row["metric"]]
    if widths is not None:
        parts.append("w" + "+".join(str(w) for w in widths))
    if activations is not None:
        parts.append("+".join(activations))
    return "/".join(parts)


def _check_unique(refs: list[Reference]) -> None:
    seen: dict[str, str] = {}
    for r in refs:
        if r.id in seen:
            raise BaselineError(f"duplicate reference id {r.id!r} ({seen[r.id]} and {r.file}); give the rows an `id`")
        seen[r.id] = r.file
