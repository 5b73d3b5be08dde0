"""Reference rows (the paper's numbers and claims) read from ``baselines/*.toml`` (shipped in the
package: :func:`packaged_baselines`; ``--baselines`` / ``$BENCH_SUITE_BASELINES`` override them).

This is the one reader of the reference files; ``checks.run_checks`` scores results against what
it returns. The file format is described in ``docs/checks.md``. In short::

    protocol = 1                      # the record protocol these rows apply to

    [[group]]                         # shared fields + one inline table per row
    kind = "value"
    task = "cifar10_random"
    profile = "paper"
    method = "mli_paired_pgd"
    source = "Table 3"
    rows = [
      { width = 1024, activation = "relu", metric = "train_acc", paper_value = 0.9931,
        direction = "at_least", tolerance = 0.01 },
    ]

    [[reference]]                     # or a single row
    kind = "comparison"
    task = "synthetic_ablation"
    profile = "paper"
    method = "mli_paired_pgd"
    versus = "sgd"
    metric = "train_loss"
    statistic = "tail_median"
    direction = "lower"

The kinds of row (``value``, ``threshold``, ``comparison``, ``slope``, and any a plug-in adds)
and the fields each takes are the entries of :data:`bench_suite.scoring.kinds.KINDS`.
``width`` / ``activation`` may be a value, a list, or omitted (= every width / activation
that has results for that task, method and profile).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..core.curves import TAIL_METRICS
from ..core.errors import BenchSuiteError
from ..core.records import SCORED_METRICS as _RECORD_METRICS
from . import scope
from .kinds import KIND_FIELDS, KINDS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

if TYPE_CHECKING:  # pragma: no cover
    from importlib.resources.abc import Traversable

# the per-cell metrics a row may name (the final metrics and the theory section's measurements:
# bench_suite/core/records.py); a curve's tail median is read through `statistic`, not named
SCORED_METRICS = tuple(m for m in _RECORD_METRICS if m not in TAIL_METRICS)
# the statistic of each cell a row scores: the metric's final value, or a tail statistic of its
# per-epoch curve (the record's ``final["<metric>_tail_median"]``; docs/checks.md "Curve claims")
STATISTICS: dict[str, str] = {"final": "", "tail_median": "_tail_median"}
# how a row combines repetitions: "mean" (a t-interval over repetitions) or "every" (each
# repetition must satisfy the row: a law that must hold in every sampled cell)
AGGREGATES = ("mean", "every")
# the columns `only` and a slope's `x` may name (numeric columns of the results table)
FILTER_COLUMNS = _RECORD_METRICS + ("eps", "lr_w", "lr_v", "momentum", "width_ratio", "epochs", "width", "radius")

METRICS = SCORED_METRICS  # the former name (records.METRICS is the final metrics alone): use SCORED_METRICS

ROW_FIELDS = (
    "id", "kind", "task", "profile", "method", "versus", "width", "activation", "metric", "direction",
    "value", "bound", "tolerance", "paper_value", "source", "claim", "known_deviation", "statistic", "aggregate",
    "only", "x", "assumes",
)
FILE_FIELDS = ("protocol", "title", "description", "group", "reference")

ENV_VAR = "BENCH_SUITE_BASELINES"


def __getattr__(name: str):
    if name in ("KINDS", "DIRECTIONS"):  # the kinds table is bench_suite.scoring.kinds.KINDS
        warnings.warn(f"bench_suite.scoring.references.{name} is deprecated: use bench_suite.scoring.kinds.KINDS",
                      DeprecationWarning, stacklevel=2)
        return tuple(KINDS) if name == "KINDS" else {k: v.directions for k, v in KINDS.items()}
    raise AttributeError(name)


class BaselineError(BenchSuiteError, ValueError):
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
    value: float | None = None  # value rows: the number the claim is centred on / bounded by
    bound: float | None = None  # "threshold": the bound; "comparison": bound on method - versus
    tolerance: float = 0.0
    paper_value: float | None = None  # the number the paper prints, shown beside ours (None: not a paper number)
    source: str = ""
    claim: str = ""
    file: str = ""
    # a documented, measured non-reproduction (where it is written up): the row is still scored and
    # reported as FAIL, but an expected FAIL does not fail `check`; an unexpected PASS does (the
    # write-up is then stale). Never set this to make a row pass: only with a study that shows it.
    known_deviation: str = ""
    statistic: str = "final"  # see STATISTICS
    aggregate: str = "mean"  # see AGGREGATES
    # records scored only where these columns meet these bounds: ((column, "at_most"|"at_least", value), ...)
    only: tuple = ()
    x: str | None = None  # kind "slope": the column of the x axis (log-log fit of metric against x)
    assumes: tuple[str, ...] = ()  # assumptions / theorems (scope.py): groups outside them are OUT_OF_SCOPE

    @property
    def target(self) -> float:
        """The number the measurement is scored against: ``value`` (a value row without one: the
        paper's number), else ``bound``."""
        for v in (self.value, self.bound, self.paper_value):
            if v is not None:
                return float(v)
        raise BaselineError(f"{self.id}: no value or bound")  # pragma: no cover - the reader refuses such rows

    @property
    def column(self) -> str:
        """The results-table column the row reads: the metric as its ``statistic`` reads it, e.g.
        ``train_loss_tail_median``."""
        return self.metric + STATISTICS[self.statistic]

    @property
    def methods(self) -> list[str]:
        """The methods the row reads: ``method``, and ``versus`` when it has one."""
        return [self.method] + ([self.versus] if self.versus else [])

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
        """A one-line human statement of the row, e.g. ``train_acc >= 0.9931 - 0.01``; a row on
        another statistic than the final value names it, e.g. ``tail_median(train_loss)[sgd]``."""
        if self.statistic == "final":
            return KINDS[self.kind].describe(self)
        return KINDS[self.kind].describe(dataclasses.replace(self, metric=f"{self.statistic}({self.metric})"))


def packaged_baselines() -> Traversable:
    """The reference rows shipped with the package: ``bench_suite/scoring/baselines/``, package
    data read through ``importlib.resources`` (so it works from a wheel, a zip or an editable
    install). In the source tree that folder is a link to the repository's ``baselines/``, the
    one copy the files are edited in; the build copies them into the wheel."""
    return importlib.resources.files(__package__) / "baselines"


def default_baselines_path() -> Path | Traversable:
    """``$BENCH_SUITE_BASELINES`` if set (a user's own reference file or folder), else
    :func:`packaged_baselines`."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return packaged_baselines()


def load_references(path: str | os.PathLike | Traversable | Iterable[str | os.PathLike] | None = None
                    ) -> list[Reference]:
    """Read reference rows from a TOML file, a folder of them (``*.toml``, sorted), or a list.

    ``None`` reads :func:`default_baselines_path` (``$BENCH_SUITE_BASELINES`` or the packaged
    rows). Ids must be unique across everything read. Raises :class:`BaselineError`.
    """
    if path is None:
        path = default_baselines_path()
    files: list = []
    if isinstance(path, (str, os.PathLike)) or _is_traversable(path):
        p = Path(path) if isinstance(path, (str, os.PathLike)) else path
        if p.is_dir():
            files = sorted((f for f in p.iterdir() if f.name.endswith(".toml") and f.is_file()), key=lambda f: f.name)
        elif p.is_file():
            files = [p]
        else:
            raise BaselineError(f"no reference file or folder at {p}")
    else:
        files = [Path(f) for f in path]
    refs: list[Reference] = []
    for f in files:
        try:
            data = tomllib.loads(f.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise BaselineError(f"{f}: not valid TOML: {exc}") from exc
        except OSError as exc:
            raise BaselineError(f"{f}: cannot be read ({exc.strerror or exc})") from None
        refs.extend(parse_references(data, file=str(f)))
    _check_unique(refs)
    return refs


def _is_traversable(obj: object) -> bool:
    return all(hasattr(obj, name) for name in ("iterdir", "is_dir", "is_file", "read_text", "name"))


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
    row = dict(row)
    kind_name = row.get("kind", "value")
    if kind_name not in KINDS:
        raise BaselineError(f"{where}: kind must be one of {list(KINDS)}, got {kind_name!r}")
    kind = KINDS[kind_name]
    for name in ("task", "profile", "method", "metric"):
        if not isinstance(row.get(name), str) or not row[name]:
            raise BaselineError(f"{where}: needs `{name}` (a non-empty string)")
    metric = row["metric"]
    if metric in TAIL_METRICS:
        base = metric[: -len("_tail_median")]
        raise BaselineError(f"{where}: metric {metric!r} is the statistic of a curve: write metric = {base!r} and "
                            f"statistic = \"tail_median\"")
    if metric not in SCORED_METRICS:
        raise BaselineError(f"{where}: metric must be one of {list(SCORED_METRICS)}, got {metric!r}")
    statistic, aggregate = _statistic_and_aggregate(row, where)
    if statistic != "final" and metric + STATISTICS[statistic] not in _RECORD_METRICS:
        raise BaselineError(f"{where}: statistic {statistic!r} needs a per-epoch curve; {metric!r} has none "
                            f"(curves with one: {', '.join(m[: -len('_tail_median')] for m in TAIL_METRICS)})")
    if aggregate not in kind.aggregates:
        raise BaselineError(f"{where}: aggregate {aggregate!r} does not apply to {kind_name} rows "
                            f"(they take {', '.join(kind.aggregates)})")
    direction = row.get("direction", kind.directions[0] if kind.default_direction else None)
    if direction not in kind.directions:
        raise BaselineError(f"{where}: a {kind_name} row needs direction in {list(kind.directions)}, got {direction!r}")
    row["direction"] = direction
    for name in KIND_FIELDS:
        if name in row and name not in kind.takes:
            owners = [k for k, spec in KINDS.items() if name in spec.takes]
            raise BaselineError(f"{where}: `{name}` only belongs to {' / '.join(owners) or 'no'} rows")
    for name in kind.needs:
        if row.get(name) is None:
            what = {"versus": " (the other method)", "x": f", one of {list(FILTER_COLUMNS)}"}.get(name, "")
            raise BaselineError(f"{where}: a {kind_name} row needs `{name}`{what}")
    value = _number(row, "value", where)
    bound = _number(row, "bound", where)
    paper_value = _number(row, "paper_value", where)
    if "bound" in kind.takes and bound is None and "bound" in kind.defaults:
        bound = float(kind.defaults["bound"])
    versus = row.get("versus")
    if "versus" in kind.takes and (not isinstance(versus, str) or not versus):
        raise BaselineError(f"{where}: a {kind_name} row needs `versus` (the other method)")
    x = row.get("x")
    if "x" in kind.takes and x not in FILTER_COLUMNS:
        raise BaselineError(f"{where}: a {kind_name} row needs `x`, one of {list(FILTER_COLUMNS)}, got {x!r}")
    if kind.validate is not None:
        try:
            kind.validate({**row, "value": value, "bound": bound, "paper_value": paper_value}, where)
        except ValueError as exc:
            raise BaselineError(f"{where}: {exc}") from None
    if value is None and bound is None and paper_value is None:
        raise BaselineError(f"{where}: a {kind_name} row needs a number to score against (`value` or `bound`)")
    only = _only(row.get("only"), where)
    tolerance = _number(row, "tolerance", where)
    tolerance = 0.0 if tolerance is None else tolerance
    if tolerance < 0:
        raise BaselineError(f"{where}: tolerance must be >= 0, got {tolerance}")
    widths = _axis(row, "width", int, where)
    if widths is not None and any(w < 1 for w in widths):
        raise BaselineError(f"{where}: widths must be positive integers, got {list(widths)}")
    activations = _axis(row, "activation", str, where)
    assumes = _assumes(row.get("assumes"), where)
    ref_id = row.get("id") or _auto_id(row, kind_name, widths, activations)
    if not isinstance(ref_id, str):
        raise BaselineError(f"{where}: id must be a string, got {ref_id!r}")
    for name in ("source", "claim", "known_deviation"):
        if not isinstance(row.get(name, ""), str):
            raise BaselineError(f"{where}: `{name}` must be a string")
    return Reference(
        id=ref_id, kind=kind_name, task=row["task"], profile=row["profile"], method=row["method"], metric=metric,
        direction=direction, protocol=protocol, versus=versus if "versus" in kind.takes else None, widths=widths,
        activations=activations, value=value, bound=bound, tolerance=tolerance, paper_value=paper_value,
        source=row.get("source", ""), claim=row.get("claim", ""), file=file,
        known_deviation=row.get("known_deviation", ""), statistic=statistic, aggregate=aggregate, only=only,
        x=x if "x" in kind.takes else None, assumes=assumes,
    )


def _statistic_and_aggregate(row: dict[str, Any], where: str) -> tuple[str, str]:
    """``statistic`` (of each cell: final / tail_median) and ``aggregate`` (over repetitions:
    mean / every). The former spelling ``statistic = "every"`` (or "mean") is read as the
    aggregate, with a DeprecationWarning."""
    statistic = row.get("statistic", "final")
    aggregate = row.get("aggregate", "mean")
    if statistic in AGGREGATES and "aggregate" not in row:
        warnings.warn(f"{where}: `statistic = {statistic!r}` now reads `aggregate = {statistic!r}` (statistic is "
                      f"the statistic of each cell: {', '.join(STATISTICS)})", DeprecationWarning, stacklevel=4)
        statistic, aggregate = "final", statistic
    if statistic not in STATISTICS:
        raise BaselineError(f"{where}: statistic must be one of {list(STATISTICS)}, got {statistic!r}")
    if aggregate not in AGGREGATES:
        raise BaselineError(f"{where}: aggregate must be one of {list(AGGREGATES)}, got {aggregate!r}")
    return statistic, aggregate


def _assumes(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise BaselineError(f"{where}: `assumes` must be a name or a list of names")
    try:
        scope.expand(tuple(names))
    except KeyError as exc:
        known = sorted(scope.ASSUMPTIONS) + sorted(scope.THEOREMS)
        raise BaselineError(f"{where}: `assumes` names {exc.args[0]!r}; known: {', '.join(known)}") from None
    return tuple(names)


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
