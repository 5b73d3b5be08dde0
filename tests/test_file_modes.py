"""Files the package writes take the user's umask, like a plain open(): under umask 022 a
colleague can read a shared store, its exports, verdicts and reports; under 077 nobody else can."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import bench_suite as bs
from bench_suite.cli import main
from bench_suite.core.files import atomic_write

TINY = dict(task="synthetic_ablation", options={"n": 40, "d": 8}, widths=[4], methods=["sgd", "mli_paired_pgd"],
            train={"epochs": 3, "eval_every": 1})


@pytest.fixture
def umask():
    """Set the process umask for one test (restored after)."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(saved)


def files_under(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def modes(paths: list[Path]) -> dict[str, str]:
    return {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths}


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_write_gives_what_open_would(tmp_path, umask, mask, expected):
    umask(mask)
    written = atomic_write(tmp_path / "a.json", "{}")
    with open(tmp_path / "b.json", "w") as fh:
        fh.write("{}")
    assert stat.S_IMODE(written.stat().st_mode) == expected == stat.S_IMODE((tmp_path / "b.json").stat().st_mode)


def test_a_new_store_and_what_is_made_from_it_are_readable_by_others_under_umask_022(tmp_path, umask):
    umask(0o022)
    store = tmp_path / "store"
    summary = bs.run(**TINY, store=store)
    assert summary.exit_code == 0
    exports = tmp_path / "exports"
    bs.export(store, exports)
    verdicts = tmp_path / "verdicts"
    assert main(["check", "--store", str(store), "--save", str(verdicts)]) in (0, 3)
    reports = tmp_path / "reports"
    assert main(["report", "--store", str(store), "--reports-dir", str(reports)]) in (0, 1, 3)

    written = files_under(store, exports, verdicts, reports)
    kinds = {p.suffix for p in written}
    assert {".json", ".parquet", ".csv", ".jsonl", ".md"} <= kinds, kinds  # records, curves, tables, journal, report
    assert any(p.parent.name == "records" for p in written) and any("curves" in p.parts for p in written)
    locks = [p for p in written if "locks" in p.parts or p.suffix == ".lock"]
    unreadable = {p: m for p, m in modes([p for p in written if p not in locks]).items()
                  if not int(m, 8) & stat.S_IRGRP or not int(m, 8) & stat.S_IROTH}
    assert not unreadable, f"not readable by group/others under umask 022: {unreadable}"


def test_a_private_umask_keeps_the_store_private(tmp_path, umask):
    umask(0o077)
    store = tmp_path / "store"
    assert bs.run(**TINY, store=store).exit_code == 0
    shared = {p: m for p, m in modes(files_under(store)).items() if int(m, 8) & 0o077}
    assert not shared, f"readable by others under umask 077: {shared}"
