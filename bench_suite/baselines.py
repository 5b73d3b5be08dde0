"""Reference rows (the paper's numbers and claims) read from ``baselines/*.toml``.

This is the one reader of the reference files; ``check.py`` scores results against what it
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

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

KINDS = ("value", "threshold", "comparison")
DIRECTIONS: dict[str, tuple[str, ...]] = {
    "value": ("within",),
    "threshold": ("at_least", "at_most"),
    "comparison": ("lower", "higher", "at_least", "at_most"),
}
# the per-cell final metrics of the store's DataFrame that a reference row may score
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "dist_w0", "proj_active_frac")

ROW_FIELDS = (
    "id", "kind", "task", "profile", "method", "versus", "width", "activation", "metric", "direction",
    "value", "bound", "tolerance", "source", "claim", "known_deviation",
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

    @property
    def target(self) -> float:
        """The number the measurement is scored against (value, or bound)."""
        return float(self.value if self.kind == "value" else self.bound)  # type: ignore[arg-type]

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
    return Path(__file__).resolve().parent.parent / "baselines"


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
    else:
        if value is not None:
            raise BaselineError(f"{where}: a {kind} row takes `bound`, not `value`")
        if kind == "threshold" and bound is None:
            raise BaselineError(f"{where}: a threshold row needs `bound`")
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
        file=file, known_deviation=row.get("known_deviation", ""),
    )


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
