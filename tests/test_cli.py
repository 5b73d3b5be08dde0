import json
import subprocess
import sys

import pytest

from bench_suite.cli import main
from bench_suite.store.result_store import ResultStore

FAST = ["--task", "synthetic_ablation", "--option", "n=40", "--option", "d=8", "--width", "4", "--epochs", "20",
        "--eval-every", "5", "--lr", "0.3", "--quiet"]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "bench_suite", *args], capture_output=True, text=True, timeout=300)


def test_list_shows_tasks_methods_and_profiles(capsys):
    assert main(["list", "--profiles"]) == 0
    out = capsys.readouterr().out
    for name in ("synthetic_ablation", "mli_paired_pgd", "sgd", "constraint_only", "no_mirroring", "smoke"):
        assert name in out


def test_run_prints_final_metrics_and_writes_json_records(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["run", *FAST, "--store", str(store)]) == 0
    out = capsys.readouterr().out
    for method in ("mli_paired_pgd", "sgd", "constraint_only", "no_mirroring"):
        assert method in out
    records = [json.loads(p.read_text()) for p in (store / "records").glob("*.json")]
    assert sorted(r["config"]["method"] for r in records) == sorted(
        ["mli_paired_pgd", "sgd", "constraint_only", "no_mirroring"])
    curves = ResultStore(store).curves()  # beside the records, in store/curves/
    for r in records:
        assert "curves" not in r and r["curves_digest"]
        assert r["status"] == "done" and r["final"]["train_loss"] < curves[r["cell_id"]]["train_loss"][0]
        assert r["provenance"]["torch"] and r["provenance"]["device"] == "cpu"
        assert r["shape"] == {"n": 40, "d": 8, "m": 4, "k": 1, "width_ratio": 4 * 8 / 80, "n_test": 0}
    # a second run finds every cell finished and trains nothing
    assert main(["run", *FAST, "--store", str(store)]) == 0
    assert "4 of these found finished in the store" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "--task", "no_such_task"], "valid choices: "),
        (["run", "--method", "lion"], "valid choices: adam, constraint_only, mli_paired_pgd, mli_paired_pgd_fixed_v, "
                                      "mli_paired_pgd_per_neuron, no_mirroring, sgd"),
        (["run", "--activation", "sigmoid"], "valid choices: relu, tanh, softplus, gelu"),
        (["run", "--width", "0"], "positive integer"),
        (["run", "--width", "5", "--method", "mli_paired_pgd"], "odd"),
        (["run", "--epochs", "ten"], "positive integer"),
        (["run", "--lr", "nan"], "finite number"),
        (["run", "--momentum", "1.5"], "momentum"),
        (["run", "--profile", "nope"], "profile 'nope'"),
        (["run", "--option", "q=1"], "unknown option"),
        (["run", "--device", "cuda:0"], "cuda"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path):
    import torch

    if "--device" in args and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    proc = run_cli(*args, "--store", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]


def test_every_command_has_help():
    for cmd in ([], ["list"], ["run"], ["plan"]):
        proc = run_cli(*cmd, "--help")
        assert proc.returncode == 0 and "usage" in proc.stdout


def test_diverged_cell_exits_non_zero_with_one_line_reason(tmp_path):
    proc = run_cli("run", *FAST, "--method", "sgd", "--lr", "1e6", "--store", str(tmp_path))
    assert proc.returncode == 1
    assert "DIVERGED" in proc.stderr and "lower the learning rates" in proc.stderr


def test_plugin_module_registers_a_task(tmp_path, monkeypatch):
    plugin = tmp_path / "my_tasks.py"
    plugin.write_text(
        "import torch\n"
        "from bench_suite.tasks import Task, TaskData, register_task\n"
        "@register_task\n"
        "class Tiny(Task):\n"
        "    name = 'tiny_plugin_task'\n"
        "    description = 'from a user module'\n"
        "    options = {}\n"
        "    train_defaults = {'epochs': 3, 'batch_size': None, 'loss': 'mse', 'eval_every': 1}\n"
        "    grid = {'methods': ['sgd'], 'widths': [2], 'activations': ['relu']}\n"
        "    def load(self, options, *, data_seed, data_root=None, cache_dir=None):\n"
        "        g = torch.Generator().manual_seed(data_seed)\n"
        "        return TaskData(torch.randn(5, 3, generator=g), torch.randn(5, 1, generator=g), 1, False, 'tiny')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    proc = run_cli("--plugin", "my_tasks", "run", "--task", "tiny_plugin_task", "--quiet",
                   "--store", str(tmp_path / "s"))
    assert proc.returncode == 0, proc.stderr
    assert "tiny_plugin_task" in proc.stdout
