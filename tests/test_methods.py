"""Methods as objects (bench_suite/methods/__init__.py): the built-ins, which trainer runs each, the
method's training defaults as a layer of the grid, and settings that conflict failing in one line
naming the method and the setting (at registration, or when a grid uses the method)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from bench_suite.grid import GridError, expand
from bench_suite.methods import (
    BUILTIN_METHODS,
    KNOWN_OPTIMIZERS,
    METHODS,
    Method,
    MethodError,
    schedule_factor,
)

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL = ("mli_paired_pgd", "sgd", "constraint_only", "no_mirroring")


def test_the_built_in_methods_and_their_trainers():
    assert set(ORIGINAL) | {"mli_paired_pgd_fixed_v", "adam", "mli_paired_pgd_per_neuron"} == BUILTIN_METHODS
    for name in ORIGINAL:  # the four of the paper keep the fused engine
        assert METHODS.get(name).trainer == "fused"
    fixed = METHODS.get("mli_paired_pgd_fixed_v")
    assert fixed.trainer == "fused" and fixed.frozen == ("v",)  # V frozen is a learning rate of 0 there
    assert (fixed.init, fixed.output, fixed.constrained) == ("mirrored_lecun", "paired", True)
    adam = METHODS.get("adam")
    assert adam.trainer == "reference" and adam.optimizer == "Adam" and not adam.constrained
    assert adam.optimizer_settings == {}  # torch's defaults (betas, eps, weight decay)
    assert adam.train_defaults == {"lr_w": 1e-3, "lr_v": 1e-3, "momentum": 0.0}  # torch's default lr
    per = METHODS.get("mli_paired_pgd_per_neuron")
    assert per.trainer == "reference" and per.projection_name == "per_neuron"
    for name in BUILTIN_METHODS:
        assert METHODS.get(name).rationale  # `list` shows a one-line rationale for each


def test_known_optimizers_are_torch_optimizers():
    for name in KNOWN_OPTIMIZERS:
        cls = getattr(torch.optim, name)
        assert issubclass(cls, torch.optim.Optimizer), name


def test_every_built_in_passes_the_torch_side_checks():
    for name in BUILTIN_METHODS:
        METHODS.get(name).check_runtime()


def test_list_shows_the_new_methods_with_rationale_and_trainer():
    out = subprocess.run([sys.executable, "-m", "bench_suite", "list"], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()}
    assert "why" in out and "trainer" in out
    assert "Theorem 1's setting" in lines["mli_paired_pgd_fixed_v"] and lines["mli_paired_pgd_fixed_v"].endswith(
        "fused")
    assert "practitioner" in lines["adam"] and lines["adam"].endswith("reference")
    assert "Frobenius ball" in lines["mli_paired_pgd_per_neuron"]


def test_listing_the_methods_imports_no_torch():
    code = "import sys, bench_suite.methods, bench_suite.grid; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------
# the method's training defaults: a layer between the task's and the profile's
# ------------------------------------------------------------------------------------------
def test_adam_takes_torchs_lr_unless_the_profile_or_the_command_line_says_otherwise():
    (cell,) = expand("synthetic_ablation", methods=["adam"])
    assert (cell.train.lr_w, cell.train.lr_v, cell.train.momentum) == (1e-3, 1e-3, 0.0)
    # cifar10_random's defaults have momentum 0.9 (SGD's): the method's layer sits above them
    (cell,) = expand("cifar10_random", profile="smoke", methods=["adam"])
    assert (cell.train.lr_w, cell.train.momentum) == (1e-3, 0.0)
    (cell,) = expand("synthetic_ablation", methods=["adam"], train={"lr_w": 0.01})
    assert (cell.train.lr_w, cell.train.lr_v) == (0.01, 1e-3)
    # a profile that pins the learning rate (the ablation study) wins over the method's default
    cells = expand("synthetic_ablation", profile="ablation_lr", methods=["adam"])
    assert sorted({c.train.lr_w for c in cells}) == [0.01, 0.1, 0.5, 1.0]
    # (ad-hoc cells: the profile does not declare adam) and a declared method's cells stay its own
    assert all(c.profile is None for c in cells)
    assert all(c.profile == "ablation_lr" for c in expand("synthetic_ablation", profile="ablation_lr"))


def test_the_other_methods_cells_are_unchanged_by_the_method_layer():
    before = {(c.method, c.train) for c in expand("cifar10_random", profile="ci")}
    assert {t.momentum for _, t in before} == {0.9}  # no method of that profile has training defaults


# ------------------------------------------------------------------------------------------
# settings that conflict: one line naming the method and the setting
# ------------------------------------------------------------------------------------------
def _method(**over):
    base = dict(name="bad", description="a method", init="mirrored_lecun", output="paired", constrained=True)
    return Method(**{**base, **over})


@pytest.mark.parametrize("over, needle", [
    ({"init": "xavier"}, "init: unknown init 'xavier'"),
    ({"output": "shared"}, "output: unknown output layer"),
    ({"train_defaults": {"lr_w": -1.0}}, "train_defaults: lr_w must be a finite number >= 0"),
    ({"train_defaults": {"lrate": 0.1}}, "train_defaults: unknown setting(s) lrate"),
    ({"optimizer_settings": {"lr": 0.1}}, "optimizer_settings.lr: the learning rates are the cell's lr_w"),
    ({"optimizer_settings": {"weight_decay": -0.1}, "optimizer": "AdamW"}, "optimizer_settings.weight_decay: must "
                                                                            "be >= 0"),
    ({"optimizer_settings": {"betas": (0.9, 1.5)}, "optimizer": "Adam"}, "optimizer_settings.betas"),
    ({"optimizer_settings": {"momentum": 0.9}}, "optimizer_settings.momentum: SGD's momentum is the cell's"),
    ({"optimizer": "Adam", "train_defaults": {"momentum": 0.9}}, "train_defaults.momentum"),
    ({"optimizer": "LBFGS"}, "optimizer: LBFGS needs a closure"),
    ({"lr_schedule": "warmup"}, "lr_schedule: unknown schedule 'warmup'"),
    ({"projection": "l1_ball"}, "projection: unknown projection 'l1_ball'"),
    ({"projection": "per_neuron", "constrained": False}, "projection: given, but constrained is false"),
    ({"frozen": ("w", "v")}, "frozen: both W and V are frozen"),
    ({"frozen": ("u",)}, "frozen: unknown parameter 'u'"),
    ({"frozen": ("w",)}, "frozen: W is frozen, so there is nothing to project"),
    ({"train_step": "step"}, "train_step: must be a function"),
    ({"trainer_choice": "fast"}, "trainer_choice: unknown 'fast'"),
])
def test_conflicting_settings_fail_at_registration_naming_the_method_and_the_setting(over, needle):
    with pytest.raises(MethodError) as info:
        _method(**over)
    text = str(info.value)
    assert text.startswith("method 'bad': ") and needle in text and "\n" not in text


def _registered(method: Method):
    METHODS._items[method.name] = method  # noqa: SLF001 - a test registration, removed below
    return method


@pytest.fixture
def scratch_methods():
    added: list[str] = []

    def add(method: Method) -> Method:
        added.append(method.name)
        return _registered(method)

    yield add
    for name in added:
        METHODS._items.pop(name, None)  # noqa: SLF001


@pytest.mark.parametrize("over, needle", [
    ({"optimizer": "Lion"}, "optimizer 'Lion' is not in torch.optim"),
    ({"optimizer": "Adam", "optimizer_settings": {"betaz": (0.9, 0.99)}}, "optimizer_settings betaz: not arguments "
                                                                           "of torch.optim.Adam"),
    ({"projection": lambda w, w0, r: torch.linalg.vector_norm(w - w0)}, "projection returned () for a 6 x 5 W"),
    ({"projection": lambda w, w0, r: (w - w0).T}, "projection returned (5, 6) for a 6 x 5 W"),
    ({"lr_schedule": lambda step, total: -1.0}, "lr_schedule gave -1.0 at step 0 of 10"),
])
def test_conflicts_that_need_torch_fail_when_a_grid_uses_the_method(over, needle, scratch_methods):
    name = f"bad_{abs(hash(needle)) % 10**6}"
    scratch_methods(_method(name=name, **over))
    with pytest.raises(GridError) as info:
        expand("synthetic_ablation", methods=[name])
    assert str(info.value).startswith(f"method {name!r}: ") and needle in str(info.value)


def test_an_odd_width_of_a_paired_method_names_the_method():
    with pytest.raises(GridError, match=r"method 'mli_paired_pgd_fixed_v': width 7 is odd"):
        expand("synthetic_ablation", methods=["mli_paired_pgd_fixed_v"], widths=[7])


def test_momentum_with_a_method_that_is_not_sgd_names_the_method():
    with pytest.raises(GridError, match=r"method 'adam': momentum 0.9 is SGD's heavy-ball setting"):
        expand("synthetic_ablation", methods=["adam"], train={"momentum": 0.9})


def test_a_plug_in_with_a_conflicting_method_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "bad_plugin.py").write_text(textwrap.dedent("""
        from bench_suite.methods import METHODS, Method
        METHODS.add("odd", Method("odd", "x", init="lecun", output="free", constrained=False,
                                  projection="per_neuron"))
    """))
    (tmp_path / "bad_optimizer.py").write_text(textwrap.dedent("""
        from bench_suite.methods import METHODS, Method
        METHODS.add("lion", Method("lion", "x", init="lecun", output="free", constrained=False, optimizer="Lion"))
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    for module, args, needle in (
            ("bad_plugin", ["list"], "method 'odd': projection: given, but constrained is false"),
            ("bad_optimizer", ["plan", "--method", "lion", "--store", str(tmp_path / "s")],
             "method 'lion': optimizer 'Lion' is not in torch.optim")):
        proc = subprocess.run([sys.executable, "-m", "bench_suite", "--plugin", module, *args], capture_output=True,
                              text=True, env=env, cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], proc.stderr


# ------------------------------------------------------------------------------------------
# schedules and identity
# ------------------------------------------------------------------------------------------
def test_named_schedules():
    assert [schedule_factor("constant", t, 4) for t in range(4)] == [1.0] * 4
    assert [schedule_factor("linear", t, 4) for t in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert schedule_factor("cosine", 0, 10) == 1.0 and abs(schedule_factor("cosine", 5, 10) - 0.5) < 1e-15
    assert schedule_factor(lambda t, total: 0.5 ** t, 3, 10) == 0.125


def test_a_plug_in_methods_cells_carry_its_code_so_a_change_makes_new_cells(tmp_path, scratch_methods):
    module = tmp_path / "fingerprinted.py"
    module.write_text("def step(model, batch, state):\n    return None\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import fingerprinted

        scratch_methods(_method(name="fp", train_step=fingerprinted.step))
        (cell,) = expand("synthetic_ablation", methods=["fp"])
        first, first_id = cell.code_version()["method"], cell.cell_id
        METHODS._items.pop("fp")  # noqa: SLF001
        module.write_text("def step(model, batch, state):\n    return None  # changed\n")
        scratch_methods(_method(name="fp", train_step=fingerprinted.step))
        (again,) = expand("synthetic_ablation", methods=["fp"])
        assert again.code_version()["method"] != first and again.cell_id != first_id
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("fingerprinted", None)
    # a method's identity is its version and declaration: prose does not count, settings do
    (builtin,) = expand("synthetic_ablation", methods=["adam"])
    adam = METHODS.get("adam")
    assert builtin.code_version()["method"] == adam.identity() and adam.identity().startswith("1-")
    assert dataclasses.replace(adam, description="other words", rationale="why not").identity() == adam.identity()
    assert dataclasses.replace(adam, optimizer_settings={"amsgrad": True}).identity() != adam.identity()
    assert dataclasses.replace(adam, version=2).identity() != adam.identity()
