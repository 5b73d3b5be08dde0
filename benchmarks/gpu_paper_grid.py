#!/usr/bin/env python
"""The paper's Table 3 grid on one GPU, side by side with two plain PyTorch loops.

Part 1, the engine: the ``paper`` profile of ``cifar10_random`` (n = 50,000, d = 3072, widths
1024/2048/4096 x relu/tanh, mli_paired_pgd, 1000 epochs, batch 128, SGD lr 0.01 with momentum
0.9 on both layers), run through ``bench_suite.runner.runner.Runner`` (cells of one repetition are
fused into one group), with TF32 by default. Before it, on CUDA, ``bench_suite.diagnostics.doctor.graph_check``
trains small fused groups with and without CUDA graphs (more steps per epoch than the largest
fold cadence, folds inside the captured epoch, momentum 0.9, both norm-tracking paths) and the
grid uses graphs only when both give the same numbers (``--cuda-graphs auto``). A group whose
fused run failed and was trained cell by cell (the runner says so) is timed as the sum of its
cells' times and flagged ``fallback``. The JSON is rewritten after every group.

Part 2, the peers, with the engine's optimizer (the task's lr, momentum 0.9, cross-entropy,
projection onto ||W - W0||_F <= eps||W0||_F after every step) and precision (TF32 or bf16
autocast as the engine), one ``TwoLayerNet`` per (width, activation):

- ``resident``: what a strong user writes: the task's data resident on the device as tensors,
  batches by index from a ``randperm`` on the device, plain autograd, ``torch.optim.SGD``;
- ``dataloader``: a ``torchvision`` ImageFolder over the same images (ToTensor + Normalize)
  and a ``DataLoader`` with batch 128 (``--peer-workers`` workers, pinned memory on CUDA).

Each peer runs ``--peer-epochs`` epochs per cell (default 2, the first one a warm-up; or
``--peer-steps`` steps per epoch); its time per step is extrapolated to the grid's epochs and
repetitions. Prints a summary and writes JSON (times, epochs/s, achieved TFLOP/s, both ratios,
the card's name) to ``--out`` (default ``$OUT/gpu_paper_grid.json`` when $OUT is set, else
``results/gpu_paper_grid.json``). The one device call is in docs/performance.md; at a small
scale the script runs on the CPU too (the tests do)::

    python benchmarks/gpu_paper_grid.py --data-root DATA --device cpu --n-train 512 --n-test 256 \\
        --epochs 2 --widths 64 --peer-epochs 1
"""

from __future__ import annotations

import argparse
import contextlib
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
CUDA_GRAPHS_ENV = "BENCH_SUITE_CUDA_GRAPHS"  # bench_suite.train.CUDA_GRAPHS_ENV
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
    p.add_argument("--peers", default="resident,dataloader", help="which peers to run (comma-separated)")
    p.add_argument("--peer-dir", default=None, help="where the peer's ImageFolder is extracted (default: temp)")
    p.add_argument("--skip-engine", action="store_true", help="run the peers only")
    p.add_argument("--engine-store", default=None, metavar="STORE",
                   help="take the engine's numbers from the paper-profile records in this store (a `run "
                        "--profile paper` made them) instead of training the grid again")
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
        from bench_suite.runner.provenance import device_name

        info["name"] = device_name(device)
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------ part 1: engine


def check_cuda_graphs(device: torch.device, precision: str) -> dict[str, Any]:
    """``bench_suite.diagnostics.doctor.graph_check``: graphed epochs equal eager ones on groups that cover
    what the grid runs."""
    from bench_suite.diagnostics.doctor import OK, graph_check

    check = graph_check(device, precision)
    return {"ok": check.status == OK, "status": check.status, "detail": check.detail}


def group_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Time, rate and path of one fused group from its cells' records. A group that fell back to
    training its cells one by one (``timing.fallback``) took the sum of their times."""
    timings = [r["timing"] for r in records]
    fallback = next((t["fallback"] for t in timings if t.get("fallback")), None)
    seconds = sum(t["train_time_s"] for t in timings) if fallback else timings[0]["train_time_s"]
    flops = sum(t["flops"] for t in timings)
    epochs = max(t["epochs"] for t in timings)
    out = {"cells": len(records), "train_time_s": round(seconds, 3), "epochs": epochs,
           "epochs_per_s": round(epochs / seconds, 3) if seconds > 0 else None, "flops": flops,
           "tflops_per_s": round(flops / seconds / 1e12, 4) if seconds > 0 else None,
           "engine": sorted({t.get("engine") for t in timings})}
    if fallback:
        out["fallback"] = fallback
    return out


def run_engine(args: argparse.Namespace, device: torch.device, on_update=None) -> dict[str, Any]:
    """The paper grid through the Runner; ``on_update(partial)`` after every group."""
    from bench_suite import grid as grid_mod
    from bench_suite.runner.runner import Runner
    from bench_suite.store.result_store import ResultStore
    from bench_suite.tasks import TASKS

    options = {k: v for k, v in (("n_train", args.n_train), ("n_test", args.n_test)) if v is not None}
    train = {"precision": args.precision}
    if args.epochs is not None:
        train["epochs"] = args.epochs
        train["eval_every"] = min(TASKS.get(TASK).train_defaults["eval_every"], args.epochs)
    cells = grid_mod.expand(TASK, profile="paper", widths=csv(args.widths, int), activations=csv(args.activations),
                            repetitions=list(range(args.seeds)), options=options, train=train)
    store_dir = args.store or tempfile.mkdtemp(prefix="gpu_paper_grid_store_")  # removed at the end
    group_of = {c.cell_id: c.group_key() for c in cells}
    members: dict[tuple, list[str]] = {}
    for c in cells:
        members.setdefault(c.group_key(), []).append(c.cell_id)
    records: dict[str, dict[str, Any]] = {}
    groups: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def summary(final: bool) -> dict[str, Any]:
        done = list(groups)
        total_time = sum(g["train_time_s"] for g in done)
        total_flops = sum(g["flops"] for g in done)
        recs = list(records.values())
        first = recs[0] if recs else None
        epochs = max((g["epochs"] for g in done), default=0)
        return {
            "task": TASK, "profile": "paper", "cells": len(cells), "groups": len(members), "groups_done": len(done),
            "complete": final, "seeds": args.seeds,
            "n_train": first["shape"]["n"] if first else None, "d": first["shape"]["d"] if first else None,
            "widths": sorted({c.width for c in cells}), "activations": sorted({c.activation for c in cells}),
            "epochs": epochs, "batch_size": cells[0].train.batch_size, "momentum": cells[0].train.momentum,
            "train_time_s": round(total_time, 3), "wall_time_s_incl_data": round(time.perf_counter() - t0, 3),
            "epochs_per_s": round(sum(g["epochs"] for g in done) / total_time, 4) if total_time else None,
            "flops": total_flops, "tflops_per_s": round(total_flops / total_time / 1e12, 4) if total_time else None,
            "fallbacks": sum(1 for g in done if g.get("fallback")),
            "per_group": done,
            "final": [{"name": r["name"], "status": r["status"], "train_acc": (r.get("final") or {}).get("train_acc"),
                       "train_loss": (r.get("final") or {}).get("train_loss"),
                       "test_acc": (r.get("final") or {}).get("test_acc"),
                       "dist_w0": (r.get("final") or {}).get("dist_w0"),
                       "proj_active_frac": (r.get("final") or {}).get("proj_active_frac")} for r in recs],
            "store": args.store,
        }

    def on_record(rec) -> None:
        record = rec.to_dict()  # plain dicts: the script reads them as JSON
        records[record["cell_id"]] = record
        key = group_of.get(record["cell_id"])
        if key is not None and all(cid in records for cid in members[key]):
            group = group_summary([records[cid] for cid in members[key]])
            groups.append(group)
            note = f" (FALLBACK: {group['fallback']})" if group.get("fallback") else ""
            print(f"  group done: {group['cells']} cells, {group['train_time_s']:.1f} s, "
                  f"{group['tflops_per_s']} TFLOP/s, {', '.join(group['engine'])}{note}", flush=True)
            if on_update is not None:
                on_update(summary(False))

    def on_group_start(group):
        print(f"  group of {len(group)} cells (rep {group[0].repetition}): "
              f"{', '.join(f'{c.activation}/{c.width}' for c in group)}", flush=True)

    runner = Runner(ResultStore(store_dir), device=str(device), data_root=args.data_root, cache_dir=args.cache_dir,
                    force=True, on_group_start=on_group_start, on_record=on_record)
    try:
        result = runner.run(cells)
    finally:
        if not args.store:
            shutil.rmtree(store_dir, ignore_errors=True)
    bad = [r.to_dict() for r in result.records if r.status != "done"]
    if bad:
        raise SystemExit(f"engine run failed: {bad[0]['name']}: {bad[0]['status']}: {bad[0].get('reason')}")
    return summary(True)


def engine_from_store(store_dir: str) -> dict[str, Any]:
    """The engine's numbers from finished paper-profile records of the task in a store, one fused
    group per (repetition, training schedule), as ``run_engine`` reports them."""
    from bench_suite.store.result_store import ResultStore

    # every finished cell of the task (the store is the grid's own; at a tiny test scale the cells
    # are ad hoc, not the paper profile's)
    recs = [r.to_dict() for r in ResultStore(store_dir).records() if r.task == TASK and r.status == "done"]
    if not recs:
        raise SystemExit(f"--engine-store {store_dir}: no finished {TASK} records there")
    by_group: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        key = json.dumps([r["config"]["repetition"], r["config"]["task_options"], r["config"]["train"]],
                         sort_keys=True)
        by_group.setdefault(key, []).append(r)
    groups = [group_summary(g) for g in by_group.values()]
    total_time = sum(g["train_time_s"] for g in groups)
    total_flops = sum(g["flops"] for g in groups)
    return {"task": TASK, "profile": "paper", "from_store": store_dir, "cells": len(recs), "groups": len(groups),
            "groups_done": len(groups), "complete": True, "seeds": len({r["config"]["repetition"] for r in recs}),
            "n_train": recs[0]["shape"]["n"], "d": recs[0]["shape"]["d"],
            "widths": sorted({r["config"]["width"] for r in recs}),
            "activations": sorted({r["config"]["activation"] for r in recs}),
            "epochs": max(g["epochs"] for g in groups), "momentum": recs[0]["config"]["train"]["momentum"],
            "train_time_s": round(total_time, 3), "wall_time_s_incl_data": None,
            "epochs_per_s": round(sum(g["epochs"] for g in groups) / total_time, 4) if total_time else None,
            "flops": total_flops, "tflops_per_s": round(total_flops / total_time / 1e12, 4) if total_time else None,
            "fallbacks": sum(1 for g in groups if g.get("fallback")), "per_group": groups,
            "device_name": recs[0]["provenance"].get("device_name"),
            "final": [{"name": r["name"], "status": r["status"], "train_acc": r["final"]["train_acc"],
                       "train_loss": r["final"]["train_loss"], "test_acc": r["final"]["test_acc"]} for r in recs]}


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


def peer_context(precision: str, device: torch.device):
    """The engine's precision for a peer: TF32 switched as the engine does, bf16 autocast."""
    from bench_suite.train import precision_context

    stack = contextlib.ExitStack()
    stack.enter_context(precision_context(precision, device))
    if precision == "bf16":
        stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
    return stack


def peer_settings(args: argparse.Namespace) -> dict[str, Any]:
    from bench_suite.tasks import TASKS

    task = TASKS.get(TASK)
    defaults = {**task.train_defaults, **task.profiles["paper"].get("train", {})}
    return {"defaults": defaults, "widths": csv(args.widths, int) or task.profiles["paper"]["widths"],
            "activations": csv(args.activations) or task.profiles["paper"]["activations"]}


def peer_model(width: int, activation: str, dim: int, device: torch.device, defaults: dict[str, Any]):
    """(model, optimizer, w0, radius): mirrored LeCun init, paired output layer, the engine's SGD."""
    from bench_suite.methods import METHODS
    from bench_suite.model import TwoLayerNet

    method = METHODS.get("mli_paired_pgd")
    model = TwoLayerNet(dim, width, 10, activation, init=method.init, output=method.output,
                        generator=torch.Generator().manual_seed(1)).to(device)
    opt = torch.optim.SGD([{"params": [model.w], "lr": defaults["lr_w"]},
                           {"params": [model.v], "lr": defaults["lr_v"]}], momentum=defaults["momentum"])
    w0 = model.w.detach().clone()
    norm = float(torch.linalg.vector_norm(w0.double())) if defaults["eps_mode"] == "relative" else 1.0
    return model, opt, w0, defaults["eps"] * norm


def timed_epochs(batches, model, opt, w0, radius, device, args, precision) -> tuple[float, int]:
    """(seconds per step, steps timed) over ``--peer-epochs`` epochs of ``batches()`` (an
    iterator per epoch), the first not timed when there are more."""
    from bench_suite.model.projection import project_frobenius_ball

    step_times, steps_timed = [], 0
    for _ in range(args.peer_epochs):
        sync(device)
        t0, steps = time.perf_counter(), 0
        for xb, yb in batches():
            with peer_context(precision, device):
                loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.w.copy_(project_frobenius_ball(model.w, w0, radius))
            steps += 1
            if args.peer_steps and steps >= args.peer_steps:
                break
        sync(device)
        step_times.append((time.perf_counter() - t0) / steps)
        steps_timed += steps
    # the first epoch includes start-up (workers, cuBLAS): time the later ones when there are any
    return statistics.median(step_times[1:] if len(step_times) > 1 else step_times), steps_timed


def _peer_cell(width, activation, per_step, steps_timed, steps_full, batch) -> dict[str, Any]:
    from bench_suite.train import step_flops

    epoch_time = per_step * steps_full
    flops = step_flops(batch, 3072, width, 10, "paired") * steps_full
    return {"width": width, "activation": activation, "steps_timed": steps_timed,
            "step_time_ms": round(per_step * 1e3, 3), "epoch_time_s": round(epoch_time, 3),
            "tflops_per_s": flops / epoch_time / 1e12}


def _peer_total(per_cell: list[dict[str, Any]], epochs: int, seeds: int) -> dict[str, Any]:
    grid_time = sum(c["epoch_time_s"] for c in per_cell) * epochs * seeds
    return {"per_cell": per_cell, "epochs_extrapolated": epochs, "seeds": seeds,
            "grid_time_s_extrapolated": round(grid_time, 2),
            "epochs_per_s_per_cell": round(1 / statistics.mean(c["epoch_time_s"] for c in per_cell), 4)}


def run_resident_peer(args: argparse.Namespace, device: torch.device, engine: dict[str, Any] | None) -> dict[str, Any]:
    """The strong user's loop: the task's own data on the device, batches by index."""
    from bench_suite.grid import expand
    from bench_suite.tasks import TASKS

    st = peer_settings(args)
    defaults = st["defaults"]
    options = {k: v for k, v in (("n_train", args.n_train), ("n_test", args.n_test)) if v is not None}
    cell = expand(TASK, profile="paper", repetitions=[0], options=options)[0]
    t0 = time.perf_counter()
    data = TASKS.get(TASK)().load(dict(cell.options), data_seed=cell.seeds()["data"], data_root=args.data_root,
                                  cache_dir=args.cache_dir).to(device)
    prep_s = time.perf_counter() - t0
    x, y = data.x_train, data.y_train
    n, batch = x.shape[0], defaults["batch_size"]
    steps_full = math.ceil(n / batch)
    gen = torch.Generator(device=device).manual_seed(0) if device.type == "cuda" else torch.Generator().manual_seed(0)

    def batches():
        perm = torch.randperm(n, device=device, generator=gen)
        for s0 in range(0, n, batch):
            idx = perm[s0 : s0 + batch]
            yield x.index_select(0, idx), y.index_select(0, idx)

    per_cell = []
    for activation in st["activations"]:
        for width in st["widths"]:
            model, opt, w0, radius = peer_model(width, activation, x.shape[1], device, defaults)
            per_step, timed = timed_epochs(batches, model, opt, w0, radius, device, args, args.precision)
            per_cell.append(_peer_cell(width, activation, per_step, timed, steps_full, batch))
            c = per_cell[-1]
            print(f"  resident peer {activation}/{width}: {c['epoch_time_s']:.2f} s/epoch "
                  f"({c['steps_timed']} steps timed, {c['tflops_per_s']:.3f} TFLOP/s)", flush=True)
    epochs = engine["epochs"] if engine else (args.epochs or defaults["epochs"])
    return {"kind": "data resident on the device, batches by index, autograd, torch.optim.SGD", "n_train": n,
            "batch_size": batch, "momentum": defaults["momentum"], "lr": [defaults["lr_w"], defaults["lr_v"]],
            "precision": args.precision, "prep_s": round(prep_s, 2), **_peer_total(per_cell, epochs, args.seeds)}


def run_peer(args: argparse.Namespace, device: torch.device, engine: dict[str, Any] | None) -> dict[str, Any]:
    """The DataLoader loop over the same images."""
    st = peer_settings(args)
    defaults = st["defaults"]
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

        def batches():
            for xb, yb in loader:
                yield xb.to(device, non_blocking=True).flatten(1), yb.to(device, non_blocking=True)

        per_cell = []
        for activation in st["activations"]:
            for width in st["widths"]:
                model, opt, w0, radius = peer_model(width, activation, 3072, device, defaults)
                per_step, timed = timed_epochs(batches, model, opt, w0, radius, device, args, args.precision)
                per_cell.append(_peer_cell(width, activation, per_step, timed, steps_full, defaults["batch_size"]))
                c = per_cell[-1]
                print(f"  dataloader peer {activation}/{width}: {c['epoch_time_s']:.2f} s/epoch "
                      f"({c['steps_timed']} steps timed, {c['tflops_per_s']:.3f} TFLOP/s)", flush=True)
    finally:
        if not args.peer_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    epochs = engine["epochs"] if engine else (args.epochs or defaults["epochs"])
    return {"dataset": kind, "n_train": n, "workers": workers, "batch_size": defaults["batch_size"],
            "momentum": defaults["momentum"], "lr": [defaults["lr_w"], defaults["lr_v"]],
            "precision": args.precision, "transform": "ToTensor + Normalize", "prep_s": round(prep_s, 2),
            **_peer_total(per_cell, epochs, args.seeds)}


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from bench_suite.runner.runner import resolve_device

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    info = device_info(device, args.precision)
    print(f"device: {info.get('name')} ({device}), torch {torch.__version__}, precision {args.precision}", flush=True)
    command = [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
    result: dict[str, Any] = {"command": " ".join(command), "device": info,
                              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out = Path(args.out) if args.out else (Path(os.environ["OUT"]) / "gpu_paper_grid.json" if os.environ.get("OUT")
                                            else ROOT / "results" / "gpu_paper_grid.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:  # after every group and part, so a run stopped by a time limit keeps what it measured
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
        os.replace(tmp, out)

    if device.type == "cuda" and args.cuda_graphs != "off":
        check = check_cuda_graphs(device, args.precision) if args.cuda_graphs == "auto" else {"ok": True}
        result["cuda_graph_check"] = check
        use = check["ok"] or args.cuda_graphs == "on"
        print(f"cuda graphs: {'on' if use else 'off'} (check: {check})", flush=True)
    else:
        use = False
    os.environ[CUDA_GRAPHS_ENV] = "1" if use else "0"
    write()
    engine = None
    if args.engine_store:
        engine = result["engine"] = engine_from_store(args.engine_store)
        args.seeds = engine["seeds"]  # the peers are extrapolated to the repetitions the store holds
        print(f"engine (from {args.engine_store}): {engine['cells']} cells in {engine['groups']} group(s), "
              f"{engine['train_time_s']:.1f} s training, {engine['tflops_per_s']} TFLOP/s", flush=True)
        write()
    elif not args.skip_engine:
        print("engine: the paper grid", flush=True)

        def on_update(partial: dict[str, Any]) -> None:
            result["engine"] = partial
            write()

        engine = run_engine(args, device, on_update)
        result["engine"] = engine
        print(f"engine: {engine['cells']} cells in {engine['groups']} group(s), {engine['epochs']} epochs, "
              f"{engine['train_time_s']:.1f} s training ({engine['wall_time_s_incl_data']:.1f} s with data), "
              f"{engine['epochs_per_s']:.3f} group-epochs/s, {engine['tflops_per_s']:.2f} TFLOP/s"
              + (f", {engine['fallbacks']} group(s) FELL BACK to one cell at a time" if engine["fallbacks"] else ""),
              flush=True)
        write()
    peers = [p for p in (csv(args.peers) or []) if p]
    unknown = sorted(set(peers) - {"resident", "dataloader"})
    if unknown:
        raise SystemExit(f"--peers: unknown peer(s) {', '.join(unknown)}; choose from resident, dataloader")
    if args.peer_epochs > 0:
        for name, fn, key in (("resident", run_resident_peer, "resident_peer"), ("dataloader", run_peer, "peer")):
            if name not in peers:
                continue
            print(f"peer: {name} loop", flush=True)
            peer = fn(args, device, engine)
            result[key] = peer
            print(f"{name} peer: {peer['grid_time_s_extrapolated']:.1f} s for the same grid (extrapolated from "
                  f"{sum(c['steps_timed'] for c in peer['per_cell'])} timed steps)", flush=True)
            if engine:
                ratio = round(peer["grid_time_s_extrapolated"] / engine["train_time_s"], 2)
                result["speedup_vs_peer" if name == "dataloader" else "speedup_vs_resident_peer"] = ratio
                print(f"the {name} peer takes {ratio}x the engine's time", flush=True)
            write()
    write()
    print(f"wrote {out}", flush=True)
    return result


if __name__ == "__main__":
    main()
