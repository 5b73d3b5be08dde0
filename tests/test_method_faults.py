"""Faults of plug-in methods found by trying them as a newcomer (issue 10): each becomes a cell's
error record or one line before anything runs, never a silent stop, an internal error or a
traceback. In-process tests register their methods only for the test (``monkeypatch`` on the
registry); the command-line ones run in subprocesses from a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import bench_suite as bs
from bench_suite.core.registry import Registry
from bench_suite.methods import METHODS, Method, MethodError
from bench_suite.store.result_store import ResultStore
from bench_suite.testing import registered_by

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(options={"n": 32, "d": 8}, widths=[4], train={"epochs": 3, "eval_every": 3}, device="cpu")


def _add(monkeypatch, method: Method) -> Method:
    monkeypatch.setitem(METHODS._items, method.name, method)
    return method


def _records(store: Path) -> dict[str, dict]:
    """The record files by method, each with its curves (stored beside it) as "curves"."""
    curves = ResultStore(store).curves()
    return {r["config"]["method"]: {**r, "curves": curves.get(r["cell_id"])}
            for r in (json.loads(p.read_text()) for p in (store / "records").glob("*.json"))}


def test_a_step_that_calls_sys_exit_is_its_cells_error_and_the_grid_goes_on(monkeypatch, tmp_path):
    def exiting_step(model, batch, state):
        sys.exit(0)

    _add(monkeypatch, Method("exiting", "calls sys.exit", init="lecun", output="free", constrained=False,
                             train_step=exiting_step))
    summary = bs.run("synthetic_ablation", methods=["exiting", "sgd"], store=tmp_path / "s", **TINY)
    records = _records(tmp_path / "s")
    assert summary.exit_code == 1 and set(records) == {"exiting", "sgd"}
    assert records["exiting"]["status"] == "error" and "SystemExit" in records["exiting"]["reason"]
    assert records["sgd"]["status"] == "done"


def test_an_error_record_names_its_trainer(monkeypatch, tmp_path):
    def raising_step(model, batch, state):
        raise RuntimeError("boom")

    _add(monkeypatch, Method("raising", "raises", init="lecun", output="free", constrained=False,
                             train_step=raising_step))
    bs.run("synthetic_ablation", methods=["raising"], store=tmp_path / "s", **TINY)
    frame = bs.load_results(tmp_path / "s")
    assert list(frame["status"]) == ["error"] and list(frame["trainer"]) == ["reference"]


def test_lbfgs_with_its_own_step_trains_in_one_parameter_group(monkeypatch, tmp_path):
    def lbfgs_step(model, batch, state):
        x, y = batch

        def closure():
            state.optimizer.zero_grad()
            loss = state.loss_fn(model(x), y)
            loss.backward()
            return loss

        state.optimizer.step(closure)
        with torch.no_grad():
            out = model(x)
        return state.loss_fn(out, y), out

    _add(monkeypatch, Method("lbfgs_mine", "LBFGS", init="lecun", output="free", constrained=False,
                             optimizer="LBFGS", optimizer_settings={"max_iter": 2}, train_step=lbfgs_step))
    bs.run("synthetic_ablation", methods=["lbfgs_mine"], store=tmp_path / "s", **TINY)
    (record,) = _records(tmp_path / "s").values()
    assert record["status"] == "done", record["reason"]
    assert record["final"]["train_loss"] < record["curves"]["train_loss"][0]
    # two learning rates cannot share LBFGS's one group: refused before anything runs
    with pytest.raises(ValueError, match="one parameter group.*lr_w = lr_v"):  # a GridError: one line
        bs.run("synthetic_ablation", methods=["lbfgs_mine"], store=tmp_path / "s2",
               **{**TINY, "train": {"epochs": 3, "lr_w": 0.1, "lr_v": 0.2}})


def test_optimizer_settings_torch_refuses_in_any_way_are_one_method_error(monkeypatch):
    # torch raises IndexError on these (not TypeError or ValueError)
    method = _add(monkeypatch, Method("rprop_bad", "bad settings", init="lecun", output="free", constrained=False,
                                      optimizer="Rprop", optimizer_settings={"etas": (0.5,)}))
    with pytest.raises(MethodError, match="torch.optim.Rprop refuses them"):
        method.check_runtime()


def test_nesterov_without_momentum_is_refused_per_cell():
    method = Method("nesterov_mine", "nesterov", init="lecun", output="free", constrained=False,
                    optimizer="SGD", optimizer_settings={"nesterov": True})
    from bench_suite.core.config import TrainConfig

    with pytest.raises(MethodError, match="nesterov=True needs SGD momentum > 0"):
        method.check_cell(4, TrainConfig(momentum=0.0))
    method.check_cell(4, TrainConfig(momentum=0.9))


def test_freezing_w_and_v_is_refused_even_with_a_step():
    with pytest.raises(MethodError, match="both W and V are frozen"):
        Method("frozen_all", "x", init="lecun", output="free", constrained=False, frozen=("w", "v"),
               train_step=lambda model, batch, state: None)


def test_step_memory_that_cannot_go_into_a_checkpoint_fails_at_the_first_step(monkeypatch, tmp_path):
    from bench_suite.train.reference import default_step

    def remembering_step(model, batch, state):
        state.memory["fn"] = lambda: 1
        return default_step(model, batch, state)

    _add(monkeypatch, Method("remembering", "x", init="lecun", output="free", constrained=False,
                             train_step=remembering_step))
    bs.run("synthetic_ablation", methods=["remembering"], store=tmp_path / "s", **TINY)
    (record,) = _records(tmp_path / "s").values()
    assert record["status"] == "error" and "state.memory['fn']" in record["reason"]
    assert "cannot go into a checkpoint" in record["reason"]


def test_a_step_defined_without_a_source_file_keeps_its_cell_id(tmp_path):
    code = textwrap.dedent("""
        from bench_suite.methods import Method
        from bench_suite.train.reference import default_step
        def step(model, batch, state):
            return default_step(model, batch, state)
        m = Method("inline", "x", init="lecun", output="free", constrained=False, train_step=step)
        print(m.identity())
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    prints = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                             cwd=tmp_path).stdout for _ in range(2)}
    assert len(prints) == 1 and next(iter(prints)).strip()
    other = code.replace("return default_step", "state.step; return default_step")
    changed = subprocess.run([sys.executable, "-c", other], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert changed.stdout and changed.stdout not in prints  # other code, another fingerprint


def test_registry_names_are_ones_the_command_line_can_select():
    reg: Registry[object] = Registry("method")
    for bad in ("my,comma", "a b", "x[1]", "k=v", ""):
        with pytest.raises(ValueError, match="letters, digits"):
            reg.add(bad, object())
    with pytest.raises(ValueError, match="named 'other'"):
        reg.add("mine", Method("other", "x", init="lecun", output="free", constrained=False))
    first = Method("mine", "x", init="lecun", output="free", constrained=False)
    reg.add("mine", first)
    again = Method("mine", "y", init="lecun", output="free", constrained=False)
    with pytest.raises(ValueError, match="already registered.*choose another name"):
        reg.add("mine", again)
    reg.add("mine", again, replace=True)  # a re-run notebook cell
    assert reg.get("mine") is again


PLUGIN = '''
from bench_suite.methods import METHODS, Method
METHODS.add("decl_adamw", Method("decl_adamw", "AdamW, declared only", init="lecun", output="free",
                                 constrained=False, optimizer="AdamW"))
'''


def _plugin_env(tmp_path, **extra):
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    (folder / "decl_plugin.py").write_text(PLUGIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(folder)]), **extra}
    return env


def test_plugin_check_finds_declared_methods_of_a_module_loaded_by_the_environment(tmp_path):
    env = _plugin_env(tmp_path, BENCH_SUITE_PLUGINS="decl_plugin")
    proc = subprocess.run([sys.executable, "-m", "bench_suite", "plugin-check", "decl_plugin"], capture_output=True,
                          text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "decl_adamw" in proc.stdout and "0 failed" in proc.stdout.strip().splitlines()[-1]


def test_the_python_api_loads_plug_ins(tmp_path):
    env = _plugin_env(tmp_path)
    code = ("import bench_suite as bs; s = bs.run('synthetic_ablation', methods=['decl_adamw'], widths=[4], "
            "options={'n': 32, 'd': 8}, train={'epochs': 2, 'lr': 0.01}, store='s', device='cpu', "
            "plugins=['decl_plugin']); print(s.exit_code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("0"), proc.stderr
    code = code.replace(", plugins=['decl_plugin']", "")  # $BENCH_SUITE_PLUGINS, as on the command line
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**env, "BENCH_SUITE_PLUGINS": "decl_plugin"})
    assert proc.returncode == 0 and proc.stdout.strip().endswith("0"), proc.stderr


def test_registered_by_names_what_an_earlier_import_registered(tmp_path, monkeypatch):
    env = _plugin_env(tmp_path)
    monkeypatch.syspath_prepend(env["PYTHONPATH"].split(os.pathsep)[-1])
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))
    monkeypatch.setattr(METHODS, "_origin", dict(METHODS._origin))
    from bench_suite.core import registry

    monkeypatch.setattr(registry, "_loaded_plugins", set())
    monkeypatch.delitem(sys.modules, "decl_plugin", raising=False)
    assert registered_by("decl_plugin") == (["decl_adamw"], [])
    assert registered_by("decl_plugin") == (["decl_adamw"], [])  # imported before: found by origin


def test_global_options_after_the_command_get_a_hint(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench_suite", "run", "--plugin", "x"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "go before the command" in lines[0]


def test_a_reader_that_leaves_is_no_error(tmp_path):
    proc = subprocess.run(f"{sys.executable} -m bench_suite list | head -1", shell=True, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert proc.stdout.strip() == "Tasks:" and proc.stderr == ""


def test_train_defaults_take_lr_for_both_rates():
    method = Method("lr_both", "x", init="lecun", output="free", constrained=False, train_defaults={"lr": 0.5})
    assert method.train_defaults == {"lr_w": 0.5, "lr_v": 0.5}
    with pytest.raises(MethodError, match="not both"):
        Method("lr_both2", "x", init="lecun", output="free", constrained=False,
               train_defaults={"lr": 0.5, "lr_w": 0.1})
