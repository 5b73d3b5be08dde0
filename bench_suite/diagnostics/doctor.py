"""``python -m bench_suite doctor``: is this device fit to run the paper's grids, and how long will they take?

About a minute on any device. One line per check, then a summary; exit code 1 on any mismatch
(0 otherwise; skipped checks do not fail). The checks (tolerances are our choice, stated in
each line):

- versions, the device's name and memory, and on CUDA that this process is pinned to the device
  it was given (``torch.cuda.current_device()``; a worker on any GPU but the first must be);
- the fused engine against a plain autograd loop (``x @ W.T``, ``torch.autograd``, SGD with
  momentum, exact projection after each step), one small problem per method, in float64 where
  the device has it (else float32 at a looser tolerance);
- the fused engine against the reference trainer (``bench_suite/diagnostics/oracle.py``: every built-in
  method the engine runs, every activation, momentum 0 and 0.9, full batch and mini-batches,
  labels and regression targets), in float64 where the device has it;
- a fused group against its cells trained alone; and in float32 on a chaotic case (the
  synthetic ablation's default job, 300 steps): equal bit for bit on the CPU, the measured
  spread on a GPU (docs/design.md, "Same cell, same number");
- the fold path at a tight radius with the fold decisions CUDA makes (on the device), against
  the same loop; a blown-up net is ``diverged``, not ``done``;
- CUDA only: CUDA-graph epochs against eager ones on a group that covers what the paper grid
  runs (more steps per epoch than the largest fold cadence, folds inside the captured epoch,
  momentum 0.9, both norm-tracking paths);
- tf32 and bf16 against fp32;
- the measured step rate, and from it an estimate of each profile's grid time on this device.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from dataclasses import dataclass
from typing import Any, Callable

OK, FAIL, SKIP = "ok", "FAIL", "skipped"


@dataclass
class Check:
    name: str
    status: str  # ok | FAIL | skipped
    detail: str

    def line(self) -> str:
        return f"[{self.status}] {self.name}: {self.detail}"


# ------------------------------------------------------------------------------------------
# small problems and the plain reference loop
# ------------------------------------------------------------------------------------------
def _classification(n: int, d: int, k: int, seed: int, dtype, device):
    import torch

    from ..data.contract import TaskData

    g = torch.Generator().manual_seed(seed)
    return TaskData(torch.randn(n, d, generator=g).to(dtype), torch.randint(0, k, (n,), generator=g), k, True,
                    "doctor", x_test=torch.randn(n // 4, d, generator=g).to(dtype),
                    y_test=torch.randint(0, k, (n // 4,), generator=g)).to(device)


def _spec(method: str, width: int, activation: str, **cfg):
    from ..methods import METHODS
    from ..train import CellSpec, TrainConfig

    base = dict(epochs=3, batch_size=8, lr_w=0.3, lr_v=0.2, loss="ce", eps=0.3, eps_mode="absolute", eval_every=3)
    return CellSpec(METHODS.get(method), width, activation, TrainConfig(**{**base, **cfg}), 1)


def reference_loop(data, cell, order_seed: int) -> tuple[list[float], Any, Any]:
    """One cell the textbook way (autograd, SGD with momentum, exact projection after each step):
    (running loss per epoch, final W, final V). The sample orders are the engine's (one
    ``randperm`` per epoch from a CPU generator seeded with ``order_seed``)."""
    import torch
    import torch.nn.functional as F

    from ..model import hidden_features, init_weights
    from ..model.projection import project_frobenius_ball

    cfg, m = cell.config, cell.method
    x, y = data.x_train, data.y_train
    n, d = x.shape
    init = init_weights(cell.width, d, data.num_outputs, m.init, m.output,
                        torch.Generator().manual_seed(cell.init_seed))
    w0 = init.w.to(x.dtype).to(x.device)
    w = w0.clone().requires_grad_(True)
    v = init.v.to(x.dtype).to(x.device).clone().requires_grad_(True)
    radius = cfg.eps * float(torch.linalg.vector_norm(init.w.double())) if cfg.eps_mode == "relative" else cfg.eps
    bw, bv = torch.zeros_like(w), torch.zeros_like(v)
    batch = n if cfg.batch_size is None else min(cfg.batch_size, n)
    gen = torch.Generator().manual_seed(order_seed)
    running = []
    for _ in range(cfg.epochs):
        perm = None if batch >= n else torch.randperm(n, generator=gen).to(x.device)
        total = 0.0
        for s in range(0, n, batch):
            idx = torch.arange(n, device=x.device) if perm is None else perm[s : s + batch]
            out = hidden_features(x[idx] @ w.T, cell.activation, m.output) @ v
            loss = F.cross_entropy(out, y[idx])
            gw, gv = torch.autograd.grad(loss, [w, v])
            total += loss.item() * len(idx)
            with torch.no_grad():
                bw.mul_(cfg.momentum).add_(gw)
                bv.mul_(cfg.momentum).add_(gv)
                w -= cfg.lr_w * bw
                v -= cfg.lr_v * bv
                if m.constrained:
                    w.copy_(project_frobenius_ball(w, w0, radius))
        running.append(total / n)
    return running, w.detach(), v.detach()


def _max_rel(a, b) -> float:
    """The largest relative difference of two results' numbers (an absolute one below 1e-12)."""
    from .oracle import max_rel_diff

    return max_rel_diff(a, b, floor=1e-12)


@contextlib.contextmanager
def device_side_folds():
    """Fold decisions as CUDA makes them (on the device, no host read of s), on any device."""
    from ..train.engine import state

    saved = state.FOLD_CHECK_STEPS
    state.FOLD_CHECK_STEPS = {}
    try:
        yield
    finally:
        state.FOLD_CHECK_STEPS = saved


# ------------------------------------------------------------------------------------------
# checks
# ------------------------------------------------------------------------------------------
def check_versions(device) -> list[Check]:
    import numpy
    import torch

    from ..core.version import __version__
    from ..runner.provenance import device_name

    bits = [f"python {platform.python_version()}", f"torch {torch.__version__}", f"numpy {numpy.__version__}",
            f"bench_suite {__version__}"]
    if torch.version.cuda:
        bits.append(f"CUDA {torch.version.cuda}")
    out = [Check("versions", OK, ", ".join(bits))]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        free, total = torch.cuda.mem_get_info(device)
        out.append(Check("device", OK, f"{torch.cuda.get_device_name(device)} ({device}), compute capability "
                                       f"{props.major}.{props.minor}, {total / 2**30:.1f} GiB, "
                                       f"{free / 2**30:.1f} GiB free"))
        want = device.index if device.index is not None else torch.cuda.current_device()
        current = torch.cuda.current_device()
        out.append(Check("device pinning", OK if current == want else FAIL,
                         f"current device cuda:{current}, asked for cuda:{want}" + (
                             "" if current == want else " (CUDA events and graphs would use the wrong GPU: "
                                                        "set CUDA_VISIBLE_DEVICES or torch.cuda.set_device)")))
    else:
        mem = ""
        with contextlib.suppress(ValueError, OSError, AttributeError):
            mem = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB RAM"
        out.append(Check("device", OK, f"{device_name(device)} ({device}), {os.cpu_count()} cores, "
                                       f"{torch.get_num_threads()} torch threads{mem}"))
        out.append(Check("device pinning", SKIP, f"not CUDA ({device.type})"))
    return out


def _float_dtype(device):
    import torch

    return torch.float32 if device.type == "mps" else torch.float64


def _sgd_methods() -> list[str]:
    """The built-in methods the autograd loop above computes: fused ones without frozen parameters."""
    from ..methods import METHODS
    from .oracle import fused_builtin_methods

    return [m for m in fused_builtin_methods() if not METHODS.get(m).frozen]


def check_reference(device) -> list[Check]:
    """The engine against the autograd loop, one problem per method (fused group of one)."""
    import torch

    from ..train import train_group

    dtype = _float_dtype(device)
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    data = _classification(96, 40, 5, 0, dtype, device)
    out = []
    for i, method in enumerate(_sgd_methods()):
        activation = ("relu", "tanh", "softplus", "gelu")[i % 4]
        cell = _spec(method, 8, activation, momentum=0.9 if i % 2 else 0.0, lr_w=0.1, lr_v=0.1, eps=0.2)
        (res,) = train_group(data, [cell], order_seed=3, device=device, keep_weights=True)
        running, w, v = reference_loop(data, cell, 3)
        diff = max(_max_rel(res.curves["train_loss"], running), _max_rel(res.extra["w"], w),
                   _max_rel(res.extra["v"], v))
        out.append(Check(f"engine = autograd loop, {method}", OK if diff <= tol else FAIL,
                         f"{activation}, momentum {cell.config.momentum:g}, {str(dtype).replace('torch.', '')}: "
                         f"max relative difference {diff:.2g} (tolerance {tol:g})"))
    return out


def check_oracle(device) -> list[Check]:
    """The fused engine against the reference trainer (bench_suite/diagnostics/oracle.py), every built-in
    method it runs, on small problems: one line per case (a fused group of 40 cells)."""
    import torch

    from .oracle import RTOL, run_oracle

    dtype = _float_dtype(device)
    tol = RTOL if dtype == torch.float64 else 1e-4
    out = []
    for label, cells, diff, problems in run_oracle(device=device, dtype=dtype):
        ok = diff <= tol and not problems
        detail = (f"{cells} cells (every activation, momentum 0 and 0.9), {str(dtype).replace('torch.', '')}: max "
                  f"relative difference {diff:.2g} (tolerance {tol:g})")
        if problems:
            detail += f"; {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
        out.append(Check(f"fused engine = reference trainer, {label}", OK if ok else FAIL, detail))
    return out


def check_fused_vs_alone(device) -> Check:
    import torch

    from ..train import train_group

    dtype = _float_dtype(device)
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    data = _classification(96, 40, 5, 1, dtype, device)
    cells = [_spec(m, w, a, lr_w=0.1) for m, w, a in zip(_sgd_methods(), (8, 6, 10, 12), ("relu", "tanh", "relu",
                                                                                          "gelu"))]
    fused = train_group(data, cells, order_seed=5, device=device)
    diff = 0.0
    for cell, res in zip(cells, fused):
        (alone,) = train_group(data, [cell], order_seed=5, device=device)
        for key in ("train_loss", "eval_train_loss", "dist_w0", "test_acc"):
            diff = max(diff, _max_rel(res.curves[key], alone.curves[key]))
    return Check("fused = alone", OK if diff <= tol else FAIL,
                 f"{len(cells)} cells: max relative difference {diff:.2g} (tolerance {tol:g})")


CHAOTIC_STEPS = 300  # past the first loss spike of the default synthetic job (step 222 of repetition 0)


def check_fused_vs_alone_float32(device, steps: int = CHAOTIC_STEPS) -> Check:
    """Same cell, same number, where rounding matters: the synthetic ablation's default job
    (n 1000, d 100, m 20, tanh, lr 0.1, eps 1; its mli_paired_pgd cell oscillates at the edge
    of stability, so one differently rounded sum parts the curves within a few hundred steps)
    in float32, the four methods fused against mli_paired_pgd alone. On the CPU the two must be
    equal bit for bit (the design promises it: docs/design.md, "Same cell, same number"); on a
    GPU they may differ (cuBLAS picks kernels by the fused matrices' shapes) and the line says by
    how much: the step where they part and the relative spread of the final loss and of the
    median over the last 100 steps."""
    import statistics

    from ..tasks import TASKS
    from ..train import train_group

    task = TASKS.get("synthetic_ablation")
    data = task().load(dict(task.options), data_seed=1).to(device)  # float32, as every built-in task
    cfg = {**task.train_defaults, "epochs": steps, "eval_every": steps}
    cells = [_spec(m, 20, "tanh", **cfg) for m in ("mli_paired_pgd", "sgd", "constraint_only", "no_mirroring")]
    fused = train_group(data, cells, order_seed=0, device=device)[0]
    (alone,) = train_group(data, cells[:1], order_seed=0, device=device)
    a, b = fused.curves["train_loss"], alone.curves["train_loss"]
    where = f"float32 on {device.type}, {steps} GD steps, 4 cells fused vs 1 alone"
    if a == b and fused.final["train_loss"] == alone.final["train_loss"]:
        return Check("fused = alone, float32 (chaotic case)", OK, f"{where}: equal bit for bit")
    first = next((i + 1 for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    spread = abs(fused.final["train_loss"] - alone.final["train_loss"]) / abs(alone.final["train_loss"])
    ma, mb = statistics.median(a[-100:]), statistics.median(b[-100:])
    detail = (f"{where}: they part at step {first}; final train loss {fused.final['train_loss']:.4g} vs "
              f"{alone.final['train_loss']:.4g} (relative spread {spread:.2g}), median of the last 100 steps "
              f"{ma:.4g} vs {mb:.4g} ({abs(ma - mb) / abs(mb):.2g})")
    # on the CPU the design promises equality; elsewhere this is a measurement (records say their grouping)
    return Check("fused = alone, float32 (chaotic case)", FAIL if device.type == "cpu" else OK, detail)


def check_folds(device) -> list[Check]:
    """A tight radius with the device-side fold decisions, against the autograd loop."""
    import torch

    from ..tasks import TASKS
    from ..train import train_group

    dtype = _float_dtype(device)
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    out = []
    data = _classification(96, 40, 5, 2, dtype, device)
    cells = [_spec("mli_paired_pgd", 8, "tanh", batch_size=4, eps=1e-4), _spec("constraint_only", 8, "relu",
                                                                               batch_size=4, eps=0.05)]
    with device_side_folds():
        res = train_group(data, cells, order_seed=1, device=device, keep_weights=True)
    diff = 0.0
    for cell, r in zip(cells, res):
        running, w, v = reference_loop(data, cell, 1)
        diff = max(diff, _max_rel(r.curves["train_loss"], running), _max_rel(r.extra["w"], w))
    folds = sum(r.timing["small_folds"] for r in res)
    out.append(Check("fold path at a tight radius", OK if diff <= tol and folds > 0 else FAIL,
                     f"eps 1e-4 and 0.05, device-side fold decisions ({folds} folds, cadences "
                     f"{res[0].timing.get('fold_cadence_segments')}): max relative difference {diff:.2g} "
                     f"(tolerance {tol:g})"))
    # float32 at the synthetic ablation's defaults with eps 1e-4: finite, not "diverged" (issue 13)
    task = TASKS.get("synthetic_ablation")
    x = task().load({"n": 300, "d": 100}, data_seed=1).to(device)
    cfg = {**task.train_defaults, "epochs": 40, "eval_every": 40, "eps": 1e-4}
    cell = _spec("mli_paired_pgd", 20, "tanh", **cfg)
    with device_side_folds():
        (r,) = train_group(x, [cell], order_seed=0, device=device)
    good = r.status == "done" and r.final["dist_w0"] <= 1e-4 * (1 + 1e-5) and 0.5 < r.final["train_loss"] < 2
    out.append(Check("float32 at eps 1e-4", OK if good else FAIL,
                     f"synthetic ablation (n 300): {r.status}, train loss {r.final['train_loss']}, "
                     f"||W - W0|| {r.final['dist_w0']} (radius 1e-4)"))
    (blown,) = train_group(task().load({"n": 50, "d": 10}, data_seed=1).to(device),
                           [_spec("mli_paired_pgd", 4, "tanh", **{**cfg, "lr_w": 1e6, "lr_v": 1e6, "eps": 1.0,
                                                                 "epochs": 50, "eval_every": 50})],
                           order_seed=0, device=device)
    out.append(Check("a blown-up net is diverged", OK if blown.status == "diverged" else FAIL,
                     f"lr 1e6: {blown.status} ({blown.reason})"))
    return out


def graph_check_problem(dtype=None, epochs: int = 5):
    """A problem and fused groups that cover what the paper grid runs under CUDA graphs: 80 steps
    per epoch (more than the largest fold cadence, so masked folds happen inside the captured
    epoch), a tight radius next to a loose one, momentum 0.9 (exact norm tracking) and a group
    without momentum on the low-rank tracking path. Returns (data, [(cells, norm_tracking)])."""
    import torch

    from ..data.contract import TaskData

    g = torch.Generator().manual_seed(0)
    n, d, k = 1280, 160, 10
    dtype = dtype or torch.float32
    data = TaskData(torch.randn(n, d, generator=g).to(dtype), torch.randint(0, k, (n,), generator=g), k, True,
                    "graph check", x_test=torch.randn(200, d, generator=g).to(dtype),
                    y_test=torch.randint(0, k, (200,), generator=g))
    common = dict(epochs=epochs, batch_size=16, loss="ce", eps_mode="absolute", eval_every=epochs)
    momentum = [_spec("mli_paired_pgd", 32, "relu", momentum=0.9, lr_w=0.01, lr_v=0.01, eps=3e-3, **common),
                _spec("mli_paired_pgd", 64, "tanh", momentum=0.9, lr_w=0.01, lr_v=0.01, eps=1.0, **common),
                _spec("sgd", 16, "relu", momentum=0.9, lr_w=0.01, lr_v=0.01, **common)]
    plain = [_spec("constraint_only", 32, "relu", lr_w=0.1, lr_v=0.1, eps=1e-3, **common),
             _spec("mli_paired_pgd", 16, "tanh", lr_w=0.1, lr_v=0.1, eps=0.3, **common)]
    return data, [(momentum, "exact"), (plain, "lowrank")]


def graph_check(device, precision: str = "fp32", tolerance: float = 1e-3) -> Check:
    """CUDA-graph epochs against eager epochs on ``graph_check_problem`` (CUDA only): the same
    kernels in the same order, so equal but for cuBLAS picking other algorithms in capture
    (stated tolerance: ``tolerance`` relative on the curves)."""

    from ..train import train_group

    if device.type != "cuda":
        return Check("CUDA graphs = eager", SKIP, "no CUDA")
    data, groups = graph_check_problem()
    data = data.to(device)
    t0 = time.perf_counter()
    diff, engines, folds, cadences = 0.0, [], 0, set()
    for cells, tracking in groups:
        cells = [type(c)(c.method, c.width, c.activation, c.config.updated(precision=precision), c.init_seed)
                 for c in cells]
        try:
            graphed = train_group(data, cells, order_seed=0, device=device, cuda_graphs=True, norm_tracking=tracking)
            eager = train_group(data, cells, order_seed=0, device=device, cuda_graphs=False, norm_tracking=tracking)
        except Exception as exc:  # noqa: BLE001 - the check reports, the caller decides
            return Check("CUDA graphs = eager", FAIL, f"{type(exc).__name__}: {str(exc)[:200]}")
        engines.append(graphed[0].timing["engine"])
        folds += sum(r.timing["small_folds"] for r in graphed)
        cadences |= set(graphed[0].timing.get("fold_cadence_segments", {}))
        for ra, rb in zip(graphed, eager):
            for key in ("train_loss", "eval_train_loss", "dist_w0", "test_acc"):
                diff = max(diff, _max_rel(ra.curves[key], rb.curves[key]))
    graphed_all = all(e.endswith("/graph") for e in engines)
    ok = graphed_all and diff <= tolerance and folds > 0
    return Check("CUDA graphs = eager", OK if ok else FAIL,
                 f"{', '.join(engines)}; {folds} masked folds inside captured epochs, cadences {sorted(cadences)}: "
                 f"max relative difference {diff:.2g} (tolerance {tolerance:g}), {time.perf_counter() - t0:.1f} s")


def check_precisions(device) -> list[Check]:
    import torch

    from ..train import train_group

    data = _classification(256, 64, 5, 3, torch.float32, device)
    cells = [_spec(m, 16, a, batch_size=32, lr_w=0.1) for m, a in (("mli_paired_pgd", "relu"), ("sgd", "tanh"))]
    ref = train_group(data, cells, order_seed=0, device=device)
    out = []
    # TF32 rounds GEMM inputs to 10 mantissa bits (~5e-4), bf16 to 7 (~4e-3): over 3 epochs of 8
    # steps the curves stay within a few times that (our tolerances)
    for precision, rtol, atol in (("tf32", 1e-2, 1e-3), ("bf16", 5e-2, 1e-2)):
        low = train_group(data, [type(c)(c.method, c.width, c.activation, c.config.updated(precision=precision),
                                         c.init_seed) for c in cells], order_seed=0, device=device)
        worst, largest = 0.0, 0.0
        for a, b in zip(ref, low):
            for x, y in zip(a.curves["train_loss"] + a.curves["eval_train_loss"],
                            b.curves["train_loss"] + b.curves["eval_train_loss"]):
                worst = max(worst, abs(x - y) / (atol + rtol * abs(x)))
                largest = max(largest, abs(x - y))
        note = " (TF32 does nothing off CUDA)" if precision == "tf32" and device.type != "cuda" else ""
        out.append(Check(f"{precision} = fp32", OK if worst <= 1 else FAIL,
                         f"loss curves: max |a - b| = {largest:.2g} (tolerance {atol:g} + {rtol:g}|a|){note}"))
    return out


def measure_rate(device, seconds: float = 3.0) -> tuple[float, str]:
    """FLOP/s of the engine on a fused group of the paper grid's kind (mli_paired_pgd, relu +
    tanh, batch 128, d 3072, momentum 0.9), sized to the device; (rate, what was measured)."""
    import torch

    from ..data.contract import TaskData
    from ..train import train_group

    big = device.type == "cuda"
    n, widths = (8192, (1024, 2048)) if big else (1024, (128, 256))
    g = torch.Generator().manual_seed(0)
    data = TaskData(torch.randn(n, 3072, generator=g), torch.randint(0, 10, (n,), generator=g), 10, True,
                    "rate").to(device)
    cells = [_spec("mli_paired_pgd", w, a, epochs=1, batch_size=128, lr_w=0.01, lr_v=0.01, momentum=0.9,
                   eps=1.0, eps_mode="relative", eval_every=1, precision="tf32" if big else "fp32")
             for w in widths for a in ("relu", "tanh")]
    train_group(data, cells, order_seed=0, device=device)  # warm-up
    epochs, flops, elapsed = 0, 0.0, 0.0
    while elapsed < seconds and epochs < 50:
        res = train_group(data, cells, order_seed=epochs, device=device)
        elapsed += res[0].timing["train_time_s"]
        flops += sum(r.timing["flops"] for r in res)
        epochs += 1
    steps = epochs * math.ceil(n / 128)
    what = (f"{len(cells)} fused cells (M = {2 * sum(widths)}, d 3072, batch 128, momentum 0.9), "
            f"{steps} steps in {elapsed:.1f} s = {steps / elapsed:.1f} steps/s")
    return flops / elapsed, what


def check_rate(device, seconds: float, store: str | None = None) -> list[Check]:
    """The measured step rate, and each profile's estimated time here: the cost model's
    (runner/cost.py, from the earlier runs in ``store``: what ``plan`` and ``list --profiles``
    show), or, where the store has no run on this device, what the rate measured here suggests
    (an upper bound on the speed of small steps, labelled as such)."""
    from ..grid import expand, profile_names
    from ..runner.cost import CostModel, estimate, format_flops, format_seconds
    from ..runner.provenance import device_name as name_of
    from ..store.result_store import ResultStore
    from ..tasks import TASKS

    rate, what = measure_rate(device, seconds)
    out = [Check("step rate", OK, f"{format_flops(rate)}/s: {what}")]
    costs = CostModel(ResultStore(store).records if store is not None else [])
    here = name_of(device)
    for profile in profile_names():
        parts = []
        for task in TASKS.names():
            if profile not in TASKS.get(task).profiles:
                continue
            est = estimate(expand(task, profile=profile, runtime_checks=False), costs, here)
            if est.known:
                text = f"{task} {est.short()}"
            elif est.total_flops:
                guess = format_seconds(est.total_flops / rate)
                text = f"{task} unknown (no earlier run here; the rate above suggests {guess})"
            else:
                text = f"{task} ?"
            if est.unknown_flops:
                text += " (+ cells of unknown size)"
            parts.append(text)
        out.append(Check(f"estimated time, profile {profile}", OK,
                         "; ".join(parts) + f" (the estimate of `plan`/`list --profiles` from {store or 'no store'})"))
    return out


def _device(name: str):
    from ..runner.runner import resolve_device

    return resolve_device(name)


def run_doctor(device: str = "auto", *, rate_seconds: float = 3.0, store: str | None = None,
               emit: Callable[[str], None] = print) -> list[Check]:
    """Run every check on ``device`` (as ``--device`` takes it), printing one line each."""
    dev = _device(device)
    checks: list[Check] = []

    def add(items) -> None:
        for c in items if isinstance(items, list) else [items]:
            checks.append(c)
            emit(c.line())

    t0 = time.perf_counter()
    add(check_versions(dev))
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("engine = autograd loop", lambda: check_reference(dev)),
        ("fused engine = reference trainer", lambda: check_oracle(dev)),
        ("fused = alone", lambda: check_fused_vs_alone(dev)),
        ("fused = alone, float32 (chaotic case)", lambda: check_fused_vs_alone_float32(dev)),
        ("folds", lambda: check_folds(dev)),
        ("CUDA graphs = eager", lambda: graph_check(dev, "tf32")),
        ("precisions", lambda: check_precisions(dev)),
        ("step rate", lambda: check_rate(dev, rate_seconds, store)),
    ]
    for name, fn in steps:
        try:
            add(fn())
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is a failed check
            add(Check(name, FAIL, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"))
    counts = {s: sum(c.status == s for c in checks) for s in (OK, FAIL, SKIP)}
    skipped = "; ".join(f"{c.name}: {c.detail}" for c in checks if c.status == SKIP)
    emit(f"doctor: {counts[OK]} ok, {counts[FAIL]} failed, {counts[SKIP]} skipped"
         + (f" ({skipped})" if skipped else "") + f" on {dev} in {time.perf_counter() - t0:.0f} s")
    return checks


def main(device: str = "auto", rate_seconds: float = 3.0, store: str | None = None) -> int:
    checks = run_doctor(device, rate_seconds=rate_seconds, store=store)
    return 1 if any(c.status == FAIL for c in checks) else 0
