"""The grid runner: resume, kill -9, concurrent runners, paired seeds, divergence, errors,
interrupts, plan == run, provenance, cost estimates and progress."""

import collections
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from bench_suite.cli import main
from bench_suite.core.records import Record
from bench_suite.core.seeds import seeds_for
from bench_suite.grid import expand
from bench_suite.model import init_weights
from bench_suite.runner.cost import CostModel, cell_flops
from bench_suite.runner.runner import Runner
from bench_suite.store.result_store import ResultStore
from bench_suite.tasks import Task, TaskData, register_task

FAST = ["--task", "synthetic_ablation", "--option", "n=40", "--option", "d=8", "--width", "4", "--epochs", "20",
        "--eval-every", "5", "--lr", "0.3", "--quiet", "--threads", "1"]
TINY = dict(options={"n": 40, "d": 8}, widths=[4], train={"epochs": 20, "eval_every": 5, "lr_w": 0.3, "lr_v": 0.3})
LECUN_METHODS = ("sgd", "constraint_only", "no_mirroring")


def tiny_cells(**kw):
    return expand("synthetic_ablation", **{**TINY, **kw})


def finish_counts(store):
    return collections.Counter(e["cell_id"] for e in store.events() if e["event"] == "finish")


def start_counts(store):
    return collections.Counter(e["cell_id"] for e in store.events() if e["event"] == "start")


def test_rerun_skips_finished_cells_changed_config_is_a_new_cell_force_reruns_once(store_dir):
    store = ResultStore(store_dir)
    cells = tiny_cells(repetitions=[0, 1])
    first = Runner(store, device="cpu").run(cells)
    assert first.count("done") == 8 and first.cached == 0 and first.exit_code == 0
    again = Runner(store, device="cpu").run(cells)
    assert again.cached == 8 and again.count("done") == 8
    assert set(start_counts(store).values()) == {1}  # nothing trained twice
    longer = tiny_cells(repetitions=[0], train={**TINY["train"], "epochs": 21})
    assert not {c.cell_id for c in longer} & {c.cell_id for c in cells}
    assert Runner(store, device="cpu").run(longer).cached == 0
    forced = Runner(store, device="cpu", force=True).run(cells)
    assert forced.cached == 0 and forced.count("done") == 8
    assert set(start_counts(store)[c.cell_id] for c in cells) == {2}
    assert {r.run_id for r in forced.records} == {forced.run_id}


def test_paired_seeds_same_labels_and_w0_across_methods_different_across_repetitions(store_dir):
    store = ResultStore(store_dir)
    Runner(store, device="cpu").run(tiny_cells(repetitions=[0, 1]))
    by_rep = collections.defaultdict(dict)
    for r in store.records():
        by_rep[r.config["repetition"]][r.config["method"]] = r
    assert sorted(by_rep) == [0, 1]
    for rep, records in by_rep.items():
        assert len({r.label_digest for r in records.values()}) == 1  # same data / labels
        assert all(r.seeds == seeds_for("synthetic_ablation", rep) for r in records.values())
        assert len({records[m].w0_digest for m in LECUN_METHODS}) == 1  # LeCun-init methods: all of W0
        assert records["mli_paired_pgd"].w0_digest != records["sgd"].w0_digest
        # MLI shares the first half of W0 only; the digests in the records are of these very matrices
        init_seed = records["sgd"].seeds["init"]
        lecun = init_weights(4, 8, 1, "lecun", "free", torch.Generator().manual_seed(init_seed)).w
        mli = init_weights(4, 8, 1, "mirrored_lecun", "paired", torch.Generator().manual_seed(init_seed)).w
        assert torch.equal(mli[:2], lecun[:2]) and not torch.equal(mli[2:], lecun[2:])
        for method, w in (("sgd", lecun), ("mli_paired_pgd", mli)):
            assert records[method].w0_digest == hashlib.sha256(w.numpy().tobytes()).hexdigest()[:16]
    assert by_rep[0]["sgd"].label_digest != by_rep[1]["sgd"].label_digest
    assert by_rep[0]["sgd"].w0_digest != by_rep[1]["sgd"].w0_digest
    assert by_rep[0]["sgd"].seeds["order"] != by_rep[1]["sgd"].seeds["order"]


def test_a_diverged_cell_is_recorded_reported_and_not_rerun(store_dir, capsys):
    args = ["run", *FAST, "--method", "sgd", "--seeds", "2", "--lr", "1e6", "--store", str(store_dir)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "DIVERGED" in captured.err and "lower the learning rates" in captured.err
    assert "0 done, 2 diverged" in captured.out
    for sgd in ResultStore(store_dir).records(with_curves=True):
        assert sgd.status == "diverged" and "non-finite" in sgd.reason
        assert sgd.timing["epochs"] < 20 and len(sgd.curves["train_loss"]) == sgd.timing["epochs"]
    assert main(args) == 1  # still a failed grid, but a diverged cell is finished: not re-run
    assert "2 of these found finished in the store" in capsys.readouterr().out
    assert set(finish_counts(ResultStore(store_dir)).values()) == {1}


def test_a_diverged_cell_does_not_stop_the_cells_fused_with_it(store_dir):
    (calm,) = tiny_cells(methods=["sgd"])
    (wild,) = tiny_cells(methods=["constraint_only"], train={**TINY["train"], "lr_v": 1e6})
    assert calm.group_key() == wild.group_key()
    summary = Runner(ResultStore(store_dir), device="cpu").run([calm, wild])
    assert [r.status for r in summary.records] == ["done", "diverged"] and summary.exit_code == 1
    alone = Runner(ResultStore(store_dir / "alone"), device="cpu").run([calm]).records[0]
    assert summary.records[0].final["train_loss"] == pytest.approx(alone.final["train_loss"], rel=1e-5)


def test_an_exception_in_one_cell_is_recorded_and_the_grid_goes_on(store_dir):
    store = ResultStore(store_dir)
    good = tiny_cells(methods=["sgd", "no_mirroring"])
    # cross-entropy on a regression task raises in the engine (the grid refuses it up front; built
    # here by hand, as a plug-in could); the cell fuses with the others
    bad = dataclasses.replace(good[0], method="mli_paired_pgd", train=good[0].train.updated(loss="ce"))
    assert bad.group_key() == good[0].group_key()
    summary = Runner(store, device="cpu").run([good[0], bad, good[1]])
    statuses = {r.config["method"]: (r.status, r.reason) for r in summary.records}
    assert statuses["sgd"][0] == statuses["no_mirroring"][0] == "done"
    assert statuses["mli_paired_pgd"][0] == "error" and "loss 'ce' needs a classification task" in statuses[
        "mli_paired_pgd"][1]
    assert summary.exit_code == 1
    # an error is not finished: the next run tries it again (and the finished ones stay)
    again = Runner(store, device="cpu").run([good[0], bad, good[1]])
    assert again.cached == 2 and again.count("error") == 1


def test_ctrl_c_records_interrupted_and_the_next_run_resumes(store_dir):
    store = ResultStore(store_dir)
    cells = tiny_cells(repetitions=[0, 1])

    def stop_in_second_group(done, total, calls=[]):  # noqa: B006 - a counter across calls
        calls.append(done)
        if len(calls) > 25:  # group 1 has 20 epochs; interrupt group 2 midway
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Runner(store, device="cpu", on_epoch=stop_in_second_group).run(cells)
    statuses = collections.Counter(r.status for r in store.records())
    assert statuses == {"done": 4, "interrupted": 4}
    resumed = Runner(store, device="cpu").run(cells)
    assert resumed.cached == 4 and resumed.count("done") == 8
    assert all(r.status == "done" for r in store.records())


def test_ctrl_c_in_the_theory_measurements_keeps_the_groups_training(store_dir, monkeypatch):
    """Ctrl-C after a fused group trained, while its cells' theory sections are measured: every
    cell is still recorded done (its theory section says it was skipped), then the interrupt."""
    import bench_suite.theory as theory

    store = ResultStore(store_dir)
    cells = tiny_cells(repetitions=[0])
    real, calls = theory.record_section, []

    def interrupted_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(theory, "record_section", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        Runner(store, device="cpu").run(cells)
    records = store.records()
    assert len(records) == len(cells) > 2 and {r.status for r in records} == {"done"}
    theory_status = sorted(r.theory["jacobian"]["status"] for r in records)
    assert theory_status == ["done"] + ["skipped"] * (len(cells) - 1) and len(calls) == 2
    again = Runner(store, device="cpu").run(cells)  # nothing is trained again
    assert again.cached == len(cells)


def test_sigterm_stops_a_run_as_ctrl_c_does_with_exit_143(tmp_path):
    store = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, "-m", "bench_suite", "run", *FAST, "--epochs", "20000",
                             "--eval-every", "10000", "--method", "sgd,mli_paired_pgd", "--store", str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(e["event"] == "start" for e in ResultStore(store).events()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM); finished cells are saved" in err and "Traceback" not in err
    records = ResultStore(store).records()
    assert len(records) == 2 and {r.status.value for r in records} == {"interrupted"}


def test_two_concurrent_runners_train_each_cell_exactly_once(store_dir):
    cells = tiny_cells(repetitions=[0, 1, 2])
    summaries = []

    def work():
        summaries.append(Runner(ResultStore(store_dir), device="cpu", fuse=False, poll_s=0.05).run(cells))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    store = ResultStore(store_dir)
    ids = {c.cell_id for c in cells}
    assert set(start_counts(store)) == ids and set(start_counts(store).values()) == {1}
    assert set(finish_counts(store).values()) == {1}
    assert {r.cell_id for r in store.records()} == ids and {r.status for r in store.records()} == {"done"}
    for summary in summaries:  # each runner accounts for every cell: its own or the other's
        assert {r.cell_id for r in summary.records} == ids and summary.exit_code == 0
    trained = [len(s.records) - s.cached - s.by_others for s in summaries]
    assert sum(trained) == len(ids)


def _cli(store_dir, *extra):
    return [sys.executable, "-m", "bench_suite", "run", "--task", "synthetic_ablation", "--option", "n=40",
            "--option", "d=8", "--width", "4", "--epochs", "400", "--eval-every", "100", "--lr", "0.3",
            "--seeds", "3", "--no-fuse", "--quiet", "--threads", "1", "--store", str(store_dir), *extra]


def _wait_for(predicate, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail("the runner finished before it could be killed mid-grid")
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.02)


def test_kill_9_mid_grid_leaves_no_corrupt_record_and_the_rerun_resumes(store_dir):
    proc = subprocess.Popen(_cli(store_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records_dir = store_dir / "records"
    _wait_for(lambda: records_dir.is_dir() and len(list(records_dir.glob("*.json"))) >= 2, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {}
    for path in records_dir.glob("*.json"):  # every file there is a whole, valid record
        record = Record.from_json(path.read_text(), expected_id=path.stem)
        before[record.cell_id] = record
    assert 2 <= len(before) < 12 and {r.status for r in before.values()} == {"done"}
    rerun = subprocess.run(_cli(store_dir), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    store = ResultStore(store_dir)
    records = store.records()
    assert len(records) == 12 and {r.status for r in records} == {"done"}
    assert len({r.cell_id for r in records}) == 12
    assert set(finish_counts(store).values()) == {1}  # every cell recorded exactly once
    starts = start_counts(store)
    assert all(starts[cell_id] == 1 for cell_id in before)  # finished before the kill: not re-run
    assert all(store.get(cell_id) == record for cell_id, record in before.items())  # and untouched
    assert f"{len(before)} of these found finished in the store" in rerun.stdout


def test_a_killed_runners_cells_are_finished_by_the_other_runner(store_dir):
    first = subprocess.Popen(_cli(store_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = subprocess.Popen(_cli(store_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = ResultStore(store_dir)
    try:
        _wait_for(lambda: any(e["event"] == "start" and e["pid"] == first.pid for e in store.events()), first)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        out, err = second.communicate(timeout=300)
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
    assert second.returncode == 0, err
    records = store.records()
    assert len(records) == 12 and {r.status for r in records} == {"done"}
    assert set(finish_counts(store).values()) == {1}


def test_plan_lists_what_run_then_does_and_prices_it_exactly(store_dir, capsys):
    out = ["--store", str(store_dir)]
    assert main(["run", *FAST, "--method", "sgd", "--seeds", "2", *out]) == 0  # a partial store
    capsys.readouterr()
    assert main(["plan", *FAST, "--seeds", "2", "--json", *out]) == 0
    plan = json.loads(capsys.readouterr().out)
    will_run = {c["cell_id"] for c in plan["cells"] if c["will_run"]}
    assert len(plan["cells"]) == 8 and len(will_run) == 6 and plan["total"]["to_run"] == 6
    assert all(c["in_store"] == "done" for c in plan["cells"] if not c["will_run"])
    assert plan["total"]["cells_without_time"] == 0  # the partial run gives a rate on this device
    store = ResultStore(store_dir)
    n_events = len(store.events())
    assert main(["run", *FAST, "--seeds", "2", *out]) == 0
    ran = {e["cell_id"] for e in store.events()[n_events:] if e["event"] == "finish"}
    assert ran == will_run
    records = {r.cell_id: r for r in store.records()}
    assert set(records) == {c["cell_id"] for c in plan["cells"]}
    for cell in plan["cells"]:  # the FLOP estimate is the engine's own count
        assert cell["flops"] == pytest.approx(records[cell["cell_id"]].timing["flops"])
    capsys.readouterr()
    assert main(["plan", *FAST, "--seeds", "2", "--json", *out]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["to_run"] == 0
    assert main(["plan", *FAST, "--seeds", "2", "--force", "--json", *out]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["to_run"] == 8


def test_plan_table_and_a_profile_without_data_loading(store_dir, capsys):
    assert main(["plan", "--profile", "paper", "--store", str(store_dir)]) == 0
    out = capsys.readouterr().out
    assert "cifar10_random[" in out and "synthetic_ablation[" in out and "to run" in out
    assert "estimated cost" in out and "PFLOP" in out


def test_records_carry_provenance(store_dir):
    store = ResultStore(store_dir)
    (cell,) = tiny_cells(methods=["sgd"])
    summary = Runner(store, device="cpu").run([cell])
    record = store.get(cell.cell_id, with_curves=True)
    prov = record.provenance
    for key in ("git_commit", "git_dirty", "python", "torch", "cuda", "cudnn", "device", "device_name", "precision",
                "tf32_matmul", "data_source", "data_checksum", "protocol", "code_version", "hostname", "created"):
        assert key in prov, key
    assert prov["device"] == "cpu" and prov["precision"] == "fp32" and prov["tf32_matmul"] is False
    assert prov["data_source"].startswith("synthetic") and prov["executor"] == "local"
    assert record.run_id == summary.run_id and record.config == cell.config()
    assert record.seeds == cell.seeds() and record.timing["wall_time_s"] > 0
    assert len(record.curves["epoch"]) == 20 and record.curves["eval_epoch"] == [5, 10, 15, 20]


def test_cost_model_shapes_without_loading_data(store_dir):
    (synthetic,) = tiny_cells(methods=["sgd"])
    model = CostModel([])
    shape = model.shape(synthetic)
    assert (shape.n, shape.d, shape.k, shape.n_test, shape.source) == (40, 8, 1, 0, "task")
    (cifar,) = expand("cifar10_random", profile="ci", methods=["sgd"])
    shape = model.shape(cifar)
    assert (shape.n, shape.d, shape.k, shape.n_test) == (5000, 3072, 10, 2000)
    # 100 epochs x 40 steps of batch 128, plus 10 exact evaluations of 7,000 samples
    assert cell_flops(cifar, shape) == pytest.approx(
        100 * 40 * (4 * 128 * 3072 * 256 + 6 * 128 * 256 * 10) + 10 * 2 * 7000 * 3072 * 256)
    # a task without a rule: unknown until a record of the same task and options is in the store
    (plugin,) = expand("cost_test_task", options={"n": 6})
    assert model.shape(plugin) is None and model.flops(plugin) is None
    store = ResultStore(store_dir)
    Runner(store, device="cpu").run([plugin])
    shape = CostModel(store.records).shape(plugin)
    assert (shape.n, shape.d, shape.k, shape.source) == (6, 3, 1, "store")
    assert CostModel(store.records).flops(plugin) == pytest.approx(store.get(plugin.cell_id).timing["flops"])
    # a task may declare its shape
    CostTestTask.shape = classmethod(lambda cls, options: {"n": options["n"], "d": 3, "k": 1, "n_test": 0})
    try:
        assert CostModel([]).shape(plugin).source == "task"
    finally:
        del CostTestTask.shape


@register_task
class CostTestTask(Task):
    name = "cost_test_task"
    description = "a task with no shape rule (tests)"
    options = {"n": 5}
    train_defaults = {"epochs": 3, "batch_size": None, "loss": "mse", "eval_every": 1}
    grid = {"methods": ["sgd"], "widths": [2], "activations": ["relu"]}

    def load(self, options, *, data_seed, data_root=None, cache_dir=None):
        g = torch.Generator().manual_seed(data_seed)
        n = options["n"]
        return TaskData(torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g), 1, False, "cost test")


def test_quiet_progress_prints_one_line_per_cell_run(store_dir, capsys):
    assert main(["run", *FAST, "--method", "sgd,mli_paired_pgd", "--store", str(store_dir)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "2 cells: 0 finished in the store, 2 to run"
    assert [line.split()[0] for line in err[1:]] == ["[1/2]", "[2/2]"] and all("[done]" in line for line in err[1:])
    assert main(["run", *FAST, "--method", "sgd,no_mirroring", "--store", str(store_dir)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "2 cells: 1 finished in the store, 1 to run" and len(err) == 2


def test_progress_bar_counts_done_cached_and_reaches_the_end(store_dir):
    from bench_suite.cli.progress import _Progress

    store = ResultStore(store_dir)
    cells = tiny_cells(methods=["sgd", "mli_paired_pgd"])
    Runner(store, device="cpu").run(cells[:1])
    progress = _Progress(quiet=False, costs=CostModel(store.records))
    runner = Runner(store, device="cpu", on_record=progress.record, on_epoch=progress.epoch,
                    on_group_start=progress.group_start)
    plan = runner.plan(cells)
    progress.plan([p.cell for p in plan if not p.will_run], [p.cell for p in plan if p.will_run])
    assert (progress.n_cached, progress.n_todo) == (1, 1)
    bar = progress.cells
    runner.run(cells)
    assert bar.n == pytest.approx(bar.total) and progress.n_finished == 1 and progress.n_failed == 0
    assert "1/1 run, 0 failed, 1 cached" in str(bar)
    progress.close()


def test_every_built_in_task_declares_smoke_ci_and_paper_as_plain_data():
    from bench_suite.tasks import TASKS

    builtin = [n for n in TASKS.names() if TASKS.get(n).__module__.startswith("bench_suite.tasks.")]
    assert len(builtin) >= 7
    for name in builtin:  # every built-in task
        task = TASKS.get(name)
        assert {"smoke", "ci", "paper"} <= set(task.profiles), name
        assert task.profiles["smoke"]["device"] == "cpu" and task.profiles["ci"]["device"] == "cpu"
        for profile, spec in task.profiles.items():
            assert json.loads(json.dumps(spec)) == spec  # data a user can read, not code
            assert spec.get("description") and spec.get("device") in ("cpu", "cuda", "any")
            cells = expand(name, profile=profile)  # expands without loading any data
            assert cells and {c.profile for c in cells} == {profile}
            assert {c.repetition for c in cells} == set(range(spec.get("repetitions", spec.get("seeds", 1))))


def test_missing_data_is_skipped_with_exit_code_3_and_tried_again_next_time(store_dir, tmp_path, capsys, monkeypatch):
    for var in ("BENCH_SUITE_CIFAR10", "BENCH_SUITE_DATA_ROOT"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "nothing").mkdir()
    args = ["run", "--task", "cifar10_random", "--profile", "smoke", "--data-root", str(tmp_path / "nothing"),
            "--quiet", "--store", str(store_dir)]
    assert main(args) == 3
    assert "SKIPPED" in capsys.readouterr().err
    records = ResultStore(store_dir).records()
    assert records and {r.status for r in records} == {"skipped"}
    assert all("CIFAR-10 not found" in r.reason and str(tmp_path / "nothing") in r.reason for r in records)
    assert main(args) == 3  # skipped is not finished: the next run looks for the data again
    assert "0 of these found finished in the store" in capsys.readouterr().out
