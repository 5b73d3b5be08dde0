"""The result store: atomic records, finished records kept, corrupt files ignored, claims,
the event journal and the DataFrame."""

import json
import os
import subprocess
import sys
import time

import pytest

from bench_suite.core.records import COLUMN_NAMES, Status
from bench_suite.grid import expand
from bench_suite.runner.runner import Runner, make_record
from bench_suite.store.result_store import RecordWarning, ResultStore

TINY = dict(options={"n": 40, "d": 8}, widths=[4], train={"epochs": 20, "eval_every": 5, "lr_w": 0.3, "lr_v": 0.3})


def tiny_cells(**kw):
    return expand("synthetic_ablation", **{**TINY, **kw})


CELLS = {}


def record(key, status, **fields):
    """A valid record (its id is the hash of its content) of one of a few tiny cells, by key."""
    if not CELLS:
        for name, cell in zip("abcd", tiny_cells(methods=["sgd"], repetitions=[0, 1, 2, 3])):
            CELLS[name] = cell
    rec = make_record(CELLS[key], status)
    for name, value in fields.items():
        setattr(rec, name, value)
    return rec


def test_write_is_atomic_and_leaves_no_temporary_files(store_dir):
    store = ResultStore(store_dir)
    a = record("a", "done", final={"train_loss": 0.5})
    assert store.write(a)
    assert store.get(a.cell_id).final == {"train_loss": 0.5}
    assert [p.name for p in store.records_dir.iterdir()] == [f"{a.cell_id}.json"]


def test_a_non_finished_record_never_replaces_a_finished_one(store_dir):
    store = ResultStore(store_dir)
    a = record("a", "done", final={"train_loss": 0.5})
    store.write(a)
    for status in ("error", "skipped", "interrupted", "lost"):
        assert store.write(record("a", status)) is False
        assert store.get(a.cell_id).status == "done"
    b = record("b", "diverged")
    store.write(b)
    assert store.write(record("b", "error")) is False and store.get(b.cell_id).status == Status.DIVERGED
    # finished over finished (a --force re-run) and non-finished over non-finished are written
    assert store.write(record("a", "done", final={"train_loss": 0.1}))
    assert store.get(a.cell_id).final["train_loss"] == 0.1
    c = record("c", "interrupted")
    store.write(c)
    assert store.write(record("c", "error")) and store.get(c.cell_id).status == "error"
    with pytest.raises(ValueError, match="Status"):
        record("d", "weird")
    with pytest.raises(TypeError, match="Record"):
        store.write({"cell_id": "d", "status": "done"})


def test_records_are_valid_json_and_non_finite_floats_round_trip(store_dir):
    store = ResultStore(store_dir)
    a = record("a", "diverged", final={"train_loss": float("inf"), "test_loss": float("nan"), "train_acc": None},
               curves={"epoch": [1, 2, 3, 4], "train_loss": [1.0, float("inf"), float("-inf"), float("nan")]})
    store.write(a)
    text = (store.records_dir / f"{a.cell_id}.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the JSON"))  # strict JSON
    back = store.get(a.cell_id, with_curves=True)
    assert back.final["train_loss"] == float("inf") and back.final["test_loss"] != back.final["test_loss"]
    assert back.curves["train_loss"][1:3] == [float("inf"), float("-inf")]
    assert back.final["train_acc"] is None


def _rewrite(path, change, *, keep_digest_valid=True):
    """Edit a record file; by default as a careful foreign writer would, with a matching
    content digest (so the checks behind it are the ones under test)."""
    from bench_suite.core.records import _content_digest

    data = json.loads(path.read_text())
    change(data)
    data.pop("content_digest", None)
    if keep_digest_valid:
        data["content_digest"] = _content_digest(data)
    path.write_text(json.dumps(data))


def test_an_edited_result_is_refused_and_the_original_is_kept_aside_when_the_cell_re_runs(store_dir):
    store = ResultStore(store_dir)
    (cell,) = tiny_cells(methods=["sgd"])
    Runner(store, device="cpu").run([cell])
    path = store.records_dir / f"{cell.cell_id}.json"
    data = json.loads(path.read_text())
    data["final"]["train_loss"] = 0.0  # an edited result, digest left as it was
    path.write_text(json.dumps(data))
    edited = path.read_text()
    with pytest.warns(RecordWarning, match="edited after it was written"):
        assert store.get(cell.cell_id) is None
    summary = Runner(ResultStore(store_dir), device="cpu").run([cell])  # re-runs the cell
    assert summary.count("done") == 1 and ResultStore(store_dir).get(cell.cell_id).final["train_loss"] > 0
    (kept,) = (store_dir / "rejected").glob(f"{cell.cell_id}.*.json")  # never lost: moved aside
    assert kept.read_text() == edited


@pytest.mark.parametrize("change,needle", [
    (lambda d: d.update(protocol=99), "protocol 99"),
    (lambda d: d.update(schema=7), "schema 7"),
    (lambda d: d.update(final=[0.1, 0.2]), "final"),
    (lambda d: d.update(final={"train_loss": "low"}), "final.train_loss"),
    (lambda d: d.update(curves={"train_loss": 3}), "curves.train_loss"),
    (lambda d: d["config"].update(width=5), "not the hash"),
    (lambda d: d["config"].pop("task"), "config.task"),
    (lambda d: d["provenance"].pop("code_version"), "code_version"),
    (lambda d: d.update(schema=1), "schema 1"),
    (lambda d: d.update(status="finished"), "status"),
    (lambda d: d.update(name=None), "name"),
])
def test_a_record_of_another_shape_or_version_is_refused_naming_why(store_dir, change, needle):
    store = ResultStore(store_dir)
    (cell,) = tiny_cells(methods=["sgd"])
    Runner(store, device="cpu").run([cell])
    path = store.records_dir / f"{cell.cell_id}.json"
    _rewrite(path, change)
    with pytest.warns(RecordWarning, match=needle):
        assert store.get(cell.cell_id) is None
    assert path in store.rejected and needle.split()[0] in store.rejected[path]
    assert store.records() == [] and store.to_dataframe().empty


def test_a_record_copied_over_another_cells_file_is_not_taken_as_that_cell(store_dir):
    store = ResultStore(store_dir)
    first, second = tiny_cells(methods=["sgd", "mli_paired_pgd"])
    Runner(store, device="cpu").run([first])
    src = store.records_dir / f"{first.cell_id}.json"
    (store.records_dir / f"{second.cell_id}.json").write_text(src.read_text())
    with pytest.warns(RecordWarning, match="copied over"):
        summary = Runner(store, device="cpu").run([first, second])
    assert summary.cached == 1 and summary.count("done") == 2  # the second cell trained
    df = store.to_dataframe()
    assert sorted(df["cell_id"]) == sorted([first.cell_id, second.cell_id])  # each cell once
    assert store.get(second.cell_id).method == "mli_paired_pgd"


@pytest.mark.parametrize("content", ["{\"cell_id\": \"x\", \"stat", "\x00\xff garbage", "[1, 2]",
                                     "{\"status\": \"unknown\"}"])
def test_a_corrupt_record_is_ignored_with_a_warning_and_its_cell_re_run(store_dir, content):
    store = ResultStore(store_dir)
    (cell,) = tiny_cells(methods=["sgd"])
    Runner(store, device="cpu").run([cell])
    path = store.records_dir / f"{cell.cell_id}.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.warns(RecordWarning, match="ignoring"):
        assert store.get(cell.cell_id) is None
    assert store.records() == []  # one warning per file, already given
    summary = Runner(ResultStore(store_dir), device="cpu").run([cell])
    assert summary.cached == 0 and summary.count("done") == 1
    assert json.loads(path.read_text())["status"] == "done"  # replaced by a good record


def test_to_dataframe_has_the_documented_columns_one_row_per_record(store_dir):
    store = ResultStore(store_dir)
    assert list(store.to_dataframe().columns) == list(COLUMN_NAMES) and store.to_dataframe().empty
    Runner(store, device="cpu").run(tiny_cells(methods=["sgd", "mli_paired_pgd"]))
    df = store.to_dataframe()
    assert list(df.columns) == list(COLUMN_NAMES)
    assert str(df["width"].dtype) == "Int64" and str(df["train_loss"].dtype) == "float64"
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
    code = ("import sys, time\nfrom bench_suite.store.result_store import ResultStore\n"
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
    a = record("a", "done")
    store.write(a)
    old = store.records_dir / f".{a.cell_id}.123.tmp"
    new = store.records_dir / f".{a.cell_id}.456.tmp"
    old.write_text("{partial")
    new.write_text("{partial")
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert store.remove_stale_temp() == 1
    assert not old.exists() and new.exists()  # a fresh one may be a live write
    assert [r.cell_id for r in store.records()] == [a.cell_id]  # temp files are never records


def test_event_journal_is_json_lines_from_its_first_byte(store_dir):
    store = ResultStore(store_dir)
    store.log_event("start", "a", run_id="r")
    store.log_event("finish", "a", run_id="r", status="done")
    text = store.events_path.read_text()
    assert not text.startswith("\n") and text.endswith("}\n")
    assert [json.loads(line)["event"] for line in text.splitlines()] == ["start", "finish"]  # a naive reader


def test_event_journal_ends_a_torn_line_and_an_older_journal_before_appending(store_dir):
    store = ResultStore(store_dir)
    store.log_event("start", "a", run_id="r")
    with open(store.events_path, "a") as fh:
        fh.write('{"event": "fin')  # an event write cut short by a crash
    store.log_event("finish", "a", run_id="r", status="done")
    lines = store.events_path.read_text().splitlines()
    assert lines[1] == '{"event": "fin' and json.loads(lines[2])["event"] == "finish"
    assert [e["event"] for e in store.events()] == ["start", "finish"]
    older = ResultStore(store_dir.parent / "older")  # journals whose every event started with its newline
    older.root.mkdir()
    older.events_path.write_text('\n{"event": "start", "cell_id": "a"}')
    older.log_event("finish", "a")
    assert [e["event"] for e in older.events()] == ["start", "finish"]
    assert older.events_path.read_text().splitlines()[:2] == ["", '{"event": "start", "cell_id": "a"}']


def test_event_journal_skips_torn_lines(store_dir):
    store = ResultStore(store_dir)
    store.log_event("start", "a", run_id="r")
    with open(store.events_path, "a") as fh:
        fh.write('\n{"event": "fin')  # an event write cut short by a crash
    store.log_event("finish", "a", run_id="r", status="done")
    events = store.events()
    assert [e["event"] for e in events] == ["start", "finish"]
    assert events[1]["status"] == "done" and events[1]["pid"] == os.getpid()
