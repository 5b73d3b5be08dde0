"""The bad-input battery: every kind of mistake a user makes gets one line that names the problem,
a non-zero exit, no traceback, and never loses a finished result.

Kinds: command-line values, grid sizes, device strings, task options, profile and reference
files, paths the tool reads and writes, store and record faults, data, plug-ins, and faults
while writing. Most cases run the CLI in-process (fast); those that need a fresh interpreter
(plug-ins, environment variables) run it as a subprocess.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from bench_suite.cli import main
from bench_suite.store.result_store import ResultStore

TINY = ["--task", "synthetic_ablation", "--option", "n=40", "--option", "d=8", "--width", "4", "--epochs", "4",
        "--eval-every", "2", "--quiet"]


def cli(capsys, *args):
    """(exit code, stdout, stderr) of the CLI run in this process."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def cli_subprocess(*args, env=None, cwd=None):
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "bench_suite", *args], capture_output=True, text=True, timeout=300,
                          env=full_env, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line(code, err, needle, *, exit_code=2):
    assert code == exit_code, err
    assert "Traceback" not in err, err
    progress = ("note: ", "[")  # notes and quiet progress lines ("N cells: ...", "[k/N] ...") are not errors
    lines = [line for line in err.strip().splitlines() if not line.startswith(progress) and " cells: " not in line]
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]


# --- command-line values: each names the flag and the bad element ----------------------------
CLI_VALUES = [
    (["--task", "no_such_task"], "unknown task 'no_such_task'"),
    (["--method", "no_such_method"], "unknown method 'no_such_method'"),
    (["--activation", "sigmoid"], "unknown activation 'sigmoid'"),
    (["--width", "0"], "--width: '0' is not a positive integer"),
    (["--width", "4,x"], "--width: 'x' is not a positive integer"),
    (["--width", "5", "--method", "mli_paired_pgd"], "width 5 is odd"),
    (["--epochs", "ten"], "--epochs: 'ten' is not a positive integer"),
    (["--epochs", "0"], "--epochs: '0' is not a positive integer"),
    (["--lr", "nan"], "--lr: 'nan' is not a finite number"),
    (["--lr", "-1"], "--lr: '-1' is negative"),
    (["--lr-w", "0.1,inf"], "--lr-w: 'inf' is not a finite number"),
    (["--momentum", "1.5"], "momentum must be in [0, 1)"),
    (["--eps", "1,x"], "--eps: 'x' is not a number"),
    (["--eps", "0"], "--eps: '0' is not a number > 0"),
    (["--batch-size", "zero"], "--batch-size: 'zero' is not a positive integer or 'full'"),
    (["--loss", "hinge"], "--loss: 'hinge' is not one of ce, mse"),
    (["--loss", "ce"], "loss ce (cross-entropy) needs class labels"),
    (["--precision", "fp8"], "--precision: 'fp8' is not one of fp32, tf32, bf16"),
    (["--eps-mode", "weird"], "--eps-mode: 'weird' is not one of relative, absolute"),
    (["--eval-every", "-2"], "--eval-every: '-2' is not a positive integer"),
    (["--lr", "0.1", "--lr-w", "0.2"], "give --lr (both layers) or --lr-w/--lr-v, not both"),
    (["--repetition", "-1"], "--repetition: '-1' is not an integer >= 0"),
    (["--repetitions", "0"], "--repetitions: '0' is not a positive integer"),
    (["--max-group", "0"], "--max-group: '0' is not a positive integer"),
    (["--threads", "0"], "--threads: '0' is not a positive integer"),
    (["--profile", "nope"], "profile 'nope'"),
    (["--executor", "dask"], "--executor dask needs --scheduler"),
    (["--partition", "debug"], "--partition: only with --executor slurm"),
]


@pytest.mark.parametrize("args,needle", CLI_VALUES, ids=[" ".join(a) for a, _ in CLI_VALUES])
@pytest.mark.parametrize("verb", ["run", "plan"])
def test_a_bad_command_line_value_is_one_line_and_exit_2(capsys, tmp_path, verb, args, needle):
    code, _, err = cli(capsys, verb, "--store", str(tmp_path / "s"), *args)
    assert_one_line(code, err, needle)
    assert not (tmp_path / "s" / "records").exists()  # nothing ran


# --- task options: validated by the task, naming the option, before anything uses them -------
OPTIONS = [
    (["--option", "q=1"], "unknown option(s) q for task 'synthetic_ablation'"),
    (["--option", "n=0"], "option n of synthetic_ablation must be an integer >= 1, got 0"),
    (["--option", "n=abc"], "option n must be an integer, got 'abc'"),
    (["--option", "n=40,0"], "option n of synthetic_ablation must be an integer >= 1, got 0"),
    (["--option", "noequals"], "--option: expected KEY=VALUE"),
    (["--option", "n=40", "--option", "n=50"], "--option n given twice"),
    (["--task", "cifar10_random", "--option", "download=maybe"], "option download must be true or false"),
    (["--task", "cifar10_random", "--option", "n_train=60000"], "option n_train must be None (all) or an integer"),
    (["--task", "restricted_imagenet", "--option", "image_size=0"], "option image_size must be an integer >= 1"),
]


@pytest.mark.parametrize("args,needle", OPTIONS, ids=[" ".join(a) for a, _ in OPTIONS])
@pytest.mark.parametrize("verb", ["run", "plan"])
def test_a_bad_task_option_is_refused_by_its_task_before_anything_uses_it(capsys, tmp_path, verb, args, needle):
    code, _, err = cli(capsys, verb, "--store", str(tmp_path / "s"), *args)
    assert_one_line(code, err, needle)


# --- grid sizes: refused up front, before building the cells -----------------------------------
@pytest.mark.parametrize("verb", ["run", "plan"])
def test_an_absurd_grid_is_refused_up_front(capsys, tmp_path, verb):
    code, _, err = cli(capsys, verb, "--store", str(tmp_path), "--repetitions", "1000000000")
    assert_one_line(code, err, "has 4,000,000,000 cells (methods 4 x repetitions 1,000,000,000), over the limit")


def test_the_grid_limit_is_a_documented_variable(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_SUITE_MAX_CELLS", "3")
    code, _, err = cli(capsys, "plan", "--store", str(tmp_path))
    assert_one_line(code, err, "over the limit of 3 ($BENCH_SUITE_MAX_CELLS)")
    monkeypatch.setenv("BENCH_SUITE_MAX_CELLS", "many")
    code, _, err = cli(capsys, "plan", "--store", str(tmp_path))
    assert_one_line(code, err, "$BENCH_SUITE_MAX_CELLS='many' is not an integer")


# --- device strings: every string torch rejects, and devices this machine lacks -----------------
DEVICES = [
    (["--device", "tpu"], "--device 'tpu': not a device; valid forms: auto, cpu, cuda, cuda:N"),
    (["--device", "cuda:x"], "--device 'cuda:x': not a device"),
    (["--device", "gpu0"], "--device 'gpu0': not a device"),
    (["--device", ""], "--device '': not a device"),
    (["--devices", "cpu,tpu"], "--devices 'tpu': not a device"),
]


@pytest.mark.parametrize("args,needle", DEVICES, ids=[" ".join(a) for a, _ in DEVICES])
@pytest.mark.parametrize("verb", ["run", "plan"])
def test_a_bad_device_string_names_the_valid_forms(capsys, tmp_path, verb, args, needle):
    code, _, err = cli(capsys, verb, "--store", str(tmp_path), *TINY, *args)
    assert_one_line(code, err, needle)


def test_a_device_this_machine_lacks_is_one_line(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    for args in (["--device", "cuda"], ["--device", "cuda:1"], ["--devices", "0,1"]):
        code, _, err = cli(capsys, "run", "--store", str(tmp_path), *TINY, *args)
        assert_one_line(code, err, "no CUDA device is available")


# --- profile and reference files ---------------------------------------------------------------
def test_bad_profile_files_name_the_file_and_the_fault(capsys, tmp_path):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[synthetic_ablation.x\n")
    unknown_key = tmp_path / "key.toml"
    unknown_key.write_text("[synthetic_ablation.x]\nseedz = 3\n")
    bad_value = tmp_path / "value.toml"
    bad_value.write_text("[synthetic_ablation.x]\ntrain = { eps = [1.0, -2.0] }\n")
    unknown_task = tmp_path / "task.toml"
    unknown_task.write_text("[no_such_task.x]\nseeds = 1\n")
    for path, needle in ((tmp_path / "missing.toml", "no such file"), (bad_toml, "not valid TOML"),
                         (unknown_key, "unknown key(s) seedz"), (bad_value, "eps must be > 0"),
                         (unknown_task, "unknown task 'no_such_task'")):
        code, _, err = cli(capsys, "plan", "--store", str(tmp_path / "s"), "--profile-file", str(path))
        assert_one_line(code, err, needle)
        assert str(path) in err


def test_bad_reference_files_are_one_line(capsys, tmp_path):
    store = tmp_path / "s"
    assert cli(capsys, "run", "--store", str(store), *TINY)[0] == 0
    broken = tmp_path / "broken.toml"
    broken.write_text("protocol = 1\n[[reference]]\nkind = 'value'\n")
    for path, needle in ((tmp_path / "none.toml", "no reference file or folder"), (broken, "needs `task`")):
        code, _, err = cli(capsys, "check", "--store", str(store), "--baselines", str(path))
        assert_one_line(code, err, needle)


# --- paths the tool writes and reads -------------------------------------------------------------
def test_every_path_the_tool_writes_is_checked_up_front(capsys, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    store = tmp_path / "s"
    assert cli(capsys, "run", "--store", str(store), *TINY)[0] == 0
    cases = [
        (["run", "--store", str(a_file), *TINY], f"--store {a_file}: exists and is not a folder"),
        (["run", "--store", "/proc/bench_suite_store", *TINY], "--store /proc/bench_suite_store: cannot create it"),
        (["report", "--store", str(store), "--reports-dir", str(a_file)], "--reports-dir"),
        (["check", "--store", str(store), "--save", str(a_file)], "--save"),
        (["export", "--store", str(store), "--dir", str(a_file)], "--dir"),
        (["check", "--store", str(tmp_path / "typo")], "no such result store"),
        (["report", "--store", str(tmp_path / "typo")], "no such result store"),
        (["check", "--store", str(a_file)], "not a folder"),
        (["check", "--store", str(tmp_path)], "not a result store (it has no records/ folder)"),
    ]
    for args, needle in cases:
        code, out, err = cli(capsys, *args)
        assert_one_line(code, err, needle)
        assert "report written" not in out


def test_a_full_disk_while_writing_records_stops_in_one_line_and_keeps_finished_records(
        capsys, tmp_path, monkeypatch):
    store = tmp_path / "s"
    assert cli(capsys, "run", "--store", str(store), *TINY, "--method", "sgd")[0] == 0
    kept = {p.name: p.read_bytes() for p in (store / "records").glob("*.json")}
    real_replace = os.replace

    def full(src, dst, *a, **k):
        if str(dst).endswith(".json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", full)
    code, _, err = cli(capsys, "run", "--store", str(store), *TINY)
    assert_one_line(code, err, "No space left on device")
    assert "finished records are kept" in err
    monkeypatch.setattr(os, "replace", real_replace)
    assert {p.name: p.read_bytes() for p in (store / "records").glob("*.json")} == kept
    assert not list((store / "records").glob(".*.tmp"))  # no partial file left behind


def test_an_unwritable_cache_names_it_and_the_run_decodes_in_memory(capsys, tmp_path, monkeypatch):
    from data_fixtures import SMALL_COUNTS, write_cifar_zip

    monkeypatch.setattr("bench_suite.data.cifar10.CIFAR10_COUNTS", dict(SMALL_COUNTS))
    data = write_cifar_zip(tmp_path / "c.zip")
    cache = tmp_path / "cache_is_a_file"
    cache.write_text("x")
    code, out, err = cli(capsys, "run", "--store", str(tmp_path / "s"), "--task", "cifar10_random", "--method",
                         "sgd", "--width", "8", "--activation", "relu", "--epochs", "1", "--quiet",
                         "--data-root", str(data), "--cache-dir", str(cache))
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and str(cache) in warning[0] and "--cache-dir" in warning[0]
    assert "BENCH_SUITE_CACHE" in warning[0] and "Traceback" not in err


# --- the store and its records -----------------------------------------------------------------
def test_unusable_records_give_one_warning_line_each_and_are_left_out(capsys, tmp_path):
    store = tmp_path / "s"
    assert cli(capsys, "run", "--store", str(store), *TINY, "--method", "sgd,mli_paired_pgd")[0] == 0
    first, second = sorted((store / "records").glob("*.json"))
    future = json.loads(first.read_text())
    future["protocol"] = 9
    first.write_text(json.dumps(future))
    second.write_text("{ torn")
    for args in (["check", "--store", str(store)], ["report", "--store", str(store), "--reports-dir",
                                                    str(tmp_path / "r")], ["export", "--store", str(store),
                                                                           "--dir", str(tmp_path / "e")]):
        code, out, err = cli(capsys, *args)
        assert code in (0, 3), err
        warnings = [line for line in err.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 2 and "Traceback" not in err
        assert any("protocol 9" in w for w in warnings) and any("not valid JSON" in w for w in warnings)
    # the cells re-run, the bad files are replaced by good records
    code, out, err = cli(capsys, "run", "--store", str(store), *TINY, "--method", "sgd,mli_paired_pgd")
    assert code == 0 and "2 done" in out
    assert len(ResultStore(store).records()) == 2


# --- data ----------------------------------------------------------------------------------------
def test_missing_and_corrupt_data_are_one_line_each(capsys, tmp_path, monkeypatch):
    for var in ("BENCH_SUITE_CIFAR10", "BENCH_SUITE_DATA_ROOT"):
        monkeypatch.delenv(var, raising=False)
    args = ["run", "--store", str(tmp_path / "s"), "--task", "cifar10_random", "--method", "sgd", "--width", "8",
            "--activation", "relu", "--epochs", "1", "--quiet", "--cache-dir", str(tmp_path / "c")]
    code, _, err = cli(capsys, *args, "--data-root", str(tmp_path / "nowhere"))  # a typo
    assert_one_line(code, err, f"--data-root {tmp_path / 'nowhere'}: does not exist")
    (tmp_path / "empty").mkdir()
    code, _, err = cli(capsys, *args, "--method", "sgd,mli_paired_pgd,constraint_only", "--data-root",
                       str(tmp_path / "empty"))  # no data there: skipped, the reason said once a run of cells
    assert code == 3 and "SKIPPED" in err and "Traceback" not in err and str(tmp_path / "empty") in err
    progress = [line for line in err.splitlines() if line.startswith("[")]
    assert len(progress) == 3 and str(tmp_path / "empty") in progress[0]
    assert all(line.endswith("(the same reason as above)") for line in progress[1:]), progress
    corrupt = tmp_path / "cifar.zip"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    for bad in (corrupt, tmp_path / "notes.txt"):  # data that is there but unusable: one line, exit 2
        bad.touch()
        code, _, err = cli(capsys, *args, "--method", "sgd,mli_paired_pgd", "--data-root", str(bad))
        errors = [line for line in err.splitlines() if "error" in line.lower()]
        assert code == 2 and len(errors) == 1 and errors[0].startswith("bench-suite: error: "), err
        assert bad.name in errors[0] and "nothing was trained on it" in errors[0] and "Traceback" not in err
        assert {r.status.value for r in ResultStore(tmp_path / "s").records()} == {"skipped"}  # no error records


# --- plug-ins (fresh interpreters) ---------------------------------------------------------------
PLUGIN_TASK = """
import torch
from bench_suite.tasks import Task, TaskData, register_task

@register_task
class {cls}(Task):
    name = {name!r}
    description = "a plug-in task of the bad-input tests"
    options = {{}}
    train_defaults = {{"epochs": 2, "batch_size": None, "loss": "mse", "eval_every": 1}}
    grid = {{"methods": ["sgd"], "widths": [2], "activations": ["relu"]}}

    def load(self, options, *, data_seed, data_root=None, cache_dir=None):
        {body}
"""


def _plugin(tmp_path, module, text):
    (tmp_path / f"{module}.py").write_text(text)
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}


@pytest.mark.slow
def test_plug_in_faults_are_one_line_naming_the_plug_in(tmp_path):
    env = _plugin(tmp_path, "raises_on_import", "raise RuntimeError('the plug-in is broken')\n")
    code, _, err = cli_subprocess("--plugin", "raises_on_import", "list", env=env)
    assert_one_line(code, err, "plug-in module 'raises_on_import' (from --plugin raises_on_import) raised on import: "
                               "RuntimeError: the plug-in is broken")
    code, _, err = cli_subprocess("--plugin", "no_such_plugin_module", "list", env=env)
    assert_one_line(code, err, "plug-in module 'no_such_plugin_module' (from --plugin no_such_plugin_module) "
                               "cannot be found")
    code, _, err = cli_subprocess("list", env={**env, "BENCH_SUITE_PLUGINS": "no_such_plugin_module"})
    assert_one_line(code, err, "$BENCH_SUITE_PLUGINS")
    _plugin(tmp_path, "needs_a_dependency", "import no_such_dependency_xyz\n")
    code, _, err = cli_subprocess("--plugin", "needs_a_dependency", "list", env=env)
    assert_one_line(code, err, "needs the module 'no_such_dependency_xyz', which is not installed")
    _plugin(tmp_path, "forgets_load", "from bench_suite.tasks import Task, register_task\n"
                                      "@register_task\nclass T(Task):\n    name = 'forgets_load'\n")
    code, _, err = cli_subprocess("--plugin", "forgets_load", "list", env=env)
    assert_one_line(code, err, "task 'forgets_load' (forgets_load.T) does not implement load")


@pytest.mark.slow
def test_a_plug_in_loader_that_raises_becomes_that_cells_error_and_the_grid_goes_on(tmp_path):
    good = PLUGIN_TASK.format(cls="Good", name="good_plugin_task", body=(
        "g = torch.Generator().manual_seed(data_seed)\n"
        "        return TaskData(torch.randn(5, 3, generator=g), torch.randn(5, 1, generator=g), 1, False, 'tiny')"))
    bad = PLUGIN_TASK.format(cls="Bad", name="bad_plugin_task", body="raise KeyError('my_setting')")
    env = _plugin(tmp_path, "two_tasks", good + bad)
    store = tmp_path / "s"
    code, out, err = cli_subprocess("--plugin", "two_tasks", "run", "--task", "bad_plugin_task,good_plugin_task",
                                    "--quiet", "--store", str(store), env=env)
    assert code == 1 and "Traceback" not in err
    assert "1 done" in out and "1 error" in out
    assert "ERROR: bad_plugin_task" in err and "KeyError: 'my_setting'" in err


# --- names and paths of check / report / plan / list / export (found by a newcomer's pass) ---------
def test_names_and_paths_every_command_takes_are_checked(capsys, tmp_path):
    store = tmp_path / "s"
    assert cli(capsys, "run", "--store", str(store), *TINY, "--method", "sgd")[0] == 0
    a_file = tmp_path / "f"
    a_file.write_text("x")
    shadow = tmp_path / "shadow.toml"
    shadow.write_text("[synthetic_ablation.ci]\nrepetitions = 1\n")
    empty_axis = tmp_path / "empty.toml"
    empty_axis.write_text("[synthetic_ablation.mine]\ntrain = { eps = [] }\n")
    tpu = tmp_path / "tpu.toml"
    tpu.write_text("[synthetic_ablation.mine]\ndevice = \"tpu\"\n")
    cases = [
        (["check", "--store", str(store), "--profile", "nosuch"], "--profile 'nosuch': no task declares it"),
        (["report", "--store", str(store), "--profile", "nosuch", "--reports-dir", str(tmp_path / "r")],
         "--profile 'nosuch': no task declares it"),
        (["check", "--store", str(store), "--task", "nosuch"], "unknown task 'nosuch'"),
        (["report", "--store", str(store), "--name", "../elsewhere", "--reports-dir", str(tmp_path / "r")],
         "--name '../elsewhere': a folder name inside --reports-dir"),
        (["list", "--task", "nosuch"], "unknown task 'nosuch'"),
        (["list", "--profiles", "--task", "nosuch"], "unknown task 'nosuch'"),
        (["plan", "--store", str(a_file), *TINY], "not a folder"),
        (["run", "--store", "", *TINY], "--store: an empty path"),
        (["plan", "--profile-file", str(shadow)], "synthetic_ablation.ci is a built-in profile"),
        (["plan", "--profile-file", str(empty_axis)], "train.eps list is empty"),
        (["plan", "--profile-file", str(tpu)], "device must be cpu, cuda or any, got 'tpu'"),
        (["export", "--store", str(tmp_path / "missing"), "--dir", str(tmp_path / "never")], "no such result store"),
    ]
    for args, needle in cases:
        code, out, err = cli(capsys, *args)
        assert_one_line(code, err, needle)
    assert not (tmp_path / "never").exists() and not (tmp_path / "elsewhere").exists()


def test_report_removes_only_the_figures_it_wrote(capsys, tmp_path):
    store = tmp_path / "s"
    assert cli(capsys, "run", "--store", str(store), *TINY, "--method", "sgd")[0] == 0
    reports = tmp_path / "r"
    assert cli(capsys, "report", "--store", str(store), "--reports-dir", str(reports), "--name", "mine")[0] == 0
    mine = reports / "mine" / "figures" / "my_figure.svg"
    mine.parent.mkdir(exist_ok=True)
    mine.write_bytes(b"a user's own file")
    assert cli(capsys, "report", "--store", str(store), "--reports-dir", str(reports), "--name", "mine")[0] == 0
    assert mine.read_bytes() == b"a user's own file"


@pytest.mark.slow
def test_a_plug_in_loader_breaking_the_data_contract_is_that_cells_error_naming_it(tmp_path):
    none = PLUGIN_TASK.format(cls="ReturnsNone", name="returns_none_task", body="return None")
    nan = PLUGIN_TASK.format(cls="ReturnsNaN", name="returns_nan_task", body=(
        "x = torch.randn(5, 3)\n        x[0, 0] = float('nan')\n"
        "        return TaskData(x, torch.randn(5, 1), 1, False, 'nan')"))
    env = _plugin(tmp_path, "contract_tasks", none + nan)
    code, out, err = cli_subprocess("--plugin", "contract_tasks", "run", "--task", "returns_none_task,returns_nan_task",
                                    "--quiet", "--store", str(tmp_path / "s"), env=env)
    assert code == 1 and "Traceback" not in err and "internal error" not in err
    assert "its load() returned NoneType, not TaskData" in err
    assert "non-finite values (NaN or inf) in x_train" in err


@pytest.mark.parametrize("device,needle", [("cuda", "no CUDA device is available"),
                                           ("cuda:0", "no CUDA device is available"),
                                           ("mps", "MPS is not available here")])
def test_a_missing_device_is_said_before_a_profile_made_for_another_device(capsys, tmp_path, device, needle):
    import torch

    if torch.cuda.is_available() or (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        pytest.skip("this machine has an accelerator")
    code, _, err = cli(capsys, "run", "--store", str(tmp_path / "s"), "--task", "synthetic_ablation", "--profile",
                       "smoke", "--device", device)
    assert_one_line(code, err, needle)
