"""A template plug-in: one method with its own training step, and one tiny task.

Copy this file, rename what it registers, keep the shape. Use it from any folder, with the
folder that holds it on PYTHONPATH (it is not part of the package):

    export PYTHONPATH=/path/to/examples
    python -m bench_suite --plugin my_method_plugin list                   # the method and the task are listed
    python -m bench_suite --plugin my_method_plugin run --task teacher_student --profile smoke
    python -m bench_suite --plugin my_method_plugin run --task synthetic_ablation --profile smoke \\
        --method mli_paired_pgd_clipped,mli_paired_pgd                   # a plug-in method on a built-in task
    python -m bench_suite plugin-check my_method_plugin                    # the contract (bench_suite/testing.py)

(or ``BENCH_SUITE_PLUGINS=my_method_plugin`` instead of ``--plugin``; an installed package can
declare a ``bench_suite.plugins`` entry point). In your own tests::

    from bench_suite.testing import assert_plugin_contract
    def test_contract():
        assert_plugin_contract("my_method_plugin")

What a method declares (all of it in ``bench_suite/methods/__init__.py``, ``Method``): init, output
layer, whether W is projected and onto what, an optimizer from ``torch.optim`` with its
settings, an lr schedule, frozen parameters, default training settings, and optionally a
training step of its own. A method with a training step runs on the reference trainer
(``bench_suite/train/reference.py``); its records say so (``timing.trainer``). Settings that
conflict fail when the method is built or when a grid uses it, in one line naming the method
and the setting; a training step that raises becomes that cell's ``error`` record and the grid
goes on. The seeds (data, W0, V0, sample order) come from the task and the repetition, never
from the method, so this method's cells pair with the built-in ones.
"""

from __future__ import annotations

from typing import Any

from bench_suite.methods import METHODS, Method
from bench_suite.tasks import Task, TaskData, register_task

MAX_GRAD_NORM = 0.1  # our choice for the example (small enough to clip on teacher_student)


def clipped_step(model, batch, state):
    """One step of SGD on the gradient clipped to norm MAX_GRAD_NORM (over W and V together).

    ``model``: the ``TwoLayerNet`` (parameters ``w``, ``v``); ``batch``: (x (B, d), y);
    ``state``: ``bench_suite.train.reference.StepState`` (``optimizer`` at this step's learning
    rates, ``loss_fn``, ``step``, ``epoch``, ``total_steps``, ``w0``, ``v0``, ``radius``,
    ``autocast()``, ``memory``). Return (mean loss, outputs (B, K)) before the update; the
    trainer projects W afterwards (``constrained=True``)."""
    import torch

    x, y = batch
    state.optimizer.zero_grad(set_to_none=True)
    with state.autocast():
        out = model(x)
    loss = state.loss_fn(out.to(x.dtype), y)
    loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    norm = torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
    # the step's own state: tensors and plain Python only (it goes into checkpoints)
    state.memory["clipped_steps"] = state.memory.get("clipped_steps", 0) + int(norm > MAX_GRAD_NORM)
    state.optimizer.step()
    return loss.detach(), out.detach()


METHODS.add("mli_paired_pgd_clipped", Method(
    "mli_paired_pgd_clipped",
    "MLI + paired output + projected GD on the gradient clipped to norm 0.1 (an example plug-in)",
    init="mirrored_lecun", output="paired", constrained=True, train_step=clipped_step,
    rationale="a template: does clipping the gradient change what projected GD reaches?",
))


@register_task
class TeacherStudent(Task):
    """n Gaussian inputs x ~ N(0, I_d) and the outputs of a random tanh teacher net of
    ``teacher_width`` units (regression, K = 1), plus a test split of n/4 points. Tiny by design:
    it exists to show the task contract (``bench_suite/tasks/base.py``)."""

    name = "teacher_student"
    description = "an example plug-in task: Gaussian inputs, a random tanh teacher's outputs (regression)"
    classification = False
    options: dict[str, Any] = {"n": 128, "d": 8, "teacher_width": 4}
    train_defaults: dict[str, Any] = {
        "epochs": 200, "batch_size": None, "lr_w": 0.1, "lr_v": 0.1, "momentum": 0.0, "loss": "mse",
        "eps": 1.0, "eps_mode": "absolute", "eval_every": 50, "precision": "fp32",
    }
    grid: dict[str, list] = {"methods": ["mli_paired_pgd_clipped", "mli_paired_pgd"], "widths": [8],
                             "activations": ["tanh"]}
    profiles: dict[str, dict[str, Any]] = {
        "smoke": {"description": "both methods, 50 GD steps (well under a second)", "device": "cpu", "seeds": 1,
                  "train": {"epochs": 50, "eval_every": 25}},
    }
    defaults_rationale = "an example: full-batch GD at lr 0.1 on a tiny regression, eps 1 (absolute)"

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        out = super().check_options(options)
        for key in ("n", "d", "teacher_width"):
            if out[key] < 1:
                raise ValueError(f"option {key} of {cls.name} must be an integer >= 1, got {out[key]!r}")
        return out

    @classmethod
    def shape(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {"n": int(options["n"]), "d": int(options["d"]), "k": 1, "n_test": int(options["n"]) // 4}

    def load(self, options, *, data_seed, data_root=None, cache_dir=None) -> TaskData:
        import torch

        n, d, h = int(options["n"]), int(options["d"]), int(options["teacher_width"])
        g = torch.Generator().manual_seed(data_seed)
        teacher_w = torch.randn(h, d, generator=g) / d**0.5
        teacher_v = torch.randn(h, 1, generator=g) / h**0.5
        x = torch.randn(n + n // 4, d, generator=g)
        y = torch.tanh(x @ teacher_w.T) @ teacher_v
        return TaskData(x_train=x[:n], y_train=y[:n], num_outputs=1, classification=False,
                        source=f"example teacher_student: n={n}, d={d}, teacher width {h}, seed {data_seed}",
                        x_test=x[n:], y_test=y[n:])
