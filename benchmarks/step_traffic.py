#!/usr/bin/env python
"""Memory traffic of one engine step, counted op by op, and the time it implies on a GPU.

Runs one SGD step of the fused engine (``bench_suite.train.engine.step._FusedEngine.step``) on the CPU
with CUDA's code path (fold decisions on the device, the X·W0ᵀ table as on CUDA) and records
every aten operator it calls (``TorchDispatchMode``). Per operator it charges, as a model of a
GPU kernel that streams its operands once: the tensors it reads (its inputs; only the selected
rows for ``index_select``, the source for ``copy_``) and the tensors it writes (its outputs, the
mutated operand of an in-place op). Views cost nothing and are not kernels. The per-step traffic
does not depend on n (only batch rows of X and of the table are read), so a small n stands in
for the task's. At the paper shapes (the default: d 3072, batch 128, widths 1024/2048/4096 x
relu/tanh, mli_paired_pgd, momentum 0.9)::

    python benchmarks/step_traffic.py                # the markdown table of docs/performance.md
    python benchmarks/step_traffic.py --json out.json

The time model: memory time = bytes / bandwidth; a GEMM takes at least its FLOPs / the peak rate;
a step takes at least the larger of the two for each GEMM plus the other ops' memory time, plus
a per-kernel overhead. It is a model, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import OrderedDict
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# operators that only make a new view of existing memory: no kernel, no traffic
VIEWS = {"t", "transpose", "view", "_unsafe_view", "expand", "slice", "select", "unsqueeze", "squeeze",
         "as_strided", "alias", "detach", "permute", "reshape", "_reshape_alias", "lift_fresh", "unbind", "split"}
GEMMS = {"mm", "addmm", "addmm_", "bmm", "baddbmm", "matmul"}


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class TrafficCounter(TorchDispatchMode):
    """Every aten operator called inside: name, bytes read, bytes written, GEMM FLOPs."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[dict] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.__name__.split(".")[0]
        if name in VIEWS:
            return out
        ins = [t for t in _tensors(list(args)) if isinstance(t, torch.Tensor)]
        outs = list(_tensors(kwargs["out"])) if "out" in kwargs else list(_tensors(out))
        if name.endswith("_") and args and isinstance(args[0], torch.Tensor):
            outs = [args[0]]  # in place: the first operand is read and written
        if name in ("index_select", "gather", "embedding"):
            read = sum(_nbytes(t) for t in outs) + sum(_nbytes(t) for t in ins[1:])
        elif name == "copy_":
            read = _nbytes(args[1])
        elif name in ("fill_", "zero_", "zeros_like", "empty", "empty_like", "ones_like", "full"):
            read = 0
        else:
            read = sum(_nbytes(t) for t in ins) + sum(_nbytes(t) for t in _tensors(list(kwargs.values()))
                                                      if "out" not in kwargs or t is not kwargs["out"])
        flops = 0
        if name in GEMMS:
            a, b = (args[1], args[2]) if name.startswith(("addmm", "baddbmm")) else (args[0], args[1])
            batch = a.shape[0] if a.dim() == 3 else 1
            flops = 2 * batch * a.shape[-2] * a.shape[-1] * b.shape[-1]
        self.ops.append({"op": name, "read": read, "write": sum(_nbytes(t) for t in outs), "flops": flops,
                         "shapes": [list(t.shape) for t in ins[:3]]})
        return out


def paper_engine(widths, activations, d, n, batch, momentum, method="mli_paired_pgd"):
    """A fused engine at these shapes, on the CPU with CUDA's fold path and the X·W0ᵀ table."""
    import os

    from bench_suite.methods import METHODS
    from bench_suite.tasks import TaskData
    from bench_suite.train import CellSpec, TrainConfig
    from bench_suite.train.engine import state as state_module
    from bench_suite.train.engine import step as step_module

    state_module.FOLD_CHECK_STEPS = {}  # decisions on the device, as on CUDA
    os.environ[state_module.P0_TABLE_ENV] = str(1 << 20)  # the table, as on CUDA (8 GiB budget there)
    g = torch.Generator().manual_seed(0)
    data = TaskData(torch.randn(n, d, generator=g), torch.randint(0, 10, (n,), generator=g), 10, True, "traffic")
    cfg = TrainConfig(epochs=1, batch_size=batch, lr_w=0.01, lr_v=0.01, momentum=momentum, loss="ce", eps=1.0,
                      eps_mode="relative", eval_every=1)
    cells = [CellSpec(METHODS.get(method), w, a, cfg, 1) for w in widths for a in activations]
    eng = step_module._FusedEngine(data, cells, batch=batch, device=torch.device("cpu"), norm_tracking="auto")
    return eng, data


def count_step(eng, batch: int) -> list[dict]:
    idx = torch.randperm(eng.n, generator=torch.Generator().manual_seed(1))[:batch]
    eng.step(idx)  # warm-up: step buffers are allocated on the first call
    with torch.no_grad(), TrafficCounter() as counter:
        eng.step(idx)
    return counter.ops


def summarize(ops: list[dict]) -> "OrderedDict[str, dict]":
    """Operators grouped by name, in the order of their first call."""
    rows: OrderedDict[str, dict] = OrderedDict()
    for o in ops:
        row = rows.setdefault(o["op"], {"calls": 0, "read": 0, "write": 0, "flops": 0})
        row["calls"] += 1
        row["read"] += o["read"]
        row["write"] += o["write"]
        row["flops"] += o["flops"]
    return rows


def predicted_time(ops, bandwidth: float, gemm_rate: float, per_kernel_s: float) -> dict:
    """Seconds per step: each GEMM max(bytes / bandwidth, flops / rate), the other ops bytes /
    bandwidth, plus per_kernel_s for every operator (launch or minimum kernel duration)."""
    gemm = sum(max((o["read"] + o["write"]) / bandwidth, o["flops"] / gemm_rate) for o in ops if o["flops"])
    other = sum((o["read"] + o["write"]) / bandwidth for o in ops if not o["flops"])
    return {"gemm_s": gemm, "other_s": other, "kernels": len(ops), "overhead_s": per_kernel_s * len(ops),
            "step_s": gemm + other + per_kernel_s * len(ops)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", default="1024,2048,4096")
    p.add_argument("--activations", default="relu,tanh")
    p.add_argument("--d", type=int, default=3072)
    p.add_argument("--n", type=int, default=512, help="samples (the step's traffic does not depend on it)")
    p.add_argument("--n-task", type=int, default=50_000, help="the task's n, for steps per epoch")
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--bandwidth", type=float, nargs=2, default=[2.6e12, 3.0e12], metavar=("LOW", "HIGH"),
                   help="sustained bytes/s, a range (H100 SXM: 3.35e12 peak; a copy measured ~3.0e12 there)")
    p.add_argument("--fp32-rate", type=float, nargs=2, default=[50e12, 67e12], metavar=("LOW", "HIGH"),
                   help="fp32 GEMM FLOP/s, a range (H100 SXM: 67e12 dense peak)")
    p.add_argument("--tf32-rate", type=float, nargs=2, default=[300e12, 495e12], metavar=("LOW", "HIGH"),
                   help="TF32 GEMM FLOP/s, a range (H100 SXM: 495e12 dense peak)")
    p.add_argument("--per-kernel", type=float, nargs=2, default=[2e-6, 5e-6], metavar=("LOW", "HIGH"),
                   help="seconds per operator beyond its traffic (launch / minimum kernel time), a range")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]
    acts = args.activations.split(",")
    eng, _ = paper_engine(widths, acts, args.d, args.n, args.batch, args.momentum)
    ops = count_step(eng, args.batch)
    big = eng.L.M * args.d * 4
    rows = summarize(ops)
    total = sum(o["read"] + o["write"] for o in ops)
    flops = sum(o["flops"] for o in ops)
    steps = args.epochs * math.ceil(args.n_task / args.batch)
    print(f"M = {eng.L.M} hidden rows, d = {args.d}, batch {args.batch}, momentum {args.momentum}, "
          f"tracking {eng.tracking}, table {'yes' if eng.P0 is not None else 'no'}; an M x d float32 matrix = "
          f"{big / 1e6:.1f} MB\n")
    print("| operator | calls | read MB | written MB |\n|---|---|---|---|")
    for name, r in rows.items():
        print(f"| `{name}` | {r['calls']} | {r['read'] / 1e6:.1f} | {r['write'] / 1e6:.1f} |")
    print(f"| **total** | {len(ops)} | | **{total / 1e6:.0f} MB** ({total / big:.2f} M x d passes) |\n")
    print(f"GEMM FLOPs per step: {flops / 1e9:.2f} GFLOP; steps per repetition: {steps:,}")
    result = {"M": eng.L.M, "d": args.d, "batch": args.batch, "momentum": args.momentum, "tracking": eng.tracking,
              "bytes_per_step": total, "md_bytes": big, "gemm_flops_per_step": flops, "operators": len(ops),
              "steps_per_repetition": steps, "per_operator": rows, "estimates": {}}
    for precision, (low, high) in (("fp32", args.fp32_rate), ("tf32", args.tf32_rate)):
        best = predicted_time(ops, args.bandwidth[1], high, args.per_kernel[0])
        worst = predicted_time(ops, args.bandwidth[0], low, args.per_kernel[1])
        result["estimates"][precision] = {"best": best, "worst": worst}
        print(f"{precision}: GEMMs {best['gemm_s'] * 1e3:.3f}-{worst['gemm_s'] * 1e3:.3f} ms + other ops "
              f"{best['other_s'] * 1e3:.3f}-{worst['other_s'] * 1e3:.3f} ms + {len(ops)} operators x "
              f"{args.per_kernel[0] * 1e6:g}-{args.per_kernel[1] * 1e6:g} us = {best['step_s'] * 1e3:.3f}-"
              f"{worst['step_s'] * 1e3:.3f} ms per step, {best['step_s'] * steps:.0f}-{worst['step_s'] * steps:.0f} "
              f"s per repetition of {steps:,} steps")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
