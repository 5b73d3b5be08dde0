"""The training methods: what a method declares, its validation, and the built-in ones.

A method is a :class:`Method`: its init, output layer and constraint (the three switches the
fused engine interprets), and what only the reference trainer (``bench_suite/train/reference.py``)
can run: an optimizer from ``torch.optim`` with its settings, a learning-rate schedule, a
projection other than the Frobenius ball, a training step of its own. Frozen parameters and the
Frobenius ball run on either. The runner sends a cell to the fused engine when its method is
expressible there (:attr:`Method.trainer`), to the reference trainer otherwise; the record says
which (``timing.trainer``).

Add a method from your own module (``--plugin MODULE``; ``examples/my_method_plugin.py`` is a
template with its own training step)::

    from bench_suite.methods import Method, METHODS
    METHODS.add("mli_free_pgd", Method("mli_free_pgd", "MLI + free output + PGD",
                                       init="mirrored_lecun", output="free", constrained=True,
                                       rationale="is the paired output needed?"))

Settings that conflict fail when the method is built (one line naming the method and the
setting: a projection on an unconstrained method, an unknown schedule, a negative learning
rate, ...) or, for what needs torch (does ``torch.optim`` have the optimizer, does it take the
settings, does a projection return W's shape), when a grid that uses it is built
(:meth:`Method.check_runtime`, called by ``run`` and ``plan``). This module does not import
torch (``list`` reads it without).
"""

from __future__ import annotations

import hashlib
import inspect
import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

from ..core.config import INITS, OUTPUTS, TrainConfig, check_width
from ..core.registry import Registry

# torch.optim optimizers a method may name without torch being imported to check it (a test
# checks each is in torch.optim); any other name is checked against torch.optim by check_runtime
KNOWN_OPTIMIZERS = ("ASGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "LBFGS", "NAdam", "RAdam",
                    "RMSprop", "Rprop", "SGD", "SparseAdam")
# optimizers whose step needs a closure (LBFGS) or sparse gradients (SparseAdam): only with a train_step
_NEEDS_OWN_STEP = ("LBFGS", "SparseAdam")
# optimizers that refuse per-parameter groups: W and V then share one group (one learning rate)
SINGLE_GROUP_OPTIMIZERS = ("LBFGS",)
PROJECTIONS = ("frobenius", "per_neuron")  # named projections (bench_suite/model/projection.py); or a callable
SCHEDULES = ("constant", "linear", "cosine")  # named lr schedules (lr_t = lr * factor(t, T)); or a callable
PARAMETERS = ("w", "v")  # what `frozen` may name: the hidden weights W, the output weights V
TRAINERS = ("auto", "reference")
# optimizer settings that must be >= 0 when they are numbers (torch would take some negative ones)
_NONNEGATIVE = ("weight_decay", "eps", "alpha", "lr_decay", "initial_accumulator_value", "rho", "lambd", "t0",
                "momentum", "dampening", "momentum_decay", "beta1", "beta2_decay")


class MethodError(ValueError):
    """A method whose settings conflict or cannot run: one line naming the method and the setting."""


def schedule_factor(schedule: str | Callable[[int, int], float], step: int, total: int) -> float:
    """The learning-rate factor of ``schedule`` at optimizer step ``step`` (0-based) of ``total``:
    ``constant`` 1; ``linear`` 1 - t/T (the last step at 1/T); ``cosine`` (1 + cos(pi t/T)) / 2;
    a callable ``f(step, total)`` as it returns. Our choice of the named ones (standard forms)."""
    if callable(schedule):
        return float(schedule(step, total))
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return 1.0 - step / total
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / total))
    raise MethodError(f"unknown lr schedule {schedule!r}; valid: {', '.join(SCHEDULES)} or a function (step, total)")


@dataclass(frozen=True)
class Method:
    """A training method (the fields a plug-in sets; every one but the first five is optional).

    - ``init``: ``lecun`` | ``mirrored_lecun``; ``output``: ``free`` | ``paired`` (bench_suite/model/__init__.py).
    - ``constrained``: project W after every step; onto ``projection``: ``frobenius``
      (||W - W0||_F <= radius, the default), ``per_neuron`` (||w_j - w_j0|| <= radius / sqrt(m)
      for each of the m rows, so the total radius matches) or a function ``f(w, w0, radius) ->
      w`` of (m, d) tensors. The radius is the cell's ``eps`` (x ||W0||_F when ``eps_mode`` is
      relative).
    - ``rationale``: one line, why the method is in the suite (``list`` shows it).
    - ``optimizer``: a ``torch.optim`` class name; ``optimizer_settings``: its keyword arguments
      but ``lr`` (the learning rates are the cell's ``lr_w`` for W and ``lr_v`` for V, one
      parameter group each) and, for SGD, ``momentum`` (the cell's ``momentum``).
    - ``lr_schedule``: ``constant`` | ``linear`` | ``cosine`` or ``f(step, total_steps) ->
      factor``: before step t each group's lr is its base lr times the factor (:func:`schedule_factor`).
    - ``frozen``: parameters that do not train (``("v",)``: V stays at V0); their learning rate
      is ignored.
    - ``train_step``: ``f(model, batch, state) -> (loss, outputs)`` replacing the default step
      (zero_grad, forward, the cell's loss, backward, ``optimizer.step()``); ``model`` is a
      :class:`bench_suite.model.TwoLayerNet`, ``batch`` = (x, y), ``state`` a
      :class:`bench_suite.train.reference.StepState` (optimizer, loss function, step
      counters, W0, V0, radius, a ``memory`` dict kept in checkpoints); it returns the batch's
      mean loss and outputs (B, K) before its update. The projection runs after it.
    - ``train_defaults``: training settings for this method's cells (``TrainConfig`` fields, or ``lr`` for both rates),
      applied above the task's defaults and below a profile's and the command line's values.
    - ``trainer_choice``: ``auto`` (the fused engine when the method is expressible there,
      :attr:`trainer`) or ``reference`` (always the reference trainer).
    - ``version``: part of its cells' ids (:meth:`identity`): bump it when a change that the
      declaration does not show moves the method's numbers (bench_suite/grid/versions.py).
    """

    name: str
    description: str
    init: str  # "lecun" | "mirrored_lecun"
    output: str  # "free" | "paired"
    constrained: bool  # project W after every step (onto `projection`, default the Frobenius ball)
    rationale: str = ""
    optimizer: str = "SGD"
    optimizer_settings: Mapping[str, Any] = field(default_factory=dict, hash=False)
    lr_schedule: str | Callable[[int, int], float] = "constant"
    projection: str | Callable | None = None
    frozen: tuple[str, ...] = ()
    train_step: Callable | None = None
    train_defaults: Mapping[str, Any] = field(default_factory=dict, hash=False)
    trainer_choice: str = "auto"
    version: int = 1

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name.strip():
            raise MethodError(f"a method needs a non-empty name, got {name!r}")

        def bad(setting: str, text: str) -> MethodError:
            return MethodError(f"method {name!r}: {setting}: {text}")

        if self.init not in INITS:
            raise bad("init", f"unknown init {self.init!r}; valid: {', '.join(INITS)}")
        if self.output not in OUTPUTS:
            raise bad("output", f"unknown output layer {self.output!r}; valid: {', '.join(OUTPUTS)}")
        if not isinstance(self.constrained, bool):
            raise bad("constrained", f"must be true or false, got {self.constrained!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise bad("version", f"must be an integer >= 1, got {self.version!r}")
        if not isinstance(self.optimizer, str) or not self.optimizer:
            raise bad("optimizer", f"must be the name of a torch.optim optimizer, got {self.optimizer!r}")
        if self.optimizer in _NEEDS_OWN_STEP and self.train_step is None:
            raise bad("optimizer", f"{self.optimizer} needs a closure or sparse gradients, which the default step "
                                   f"does not give: bring a train_step")
        settings = dict(self.optimizer_settings or {})
        object.__setattr__(self, "optimizer_settings", settings)
        for key, value in settings.items():
            if not isinstance(key, str):
                raise bad("optimizer_settings", f"keys must be strings, got {key!r}")
            if key == "lr":
                raise bad("optimizer_settings.lr", "the learning rates are the cell's lr_w (W) and lr_v (V); set "
                                                   "them in train_defaults, a profile or --lr-w/--lr-v")
            if key == "momentum" and self.optimizer == "SGD":
                raise bad("optimizer_settings.momentum", "SGD's momentum is the cell's momentum setting (--momentum, "
                                                         "train_defaults)")
            if isinstance(value, bool) or value is None or isinstance(value, str):
                continue
            numbers = value if isinstance(value, (tuple, list)) else (value,)
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
                raise bad(f"optimizer_settings.{key}", f"must be a finite number (or a tuple of them), got {value!r}")
            if key in _NONNEGATIVE and any(v < 0 for v in numbers):
                raise bad(f"optimizer_settings.{key}", f"must be >= 0, got {value!r}")
            if key == "betas" and not (len(numbers) == 2 and all(0 <= v < 1 for v in numbers)):
                raise bad("optimizer_settings.betas", f"must be two numbers in [0, 1), got {value!r}")
        if not (callable(self.lr_schedule) or self.lr_schedule in SCHEDULES):
            raise bad("lr_schedule", f"unknown schedule {self.lr_schedule!r}; valid: {', '.join(SCHEDULES)} or a "
                                     f"function (step, total_steps) -> factor")
        if self.projection is not None:
            if not (callable(self.projection) or self.projection in PROJECTIONS):
                raise bad("projection", f"unknown projection {self.projection!r}; valid: {', '.join(PROJECTIONS)} "
                                        f"or a function (w, w0, radius) -> w")
            if not self.constrained:
                raise bad("projection", "given, but constrained is false (set constrained=True to project)")
        frozen = (self.frozen,) if isinstance(self.frozen, str) else tuple(self.frozen)
        object.__setattr__(self, "frozen", frozen)
        for p in frozen:
            if p not in PARAMETERS:
                raise bad("frozen", f"unknown parameter {p!r}; valid: w (hidden weights), v (output weights)")
        if set(frozen) == set(PARAMETERS):  # a training step has nothing else to train either
            raise bad("frozen", "both W and V are frozen: nothing would train")
        if "w" in frozen and self.constrained:
            raise bad("frozen", "W is frozen, so there is nothing to project: set constrained=False")
        if self.train_step is not None and not callable(self.train_step):
            raise bad("train_step", f"must be a function (model, batch, state) -> (loss, outputs), got "
                                    f"{self.train_step!r}")
        if self.trainer_choice not in TRAINERS:
            raise bad("trainer_choice", f"unknown {self.trainer_choice!r}; valid: {', '.join(TRAINERS)}")
        defaults = dict(self.train_defaults or {})
        if "lr" in defaults:  # as --lr and run(train={"lr": ...}): both learning rates
            lr = defaults.pop("lr")
            if {"lr_w", "lr_v"} & set(defaults):
                raise bad("train_defaults", "give lr (both learning rates) or lr_w / lr_v, not both")
            defaults.update(lr_w=lr, lr_v=lr)
        object.__setattr__(self, "train_defaults", defaults)
        unknown = sorted(set(defaults) - set(TrainConfig.field_names()))
        if unknown:
            raise bad("train_defaults", f"unknown setting(s) {', '.join(unknown)}; valid: "
                                        f"{', '.join(TrainConfig.field_names())}")
        try:
            TrainConfig(**defaults)
        except (TypeError, ValueError) as exc:
            raise bad("train_defaults", str(exc)) from None
        if self.optimizer != "SGD" and defaults.get("momentum", 0) != 0:
            raise bad("train_defaults.momentum", f"momentum is SGD's heavy-ball setting; {self.optimizer} takes its "
                                                 f"own (optimizer_settings)")

    # ----- which trainer -----
    @property
    def projection_name(self) -> str:
        """``none``, ``frobenius``, ``per_neuron`` or ``custom:<function name>``."""
        if not self.constrained:
            return "none"
        if callable(self.projection):
            return f"custom:{getattr(self.projection, '__qualname__', type(self.projection).__name__)}"
        return self.projection or "frobenius"

    @property
    def fused_expressible(self) -> bool:
        """Whether the fused engine computes this method: SGD (the cell's momentum) without other
        settings, a constant lr, the Frobenius ball or none, the default step. Frozen parameters
        are a learning rate of 0 there."""
        return (self.optimizer == "SGD" and not self.optimizer_settings and self.lr_schedule == "constant"
                and self.projection_name in ("none", "frobenius") and self.train_step is None)

    @property
    def trainer(self) -> str:
        """``fused`` or ``reference``: the trainer the runner sends this method's cells to."""
        return "fused" if self.trainer_choice == "auto" and self.fused_expressible else "reference"

    # ----- per-cell and torch-side checks -----
    def check_cell(self, width: int, config: TrainConfig) -> None:
        """Conflicts between the method and one cell's settings (no torch): ``MethodError``."""
        try:
            check_width(width, self.output, self.init)
        except ValueError as exc:
            raise MethodError(f"method {self.name!r}: {exc}") from None
        if self.optimizer != "SGD" and config.momentum != 0:
            raise MethodError(f"method {self.name!r}: momentum {config.momentum:g} is SGD's heavy-ball setting; "
                              f"{self.optimizer} takes its own (optimizer_settings): use --momentum 0")
        if self.optimizer == "SGD" and self.optimizer_settings.get("nesterov") and config.momentum <= 0:
            raise MethodError(f"method {self.name!r}: nesterov=True needs SGD momentum > 0 (torch.optim.SGD): "
                              f"give the cells --momentum, e.g. --momentum 0.9")
        if self.optimizer in SINGLE_GROUP_OPTIMIZERS and not self.frozen and config.lr_w != config.lr_v:
            raise MethodError(f"method {self.name!r}: torch.optim.{self.optimizer} takes one parameter group, so "
                              f"one learning rate: set lr_w = lr_v (--lr), not {config.lr_w:g} and {config.lr_v:g}")

    def check_runtime(self) -> None:
        """What needs torch: the optimizer exists in ``torch.optim`` and takes the settings, a
        projection function returns W's shape, a schedule function gives finite factors >= 0.
        Once per method; ``MethodError`` naming the method and the setting."""
        if self.trainer == "fused" or _CHECKED.get(self.name) is self:
            return
        import torch

        name = self.name
        cls = getattr(torch.optim, self.optimizer, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise MethodError(f"method {name!r}: optimizer {self.optimizer!r} is not in torch.optim (torch "
                              f"{torch.__version__}); valid e.g. {', '.join(KNOWN_OPTIMIZERS)}")
        params = inspect.signature(cls.__init__).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = sorted(k for k in self.optimizer_settings if k not in params and not takes_any)
        if unknown:
            valid = ", ".join(k for k in params if k not in ("self", "params", "lr"))
            raise MethodError(f"method {name!r}: optimizer_settings {', '.join(unknown)}: not arguments of "
                              f"torch.optim.{self.optimizer} (valid: {valid})")
        try:
            probe = torch.nn.Parameter(torch.zeros(2, 2))
            sgd = {"momentum": 0.9} if self.optimizer == "SGD" else {}  # the cell's own is checked by check_cell
            cls([probe], lr=1e-3, **{**sgd, **self.optimizer_settings})
        except Exception as exc:  # noqa: BLE001 - torch's checks raise TypeError, ValueError, IndexError, ...
            raise MethodError(f"method {name!r}: optimizer_settings: torch.optim.{self.optimizer} refuses them "
                              f"({' '.join(str(exc).split())})") from None
        if callable(self.projection):
            g = torch.Generator().manual_seed(0)
            w0 = torch.randn(6, 5, generator=g)
            w = w0 + torch.randn(6, 5, generator=g)
            try:
                out = self.projection(w.clone(), w0.clone(), 0.5)
            except Exception as exc:  # noqa: BLE001 - a plug-in's function: its fault in one line
                raise MethodError(f"method {name!r}: projection raised on a 6 x 5 example: {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())}") from None
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (6, 5):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise MethodError(f"method {name!r}: projection returned {got} for a 6 x 5 W; it must return a "
                                  f"tensor of W's shape")
        if callable(self.lr_schedule):
            for step in (0, 9):
                try:
                    factor = float(self.lr_schedule(step, 10))
                except Exception as exc:  # noqa: BLE001 - a plug-in's function
                    raise MethodError(f"method {name!r}: lr_schedule raised at step {step} of 10: "
                                      f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None
                if not (math.isfinite(factor) and factor >= 0):
                    raise MethodError(f"method {name!r}: lr_schedule gave {factor!r} at step {step} of 10; a "
                                      f"factor must be finite and >= 0")
        _CHECKED[name] = self

    # ----- identity -----
    def identity(self) -> str:
        """What its cells' ids carry (``versions.code_version``): ``"<version>-<hash>"``, the hash
        of its declaration (every field but the prose, ``description`` and ``rationale``, and
        ``train_defaults``, which are resolved into each cell's config) and, for a function
        (``train_step``, ``projection``, ``lr_schedule``), of the source file that defines it. So
        a changed declaration or plug-in makes new cells; moving the package's code does not."""
        cached = _IDENTITIES.get(id(self))
        if cached is not None and cached[0] is self:
            return cached[1]
        h = hashlib.sha256()
        for f in fields(self):
            if f.name in _NOT_IDENTITY:
                continue
            value = getattr(self, f.name)
            if callable(value):
                h.update(f"{f.name}=<function>".encode())
                h.update(source_of(value).encode())
            else:
                h.update(f"{f.name}={_stable_repr(value)}".encode())
        identity = f"{self.version}-{h.hexdigest()[:8]}"
        _IDENTITIES[id(self)] = (self, identity)
        return identity


# prose and what each cell's config already holds: not part of a method's identity
_NOT_IDENTITY = ("description", "rationale", "train_defaults", "version")


def _stable_repr(value: Any) -> str:
    """``repr`` with mappings sorted by key (a declaration written in another order is the same)."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {_stable_repr(v)}" for k, v in sorted(value.items())) + "}"
    return repr(value)


_CHECKED: dict[str, Method] = {}
_IDENTITIES: dict[int, tuple[Method, str]] = {}


def source_of(fn: Callable) -> str:
    """The source of the file that defines ``fn`` (its helpers count too), else its own source."""
    try:
        path = inspect.getsourcefile(fn)
        if path:
            with open(path, encoding="utf-8") as fh:
                return fh.read()
    except (TypeError, OSError):
        pass
    try:
        return inspect.getsource(fn)
    except (TypeError, OSError):
        return _code_text(getattr(fn, "__code__", None)) or f"{type(fn).__module__}.{type(fn).__qualname__}"


def _code_text(code: Any) -> str:
    """A stable text of a code object (bytecode, constants, names; nested code objects
    recursively) for functions without a source file (``python -c``, ``exec``): ``repr(fn)``
    holds a memory address, a new cell id every run."""
    if code is None:
        return ""
    consts = [_code_text(c) if hasattr(c, "co_code") else repr(c) for c in code.co_consts]
    return "|".join([code.co_code.hex(), repr(code.co_names), repr(code.co_varnames), *consts])


METHODS: Registry[Method] = Registry("method")

for _method in (
    Method(
        "mli_paired_pgd",
        "the paper: mirrored LeCun init + paired output layer + projected GD (||W-W0||_F <= eps)",
        init="mirrored_lecun", output="paired", constrained=True,
        rationale="the method under test (paper, sections 3-4)",
    ),
    Method(
        "sgd", "LeCun init + free output layer + unconstrained SGD", init="lecun", output="free", constrained=False,
        rationale="the paper's unconstrained baseline: is the constraint needed?",
    ),
    Method(
        "constraint_only", "LeCun init + free output layer + projected GD",
        init="lecun", output="free", constrained=True,
        rationale="the paper's ablation: the constraint alone, without MLI and pairing",
    ),
    Method(
        "no_mirroring",
        "LeCun init (halves not mirrored) + paired output layer + projected GD",
        init="lecun", output="paired", constrained=True,
        rationale="the paper's ablation: pairing without mirroring (f is not 0 at init)",
    ),
    Method(
        "mli_paired_pgd_fixed_v",
        "MLI + paired output layer + projected GD with V frozen at V0: only W trains",
        init="mirrored_lecun", output="paired", constrained=True, frozen=("v",),
        rationale="Theorem 1's setting: its Jacobian J(w; v) treats v as fixed (Theorem 2 trains v)",
    ),
    Method(
        "adam",
        "LeCun init + free output layer + torch.optim.Adam (torch's defaults: lr 1e-3, betas (0.9, 0.999), "
        "eps 1e-8), unconstrained",
        init="lecun", output="free", constrained=False, optimizer="Adam",
        # torch's default lr, as the cell's lr_w = lr_v (so a record says what ran, and --lr-w /
        # a profile change it); momentum 0: Adam's moments are its betas (docs/design.md)
        train_defaults={"lr_w": 1e-3, "lr_v": 1e-3, "momentum": 0.0},
        rationale="the baseline a practitioner would try first",
    ),
    Method(
        "mli_paired_pgd_per_neuron",
        "MLI + paired output layer + projected GD onto per-unit balls ||w_j - w_j0|| <= eps/sqrt(m)",
        init="mirrored_lecun", output="paired", constrained=True, projection="per_neuron",
        rationale="is the Frobenius ball what matters? each unit on its own ball, the same total radius",
    ),
):
    METHODS.add(_method.name, _method)

# the methods this package defines
BUILTIN_METHODS = frozenset(METHODS.names())
