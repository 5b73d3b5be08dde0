"""`store migrate|pack|prune`: records of schema 2 computed by version-1 code become the
schema-3 records of the same cells (same ids as the current code gives them, same numbers,
curves thinned into the store's pack); others are kept; prune never removes a result."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench_suite.core.records import Record, Status, compute_cell_id, legacy_cell_id
from bench_suite.grid import expand
from bench_suite.grid.versions import is_current
from bench_suite.methods import BUILTIN_METHODS, METHODS
from bench_suite.runner.runner import Runner
from bench_suite.store.migrate import (
    VERSION_1_DIGESTS,
    VERSION_1_METHODS,
    migrate_store,
    prune_store,
    version_1_code,
)
from bench_suite.store.result_store import ResultStore

TINY = dict(options={"n": 40, "d": 8}, widths=[4], train={"epochs": 30, "eval_every": 10})


def _as_schema_2(record: Record, digest: str) -> Record:
    """``record`` as the version-1 code of schema 2 wrote it: curves inline and whole, ids from
    the source digest, no tail statistics."""
    provenance = {k: v for k, v in record.provenance.items() if k != "code_version"} | {"code_digest": digest}
    final = {k: v for k, v in record.final.items() if not k.endswith("_tail_median")}
    old = record.replace(schema=2, provenance=provenance, final=final, curves_digest=None, curves_points=None)
    old.cell_id = legacy_cell_id(old.config, old.seeds, digest, old.protocol)
    return old


@pytest.fixture
def legacy_store(tmp_path):
    """A store of schema-2 records of version-1 code, and the schema-3 records the current code
    writes for the same cells (with full curves kept aside to build the old form)."""
    cells = expand("synthetic_ablation", methods=["mli_paired_pgd", "sgd"], **TINY)
    new_dir, old_dir = tmp_path / "new", tmp_path / "old"
    Runner(ResultStore(new_dir), device="cpu").run(cells)
    current = {r.cell_id: r for r in ResultStore(new_dir).records(with_curves=True)}
    old = ResultStore(old_dir)
    for record in current.values():
        # thinning keeps 30 epochs whole, so the inline curves are the full ones
        old.write(_as_schema_2(record, VERSION_1_DIGESTS["synthetic_ablation"]))
    return old_dir, current


def test_the_version_1_identities_are_the_built_in_methods_of_today():
    # a changed built-in declaration needs a version bump (and the goldens), not a silent migration
    assert VERSION_1_METHODS == {m: METHODS.get(m).identity() for m in BUILTIN_METHODS}


def test_migration_gives_the_current_codes_records_of_the_same_cells(legacy_store):
    old_dir, current = legacy_store
    assert {json.loads(p.read_text())["schema"] for p in (old_dir / "records").glob("*.json")} == {2}
    report = migrate_store(old_dir)
    assert len(report.migrated) == len(current) and not report.kept
    migrated = {r.cell_id: r for r in ResultStore(old_dir).records(with_curves=True)}
    # the ids the cells have under version-1 code (what computed them); with every version still
    # 1 these are the current code's ids, after a bump (ENGINE_VERSION 2) they are older code's
    v1 = {key: version_1_code(_as_schema_2(r, VERSION_1_DIGESTS["synthetic_ablation"])) for key, r in current.items()}
    by_v1_id = {compute_cell_id(r.config, r.seeds, v1[key], r.protocol): key for key, r in current.items()}
    assert set(migrated) == set(by_v1_id)
    for cell_id, record in migrated.items():
        want = current[by_v1_id[cell_id]]
        assert record.schema == 3 and record.code_version == v1[by_v1_id[cell_id]]
        assert is_current(record) == (record.code_version == want.code_version)
        assert record.final == want.final  # tail statistics added from the inline curves
        assert {k: v for k, v in record.curves.items() if k != "wall_time"} == \
            {k: v for k, v in want.curves.items() if k != "wall_time"}
    assert len(list((old_dir / "curves").glob("pack-*.parquet"))) == 1
    assert migrate_store(old_dir).current == len(current)  # again: nothing to do


def test_records_of_other_code_are_kept_and_named(legacy_store, capsys):
    old_dir, _ = legacy_store
    store = ResultStore(old_dir)
    (one, *_) = store.records()
    path = old_dir / "records" / f"{one.cell_id}.json"
    other = _as_schema_2(one.replace(schema=3, provenance={**one.provenance, "code_version": {}}), "feedfeedfeedfeed")
    path.unlink()
    store.write(other)
    report = migrate_store(old_dir, dry_run=True)
    assert len(report.kept) == 1 and "feedfeedfeedfeed" in report.kept[0][1]
    assert any("older code" in line for line in report.lines())
    assert {json.loads(p.read_text())["schema"] for p in (old_dir / "records").glob("*.json")} == {2}  # dry run


def test_prune_removes_skipped_records_and_never_a_result(tmp_path):
    store = ResultStore(tmp_path / "s")
    cells = expand("synthetic_ablation", methods=["sgd"], **TINY)
    Runner(store, device="cpu").run(cells)
    (done,) = store.records()
    skipped = done.replace(status=Status.SKIPPED, reason="no data", final=None, curves=None, curves_digest=None,
                           curves_points=None, config={**done.config, "repetition": 7})
    skipped.cell_id = skipped.expected_id()
    store.write(skipped)
    with pytest.raises(ValueError, match="results"):
        prune_store(store.root, ["done"])
    assert [p.stem for p in prune_store(store.root, ["skipped"])] == [skipped.cell_id]
    assert [r.status for r in store.records()] == [Status.DONE]


def test_the_store_command_in_one_line_errors(tmp_path):
    def bench(*args):
        return subprocess.run([sys.executable, "-m", "bench_suite", "store", *args], capture_output=True, text=True,
                              timeout=120)

    (tmp_path / "s" / "records").mkdir(parents=True)
    for args, needle in ((["prune", "--store", str(tmp_path / "s")], "needs --status"),
                         (["prune", "--store", str(tmp_path / "s"), "--status", "done"], "results"),
                         (["migrate", "--store", str(tmp_path / "nope")], "no such result store")):
        proc = bench(*args)
        assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    proc = bench("migrate", "--store", str(tmp_path / "s"))
    assert proc.returncode == 0 and "migrated 0 record(s)" in proc.stdout


def test_the_committed_stores_are_schema_3_of_the_current_code_without_skipped_records():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "reports"
    for records in root.glob("*/store/records"):
        store = ResultStore(records.parent)
        found = store.records()
        assert found and not store.rejected, records
        assert all(r.schema == 3 for r in found), records
        assert not [r.name for r in found if r.status == Status.SKIPPED], records
