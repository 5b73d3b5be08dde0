"""Curves out of the records: the thinning rule, the tail statistics kept in ``final``, the
parquet sidecar (loose files, the pack, digests) and reading records of schema 2."""

import hashlib
import json
import math
import subprocess
import sys
import textwrap
from decimal import Decimal, getcontext
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bench_suite as bs
from bench_suite.api import CURVE_COLUMNS
from bench_suite.core.curves import (
    MAX_POINTS,
    THINNING,
    envelope,
    tail_median,
    tail_statistics,
    tail_window,
    thin_curves,
    thin_indices,
)
from bench_suite.core.records import (
    COLUMN_NAMES,
    COLUMNS,
    METRICS,
    SCORED_METRICS,
    Record,
    RecordError,
    _content_digest,
    _encode_floats,
    curves_digest,
    legacy_cell_id,
)
from bench_suite.grid import expand
from bench_suite.runner.runner import make_record
from bench_suite.store.curves import CurveStore, CurveWarning, from_bytes, to_table
from bench_suite.store.result_store import ResultStore
from bench_suite.train.engine.layout import CellResult

TINY = dict(options={"n": 40, "d": 8}, widths=[4], train={"epochs": 20, "eval_every": 5, "lr_w": 0.3, "lr_v": 0.3})


def cells(n, **kw):
    return expand("synthetic_ablation", **{**TINY, "methods": ["sgd"], "repetitions": list(range(n)), **kw})


def result(epochs, evals=10, *, loss=None, status="done"):
    """A trainer's result with ``epochs`` per-epoch points and ``evals`` evaluations."""
    loss = loss if loss is not None else [1.0 / (1 + e) + 0.01 * (e % 7) for e in range(epochs)]
    eval_epoch = [round(epochs * (i + 1) / evals) for i in range(evals)] if epochs else []
    curves = {
        "epoch": list(range(1, epochs + 1)), "train_loss": loss,
        "eval_epoch": eval_epoch, "eval_train_loss": [0.5 / (1 + i) for i in range(len(eval_epoch))],
        "eval_train_acc": [None] * len(eval_epoch), "test_loss": [None] * len(eval_epoch),
        "test_acc": [None] * len(eval_epoch), "dist_w0": [0.1 * i for i in range(len(eval_epoch))],
        "proj_active_frac": [0.0] * len(eval_epoch), "wall_time": [0.001 * i for i in range(len(eval_epoch))],
    }
    final = {"train_loss": curves["eval_train_loss"][-1] if eval_epoch else None, "train_acc": None,
             "test_loss": None, "test_acc": None, "dist_w0": 0.3, "proj_active_frac": 0.0, "radius": 1.0}
    return CellResult(status=status, reason=None, curves=curves, final=final,
                      timing={"epochs": epochs, "trainer": "fused"}, w0_digest="w0")


def written(store, cell, res, status="done"):
    record = make_record(cell, status, result=res)
    assert store.write(record)
    return record


# --------------------------------------------------------------------------------------------
# the thinning rule
# --------------------------------------------------------------------------------------------
def _reference_indices(length, max_points=MAX_POINTS):
    """The rule from its definition, in 80-digit decimals (rounding half up)."""
    if length <= max_points:
        return list(range(length))
    getcontext().prec = 80
    q = max_points // 2 - 1
    half = Decimal(1) / 2
    lin = {int(Decimal(k * (length - 1)) / q + half) for k in range(q + 1)}
    log = {int(Decimal(length) ** (Decimal(k) / q) + half) - 1 for k in range(q + 1)}
    return sorted(lin | log | {0, length - 1})


@pytest.mark.parametrize("length", [0, 1, 2, 255, 256, 257, 1000, 10000, 200000])
def test_thinning_keeps_short_curves_whole_and_thins_long_ones_to_the_rule(length):
    idx = thin_indices(length)
    if length <= 256:
        assert idx == list(range(length))
        return
    assert idx == _reference_indices(length)
    assert idx[0] == 0 and idx[-1] == length - 1
    assert all(a < b for a, b in zip(idx, idx[1:]))  # increasing, unique
    assert 128 <= len(idx) <= 256
    assert {1, 2, 3, 4} <= set(idx)  # the log-spaced part keeps the start of training dense
    assert thin_indices(length) == idx  # a function of the length alone


def test_thinning_counts_hand_checked():
    # 257 points: the 128 linear indices are every other one (step 256/127 ~ 2.02), and the
    # log-spaced ones add the dense start
    assert len(thin_indices(257)) == 164 and len(thin_indices(10000)) == 230
    assert thin_indices(257)[:12] == list(range(12)) and thin_indices(257)[-3:] == [252, 254, 256]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**7))
def test_thinning_properties(length):
    idx = thin_indices(length)
    assert idx == sorted(set(idx))
    assert len(idx) == length if length <= MAX_POINTS else 128 <= len(idx) <= MAX_POINTS
    if length:
        assert idx[0] == 0 and idx[-1] == length - 1 and all(0 <= i < length for i in idx)
    assert thin_indices(len(idx)) == list(range(len(idx)))  # a thinned curve is kept whole: idempotent


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=257, max_value=3 * 10**5))
def test_thinning_is_the_rule_computed_exactly(length):
    assert thin_indices(length) == _reference_indices(length)


def test_thin_curves_thins_each_family_by_its_own_length_and_is_idempotent():
    res = result(10000, evals=300)
    thinned = thin_curves(res.curves)
    idx, eval_idx = thin_indices(10000), thin_indices(300)
    assert thinned["epoch"] == [i + 1 for i in idx]
    assert thinned["train_loss"] == [res.curves["train_loss"][i] for i in idx]
    assert thinned["eval_epoch"] == [res.curves["eval_epoch"][i] for i in eval_idx]
    assert thinned["test_acc"] == [None] * len(eval_idx)  # undefined values stay undefined
    assert thin_curves(thinned) == thinned
    assert THINNING == {"rule": "linear+log", "max_points": 256, "envelope": ["min", "max"]}
    short = result(20, evals=4).curves
    assert thin_curves(short) == {**short, "eval_train_acc": [None] * 4}  # kept whole
    assert "epoch" not in thin_curves(result(0, evals=0).curves)  # a family of no points is left out
    assert not any(":" in k for k in thin_curves(short))  # a curve kept whole needs no envelope
    with pytest.raises(ValueError, match="curves.train_loss has 3 values for 4 curves.epoch"):
        thin_curves({"epoch": [1, 2, 3, 4], "train_loss": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="has no curves.eval_epoch"):
        thin_curves({"test_acc": [0.5]})


def test_a_thinned_curve_keeps_its_envelope_so_spikes_between_kept_points_are_seen():
    loss = [1.0 + 4.0 * (e % 37 == 5) for e in range(1000)]  # 27 one-epoch spikes to 5
    loss[600] = float("inf")
    loss[700] = float("nan")
    thinned = thin_curves({"epoch": list(range(1, 1001)), "train_loss": loss})
    keep = thin_indices(1000)
    low, high = thinned["train_loss:min"], thinned["train_loss:max"]
    assert len(low) == len(high) == len(keep) == len(thinned["epoch"])
    spikes_kept = sum(1 for i in keep if loss[i] == 5.0)
    assert spikes_kept < 27  # the kept points alone miss spikes ...
    stretches = [range(0 if j == 0 else keep[j - 1] + 1, k + 1) for j, k in enumerate(keep)]
    assert sum(1 for r in stretches for i in r if loss[i] == 5.0) == 27  # (the stretches cover every point once)
    for r, lo, hi in zip(stretches, low, high):  # ... the envelope does not
        values = [loss[i] for i in r]
        if any(math.isnan(v) for v in values):
            assert math.isnan(lo) and math.isnan(hi)
        else:
            assert (lo, hi) == (min(values), max(values))
    assert high.count(5.0) + sum(1 for r, h in zip(stretches, high) if 600 in r) >= 26
    assert float("inf") in high and sum(1 for h in high if math.isnan(h)) == 1
    assert envelope([None, 1.0, 2.0], [0, 2]) == ([None, 1.0], [None, 2.0])
    assert thin_curves(thinned) == thinned  # idempotent, envelopes included
    with pytest.raises(ValueError, match="envelope of stored curves"):
        thin_curves({"epoch": list(range(300)), "train_loss": [0.0] * 300, "train_loss:max": [0.0] * 300})


# --------------------------------------------------------------------------------------------
# the tail statistics
# --------------------------------------------------------------------------------------------
def test_tail_median_hand_computed():
    assert [tail_window(n) for n in (0, 1, 4, 5, 8, 9, 2000)] == [0, 1, 1, 2, 2, 3, 500]
    assert tail_median([]) is None
    assert tail_median([5.0]) == 5.0
    assert tail_median([9.0, 9.0, 9.0, 2.0]) == 2.0  # window of 1: the last point
    assert tail_median([9.0] * 6 + [3.0, 1.0]) == 2.0  # window of 2: their mean
    assert tail_median([9.0] * 6 + [4.0, 1.0, 2.0]) == 2.0  # window of 3: the middle one
    # an oscillation: the last point lands on a spike, the tail median does not
    curve = [1.0] * 12 + [0.1, 5.0, 0.1, 0.1, 5.0, 0.1, 0.1, 5.0]
    assert curve[-1] == 5.0 and tail_median(curve) == 0.1


def test_a_diverged_curve_has_no_tail_median():
    assert math.isnan(tail_median([1.0, 0.5, 0.2, float("nan")]))
    assert math.isnan(tail_median([1.0] * 8 + [0.1, float("inf")]))  # not 0.1 from the finite remnant
    assert math.isnan(tail_median([1.0] * 4 + [None]))
    # the window is a quarter of the epochs *run*: a cell that diverged at epoch 8 of 1000 reads 2
    stats = tail_statistics({"epoch": list(range(1, 9)), "train_loss": [1.0] * 6 + [0.3, 0.5]})
    assert stats == {"train_loss_tail_median": 0.4}


def test_the_record_keeps_the_tail_median_of_the_full_curve_and_the_curves_thinned():
    (cell,) = cells(1)
    loss = [1.0] * 7500 + [3.0 if e % 2 else 0.2 for e in range(2500)]  # the last quarter oscillates
    loss[-1] = 9.0  # the last point on a spike
    res = result(10000, loss=loss)
    record = make_record(cell, "done", result=res)
    assert record.final["train_loss_tail_median"] == 1.6  # median of the last 2500: (0.2 + 3.0) / 2
    assert record.final["train_loss"] == res.final["train_loss"]  # the last evaluation's, as before
    assert record.curves == thin_curves(res.curves)
    assert "train_acc_tail_median" not in record.final  # a regression task has no accuracy curve
    assert "train_loss_tail_median" in METRICS and "train_acc_tail_median" in SCORED_METRICS
    assert {"train_loss_tail_median", "train_acc_tail_median"} <= set(COLUMN_NAMES)
    row = COLUMNS[COLUMN_NAMES.index("train_loss_tail_median")]
    assert "last quarter of the epochs run" in row.doc and row.get(record) == 1.6


# --------------------------------------------------------------------------------------------
# the store: loose files, round trip, digests
# --------------------------------------------------------------------------------------------
def test_curves_round_trip_exactly_and_the_record_holds_only_their_digest(store_dir):
    store = ResultStore(store_dir)
    (cell,) = cells(1)
    loss = [1.0 / (1 + e) for e in range(10000)]
    loss[5000], loss[9000] = float("inf"), float("nan")  # non-finite values survive
    record = written(store, cell, result(10000, loss=loss))
    path = store.records_dir / f"{cell.cell_id}.json"
    data = json.loads(path.read_text())
    assert "curves" not in data and data["schema"] == 3
    assert data["curves_points"] == {"rule": "linear+log", "max_points": 256, "envelope": ["min", "max"]}
    assert data["curves_digest"] == curves_digest(record.curves) == hashlib.sha256(json.dumps(
        _encode_floats(record.curves), sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert path.stat().st_size < 5000  # a 10,000-epoch cell
    assert store.get(cell.cell_id).curves is None  # not loaded unless asked
    back = store.get(cell.cell_id, with_curves=True)
    assert json.dumps(back.curves, sort_keys=True) == json.dumps(thin_curves(result(10000, loss=loss).curves),
                                                                 sort_keys=True)  # NaN, inf, None included
    assert json.dumps(store.curves(), sort_keys=True) == json.dumps({cell.cell_id: back.curves}, sort_keys=True)
    high = back.curves["train_loss:max"]  # the inf and the NaN survive in the envelope, kept points or not
    assert float("inf") in high and sum(1 for v in high if math.isnan(v)) == 1
    loose = store_dir / "curves" / f"{cell.cell_id}.parquet"
    table = pq.read_table(loose)
    assert table.schema.field("cell_id").type == pa.dictionary(pa.int32(), pa.string())
    assert table.schema.field("metric").type == pa.dictionary(pa.int32(), pa.string())
    assert (table.schema.field("epoch").type, table.schema.field("value").type) == (pa.int32(), pa.float64())
    assert pq.ParquetFile(loose).metadata.row_group(0).column(3).compression == "ZSTD"


def test_a_re_run_replaces_the_loose_file(store_dir):
    store = ResultStore(store_dir)
    (cell,) = cells(1)
    written(store, cell, result(30))
    second = written(store, cell, result(40))  # a --force re-run
    assert store.get(cell.cell_id, with_curves=True).curves == second.curves
    assert [p.name for p in (store_dir / "curves").iterdir()] == [f"{cell.cell_id}.parquet"]


def _edit_value(path, cell_id, factor=2.0):
    """Rewrite a curves file with one value changed (a careful editor: a valid parquet file)."""
    curves = from_bytes(path.read_bytes(), path.name)
    curves[cell_id]["train_loss"][3] *= factor
    pq.write_table(to_table(curves), path)


def test_curves_that_do_not_match_their_record_are_refused_and_the_record_still_counts(store_dir):
    store = ResultStore(store_dir)
    a, b = cells(2)
    written(store, a, result(30))
    rec_b = written(store, b, result(30))
    _edit_value(store_dir / "curves" / f"{a.cell_id}.parquet", a.cell_id)
    fresh = ResultStore(store_dir)
    with pytest.warns(CurveWarning, match=f"leaving out the curves of .*{a.cell_id}.*do not match") as caught:
        records = {r.cell_id: r for r in fresh.records(with_curves=True)}
    assert len(caught) == 1
    assert records[a.cell_id].curves is None and records[a.cell_id].final["train_loss"] is not None
    assert records[b.cell_id].curves == rec_b.curves
    assert a.cell_id in fresh.curves_refused and set(fresh.curves()) == {b.cell_id}
    assert len(bs.load_results(store_dir)) == 2  # both count for verdicts
    with pytest.warns(CurveWarning):
        frame = bs.load_curves(store_dir)
    assert set(frame["cell_id"]) == {b.cell_id}


def test_a_record_whose_curves_are_missing_is_read_with_a_warning(store_dir):
    store = ResultStore(store_dir)
    (cell,) = cells(1)
    written(store, cell, result(30))
    (store_dir / "curves" / f"{cell.cell_id}.parquet").unlink()
    with pytest.warns(CurveWarning, match="no curves for it"):
        (record,) = ResultStore(store_dir).records(with_curves=True)
    assert record.curves is None and record.status == "done"


# --------------------------------------------------------------------------------------------
# the pack
# --------------------------------------------------------------------------------------------
def test_pack_merges_loose_files_and_the_earlier_pack_into_one_file_named_by_its_bytes(store_dir):
    store = ResultStore(store_dir)
    a, b, c = cells(3)
    rec_a, rec_b = written(store, a, result(300)), written(store, b, result(30))
    first = store.pack()
    assert first.pack is not None and sorted(first.merged) == sorted([a.cell_id, b.cell_id])
    assert sorted(p.name for p in (store_dir / "curves").iterdir()) == [first.pack.name]
    assert first.pack.name == f"pack-{hashlib.sha256(first.pack.read_bytes()).hexdigest()[:32]}.parquet"
    rec_c = written(store, c, result(50))
    rec_b = written(store, b, result(60))  # a re-run: its loose file supersedes the pack's version
    assert ResultStore(store_dir).curves()[b.cell_id] == rec_b.curves  # loose wins before packing too
    second = store.pack()
    assert second.removed_packs == [first.pack.name] and sorted(second.merged) == sorted([b.cell_id, c.cell_id])
    assert [p.name for p in (store_dir / "curves").iterdir()] == [second.pack.name]
    got = ResultStore(store_dir).curves()
    assert got == {a.cell_id: rec_a.curves, b.cell_id: rec_b.curves, c.cell_id: rec_c.curves}
    assert store.pack().pack is None  # nothing left to merge


def test_a_tampered_pack_is_refused_with_one_line_naming_it(store_dir, capsys):
    store = ResultStore(store_dir)
    a, b = cells(2)
    written(store, a, result(30)), written(store, b, result(30))
    pack = store.pack().pack
    _edit_value(pack, a.cell_id)  # valid parquet, other bytes than its name says
    with pytest.warns(CurveWarning) as caught:
        records = ResultStore(store_dir).records(with_curves=True)
    lines = [str(w.message) for w in caught]
    assert any(pack.name in line and "not the" in line for line in lines)
    assert all(r.curves is None for r in records) and len(records) == 2
    problems = ResultStore(store_dir).verify_curves()
    assert problems[0].startswith(str(pack)) and "changed after it was written" in problems[0]
    # check says so in one line and still decides from the records
    from bench_suite.cli import main

    main(["check", "--store", str(store_dir)])
    err = capsys.readouterr().err
    assert err.count(pack.name) >= 1 and "Traceback" not in err
    with pytest.warns(CurveWarning, match=pack.name):
        assert ResultStore(store_dir).pack().pack is None and pack.exists()  # never merged away, never deleted


def test_pack_leaves_a_loose_file_its_record_does_not_name_and_keeps_the_older_version(store_dir):
    store = ResultStore(store_dir)
    (cell,) = cells(1)
    rec = written(store, cell, result(30))
    store.pack()
    # a killed --force re-run: new curves written, the record never replaced
    store.curve_files.write(cell.cell_id, thin_curves(result(35).curves))
    out = store.pack()
    assert out.pack is None and "do not match" in out.kept_loose[cell.cell_id]
    assert ResultStore(store_dir).curves() == {cell.cell_id: rec.curves}  # the pack's version matches the record


def test_a_reader_lists_again_when_a_pack_replaced_the_loose_files_it_listed(store_dir, monkeypatch):
    store = ResultStore(store_dir)
    (cell,) = cells(1)
    rec = written(store, cell, result(30))
    reader = ResultStore(store_dir)
    stale = reader.curve_files.listing()  # before the pack: the loose file only
    store.pack()
    calls = []
    real = CurveStore.listing

    def listing(self):
        calls.append(1)
        return stale if len(calls) == 1 else real(self)

    monkeypatch.setattr(CurveStore, "listing", listing)
    assert reader.curves() == {cell.cell_id: rec.curves} and len(calls) == 2


WRITER = textwrap.dedent("""
    import sys
    from bench_suite.grid import expand
    from bench_suite.runner.runner import make_record
    from bench_suite.store.result_store import ResultStore
    sys.path.insert(0, sys.argv[3])
    from test_curves import TINY, result

    store = ResultStore(sys.argv[1])
    start = int(sys.argv[2])
    reps = list(range(start, start + 12))
    for cell in expand("synthetic_ablation", **{**TINY, "methods": ["sgd"], "repetitions": reps}):
        with store.claim([cell.cell_id]) as held:  # as the runner writes: holding the cell's claim
            assert held
            store.write(make_record(cell, "done", result=result(300 + cell.repetition)))
""")


def test_two_processes_write_loose_files_while_a_third_packs(store_dir, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    tests_dir = str(Path(__file__).parent)
    writers = [subprocess.Popen([sys.executable, str(script), str(store_dir), str(start), tests_dir])
               for start in (0, 12)]
    store = ResultStore(store_dir)
    while any(w.poll() is None for w in writers):
        store.pack()
    assert [w.wait() for w in writers] == [0, 0]
    store.pack()
    files = sorted(p.name for p in (store_dir / "curves").iterdir())
    assert len(files) == 1 and files[0].startswith("pack-")
    got = ResultStore(store_dir).curves()
    expected = {c.cell_id: thin_curves(result(300 + c.repetition).curves)
                for c in expand("synthetic_ablation", **{**TINY, "methods": ["sgd"], "repetitions": list(range(24))})}
    assert got == expected


# --------------------------------------------------------------------------------------------
# records of schema 2 and the API
# --------------------------------------------------------------------------------------------
def test_a_schema_2_record_is_read_with_its_curves_inline(store_dir):
    store = ResultStore(store_dir)
    a, b = cells(2)
    old = make_record(a, "done", result=result(400))
    provenance = {k: v for k, v in old.provenance.items() if k != "code_version"} | {"code_digest": "0" * 16}
    old = old.replace(schema=2, curves=result(400).curves, provenance=provenance)
    old.cell_id = legacy_cell_id(old.config, old.seeds, "0" * 16, old.protocol)
    store.write(old)  # written as schema 2 wrote it: curves in the file, unthinned, a source-digest id
    data = json.loads((store.records_dir / f"{old.cell_id}.json").read_text())
    assert data["schema"] == 2 and len(data["curves"]["train_loss"]) == 400 and "curves_digest" not in data
    assert not (store_dir / "curves").exists()
    new = written(store, b, result(400))
    got = {r.cell_id: r for r in ResultStore(store_dir).records()}
    assert got[old.cell_id].curves == result(400).curves and got[b.cell_id].curves is None
    frame = bs.load_curves(store_dir)
    per_cell = frame[frame["metric"] == "train_loss"].groupby("cell_id").size().to_dict()
    assert per_cell == {old.cell_id: 400, b.cell_id: len(new.curves["train_loss"])}
    store.pack()
    assert ResultStore(store_dir).curves()[old.cell_id] == result(400).curves


def test_load_curves_has_no_rows_for_a_metric_not_defined_and_keeps_a_diverged_runs_nan(store_dir):
    store = ResultStore(store_dir)
    a, b = cells(2)
    loss = [1.0 / (1 + e) for e in range(20)]
    loss[12:] = [float("nan")] * 8  # a run that diverged at epoch 13
    diverged = result(20, evals=4, loss=loss)
    diverged.curves["eval_train_loss"][-1] = float("nan")
    written(store, a, diverged)
    written(store, b, result(20, evals=4))  # test_* and eval_train_acc are null: a regression task, no test split
    for stage in ("loose", "packed"):
        frame = bs.load_curves(store_dir)
        assert set(frame["metric"]) == {"train_loss", "eval_train_loss", "dist_w0", "proj_active_frac", "wall_time"}
        assert not frame["metric"].isin(["test_acc", "test_loss", "eval_train_acc"]).any(), stage
        nan = frame[frame["value"].isna()]
        assert set(nan["cell_id"]) == {a.cell_id}, stage
        assert sorted(nan.groupby("metric").size().items()) == [("eval_train_loss", 1), ("train_loss", 8)], stage
        assert nan[nan["metric"] == "train_loss"]["epoch"].tolist() == list(range(13, 21))
        assert len(frame[frame["metric"] == "train_loss"]) == 40 and len(frame[frame["metric"] == "dist_w0"]) == 8
        store.pack()


def test_a_schema_3_record_with_inline_curves_is_refused(store_dir):
    store = ResultStore(store_dir)
    (cell,) = cells(1)
    written(store, cell, result(10))
    path = store.records_dir / f"{cell.cell_id}.json"
    data = json.loads(path.read_text())
    data["curves"] = {"epoch": [1], "train_loss": [0.5]}
    data.pop("content_digest")
    data["content_digest"] = _content_digest(data)
    with pytest.raises(RecordError, match="curves/ folder, not in the file"):
        Record.from_json(json.dumps(data))


def test_run_packs_at_the_end_and_report_export_and_load_curves_read_the_pack(tmp_path):
    store = tmp_path / "s"
    summary = bs.run("synthetic_ablation", store=store, options={"n": 40, "d": 8}, widths=[4],
                     train={"epochs": 300, "eval_every": 100, "lr_w": 0.3, "lr_v": 0.3})
    files = [p.name for p in (store / "curves").iterdir()]
    assert len(files) == 1 and files[0].startswith("pack-")
    frame = bs.load_curves(store)
    assert list(frame.columns) == CURVE_COLUMNS
    for rec in summary.records:
        one = frame[(frame["cell_id"] == rec.cell_id) & (frame["metric"] == "train_loss")]
        assert one["epoch"].tolist() == rec.curves["epoch"] == [i + 1 for i in thin_indices(300)]
        assert one["value"].tolist() == rec.curves["train_loss"]
        assert rec.final["train_loss_tail_median"] > 0
    out = bs.export(store, tmp_path / "out")
    assert {p.name for p in out} >= {"curves.csv", "curves.parquet"}
    exported = pq.read_table(tmp_path / "out" / "curves.parquet").to_pandas()
    assert len(exported) == len(frame)
    from bench_suite.cli import main

    assert main(["report", "--store", str(store), "--reports-dir", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "all" / "report.md").read_text()
    assert "## Training curves" in text and "_No curves" not in text
    import html

    page = html.unescape((tmp_path / "rep" / "all" / "report.html").read_text())
    assert "the lighter band, the full curve's range between the points drawn" in page  # 300 epochs: thinned
    assert 'id="fig-curves__' in page
