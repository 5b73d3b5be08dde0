#!/usr/bin/env python
"""The paper's Table 3 grid on one GPU, side by side with a plain PyTorch DataLoader loop.

Part 1, the engine: the ``paper`` profile of ``cifar10_random`` (n = 50,000, d = 3072, widths
1024/2048/4096 x relu/tanh, mli_paired_pgd, 1000 epochs, batch 128), run through
``bench_suite.runner.Runner`` (cells of one repetition are fused into one group), with TF32 by
default. Before it, on CUDA, a small check trains a fused group with and without CUDA graphs
and uses graphs for the grid only when both give the same numbers (``--cuda-graphs auto``).

Part 2, the peer: the same network and optimizer (mirrored LeCun init, paired output layer,
SGD lr 0.1 on both layers, cross-entropy, projection onto ||W - W0||_F <= ||W0||_F after every
step) trained the plain way: a ``torchvision`` ImageFolder over the same images (ToTensor +
Normalize), a ``DataLoader`` with batch 128, one model per (width, activation), for
``--peer-epochs`` epochs (default 2, the first one a warm-up; or ``--peer-steps`` steps per epoch);
its time per step is extrapolated to the grid's epochs and repetitions.

Prints a summary and writes JSON (times, epochs/s, achieved TFLOP/s, the card's name) to
``--out`` (default ``$OUT/gpu_paper_grid.json`` when $OUT is set, else
``results/gpu_paper_grid.json``). The one device call (docs/performance.md)::

    PYTHONPATH=. python3 benchmarks/gpu_paper_grid.py --data-root .data/cifar10-jpeg.zip \\
        --peer-steps 100 --out $OUT/gpu_paper_grid.json

At a small scale it runs on the CPU too (the tests do)::

    python benchmarks/gpu_paper_grid.py --data-root DATA --device cpu --n-train 512 --n-test 256 \\
        --epochs 2 --widths 64 --peer-epochs 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runs from a checkout without `pip install -e .` (the GPU machine)
    sys.path.insert(0, str(ROOT))

# bench_suite is imported inside the functions: asv imports every module of benchmarks/ when it
# discovers the suite, also against older commits of the package

TASK = "cifar10_random"
CUDA_GRAPHS_ENV = "BENCH_SUITE_CUDA_GRAPHS"  # bench_suite.training.CUDA_GRAPHS_ENV
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # the usual CIFAR-10 training-set channel statistics
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", required=True, help="the CIFAR-10 zip (or image folder / batches folder)")
    p.add_argument("--cache-dir", default=None, help="decoded-data cache (default: bench_suite's)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--precision", default="tf32", choices=["fp32", "tf32", "bf16"])
    p.add_argument("--seeds", type=int, default=1, help="repetitions (the paper profile has 3)")
    p.add_argument("--n-train", type=int, default=None, help="training images (default: all 50,000)")
    p.add_argument("--n-test", type=int, default=None, help="test images (default: all 10,000)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the profile's, 1000)")
    p.add_argument("--widths", default=None, help="comma-separated widths (default: 1024,2048,4096)")
    p.add_argument("--activations", default=None, help="comma-separated activations (default: relu,tanh)")
    p.add_argument("--cuda-graphs", default="auto", choices=["auto", "on", "off"],
                   help="auto: check graphs == eager on a small group first, then use them if equal")
    p.add_argument("--peer-epochs", type=int, default=2,
                   help="epochs of the DataLoader peer per cell; the first is not timed when there are more (0: skip)")
    p.add_argument("--peer-steps", type=int, default=None, help="cap on the peer's steps per epoch")
    p.add_argument("--peer-workers", type=int, default=None, help="DataLoader workers (default: min(8, cores))")
    p.add_argument("--peer-dir", default=None, help="where the peer's ImageFolder is extracted (default: temp)")
    p.add_argument("--skip-engine", action="store_true", help="run the peer only")
    p.add_argument("--store", default=None, help="result store of the engine run (default: a temp folder)")
    p.add_argument("--out", default=None, help="JSON output path")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return p.parse_args(argv)


def csv(value: str | None, cast=str) -> list | None:
    return None if value is None else [cast(v) for v in value.split(",") if v.strip()]


def device_info(device: torch.device, precision: str) -> dict[str, Any]:
    info: dict[str, Any] = {"device": str(device), "precision": precision, "torch": torch.__version__,
                            "python": platform.python_version(), "host_cpu": platform.processor() or platform.machine(),
                            "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update({"name": torch.cuda.get_device_name(device), "cuda": torch.version.cuda,
                     "memory_gib": round(props.total_memory / 2**30, 1), "sms": props.multi_processor_count})
    else:
        from bench_suite.provenance import device_name

        info["name"] = device_name(device)
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------ part 1: engine


def check_cuda_graphs(device: torch.device, precision: str) -> dict[str, Any]:
    """Train a small fused group (mixed widths, activations, methods) with and without CUDA
    graphs; their curves must agree (to 1e-4 relative: the same kernels in the same order)."""
    from bench_suite.methods import METHODS
    from bench_suite.tasks import TaskData
    from bench_suite.training import CellSpec, TrainConfig, train_group

    g = torch.Generator().manual_seed(0)
    data = TaskData(torch.randn(700, 96, generator=g), torch.randint(0, 10, (700,), generator=g), 10, True, "check",
                    x_test=torch.randn(100, 96, generator=g), y_test=torch.randint(0, 10, (100,), generator=g))
    cfg = TrainConfig(epochs=4, batch_size=128, lr_w=0.1, lr_v=0.1, loss="ce", eps=0.05, eps_mode="relative",
                      eval_every=2, precision=precision)
    cells = [CellSpec(METHODS.get(m), w, a, cfg, 1) for m, w, a in
             (("mli_paired_pgd", 32, "relu"), ("mli_paired_pgd", 64, "tanh"), ("sgd", 16, "relu"))]
    t0 = time.perf_counter()
    try:
        graphed = train_group(data, cells, order_seed=0, device=device, cuda_graphs=True)
        eager = train_group(data, cells, order_seed=0, device=device, cuda_graphs=False)
    except Exception as exc:  # noqa: BLE001 - report, and run the grid eagerly
        return {"ok": False, "reason": f"{type(exc).__name__}: {exc}"}
    engine = graphed[0].timing.get("engine", "")
    diffs = [abs(a - b) / max(abs(b), 1e-12) for ra, rb in zip(graphed, eager)
             for key in ("train_loss", "eval_train_loss", "dist_w0") for a, b in zip(ra.curves[key], rb.curves[key])]
    # the same kernels in the same order: equal up to cuBLAS choosing another algorithm in capture
    ok = engine.endswith("/graph") and max(diffs) <= 1e-4
    return {"ok": ok, "engine": engine, "max_rel_diff": max(diffs), "seconds": round(time.perf_counter() - t0, 2)}


def run_engine(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from bench_suite import grid as grid_mod
    from bench_suite.runner import Runner
    from bench_suite.store import ResultStore
    from bench_suite.tasks import TASKS

    options = {k: v for k, v in (("n_train", args.n_train), ("n_test", args.n_test)) if v is not None}
    train = {"precision": args.precision}
    if args.epochs is not None:
        train["epochs"] = args.epochs
        train["eval_every"] = min(TASKS.get(TASK).train_defaults["eval_every"], args.epochs)
    cells = grid_mod.expand(TASK, profile="paper", widths=csv(args.widths, int), activations=csv(args.activations),
                            repetitions=list(range(args.seeds)), options=options, train=train)
    store_dir = args.store or tempfile.mkdtemp(prefix="gpu_paper_grid_store_")  # removed at the end
    groups: list[dict[str, Any]] = []
    t_group = [time.perf_counter()]

    def on_group_start(group):
        t_group[0] = time.perf_counter()
        print(f"  group of {len(group)} cells (rep {group[0].repetition}): "
              f"{', '.join(f'{c.activation}/{c.width}' for c in group)}", flush=True)

    runner = Runner(ResultStore(store_dir), device=str(device), data_root=args.data_root, cache_dir=args.cache_dir,
                    force=True, on_group_start=on_group_start)
    t0 = time.perf_counter()
    try:
        summary = runner.run(cells)
    finally:
        if not args.store:
            shutil.rmtree(store_dir, ignore_errors=True)
    wall = time.perf_counter() - t0
    records = [r.to_dict() for r in summary.records]  # plain dicts: the script reads them as JSON
    bad = [r for r in records if r["status"] != "done"]
    if bad:
        raise SystemExit(f"engine run failed: {bad[0]['name']}: {bad[0]['status']}: {bad[0].get('reason')}")
    by_id = {r["cell_id"]: r for r in records}
    by_group: dict[tuple, list[dict]] = {}
    for cell in cells:
        by_group.setdefault(cell.group_key(), []).append(by_id[cell.cell_id])
    total_time = total_flops = 0.0
    for recs in by_group.values():
        t = recs[0]["timing"]
        flops = sum(r["timing"]["flops"] for r in recs)
        total_time += t["train_time_s"]
        total_flops += flops
        groups.append({"cells": len(recs), "train_time_s": round(t["train_time_s"], 3),
                       "epochs": t["epochs"], "epochs_per_s": round(t["epochs"] / t["train_time_s"], 3),
                       "tflops_per_s": round(t["group_tflops_per_s"], 3), "engine": t.get("engine")})
    shape = records[0]["shape"]
    epochs = records[0]["timing"]["epochs"]
    return {
        "task": TASK, "profile": "paper", "cells": len(cells), "groups": len(groups), "seeds": args.seeds,
        "n_train": shape["n"], "d": shape["d"], "widths": sorted({c.width for c in cells}),
        "activations": sorted({c.activation for c in cells}), "epochs": epochs, "batch_size": cells[0].train.batch_size,
        "train_time_s": round(total_time, 3), "wall_time_s_incl_data": round(wall, 3),
        "epochs_per_s": round(epochs * len(groups) / total_time, 4),
        "flops": total_flops, "tflops_per_s": round(total_flops / total_time / 1e12, 3),
        "per_group": groups,
        "final": [{"name": r["name"], "train_acc": r["final"]["train_acc"], "train_loss": r["final"]["train_loss"],
                   "test_acc": r["final"]["test_acc"], "dist_w0": r["final"]["dist_w0"],
                   "proj_active_frac": r["final"]["proj_active_frac"]} for r in records],
        "store": args.store,
    }


# ------------------------------------------------------------------------------ part 2: peer


class RandomLabels(torch.utils.data.Dataset):
    """An image dataset with its labels replaced (random labels, as in the task)."""

    def __init__(self, base, labels: torch.Tensor) -> None:
        self.base, self.labels = base, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image, _ = self.base[i]
        return image, int(self.labels[i])


def extract_image_folder(zip_path: Path, dest: Path, n: int) -> Path:
    """``train/<class>/<image>`` members of the zip, ``n`` of them taken round-robin over the
    classes (so every class folder has images), extracted to ``dest/train``."""
    with zipfile.ZipFile(zip_path) as zf:
        by_class: dict[str, list[zipfile.ZipInfo]] = {}
        for info in zf.infolist():
            parts = info.filename.split("/")
            if len(parts) == 3 and parts[0] == "train" and parts[2] and not info.is_dir():
                by_class.setdefault(parts[1], []).append(info)
        classes = sorted(by_class)
        for c in classes:
            by_class[c].sort(key=lambda i: i.filename)
        chosen: list[zipfile.ZipInfo] = []
        rank = 0
        while len(chosen) < n and any(rank < len(by_class[c]) for c in classes):
            chosen += [by_class[c][rank] for c in classes if rank < len(by_class[c])][: n - len(chosen)]
            rank += 1
        for info in chosen:
            _, cls, name = info.filename.split("/")
            if "/" in name or name.startswith(".") or ".." in cls:
                continue
            target = dest / "train" / cls / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
    return dest / "train"


def peer_dataset(data_root: str, n: int, workdir: Path):
    """The training images as a torchvision dataset with ToTensor + Normalize."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)])
    root = Path(data_root)
    if root.is_dir() and root.name != "cifar-10-batches-py" and not (root / "cifar-10-batches-py").is_dir() \
            and not (root / "batches.meta").exists():
        zips = sorted(root.glob("*.zip"))
        if (root / "train").is_dir():
            base = datasets.ImageFolder(str(root / "train"), transform=tf)
            return torch.utils.data.Subset(base, range(min(n, len(base)))), "ImageFolder (folder)"
        if len(zips) == 1:
            root = zips[0]
    if root.is_file():
        folder = extract_image_folder(root, workdir, n)
        return datasets.ImageFolder(str(folder), transform=tf), f"ImageFolder (extracted from {root.name})"
    tv_root = root.parent if root.name == "cifar-10-batches-py" else root
    base = datasets.CIFAR10(str(tv_root), train=True, transform=tf, download=False)
    return torch.utils.data.Subset(base, range(min(n, len(base)))), "torchvision CIFAR10 (pickle batches)"


def run_peer(args: argparse.Namespace, device: torch.device, engine: dict[str, Any] | None) -> dict[str, Any]:
    from bench_suite.methods import METHODS
    from bench_suite.tasks import TASKS

    task = TASKS.get(TASK)
    defaults = {**task.train_defaults, **task.profiles["paper"].get("train", {})}
    widths = csv(args.widths, int) or task.profiles["paper"]["widths"]
    activations = csv(args.activations) or task.profiles["paper"]["activations"]
    n = args.n_train or 50_000
    workdir = Path(args.peer_dir) if args.peer_dir else Path(tempfile.mkdtemp(prefix="gpu_paper_grid_peer_"))
    workers = args.peer_workers if args.peer_workers is not None else min(8, os.cpu_count() or 1)
    try:
        t0 = time.perf_counter()
        base, kind = peer_dataset(args.data_root, n, workdir)
        prep_s = time.perf_counter() - t0
        n = len(base)
        labels = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(0))
        dataset = RandomLabels(base, labels)
        loader = torch.utils.data.DataLoader(dataset, batch_size=defaults["batch_size"], shuffle=True,
                                             num_workers=workers, pin_memory=device.type == "cuda",
                                             persistent_workers=workers > 0, drop_last=False)
        steps_full = math.ceil(n / defaults["batch_size"])
        per_cell = []
        method = METHODS.get("mli_paired_pgd")
        for activation in activations:
            for width in widths:
                per_cell.append(train_peer_cell(loader, device, width, activation, method, defaults, args, steps_full))
                c = per_cell[-1]
                print(f"  peer {activation}/{width}: {c['epoch_time_s']:.2f} s/epoch "
                      f"({c['steps_timed']} steps timed, {c['tflops_per_s']:.3f} TFLOP/s)", flush=True)
    finally:
        if not args.peer_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    epochs = engine["epochs"] if engine else (args.epochs or defaults["epochs"])
    grid_time = sum(c["epoch_time_s"] for c in per_cell) * epochs * args.seeds
    return {"dataset": kind, "n_train": n, "workers": workers, "batch_size": defaults["batch_size"],
            "transform": "ToTensor + Normalize", "prep_s": round(prep_s, 2), "per_cell": per_cell,
            "epochs_extrapolated": epochs, "seeds": args.seeds, "grid_time_s_extrapolated": round(grid_time, 2),
            "epochs_per_s_per_cell": round(1 / statistics.mean(c["epoch_time_s"] for c in per_cell), 4)}


def train_peer_cell(loader, device, width, activation, method, defaults, args, steps_full) -> dict[str, Any]:
    """The plain loop: model, optimizer, DataLoader, backward, step, projection."""
    from bench_suite.model import TwoLayerNet
    from bench_suite.projection import project_frobenius_ball
    from bench_suite.training import step_flops

    model = TwoLayerNet(3072, width, 10, activation, init=method.init, output=method.output,
                        generator=torch.Generator().manual_seed(1)).to(device)
    opt = torch.optim.SGD([{"params": [model.w], "lr": defaults["lr_w"]},
                           {"params": [model.v], "lr": defaults["lr_v"]}])
    w0 = model.w.detach().clone()
    radius = defaults["eps"] * (float(torch.linalg.vector_norm(w0)) if defaults["eps_mode"] == "relative" else 1.0)
    step_times: list[float] = []
    steps_per_epoch = []
    for _ in range(args.peer_epochs):
        sync(device)
        t0, steps, seen = time.perf_counter(), 0, 0
        for xb, yb in loader:
            xb = xb.to(device, non_blocking=True).flatten(1)
            yb = yb.to(device, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.w.copy_(project_frobenius_ball(model.w, w0, radius))
            steps += 1
            seen += xb.shape[0]
            if args.peer_steps and steps >= args.peer_steps:
                break
        sync(device)
        step_times.append((time.perf_counter() - t0) / steps)
        steps_per_epoch.append(steps)
    # the first epoch includes start-up (workers, cuBLAS): time the later ones when there are any
    per_step = statistics.median(step_times[1:] if len(step_times) > 1 else step_times)
    epoch_time = per_step * steps_full
    flops = step_flops(defaults["batch_size"], 3072, width, 10, method.output) * steps_full
    return {"width": width, "activation": activation, "steps_timed": sum(steps_per_epoch),
            "step_time_ms": round(per_step * 1e3, 3), "epoch_time_s": round(epoch_time, 3),
            "tflops_per_s": flops / epoch_time / 1e12}


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from bench_suite.runner import resolve_device

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    info = device_info(device, args.precision)
    print(f"device: {info.get('name')} ({device}), torch {torch.__version__}, precision {args.precision}", flush=True)
    command = [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
    result: dict[str, Any] = {"command": " ".join(command), "device": info,
                              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if device.type == "cuda" and args.cuda_graphs != "off":
        check = check_cuda_graphs(device, args.precision) if args.cuda_graphs == "auto" else {"ok": True}
        result["cuda_graph_check"] = check
        use = check["ok"] or args.cuda_graphs == "on"
        print(f"cuda graphs: {'on' if use else 'off'} (check: {check})", flush=True)
    else:
        use = False
    os.environ[CUDA_GRAPHS_ENV] = "1" if use else "0"

    out = Path(args.out) if args.out else (Path(os.environ["OUT"]) / "gpu_paper_grid.json" if os.environ.get("OUT")
                                            else ROOT / "results" / "gpu_paper_grid.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:  # after each part, so a run stopped by a time limit keeps what it measured
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")

    write()
    engine = None
    if not args.skip_engine:
        print("engine: the paper grid", flush=True)
        engine = run_engine(args, device)
        result["engine"] = engine
        print(f"engine: {engine['cells']} cells in {engine['groups']} group(s), {engine['epochs']} epochs, "
              f"{engine['train_time_s']:.1f} s training ({engine['wall_time_s_incl_data']:.1f} s with data), "
              f"{engine['epochs_per_s']:.3f} group-epochs/s, {engine['tflops_per_s']:.2f} TFLOP/s", flush=True)
        write()
    if args.peer_epochs > 0:
        print("peer: torchvision DataLoader loop", flush=True)
        peer = run_peer(args, device, engine)
        result["peer"] = peer
        print(f"peer: {peer['grid_time_s_extrapolated']:.1f} s for the same grid (extrapolated from "
              f"{sum(c['steps_timed'] for c in peer['per_cell'])} timed steps)", flush=True)
        if engine:
            result["speedup_vs_peer"] = round(peer["grid_time_s_extrapolated"] / engine["train_time_s"], 2)
            print(f"speedup of the engine over the DataLoader loop: {result['speedup_vs_peer']}x", flush=True)
    write()
    print(f"wrote {out}", flush=True)
    return result


if __name__ == "__main__":
    main()
