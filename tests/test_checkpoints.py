"""Checkpoints inside a cell (issue 13, section 3): a stopped or killed group resumes from its
checkpoint and finishes with every number of an uninterrupted run (all but wall/train times)."""

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from bench_suite.cli import main as cli_main
from bench_suite.core import exit_codes
from bench_suite.methods import METHODS
from bench_suite.runner.checkpoints import CheckpointStore, group_key
from bench_suite.runner.runner import Runner
from bench_suite.store.result_store import ResultStore
from bench_suite.tasks import TaskData
from bench_suite.train import CellSpec, Checkpointing, TrainConfig, TrainingStopped, train_group
from bench_suite.train.engine import state as state_module

TIME_KEYS = ("train_time_s", "wall_time_s", "group_tflops_per_s", "resumed_at_epochs")


def comparable_result(res) -> str:
    """Every number of a result but its times, as text (NaN compares equal to NaN)."""
    curves = {k: v for k, v in res.curves.items() if k != "wall_time"}
    timing = {k: v for k, v in res.timing.items() if k not in TIME_KEYS}
    return json.dumps([res.status, res.reason, curves, res.final, timing, res.w0_digest], sort_keys=True)


def comparable_record(record) -> str:
    # curves_digest covers the curves' wall-clock times: the curves are compared without them
    keep = {k: v for k, v in record.items() if k not in ("provenance", "run_id", "curves_digest")}
    keep["curves"] = {k: v for k, v in (record.get("curves") or {}).items() if k != "wall_time"}
    keep["timing"] = {k: v for k, v in (record.get("timing") or {}).items() if k not in TIME_KEYS}
    return json.dumps(keep, sort_keys=True)


def data(n=96, d=40, k=5, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return TaskData(torch.randn(n, d, generator=g).to(dtype), torch.randint(0, k, (n,), generator=g), k, True, "t",
                    x_test=torch.randn(20, d, generator=g).to(dtype), y_test=torch.randint(0, k, (20,), generator=g))


def spec(method, width=8, activation="tanh", **cfg):
    base = dict(epochs=40, batch_size=8, lr_w=0.2, lr_v=0.2, loss="ce", eps=0.3, eps_mode="absolute", eval_every=5)
    return CellSpec(METHODS.get(method), width, activation, TrainConfig(**{**base, **cfg}), 1)


def stopped_and_resumed(task_data, cells, stops, **kwargs):
    """Train, stopping at the given segment-end counts (a fresh call each time, resuming from the
    last saved state as a new process would, through torch.save/torch.load(weights_only=True))."""
    saved, calls = [None], [0]

    def save(state):
        import io

        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        saved[0] = torch.load(buf, weights_only=True)

    stops = sorted(stops)
    while True:
        count = [0]

        def stop(next_s, count=count):
            count[0] += 1
            calls[0] += 1
            return "test stop" if stops and calls[0] == stops[0] else None

        try:
            return train_group(task_data, cells, checkpoint=Checkpointing(resume=saved[0], save=save, stop=stop),
                               **kwargs)
        except TrainingStopped:
            stops.pop(0)


CASES = {
    "mini-batch, 4 methods fused": dict(cells=[spec(m, w, a) for m, w, a in (
        ("mli_paired_pgd", 8, "relu"), ("sgd", 6, "tanh"), ("constraint_only", 4, "softplus"),
        ("no_mirroring", 10, "gelu"))]),
    "momentum, mixed (0.9, 0.5, 0)": dict(cells=[
        spec("mli_paired_pgd", momentum=0.9, lr_w=0.05, lr_v=0.05), spec("sgd", 6, "relu", momentum=0.5),
        spec("constraint_only", momentum=0.0)]),
    "full batch, mse": dict(cells=[spec(m, loss="mse", batch_size=None, epochs=150, eval_every=20)
                                   for m in ("mli_paired_pgd", "sgd")]),
    "a cell diverges before the stop": dict(cells=[
        spec("mli_paired_pgd"), spec("sgd", 6, "relu", lr_w=1e6, lr_v=1e6)]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_resumed_group_equals_an_uninterrupted_one(case):
    cells = CASES[case]["cells"]
    d = data()
    whole = train_group(d, cells, order_seed=3)
    resumed = stopped_and_resumed(d, cells, [1, 3, 4, 7], order_seed=3)
    assert [comparable_result(r) for r in resumed] == [comparable_result(r) for r in whole]
    assert resumed[0].timing["resumed_at_epochs"]  # it did resume
    if case == "a cell diverges before the stop":
        assert whole[1].status == "diverged" and whole[1].curves["epoch"][-1] < 15


@pytest.mark.parametrize("tracking", ["lowrank", "exact"])
def test_a_resumed_group_with_device_side_folds_equals_an_uninterrupted_one(monkeypatch, tracking):
    # CUDA's fold decisions (cadences, re-run stretches) are part of the saved state
    monkeypatch.setattr(state_module, "FOLD_CHECK_STEPS", {})
    cells = [spec("mli_paired_pgd", eps=0.01, batch_size=4), spec("constraint_only", eps=0.3, batch_size=4,
                                                                     momentum=0.9, lr_w=0.05)]
    d = data()
    whole = train_group(d, cells, order_seed=1, norm_tracking=tracking)
    assert whole[0].timing["refolded_stretches"] >= 1 and len(whole[0].timing["fold_cadence_segments"]) >= 2
    resumed = stopped_and_resumed(d, cells, [1, 2, 5, 9], order_seed=1, norm_tracking=tracking)
    assert [comparable_result(r) for r in resumed] == [comparable_result(r) for r in whole]


def test_sample_orders_resume_across_a_block_of_32_epochs():
    cells = [spec("mli_paired_pgd", epochs=70, eval_every=1)]  # a segment end after every epoch
    d = data(n=40)
    whole = train_group(d, cells, order_seed=9)
    resumed = stopped_and_resumed(d, cells, [31, 32, 33, 40, 64, 65], order_seed=9)
    assert [comparable_result(r) for r in resumed] == [comparable_result(r) for r in whole]


def test_a_state_for_another_group_is_refused_and_training_starts_over():
    d = data()
    states = []
    cells = [spec("mli_paired_pgd")]
    with pytest.raises(TrainingStopped):
        train_group(d, cells, order_seed=0, checkpoint=Checkpointing(save=states.append, stop=lambda s: "stop"))
    problems = []
    other = [spec("mli_paired_pgd", lr_w=0.3)]
    res = train_group(d, other, order_seed=0, checkpoint=Checkpointing(resume=states[0], invalid=problems.append))
    assert len(problems) == 1 and "config" in problems[0] or "cells" in problems[0]
    assert comparable_result(res[0]) == comparable_result(train_group(d, other, order_seed=0)[0])
    assert "resumed_at_epochs" not in res[0].timing


# ------------------------------------------------------------------------------------------
# the store's checkpoint files
# ------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_checkpoint_files_round_trip_atomically_and_refuse_bad_ones(tmp_path):
    store = CheckpointStore(tmp_path)
    ids = ["b" * 16, "a" * 16]
    assert store.load(ids) == (None, None)
    state = {"epoch": 3, "epochs": 10, "t": torch.arange(4), "nested": {"x": [1.5, float("nan"), None, "s"]}}
    path = store.save(ids, state)
    assert path.name == f"{group_key(ids)}.pt" and group_key(ids) == group_key(reversed(ids))
    loaded, problem = store.load(list(reversed(ids)))
    assert problem is None and torch.equal(loaded["t"], state["t"]) and loaded["nested"]["x"][0] == 1.5
    assert store.index() == {i: {"epoch": 3, "epochs": 10, "key": group_key(ids),
                                 "written": store.index()[i]["written"]} for i in ids}
    assert not list(path.parent.glob(".*.tmp"))
    # another group's cells: refused
    other = ["c" * 16]
    os.replace(store.path(ids), store.path(other))
    assert store.load(other)[1] == f"{store.path(other)} is for other cells"
    # garbage and a pickle that would run code: refused by torch.load(weights_only=True)
    store.path(ids).write_bytes(b"not a checkpoint")
    state, problem = store.load(ids)
    assert state is None and problem.startswith("unreadable checkpoint")

    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    store.path(ids).write_bytes(pickle.dumps({"format": "x", "state": Evil()}))
    assert store.load(ids)[0] is None and not (tmp_path / "pwned").exists()
    store.remove(ids)
    assert not store.path(ids).exists()


# ------------------------------------------------------------------------------------------
# the runner and the command line: --time-budget, request_stop, kill -9
# ------------------------------------------------------------------------------------------
RUN = ["run", "--task", "synthetic_ablation", "--option", "n=60", "--option", "d=12", "--width", "6",
       "--epochs", "40", "--batch-size", "8", "--eval-every", "10", "--momentum", "0.5", "--eps", "0.05",
       "--threads", "1", "--quiet"]


def records(store_dir):
    return {r.cell_id: {**r.to_dict(), "curves": r.curves} for r in ResultStore(store_dir).records(with_curves=True)}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    assert cli_main(RUN + ["--store", str(out)]) == 0
    return records(out)


def test_time_budget_stops_with_its_exit_code_and_the_same_command_continues(tmp_path, uninterrupted, capsys):
    calls = 0
    while True:
        calls += 1
        code = cli_main(RUN + ["--store", str(tmp_path), "--time-budget", "0.001"])
        err = capsys.readouterr().err
        if code == 0:
            break
        assert code == exit_codes.STOPPED, err
        (line,) = [x for x in err.splitlines() if x.startswith("STOPPED")]
        assert "time budget" in line and "run the same command again to continue" in line and "epoch" in line
        assert calls < 40
    assert calls > 3  # each call trained one segment of the group, then stopped
    got = records(tmp_path)
    assert sorted(got) == sorted(uninterrupted)
    for cell_id, record in got.items():
        assert record["status"] == "done"
        assert comparable_record(record) == comparable_record(uninterrupted[cell_id])
    assert not list((tmp_path / "checkpoints").glob("*"))  # removed once the cells finished


def test_plan_shows_the_checkpointed_cells_and_their_epoch(tmp_path, capsys):
    assert cli_main(RUN + ["--store", str(tmp_path), "--time-budget", "0.001"]) == exit_codes.STOPPED
    capsys.readouterr()
    assert cli_main(["plan"] + RUN[1:] + ["--store", str(tmp_path), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    marks = {c["checkpoint"]["epoch"] for c in plan["cells"] if c["checkpoint"]}
    assert len(marks) == 1 and 0 < marks.pop() < 40
    assert all(c["in_store"] == "interrupted" and c["will_run"] for c in plan["cells"])
    assert cli_main(["plan"] + RUN[1:] + ["--store", str(tmp_path)]) == 0
    assert "epoch " in capsys.readouterr().out


def test_a_corrupt_checkpoint_is_one_warning_and_the_group_starts_over(tmp_path, uninterrupted, capsys):
    assert cli_main(RUN + ["--store", str(tmp_path), "--time-budget", "0.001"]) == exit_codes.STOPPED
    (pt,) = (tmp_path / "checkpoints").glob("*.pt")
    pt.write_bytes(pt.read_bytes()[: len(pt.read_bytes()) // 2])  # torn (not by us: our writes are atomic)
    capsys.readouterr()
    assert cli_main(RUN + ["--store", str(tmp_path)]) == 0
    warnings = [x for x in capsys.readouterr().err.splitlines() if x.startswith("warning")]
    assert len(warnings) == 1 and "restarts from scratch" in warnings[0] and "Traceback" not in warnings[0]
    for cell_id, record in records(tmp_path).items():
        assert comparable_record(record) == comparable_record(uninterrupted[cell_id])
        assert "resumed_at_epochs" not in record["timing"]


def test_request_stop_from_another_thread_checkpoints_and_the_next_run_resumes(tmp_path, uninterrupted):
    from bench_suite.cli import build_parser
    from bench_suite.cli.run import cells_from_args

    cells = cells_from_args(build_parser().parse_args(RUN))
    runner = Runner(ResultStore(tmp_path), device="cpu")
    epochs_seen = []

    def on_epoch(done, total):
        epochs_seen.append(done)
        if done == 3:  # like a SLURM USR2 handler: from outside the training loop
            threading.Thread(target=runner.request_stop, args=("preempted",)).start()
            time.sleep(0.2)

    runner.on_epoch = on_epoch
    summary = runner.run(cells)
    assert summary.stopped == "preempted" and summary.exit_code == exit_codes.STOPPED
    (group,) = summary.checkpointed  # the 4 methods' cells are one fused group: one checkpoint
    assert len(group["cells"]) == 4 and len(list((tmp_path / "checkpoints").glob("*.pt"))) == 1
    assert 3 <= group["epoch"] < 40 and all(r.status == "interrupted" for r in summary.records)
    summary = Runner(ResultStore(tmp_path), device="cpu").run(cells)
    assert summary.exit_code == 0 and summary.stopped is None
    for cell_id, record in records(tmp_path).items():
        assert comparable_record(record) == comparable_record(uninterrupted[cell_id])
        assert record["timing"]["resumed_at_epochs"] == [group["epoch"]]


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_gives_the_uninterrupted_records(tmp_path):
    # 75 steps per epoch: a segment end (and a checkpoint) after every epoch
    run = [x if x != "n=60" else "n=600" for x in RUN]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    assert subprocess.run([sys.executable, "-m", "bench_suite"] + run + ["--store", str(whole)], env=env,
                          capture_output=True).returncode == 0
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "bench_suite"] + run + ["--store", str(out), "--checkpoint-every", "1"]
    events = out / "events.jsonl"
    saves = lambda: events.read_text().count('"checkpoint"') if events.exists() else 0  # noqa: E731
    rng = random.Random(1234)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before, deadline = saves(), time.monotonic() + 120
        while proc.poll() is None and saves() <= before + rng.randrange(3) and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is not None:
            break
        time.sleep(rng.uniform(0.0, 0.3))  # somewhere inside a segment, or in a checkpoint write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    final = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    got, want = records(out), records(whole)
    assert sorted(got) == sorted(want) and all(r["status"] == "done" for r in got.values())
    for cell_id, record in got.items():
        assert comparable_record(record) == comparable_record(want[cell_id])
    # a kill that lands after a group's last epoch, while its records are written, leaves the
    # unrecorded cells to be trained again from scratch (the same numbers, as checked above)
    assert kills >= 2 and any(r["timing"].get("resumed_at_epochs") for r in got.values())
    assert not list((out / "checkpoints").glob("*.pt"))
    assert math.isfinite(sum(r["final"]["train_loss"] for r in got.values()))


def test_the_budget_exit_code_is_in_the_help_and_the_flags_refuse_bad_values(capsys):
    assert cli_main(["run", "--help"]) == 0
    assert f"{exit_codes.STOPPED} stopped early by" in " ".join(capsys.readouterr().out.split())
    assert cli_main(RUN + ["--time-budget", "5", "--devices", "cpu,cpu"]) == 2
    assert "--time-budget is for a run in this process" in capsys.readouterr().err
    for bad in (["--time-budget", "0"], ["--time-budget", "soon"], ["--checkpoint-every", "-1"]):
        assert cli_main(RUN + bad) == 2
