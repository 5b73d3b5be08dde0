"""The record vocabulary, defined once: cell statuses, the record schema, its JSON form and the
flat columns of the results table. No torch import (``check``, ``report`` and the CLI read
records without it).

A record is one cell's result: ``<store>/records/<cell_id>.json``. Its JSON is valid for any
JSON reader: non-finite floats (a diverged cell's curves, an infinite loss) are written as the
strings ``"nan"``, ``"inf"`` and ``"-inf"`` in the numeric sections (``final``, ``curves``,
``timing``, ``theory``) and read back as floats. From schema 3 the curves are not in the file:
they are stored thinned (``bench_suite.core.curves``) in the store's ``curves/`` folder
(``bench_suite.store.curves``), and the record holds their ``curves_digest``. Reading validates the record
(:meth:`Record.from_json`): its schema and protocol are ones this code understands, its fields
have their types, and its ``cell_id`` is the hash of its own content (config, seeds, code
version, protocol: ``compute_cell_id``) and the name of its file, so a record copied over
another cell's file is refused, and its ``content_digest`` matches the rest of its content, so
an edited result is refused.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from .curves import TAIL_METRICS, THINNING, thin_curves
from .errors import BenchSuiteError

# what a record file's layout is (1: bare NaN in the JSON, no `schema` key; 2: valid JSON, curves
# inline, ids from a digest of the code's source; 3: the curves outside the file, thinned, named
# by ``curves_digest``, ids from the code's versions, bench_suite/grid/versions.py)
SCHEMA_VERSION = 3
KNOWN_SCHEMAS = (2, 3)  # schema 1 carries no content digest: it cannot be verified, so it is refused
# what a cell measures and how (the reference rows in baselines/ name the protocol they score)
PROTOCOL_VERSION = 1
KNOWN_PROTOCOLS = (1,)


class Status(str, enum.Enum):
    """How a cell ended. A ``str`` enum: ``Status.DONE == "done"`` and JSON writes ``"done"``."""

    DONE = "done"  # trained to the end: a measurement
    DIVERGED = "diverged"  # training blew up (non-finite or unbounded loss/weights): a measured failure
    ERROR = "error"  # an exception (bad data, a plug-in that raised, ...): no measurement
    SKIPPED = "skipped"  # the data is not there; the reason says what to put where
    INTERRUPTED = "interrupted"  # stopped (Ctrl-C): re-run to resume
    LOST = "lost"  # its worker or job died without writing it: re-run to resume

    def __str__(self) -> str:  # f"{status}" gives "done", not "Status.DONE"
        return self.value

    @property
    def finished(self) -> bool:
        """Kept in the store and not re-run: a measurement or a measured failure."""
        return self in FINISHED

    @property
    def failed(self) -> bool:
        """Makes ``run`` exit 1."""
        return self in FAILED


STATUSES = tuple(Status)
FINISHED = frozenset({Status.DONE, Status.DIVERGED})
FAILED = frozenset({Status.ERROR, Status.DIVERGED, Status.INTERRUPTED, Status.LOST})
# what a verdict may be computed from: done (a measurement) and diverged (a measured failure)
USABLE = FINISHED

# the per-cell final metrics (``record.final``) a reference row may score: the last evaluation's,
# and the tail medians of the per-epoch curves (``bench_suite.core.curves.tail_median``)
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "dist_w0", "proj_active_frac") + TAIL_METRICS
# the per-cell measurements of the record's ``theory`` section (bench_suite/theory/__init__.py) a row may score
THEORY_METRICS = ("jacobian_rank", "jacobian_rank_predicted", "jacobian_rank_deficit", "jacobian_rank_excess",
                  "jacobian_sigma_min", "jacobian_sigma_max", "kkt_residual", "kkt_residual_w", "loss_floor",
                  "kkt_bound_growth")
# an instance's numbers of Theorem 2's KKT study (the theory section's ``kkt_bound`` part, its
# ``summary``: bench_suite/theory/kkt_bound.py), columns ``kkt_bound_<key>`` of the results table
KKT_BOUND_SUMMARY = ("starts", "kkt_points", "not_certified", "above_floor", "above_small", "above_large",
                     "degenerate", "r_small", "c_hat", "max_loss", "max_floor", "max_degenerate_loss")
SCORED_METRICS = METRICS + THEORY_METRICS
_NUMERIC_SECTIONS = ("final", "curves", "timing", "theory")
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class RecordError(BenchSuiteError, ValueError):
    """A record file this code cannot use; the message says why (one line)."""


def compute_cell_id(config: dict[str, Any], seeds: dict[str, Any], code_version: dict[str, Any], protocol: int) -> str:
    """The content id of a cell: a hash of what it computes, i.e. its resolved config, seeds,
    code version (``versions.code_version``: the versions of the engine, theory, task and
    method, never the code's files) and protocol."""
    payload = {"config": config, "seeds": seeds, "code_version": code_version, "protocol": protocol}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def legacy_cell_id(config: dict[str, Any], seeds: dict[str, Any], code_digest: str, protocol: int) -> str:
    """The id of a schema 1-2 record: its code was named by a digest of the source files."""
    payload = {"config": config, "seeds": seeds, "code": code_digest, "protocol": protocol}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Record:
    """One cell's result. ``config`` is the resolved cell (``Cell.config()``: task, task_options,
    method, width, activation, repetition, train); ``final`` the metrics at the last evaluation
    (None where not defined, e.g. accuracy of a regression task) and the tail medians of the
    per-epoch curves; ``curves`` per-epoch and per-evaluation lists, thinned
    (``bench_suite.core.curves.thin_curves``; None when not loaded: a schema-3 file holds their
    ``curves_digest`` and ``curves_points``, the store holds them, ``ResultStore.records(with_curves=True)``
    loads them); ``timing`` seconds, FLOPs, the engine path and the trainer
    (``timing.trainer``: ``fused`` or ``reference``, bench_suite/train/dispatch.py); ``provenance`` where the
    result came from (code version and digest, versions, device, precision, data source and
    checksum). Sections a cell does not have are None."""

    cell_id: str
    name: str
    status: Status
    config: dict[str, Any]
    seeds: dict[str, Any]
    provenance: dict[str, Any]
    protocol: int = PROTOCOL_VERSION
    schema: int = SCHEMA_VERSION
    profile: str | None = None
    reason: str | None = None
    run_id: str | None = None
    shape: dict[str, Any] | None = None
    label_digest: str | None = None
    w0_digest: str | None = None
    data_info: dict[str, Any] | None = None
    curves: dict[str, list] | None = None
    curves_digest: str | None = None
    curves_points: dict[str, Any] | None = None
    final: dict[str, float | None] | None = None
    timing: dict[str, Any] | None = None
    theory: dict[str, Any] | None = None
    # top-level keys this version does not know (a record of a newer minor version): kept as is
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # short: the name and status, not the curves
        return f"Record({self.name}, {self.status.value}, cell_id={self.cell_id})"

    # ----- identity and shortcuts -----
    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def method(self) -> str:
        return self.config["method"]

    @property
    def code_version(self) -> dict[str, Any] | None:
        """The versions of the code that computed it (``versions.code_version``); None for a
        record of schema 1-2, whose code is named by ``legacy_code_digest``."""
        return self.provenance.get("code_version")

    @property
    def legacy_code_digest(self) -> str | None:
        return self.provenance.get("code_digest")

    @property
    def data_checksum(self) -> str | None:
        return self.provenance.get("data_checksum")

    @property
    def finished(self) -> bool:
        return self.status.finished

    def expected_id(self) -> str:
        if self.schema >= 3:
            return compute_cell_id(self.config, self.seeds, self.code_version or {}, self.protocol)
        return legacy_cell_id(self.config, self.seeds, str(self.legacy_code_digest), self.protocol)

    def replace(self, **changes: Any) -> "Record":
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(changes)
        return Record(**data)

    # ----- JSON -----
    def to_dict(self) -> dict[str, Any]:
        """Plain data, as written to the file (non-finite floats still floats). Schema 3: no
        ``curves``; ``curves_digest`` and ``curves_points`` of the curves in memory (thinned), or
        those read from the file when the curves are not loaded."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out["status"] = self.status.value
        if self.schema >= 3:
            curves = out.pop("curves")
            if curves is not None:
                out["curves_digest"], out["curves_points"] = curves_digest(thin_curves(curves)), dict(THINNING)
        else:
            out.pop("curves_digest"), out.pop("curves_points")
        out.update(self.extra)
        return {k: v for k, v in out.items() if v is not None or k in ("profile", "reason", "run_id")}

    def to_json(self) -> str:
        data = self.to_dict()
        data.pop("content_digest", None)
        for key in _NUMERIC_SECTIONS:
            if data.get(key) is not None:
                data[key] = _encode_floats(data[key])
        data["content_digest"] = _content_digest(data)
        # one top-level key a line, each compact: a third of the indented size (committed stores
        # count against the tracked tree's budget), still readable and diffable key by key
        lines = [f"{json.dumps(k)}: {json.dumps(data[k], sort_keys=True, allow_nan=False, separators=(',', ':'))}"
                 for k in sorted(data)]
        return "{\n" + ",\n".join(lines) + "\n}\n"

    @classmethod
    def from_dict(cls, data: Any, *, expected_id: str | None = None) -> "Record":
        """Validate ``data`` (a parsed record) and build the record; raises :class:`RecordError`."""
        if not isinstance(data, dict):
            raise RecordError(f"not a record (a JSON {type(data).__name__}, expected an object)")
        schema = data.get("schema", 1)
        if schema == 1:
            raise RecordError("record schema 1 carries no content digest, so its content cannot be verified: "
                              "re-run its cell")
        if schema not in KNOWN_SCHEMAS:
            raise RecordError(f"record schema {schema!r} is not one this bench_suite understands "
                              f"({', '.join(map(str, KNOWN_SCHEMAS))}): written by another version")
        protocol = data.get("protocol")
        if protocol is None:
            raise RecordError("has no protocol: not a bench_suite record")
        if protocol not in KNOWN_PROTOCOLS:
            raise RecordError(f"record protocol {protocol!r} is not one this bench_suite understands "
                              f"({', '.join(map(str, KNOWN_PROTOCOLS))}): written by another version")
        try:
            status = Status(data.get("status"))
        except ValueError:
            raise RecordError(f"status {data.get('status')!r} is not one of {', '.join(s.value for s in Status)}") \
                from None
        _require(data, "cell_id", str)
        _require(data, "name", str)
        config = _require(data, "config", dict)
        for key, kind in (("task", str), ("method", str), ("activation", str), ("task_options", dict),
                          ("train", dict)):
            _require(config, key, kind, where="config")
        for key in ("width", "repetition"):
            _require(config, key, int, where="config")
        _require(data, "seeds", dict)
        provenance = _require(data, "provenance", dict)
        for key in ("profile", "reason", "run_id", "label_digest", "w0_digest", "curves_digest"):
            _optional(data, key, str)
        for key in ("shape", "data_info", "curves", "final", "timing", "theory", "curves_points"):
            _optional(data, key, dict)
        # the file's whole content, results included, as written: an edit shows
        stored = data.get("content_digest")
        body = {k: v for k, v in data.items() if k != "content_digest"}
        if stored != _content_digest(body):
            raise RecordError("its content does not match its content_digest: edited after it was written"
                              if stored else "it has no content_digest (every record of schema 2 or later has one)")
        data = {k: v for k, v in data.items() if k != "content_digest"}
        decoded = {k: (_decode_floats(data[k]) if k in _NUMERIC_SECTIONS and data.get(k) is not None else data.get(k))
                   for k in data}
        final = decoded.get("final")
        if final is not None:
            for key, value in final.items():
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise RecordError(f"final.{key} is {value!r}, not a number or null")
        curves = decoded.get("curves")
        if curves is not None:
            for key, value in curves.items():
                if not isinstance(value, list):
                    raise RecordError(f"curves.{key} is a {type(value).__name__}, not a list")
        if schema >= 3 and curves is not None:
            raise RecordError(f"a schema-{schema} record holds its curves in the store's curves/ folder, "
                              f"not in the file")
        if schema < 3 and (decoded.get("curves_digest") is not None or decoded.get("curves_points") is not None):
            raise RecordError(f"a schema-{schema} record holds its curves in the file: curves_digest is of schema 3")
        known = {f.name for f in fields(cls)} - {"extra"}
        record = cls(**{k: v for k, v in decoded.items() if k in known and k not in ("status", "schema")},
                     status=status, schema=schema, extra={k: v for k, v in decoded.items() if k not in known})
        if schema >= 3 and not isinstance(provenance.get("code_version"), dict):
            raise RecordError("provenance has no code_version: its cell id cannot be verified")
        if schema < 3 and "code_digest" not in provenance:
            raise RecordError("provenance has no code_digest: its cell id cannot be verified")
        if record.expected_id() != record.cell_id:
            raise RecordError(f"cell_id {record.cell_id} is not the hash of the record's own config, seeds and code "
                              f"({record.expected_id()}): edited or foreign content")
        if expected_id is not None and record.cell_id != expected_id:
            raise RecordError(f"holds cell {record.cell_id}, not {expected_id} (a record copied over another's file)")
        return record

    @classmethod
    def from_json(cls, text: str, *, expected_id: str | None = None) -> "Record":
        try:
            data = json.loads(text)  # Python's json also reads the bare NaN of schema-1 records
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RecordError(f"not valid JSON ({exc})") from None
        return cls.from_dict(data, expected_id=expected_id)

    # ----- the flat row -----
    def flat(self) -> dict[str, Any]:
        """One row of the results table: a value for each of :data:`COLUMNS`."""
        return {col.name: col.get(self) for col in COLUMNS}


def curves_digest(curves: dict[str, list]) -> str:
    """SHA-256 (hex) of the canonical JSON of stored (thinned) curves: sorted keys, no spaces,
    non-finite floats as the strings "nan", "inf", "-inf". A schema-3 record holds it, so curves
    read back from the store are verified against the digest-checked record."""
    return hashlib.sha256(json.dumps(_encode_floats(curves), sort_keys=True, allow_nan=False,
                                     separators=(",", ":")).encode()).hexdigest()


def _content_digest(data: dict[str, Any]) -> str:
    """SHA-256 of a record's canonical JSON (sorted keys, non-finite floats as strings), without
    the digest itself: stored in the file, checked on read, so an edited result is refused."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, allow_nan=False, separators=(",", ":")).encode()
                          ).hexdigest()[:32]


def _require(data: dict, key: str, kind: type, *, where: str = "") -> Any:
    value = data.get(key)
    if value is None or not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        label = f"{where}.{key}" if where else key
        raise RecordError(f"{label} is missing or not a {kind.__name__} (got {value!r:.60})")
    return value


def _optional(data: dict, key: str, kind: type) -> None:
    value = data.get(key)
    if value is not None and not isinstance(value, kind):
        raise RecordError(f"{key} is a {type(value).__name__}, not a {kind.__name__} or null")


def _encode_floats(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _encode_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_floats(v) for v in value]
    return value


def _decode_floats(value: Any) -> Any:
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    if isinstance(value, dict):
        return {k: _decode_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_floats(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# the flat results table (``load_results``, ``ResultStore.to_dataframe``): its columns, once
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # a pandas dtype: string, Int64, float64, boolean, object
    get: Callable[[Record], Any]
    doc: str


def _section(name: str, key: str) -> Callable[[Record], Any]:
    return lambda r: (getattr(r, name) or {}).get(key)


def _train(key: str) -> Callable[[Record], Any]:
    return lambda r: (r.config.get("train") or {}).get(key)


def _theory(part: str, key: str) -> Callable[[Record], Any]:
    def get(r: Record) -> Any:
        section = ((r.theory or {}).get(part) or {})
        return section.get(key) if section.get("status") == "done" else None

    return get


def _kkt_bound(key: str) -> Callable[[Record], Any]:
    def get(r: Record) -> Any:
        part = (r.theory or {}).get("kkt_bound") or {}
        return (part.get("summary") or {}).get(key) if part.get("status") == "done" else None

    return get


def _kkt_bound_growth(r: Record) -> Any:
    """R_small / C_hat: how much the largest loss / eps^2 of an instance's non-degenerate KKT
    points above the floor grows from the larger-eps half to the smaller (None: untestable)."""
    small, large = _kkt_bound("r_small")(r), _kkt_bound("c_hat")(r)
    return small / large if small is not None and large else None


def code_version_text(r: Record) -> str | None:
    """The record's code version as one line (``engine 1, theory 1, task 1, method 1-…``)."""
    version = r.code_version
    if version:
        return ", ".join(f"{k} {v}" for k, v in version.items())
    digest = r.legacy_code_digest
    return f"source digest {digest}" if digest else None


def _rank_excess(r: Record) -> Any:
    """rank - the rank the relu activation patterns allow (0: they explain every missing rank)."""
    jac = (r.theory or {}).get("jacobian") or {}
    if jac.get("status") != "done" or jac.get("relu_rank_bound") is None:
        return None
    return jac["jacobian_rank"] - jac["relu_rank_bound"]


COLUMNS: tuple[Column, ...] = (
    Column("cell_id", "string", lambda r: r.cell_id, "content id of the cell"),
    Column("name", "string", lambda r: r.name, "canonical name: task[method=...,width=...,...]"),
    Column("profile", "string", lambda r: r.profile, "the profile the cell belongs to, or null (ad hoc)"),
    Column("protocol", "Int64", lambda r: r.protocol, "measurement protocol version"),
    Column("status", "string", lambda r: r.status.value, "done, diverged, error, skipped, interrupted, lost"),
    Column("reason", "string", lambda r: r.reason, "why a cell did not end done"),
    Column("task", "string", lambda r: r.config.get("task"), "task name"),
    Column("method", "string", lambda r: r.config.get("method"), "method name"),
    Column("width", "Int64", lambda r: r.config.get("width"), "hidden width m"),
    Column("activation", "string", lambda r: r.config.get("activation"), "activation"),
    Column("repetition", "Int64", lambda r: r.config.get("repetition"), "repetition index (seeds derive from it)"),
    Column("epochs", "Int64", _train("epochs"), "epochs asked for"),
    Column("batch_size", "Int64", _train("batch_size"), "mini-batch size (null: full batch)"),
    Column("lr_w", "float64", _train("lr_w"), "learning rate of W"),
    Column("lr_v", "float64", _train("lr_v"), "learning rate of V"),
    Column("momentum", "float64", _train("momentum"), "SGD momentum"),
    Column("loss", "string", _train("loss"), "ce or mse"),
    Column("eps", "float64", _train("eps"), "radius setting of ||W - W0||_F <= eps"),
    Column("eps_mode", "string", _train("eps_mode"), "relative (x ||W0||_F) or absolute"),
    Column("eval_every", "Int64", _train("eval_every"), "epochs between exact evaluations"),
    Column("precision", "string", _train("precision"), "fp32, tf32 or bf16"),
    Column("task_options", "string", lambda r: json.dumps(r.config.get("task_options") or {}, sort_keys=True),
           "the task's options, as JSON"),
    *(Column(m, "float64", _section("final", m), f"final {m}") for m in METRICS if m not in TAIL_METRICS),
    *(Column(m, "float64", _section("final", m),
             f"the median of {m[:-len('_tail_median')]} over the last quarter of the epochs run: a statistic of a "
             f"training curve robust to where an oscillation lands (NaN if that window is not finite)")
      for m in TAIL_METRICS),
    Column("radius", "float64", _section("final", "radius"), "the ball's radius (null: unconstrained)"),
    Column("jacobian_status", "string", lambda r: ((r.theory or {}).get("jacobian") or {}).get("status"),
           "the theory section's Jacobian: done, skipped (too large) or null (not computed)"),
    Column("jacobian_rank", "Int64", _theory("jacobian", "jacobian_rank"), "rank of J = df(X)/dW at init"),
    Column("jacobian_rank_predicted", "Int64", _theory("jacobian", "jacobian_rank_predicted"),
           "the rank law: min(nK, md/2) under MLI, min(nK, md) under LeCun init"),
    Column("jacobian_rank_deficit", "Int64", _theory("jacobian", "jacobian_rank_deficit"),
           "predicted - measured rank (0: the law holds)"),
    Column("jacobian_rank_excess", "Int64", _rank_excess, "relu: rank - the activation patterns' bound"),
    Column("jacobian_sigma_min", "float64", _theory("jacobian", "jacobian_sigma_min"),
           "smallest nonzero singular value of J at init"),
    Column("jacobian_sigma_max", "float64", _theory("jacobian", "jacobian_sigma_max"), "largest singular value of J"),
    Column("kkt_residual", "float64", _theory("kkt", "kkt_residual"),
           "KKT residual at the end / gradient norm at init ((W, V) blocks)"),
    Column("kkt_residual_w", "float64", _theory("kkt", "kkt_residual_w"), "the W block alone (V held fixed)"),
    Column("kkt_active", "boolean", _theory("kkt", "kkt_active"), "the constraint is active at the end"),
    Column("loss_floor", "float64", _theory("floor", "floor"), "mse of the linearization's best fit at init"),
    *(Column(f"kkt_bound_{k}", "float64" if k in ("r_small", "c_hat") or k.startswith("max") else "Int64",
             _kkt_bound(k), f"Theorem 2's KKT study of the instance: {k} (bench_suite/theory/kkt_bound.py)")
      for k in KKT_BOUND_SUMMARY),
    Column("kkt_bound_growth", "float64", _kkt_bound_growth,
           "Theorem 2: max loss/eps^2 above the float64 floor, smaller-eps half / larger-eps half (null: untestable)"),
    Column("epochs_run", "Int64", _section("timing", "epochs"), "epochs trained (fewer if it diverged)"),
    Column("train_time_s", "float64", _section("timing", "train_time_s"), "device time of the group, s"),
    Column("wall_time_s", "float64", _section("timing", "wall_time_s"), "wall time of the group, s"),
    Column("flops", "float64", _section("timing", "flops"), "the cell's FLOPs as the engine counts them"),
    Column("group_tflops_per_s", "float64", _section("timing", "group_tflops_per_s"), "the fused group's rate"),
    Column("group_size", "Int64", _section("timing", "group_size"), "cells fused in its group"),
    Column("grouping", "string", _section("timing", "grouping"),
           "how it ran: alone, or fused/<digest of its group's cells> (docs/design.md, \"Same cell, same number\")"),
    Column("engine", "string", _section("timing", "engine"), "which engine path ran"),
    Column("trainer", "string", lambda r: (r.timing or {}).get("trainer") or ("fused" if (r.timing or {}).get("engine")
                                                                              else None),
           "fused (the fused engine) or reference (the reference trainer); records before issue 10: fused"),
    Column("n", "Int64", _section("shape", "n"), "training samples"),
    Column("d", "Int64", _section("shape", "d"), "input dimension"),
    Column("m", "Int64", _section("shape", "m"), "hidden width"),
    Column("k", "Int64", _section("shape", "k"), "outputs"),
    Column("width_ratio", "float64", _section("shape", "width_ratio"), "m*d/(2n): >= 1 is the width condition"),
    Column("device", "string", _section("provenance", "device"), "device type"),
    Column("device_name", "string", _section("provenance", "device_name"), "device model"),
    Column("data_source", "string", _section("provenance", "data_source"), "where the data came from"),
    Column("data_checksum", "string", _section("provenance", "data_checksum"), "checksum of the data source"),
    Column("code_version", "string", lambda r: code_version_text(r),
           "the versions of the code that computed it (engine, theory, task, method); schema 1-2: its source digest"),
    Column("git_commit", "string", _section("provenance", "git_commit"), "git commit"),
    Column("git_dirty", "boolean", _section("provenance", "git_dirty"), "uncommitted changes at run time"),
    Column("git_commit_source", "string", _section("provenance", "git_commit_source"),
           "how the commit is known (git checkout, the build, direct_url.json, $BENCH_SUITE_GIT_COMMIT), or "
           "'unknown: why'; records before it: none"),
    Column("executor", "string", _section("provenance", "executor"), "local, devices, dask or slurm"),
    Column("run_id", "string", lambda r: r.run_id, "the invocation that wrote the record"),
)
COLUMN_NAMES = tuple(c.name for c in COLUMNS)


def to_frame(records: list[Record]):
    """The flat, typed results table of ``records`` (pandas), one row per record."""
    import pandas as pd

    rows = [r.flat() for r in records]
    frame = pd.DataFrame(rows, columns=list(COLUMN_NAMES))
    for col in COLUMNS:
        if col.dtype == "float64":
            frame[col.name] = pd.to_numeric(frame[col.name], errors="coerce").astype("float64")
        else:
            frame[col.name] = frame[col.name].astype(col.dtype)
    return frame


__all__ = [
    "COLUMNS", "COLUMN_NAMES", "FAILED", "FINISHED", "KNOWN_PROTOCOLS", "KNOWN_SCHEMAS", "METRICS", "PROTOCOL_VERSION",
    "SCORED_METRICS", "TAIL_METRICS", "THEORY_METRICS",
    "Record", "RecordError", "SCHEMA_VERSION", "STATUSES", "Status", "USABLE", "code_version_text", "compute_cell_id",
    "curves_digest", "legacy_cell_id",
    "to_frame",
]
