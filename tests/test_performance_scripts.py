"""The performance scripts and the asv suite run, at a tiny scale, on the CPU (no timing asserts)."""

import functools
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the `benchmarks` package (asv's benchmark_dir) sits at the root

from data_fixtures import write_cifar_zip  # noqa: E402

from benchmarks import benchmarks as asv_suite  # noqa: E402
from benchmarks import cpu_epoch_vs_matmul, gpu_paper_grid, reference_vs_fused, step_traffic  # noqa: E402

PER_CLASS = {"train": 8, "test": 2}


@pytest.fixture
def tiny_cifar_zip(tmp_path, monkeypatch):
    """A CIFAR-10 zip of 80 train / 20 test images (the reader is told to expect those counts)."""
    monkeypatch.setattr("bench_suite.data.cifar10.CIFAR10_COUNTS", {s: 10 * n for s, n in PER_CLASS.items()})
    monkeypatch.delenv("BENCH_SUITE_CUDA_GRAPHS", raising=False)
    return write_cifar_zip(tmp_path / "cifar10-tiny.zip", per_class=PER_CLASS)


def test_gpu_paper_grid_runs_at_tiny_scale_on_the_cpu(tiny_cifar_zip, tmp_path, monkeypatch):
    out = tmp_path / "grid.json"
    monkeypatch.setenv("OUT", str(tmp_path / "unused"))
    result = gpu_paper_grid.main([
        "--data-root", str(tiny_cifar_zip), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu",
        "--n-train", "64", "--n-test", "20", "--epochs", "2", "--widths", "16,32", "--activations", "relu,tanh",
        "--peer-epochs", "2", "--peer-steps", "1", "--peer-workers", "0", "--threads", "1", "--out", str(out),
    ])
    written = json.loads(out.read_text())
    assert written["engine"]["cells"] == 4 and written["engine"]["groups"] == 1  # one repetition: one fused group
    eng = written["engine"]
    assert eng["complete"] and eng["groups_done"] == 1 and eng["fallbacks"] == 0
    assert eng["epochs"] == 2 and eng["n_train"] == 64 and eng["d"] == 3072 and eng["widths"] == [16, 32]
    assert eng["momentum"] == 0.9  # the task's optimizer
    assert eng["train_time_s"] > 0 and eng["tflops_per_s"] > 0 and eng["epochs_per_s"] > 0 and eng["flops"] > 0
    (path,) = eng["per_group"][0]["engine"]
    assert path.startswith("fused/exact/") and path.endswith("/eager")  # momentum: exact tracking
    assert all(0 <= f["train_acc"] <= 1 for f in eng["final"])
    assert written["device"]["name"] and written["device"]["precision"] == "tf32"
    for key, steps in (("peer", 2), ("resident_peer", 2)):
        peer = written[key]
        assert [(c["activation"], c["width"]) for c in peer["per_cell"]] == [
            ("relu", 16), ("relu", 32), ("tanh", 16), ("tanh", 32)]
        assert peer["n_train"] == 64 and peer["momentum"] == 0.9 and peer["lr"] == [0.01, 0.01]
        assert peer["precision"] == "tf32"
        assert all(c["steps_timed"] == steps and c["epoch_time_s"] > 0 for c in peer["per_cell"])
    assert written["peer"]["dataset"].startswith("ImageFolder")
    assert written["speedup_vs_peer"] > 0 and written["speedup_vs_resident_peer"] > 0
    assert "cuda_graph_check" not in written  # CPU: no graphs, no check
    assert result["engine"]["train_time_s"] == eng["train_time_s"]
    assert not (tmp_path / "unused").exists()


def test_gpu_paper_grid_writes_after_each_group_and_times_a_fallback_by_its_cells(tiny_cifar_zip, tmp_path,
                                                                                 monkeypatch):
    # issue 13, 2.1 and 2.6: a fused group that fails (e.g. out of memory) is re-trained cell by
    # cell: its time is the sum of its cells' and it is flagged; every group's numbers are written
    import bench_suite.train.dispatch as trainers_module

    real = trainers_module.train_group  # what the runner's train_cells calls for fused methods

    def fails_when_fused(data, specs, **kwargs):
        if len(specs) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(data, specs, **kwargs)

    monkeypatch.setattr(trainers_module, "train_group", fails_when_fused)
    writes = []
    real_replace = gpu_paper_grid.os.replace

    def replace(src, dst):  # os is shared: only the script's own JSON is looked at
        if str(dst).endswith("grid.json"):
            writes.append(json.loads(Path(src).read_text()))
        real_replace(src, dst)

    monkeypatch.setattr(gpu_paper_grid.os, "replace", replace)
    result = gpu_paper_grid.main([
        "--data-root", str(tiny_cifar_zip), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu",
        "--n-train", "64", "--n-test", "20", "--epochs", "2", "--widths", "16,32", "--activations", "relu",
        "--seeds", "2", "--peer-epochs", "0", "--threads", "1", "--out", str(tmp_path / "grid.json"),
    ])
    partial = [w["engine"]["groups_done"] for w in writes if "engine" in w]
    assert partial[:2] == [1, 2] and writes[-1]["engine"]["complete"]
    eng = result["engine"]
    assert eng["groups"] == 2 and eng["fallbacks"] == 2
    for group in eng["per_group"]:
        assert "OutOfMemoryError" in group["fallback"] and group["engine"][0].startswith("alone/")
    assert eng["train_time_s"] == pytest.approx(sum(g["train_time_s"] for g in eng["per_group"]), abs=2e-3)


def test_gpu_paper_grid_peer_reads_an_image_folder_and_can_skip_the_engine(tmp_path):
    import zipfile

    with zipfile.ZipFile(write_cifar_zip(tmp_path / "c.zip", per_class=PER_CLASS)) as zf:
        zf.extractall(tmp_path / "tree")
    result = gpu_paper_grid.main([
        "--data-root", str(tmp_path / "tree"), "--device", "cpu", "--skip-engine", "--widths", "8",
        "--activations", "relu", "--n-train", "30", "--epochs", "3", "--peer-epochs", "1", "--peer-workers", "0",
        "--peers", "dataloader", "--out", str(tmp_path / "peer.json"),
    ])
    assert "engine" not in result and "speedup_vs_peer" not in result
    assert result["peer"]["dataset"] == "ImageFolder (folder)" and result["peer"]["n_train"] == 30
    assert "resident_peer" not in result
    assert result["peer"]["grid_time_s_extrapolated"] > 0


def test_peer_extraction_takes_images_round_robin_over_the_classes(tmp_path):
    folder = gpu_paper_grid.extract_image_folder(write_cifar_zip(tmp_path / "c.zip", per_class=PER_CLASS),
                                                 tmp_path / "out", 13)
    counts = sorted(len(list(d.iterdir())) for d in folder.iterdir())
    assert len(counts) == 10 and counts == [1] * 7 + [2] * 3


@pytest.mark.realdata
@pytest.mark.slow
def test_gpu_paper_grid_on_real_cifar10_at_small_scale(cifar10_path, tmp_path):
    result = gpu_paper_grid.main([
        "--data-root", cifar10_path, "--device", "cpu", "--n-train", "512", "--n-test", "256", "--epochs", "2",
        "--widths", "64", "--activations", "relu", "--peer-epochs", "1", "--peer-steps", "2", "--peer-workers", "0",
        "--threads", "1", "--out", str(tmp_path / "grid.json"),
    ])
    assert result["engine"]["n_train"] == 512 and result["peer"]["n_train"] == 512


@pytest.mark.parametrize("extra", [[], ["--unfused"], ["--problem", "synthetic", "--n", "64", "--d", "8"]])
def test_cpu_epoch_vs_matmul_runs_at_tiny_scale(extra, tmp_path, capsys):
    args = ["--n", "200", "--d", "48", "--widths", "8,12", "--epochs", "3", "--repeat", "1",
            "--json", str(tmp_path / "r.json")]
    result = cpu_epoch_vs_matmul.main(args + extra)
    assert result["epoch_s"] > 0 and result["matmul_s"] > 0 and result["ratio"] > 0
    assert json.loads((tmp_path / "r.json").read_text())["ratio"] == result["ratio"]
    assert "ratio" in capsys.readouterr().out


def test_cpu_epoch_vs_matmul_loads_another_engine_file():
    engine_file = str(ROOT / "bench_suite" / "train" / "__init__.py")
    result = cpu_epoch_vs_matmul.main(["--n", "100", "--d", "16", "--widths", "4", "--methods", "sgd", "--epochs",
                                       "3", "--repeat", "1", "--engine-file", engine_file])
    assert result["engine"] == engine_file and result["epoch_s"] > 0


def test_cpu_epoch_vs_matmul_refuses_too_few_epochs():
    with pytest.raises(SystemExit):
        cpu_epoch_vs_matmul.main(["--epochs", "2"])


# ------------------------------------------------------------------------------------ asv suite


@pytest.fixture
def tiny_asv_suite(monkeypatch):
    monkeypatch.setattr(asv_suite, "cifar_like", functools.partial(asv_suite.cifar_like, n=64, d=24))
    threads = torch.get_num_threads()
    yield asv_suite
    torch.set_num_threads(threads)


def benchmark_methods(cls, prefix):
    return [name for name in dir(cls) if name.startswith(prefix)]


@pytest.mark.parametrize("cls_name", ["TimeEpoch", "TimeGroup", "TimeGroupMomentum", "TimeSynthetic",
                                      "TimeReferenceTrainer"])
def test_asv_time_and_peakmem_benchmarks_run_once(tiny_asv_suite, cls_name):
    cls = getattr(tiny_asv_suite, cls_name)
    params = getattr(cls, "params", None)
    combos = [()] if params is None else (
        [(p,) for p in params] if not isinstance(params[0], list) else
        [(a, b) for a in params[0] for b in params[1]])
    names = benchmark_methods(cls, "time_") + benchmark_methods(cls, "peakmem_")
    assert names
    for combo in combos:
        bench = cls()
        bench.setup(*combo)
        for name in names:
            getattr(bench, name)(*combo)


def test_asv_track_benchmarks_read_one_cache(tiny_asv_suite):
    loss, acc = tiny_asv_suite.TrackSmokeLoss(), tiny_asv_suite.TrackSmokeAccuracy()
    assert type(loss).setup_cache is type(acc).setup_cache  # one function: asv trains the cells once
    results = loss.setup_cache()
    for cell in loss.params:
        assert results[cell]["train_loss"] == loss.track_final_train_loss(results, cell) > 0
    for cell in acc.params:
        assert 0 <= acc.track_final_train_accuracy(results, cell) <= 1


def test_asv_configuration_uses_the_existing_environment():
    from asv.config import Config

    conf = Config.load(str(ROOT / "asv.conf.json"))
    assert conf.environment_type == "existing" and conf.pythons == ["same"]
    assert Path(conf.benchmark_dir).resolve() == ROOT / "benchmarks"


@pytest.mark.parametrize("ab", ["gpu-cadence", "engine-file:" + str(ROOT / "bench_suite" / "train" / "__init__.py")])
def test_cpu_epoch_vs_matmul_times_two_variants_alternately(ab):
    result = cpu_epoch_vs_matmul.main(["--n", "100", "--d", "16", "--widths", "4", "--methods", "mli_paired_pgd",
                                       "--epochs", "3", "--repeat", "2", "--eps", "1e-3", "--eps-mode", "absolute",
                                       "--ab", ab])
    ab_result = result["ab"]
    assert len(ab_result["a_epochs"]) == len(ab_result["b_epochs"]) == 2
    assert ab_result["b_over_a_min"] > 0 and ab_result["b_ratio"] > 0


def test_cpu_epoch_vs_matmul_times_the_fold_decisions_pieces():
    result = cpu_epoch_vs_matmul.main(["--n", "100", "--d", "16", "--widths", "4", "--epochs", "3", "--op-costs"])
    costs = result["op_costs_s"]
    assert all(costs[k] > 0 for k in ("step", "masked_fold", "trackers", "snapshot", "norm_fp32", "norm_fp64"))


def test_reference_vs_fused_runs_at_tiny_scale(capsys):
    rows = reference_vs_fused.main(["--problem", "synthetic_ablation ci", "--repeats", "1", "--scale", "0.05"])
    (row,) = rows
    assert row["fused_ms"] > 0 and row["reference_ms"] > 0 and row["group_ms"] > 0
    # both trainers train the same cell: the same loss to float32 rounding
    assert abs(row["losses"]["fused"] - row["losses"]["reference"]) <= 1e-5 * abs(row["losses"]["fused"])
    assert "| synthetic_ablation ci |" in capsys.readouterr().out


def test_step_traffic_counts_every_operator_of_a_step(tmp_path, monkeypatch, capsys):
    # the momentum path: U read by the forward GEMM; B read and written by its GEMM; U read and
    # written, B read by the update; U read once by the norm (one float32 read, no float64 copy)
    from bench_suite.train.engine import state as state_module

    monkeypatch.setattr(state_module, "FOLD_CHECK_STEPS", dict(state_module.FOLD_CHECK_STEPS))  # restored after
    monkeypatch.setenv(state_module.P0_TABLE_ENV, "1")
    result = step_traffic.main(["--widths", "32,64", "--d", "768", "--n", "200", "--batch", "16", "--json",
                                str(tmp_path / "t.json")])
    md = result["md_bytes"]
    assert md == 2 * (32 + 64) * 768 * 4 and result["M"] == 192 and result["tracking"] == "exact"
    ops = result["per_operator"]
    assert ops["mm"]["read"] >= md and ops["addmm_"]["read"] >= md and ops["addmm_"]["write"] == md
    assert ops["linalg_vector_norm"]["read"] == md and "_to_copy" in ops  # the norms' float32 -> float64 only
    assert ops["_to_copy"]["calls"] == 1 and ops["_to_copy"]["read"] == result["M"] * 4
    assert 7 * md < result["bytes_per_step"] < 9 * md
    est = result["estimates"]
    assert 0 < est["tf32"]["best"]["step_s"] <= est["fp32"]["best"]["step_s"] <= est["fp32"]["worst"]["step_s"]
    assert json.loads((tmp_path / "t.json").read_text())["bytes_per_step"] == result["bytes_per_step"]
    assert "| **total** |" in capsys.readouterr().out


def test_no_helper_in_benchmarks_looks_like_an_asv_benchmark():
    """asv collects every top-level function and class method in benchmarks/ whose name starts
    with a benchmark prefix; a helper named so (``time_model(ops, ...)``) fails `nox -s bench`."""
    import ast
    import inspect

    prefixes = ("time_", "timeraw_", "track_", "mem_", "peakmem_")
    for path in sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py")):
        for node in ast.parse(path.read_text()).body:  # module level (a class's methods take its params)
            if isinstance(node, ast.FunctionDef) and node.name.startswith(prefixes):
                required = list(node.args.args)
                required = required[:len(required) - len(node.args.defaults)]
                names = ", ".join(a.arg for a in required)
                assert not required, f"{path.name}: {node.name}({names}) is not a benchmark"
    assert inspect.isfunction(step_traffic.predicted_time)
