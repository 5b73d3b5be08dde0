"""The result store: atomic records, finished records kept, corrupt files ignored, claims,
the event journal and the DataFrame."""

import json
import os
import subprocess
import sys
import time

import pytest

from bench_suite.grid import expand
from bench_suite.runner import Runner
from bench_suite.store import DATAFRAME_COLUMNS, ResultStore

TINY = dict(options={"n": 40, "d": 8}, widths=[4], train={"epochs": 20, "eval_every": 5, "lr_w": 0.3, "lr_v": 0.3})


def tiny_cells(**kw):
    return expand("synthetic_ablation", **{**TINY, **kw})


def record(cell_id, status, **extra):
    return {"cell_id": cell_id, "status": status, "name": f"cell {cell_id}", "config": {"task": "t"}, **extra}


def test_write_is_atomic_and_leaves_no_temporary_files(store_dir):
    store = ResultStore(store_dir)
    assert store.write(record("a", "done", final={"train_loss": 0.5}))
    assert store.get("a")["final"] == {"train_loss": 0.5}
    assert [p.name for p in store.records_dir.iterdir()] == ["a.json"]


def test_a_non_finished_record_never_replaces_a_finished_one(store_dir):
    store = ResultStore(store_dir)
    store.write(record("a", "done", final={"train_loss": 0.5}))
    for status in ("error", "skipped", "interrupted"):
        assert store.write(record("a", status)) is False
        assert store.get("a")["status"] == "done"
    store.write(record("b", "diverged"))
    assert store.write(record("b", "error")) is False and store.get("b")["status"] == "diverged"
    # finished over finished (a --force re-run) and non-finished over non-finished are written
    assert store.write(record("a", "done", final={"train_loss": 0.1}))
    assert store.get("a")["final"]["train_loss"] == 0.1
    store.write(record("c", "interrupted"))
    assert store.write(record("c", "error")) and store.get("c")["status"] == "error"
    with pytest.raises(ValueError, match="status"):
        store.write(record("d", "weird"))


@pytest.mark.parametrize("content", ["{\"cell_id\": \"x\", \"stat", "\x00\xff garbage", "[1, 2]",
                                     "{\"status\": \"unknown\"}"])
def test_a_corrupt_record_is_ignored_with_a_warning_and_its_cell_re_run(store_dir, content):
    store = ResultStore(store_dir)
    (cell,) = tiny_cells(methods=["sgd"])
    Runner(store, device="cpu").run([cell])
    path = store.records_dir / f"{cell.cell_id}.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.warns(UserWarning, match="ignoring"):
        assert store.get(cell.cell_id) is None
    with pytest.warns(UserWarning, match="ignoring"):
        assert store.records() == []
    with pytest.warns(UserWarning, match="re-run"):
        summary = Runner(store, device="cpu").run([cell])
    assert summary.cached == 0 and summary.count("done") == 1
    assert json.loads(path.read_text())["status"] == "done"  # replaced by a good record


def test_to_dataframe_has_the_documented_columns_one_row_per_record(store_dir):
    store = ResultStore(store_dir)
    assert list(store.to_dataframe().columns) == DATAFRAME_COLUMNS and store.to_dataframe().empty
    Runner(store, device="cpu").run(tiny_cells(methods=["sgd", "mli_paired_pgd"]))
    df = store.to_dataframe()
    assert list(df.columns) == DATAFRAME_COLUMNS
    assert len(df) == 2 and sorted(df["method"]) == ["mli_paired_pgd", "sgd"]
    row = df.iloc[0]
    assert row["status"] == "done" and row["task"] == "synthetic_ablation" and row["epochs"] == 20
    assert (row["n"], row["d"], row["m"], row["k"]) == (40, 8, 4, 1)
    assert row["device"] == "cpu" and row["flops"] > 0 and row["train_loss"] > 0


def test_claims_are_exclusive_and_released_on_exit(store_dir):
    store = ResultStore(store_dir)
    with store.claim(["a", "b"]) as first:
        assert first == ["a", "b"]
        with store.claim(["b", "c"]) as second:
            assert second == ["c"]
    with store.claim(["a", "b", "c"]) as again:
        assert again == ["a", "b", "c"]


def test_a_claim_dies_with_its_process(store_dir):
    """kill -9 of a runner releases its claims (the OS drops the lock): no cell stays blocked."""
    code = ("import sys, time\nfrom bench_suite.store import ResultStore\n"
            "with ResultStore(sys.argv[1]).claim(['a']) as got:\n"
            "    print(got, flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(store_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "['a']"
        store = ResultStore(store_dir)
        with store.claim(["a"]) as got:
            assert got == []  # held by the other process
    finally:
        proc.kill()
        proc.wait()
    with store.claim(["a"]) as got:
        assert got == ["a"]


def test_stale_temporary_files_are_removed(store_dir):
    store = ResultStore(store_dir)
    store.write(record("a", "done"))
    old = store.records_dir / ".a.123.tmp"
    new = store.records_dir / ".a.456.tmp"
    old.write_text("{partial")
    new.write_text("{partial")
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert store.remove_stale_temp() == 1
    assert not old.exists() and new.exists()  # a fresh one may be a live write
    assert [r["cell_id"] for r in store.records()] == ["a"]  # temp files are never records


def test_event_journal_skips_torn_lines(store_dir):
    store = ResultStore(store_dir)
    store.log_event("start", "a", run_id="r")
    with open(store.events_path, "a") as fh:
        fh.write('\n{"event": "fin')  # an event write cut short by a crash
    store.log_event("finish", "a", run_id="r", status="done")
    events = store.events()
    assert [e["event"] for e in events] == ["start", "finish"]
    assert events[1]["status"] == "done" and events[1]["pid"] == os.getpid()
