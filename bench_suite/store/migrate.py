"""Store maintenance: migrate records of schema 2 to schema 3, and prune records by status.

Schema 2 named a record's code by a digest of the source files (``provenance.code_digest``) and
held its curves inline. Schema 3 names it by its code version (bench_suite/grid/versions.py) and
keeps the curves, thinned, in the store's ``curves/`` folder. A schema-2 record is migrated
only when its code digest is one of the digests below: the code that version 1 of every part
names (the engine, theory, tasks and methods of commit d8d437e, whose numbers the goldens of
tests/test_golden.py were made from). Its content digest and old id are verified first; the
new record keeps every value, adds the tail statistics of its full curves (``final``), stores
its curves thinned, and takes the id of the same cell under the new rule. Records of other
code are left as they are (``check`` treats them as older code; re-run them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.curves import tail_statistics, thin_curves
from ..core.records import FINISHED, PROTOCOL_VERSION, Record, RecordError, Status, compute_cell_id
from .result_store import ResultStore

# the schema-2 code digests of version 1 (commit d8d437e): task -> code digest
VERSION_1_DIGESTS = {
    "cifar10": "60d93d6d5e807027",
    "cifar10_random": "60d93d6d5e807027",
    "cifar100": "c471699013eb83a4",
    "mnist": "ed39eefb2a8c42f5",
    "restricted_imagenet": "c90a6583e7ed61a8",
    "synthetic_ablation": "3a3395aae69554c4",
    "width_threshold": "9da59a14422ea33f",
}
# the identities of the built-in methods at version 1 (Method.identity())
VERSION_1_METHODS = {
    "adam": "1-7e8400b1",
    "constraint_only": "1-0bcaee62",
    "mli_paired_pgd": "1-fe3b38ee",
    "mli_paired_pgd_fixed_v": "1-526c7b48",
    "mli_paired_pgd_per_neuron": "1-db8f0592",
    "no_mirroring": "1-2d436056",
    "sgd": "1-04f820c1",
}
BUILTIN_ACTIVATIONS = ("relu", "tanh", "softplus", "gelu")


@dataclass
class MigrationReport:
    migrated: list[tuple[str, str]] = field(default_factory=list)  # (old id, new id)
    current: int = 0  # already schema 3
    kept: list[tuple[str, str]] = field(default_factory=list)  # (file, why not migrated)

    def lines(self) -> list[str]:
        out = [f"migrated {len(self.migrated)} record(s) of schema 2 to schema 3; {self.current} already schema 3"]
        if self.kept:
            out.append(f"kept {len(self.kept)} record(s) as they are (check treats them as older code; re-run them): "
                       + "; ".join(f"{name}: {why}" for name, why in self.kept[:5])
                       + (" ..." if len(self.kept) > 5 else ""))
        return out


def version_1_code(record: Record) -> dict | None:
    """The schema-3 code version of a schema-2 record computed by version-1 code, else None."""
    config = record.config
    task, method, activation = config.get("task"), config.get("method"), config.get("activation")
    if record.legacy_code_digest is None or VERSION_1_DIGESTS.get(task) != record.legacy_code_digest:
        return None
    if method not in VERSION_1_METHODS or activation not in BUILTIN_ACTIVATIONS or "method_code" in config:
        return None
    return {"engine": 1, "theory": 1, "task": 1, "method": VERSION_1_METHODS[method]}


def migrate_record(record: Record) -> Record:
    """The schema-3 record of a schema-2 ``record`` of version-1 code (``ValueError`` otherwise)."""
    version = version_1_code(record)
    if version is None:
        raise ValueError(f"record {record.cell_id} was not computed by version-1 code")
    provenance = {k: v for k, v in record.provenance.items() if k != "code_digest"}
    provenance["code_version"] = version
    final = record.final
    if record.curves and record.status in FINISHED:
        final = {**(final or {}), **tail_statistics(record.curves)}
    new = record.replace(schema=3, provenance=provenance, final=final,
                         curves=thin_curves(record.curves) if record.curves else None,
                         curves_digest=None, curves_points=None)
    new.cell_id = compute_cell_id(new.config, new.seeds, version, new.protocol)
    return new


def migrate_store(store: str | os.PathLike, *, dry_run: bool = False) -> MigrationReport:
    """Migrate every schema-2 record of version-1 code in ``store`` (the new record is written,
    its curves first, before the old file is removed; then the curves are packed)."""
    st = ResultStore(store)
    report = MigrationReport()
    for path in sorted(st.records_dir.glob("*.json")):
        try:
            record = Record.from_json(path.read_text(), expected_id=path.stem)
        except (RecordError, OSError, UnicodeDecodeError) as exc:
            report.kept.append((path.name, f"unreadable ({exc})"))
            continue
        if record.schema >= 3:
            report.current += 1
            continue
        if record.protocol != PROTOCOL_VERSION or version_1_code(record) is None:
            report.kept.append((path.name, f"code digest {record.legacy_code_digest} is not version 1's"))
            continue
        new = migrate_record(record)
        report.migrated.append((record.cell_id, new.cell_id))
        if dry_run:
            continue
        st.write(new, force=True)
        if new.cell_id != record.cell_id:
            path.unlink()
        st.log_event("migrated", new.cell_id, old_cell_id=record.cell_id)
    if report.migrated and not dry_run:
        st.pack()
    return report


def prune_store(store: str | os.PathLike, statuses: list[str], *, dry_run: bool = False) -> list[Path]:
    """Remove the records of the given statuses (never ``done`` or ``diverged``: finished
    results are not pruned), e.g. ``skipped`` before a store is committed."""
    wanted = {Status(s) for s in statuses}
    if wanted & FINISHED:
        raise ValueError(f"finished records ({', '.join(sorted(s.value for s in wanted & FINISHED))}) are "
                         f"results: prune takes error, skipped, interrupted or lost")
    st = ResultStore(store)
    removed = []
    for record in st.records():
        if record.status in wanted:
            path = st.records_dir / f"{record.cell_id}.json"
            removed.append(path)
            if not dry_run:
                path.unlink()
    return removed
