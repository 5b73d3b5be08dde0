"""The markdown report on synthetic records (built here per docs/design.md)."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from bench_suite.core.records import Record, Status, to_frame
from bench_suite.reporting.markdown import write_report
from bench_suite.scoring.checks import run_checks
from bench_suite.scoring.references import load_references


def make_record(task="synthetic_ablation", method="mli_paired_pgd", width=20, activation="tanh", rep=0,
                profile="ci", status="done", reason=None, epochs=40, n=1000, d=100, k=1, final_loss=0.05,
                acc=None, test_acc=None, data_source=None, created="2024-05-01T12:00:00+00:00",
                device="cpu", device_name="x86_64 CPU", commit="0123456789abcdef", dirty=False):
    """One record as docs/design.md defines it, with short synthetic curves."""
    name = f"{task}[method={method},width={width},activation={activation},rep={rep}]"
    classification = acc is not None
    epoch = list(range(1, epochs + 1))
    loss = [1.0 * (final_loss / 1.0) ** (e / epochs) for e in epoch]
    if status == "diverged":
        loss = loss[: epochs // 2] + [math.inf]
        epoch = epoch[: len(loss)]
    eval_epoch = list(range(10, len(epoch) + 1, 10)) or [len(epoch)]
    curves = {
        "epoch": epoch, "train_loss": loss,
        "eval_epoch": eval_epoch, "eval_train_loss": [loss[e - 1] for e in eval_epoch],
        "eval_train_acc": [None] * len(eval_epoch), "test_loss": [None] * len(eval_epoch),
        "test_acc": [None] * len(eval_epoch), "dist_w0": [0.5] * len(eval_epoch),
        "proj_active_frac": [0.0] * len(eval_epoch), "wall_time": [0.01 * e for e in eval_epoch],
    }
    if classification:
        curves["train_acc"] = [acc * e / epochs for e in epoch]
        curves["eval_train_acc"] = [acc * e / epochs for e in eval_epoch]
        curves["test_acc"] = [test_acc for _ in eval_epoch]
    source = data_source or (f"synthetic: x ~ N(0, I_{d}), y ~ N(0, 1), n={n}, seed={rep}")
    return Record(**{
        "protocol": 1,
        "cell_id": _cid(name, profile),
        "name": name,
        "profile": profile,
        "status": Status(status),
        "reason": reason,
        "config": {
            "task": task, "task_options": {"n": n, "d": d}, "method": method, "width": width,
            "activation": activation, "repetition": rep,
            "train": {"epochs": epochs, "batch_size": None, "lr_w": 1.0, "lr_v": 1.0, "momentum": 0.0,
                      "loss": "ce" if classification else "mse", "eps": 1.0, "eps_mode": "absolute",
                      "eval_every": 10, "precision": "fp32"},
        },
        "seeds": {"repetition": rep, "data": 100 + rep, "init": 200 + rep, "order": 300 + rep},
        "shape": {"n": n, "d": d, "m": width, "k": k, "width_ratio": width * d / (2 * n)},
        "curves": curves if status in ("done", "diverged") else {},
        "final": {"train_loss": final_loss if status == "done" else None, "train_acc": acc, "test_loss": None,
                  "test_acc": test_acc, "dist_w0": 0.5, "proj_active_frac": 0.0, "radius": 1.0},
        "timing": {"train_time_s": 2.0, "wall_time_s": 2.1, "epochs": len(epoch), "group_size": 4,
                   "flops": 4.0e9, "group_tflops_per_s": 0.008},
        "w0_digest": "w0", "label_digest": "labels",
        "provenance": {"git_commit": commit, "git_dirty": dirty, "python": "3.11.7", "torch": "2.4.1",
                       "cuda": None, "cudnn": None, "device": device, "device_name": device_name,
                       "precision": "fp32", "tf32_matmul": False, "data_source": source, "data_checksum": None,
                       "protocol": 1, "hostname": "host", "created": created, "code_version": {"engine": 1}},
    })


def _cid(name: str, profile) -> str:
    import hashlib

    return hashlib.sha256(f"{name}|{profile}".encode()).hexdigest()[:16]


LOSSES = {"mli_paired_pgd": 0.01, "no_mirroring": 0.05, "constraint_only": 0.2, "sgd": 0.1}


def sample_records():
    recs = []
    for rep in range(2):
        for method, loss in LOSSES.items():
            recs.append(make_record(method=method, rep=rep, final_loss=loss * (1 + 0.1 * rep),
                                    created=f"2024-05-01T12:0{rep}:00+00:00"))
    for rep in range(2):
        recs.append(make_record(task="cifar10_random", width=1024, activation="relu", rep=rep, n=2000, d=3072,
                                k=10, acc=0.97 + 0.01 * rep, test_acc=0.1 + 0.002 * rep, epochs=30,
                                data_source="CIFAR-10, JPEG re-encoding", created="2024-05-02T08:00:00+00:00"))
    recs.append(make_record(task="cifar10_random", width=2048, activation="relu", rep=0, status="error",
                            reason="CUDA out of memory", n=2000, d=3072, k=10, acc=None))
    recs.append(make_record(method="sgd", width=40, rep=0, status="diverged",
                            reason="training loss became non-finite by epoch 21"))
    return recs


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    recs = sample_records()
    df = to_frame(recs)
    verdicts = run_checks(df, load_references())
    out = tmp_path_factory.mktemp("reports") / "ci-run"
    path = write_report(df, recs, verdicts, out, title="CPU run", note_lines=(
        "CPU-scale results are not comparable with Table 3", "second note"))
    return path, path.read_text(encoding="utf-8"), verdicts, recs, df


def test_report_layout(rendered):
    path, text, *_ = rendered
    assert path.name == "report.md" and path.parent.name == "ci-run"
    lines = text.splitlines()
    assert lines[0] == "# CPU run"
    assert lines[2] == "> CPU-scale results are not comparable with Table 3" and lines[4] == "> second note"
    for heading in ("## Paper values (Table 3 mirror)", "## Ablation: final training loss on `synthetic_ablation`",
                    "## All verdicts", "## Cells: the width condition", "## Time and cost per cell",
                    "## Training curves", "## Provenance"):
        assert heading in lines, heading
    # headings in this order
    order = [text.index(h) for h in ("Table 3 mirror", "## Ablation", "## All verdicts", "## Cells",
                                     "## Time and cost", "## Training curves", "## Provenance")]
    assert order == sorted(order)


def test_table3_mirror_shows_paper_values_and_skipped(rendered):
    _, text, *_ = rendered
    section = text.split("## Paper values (Table 3 mirror)")[1].split("## Ablation")[0]
    assert "### Table 3 (random-labeled CIFAR-10, 1000 epochs)" in section
    assert re.search(r"\| 1024 +\| relu +\| train_acc +\| 0\.9931 +\| — +\| — +\| ±0\.01 +\| SKIPPED", section)
    # paper order: activation, width, train before test
    assert section.index("| 1024    | relu") < section.index("| 4096    | relu") < section.index("| 1024    | tanh")
    assert section.index("train_acc | 0.9931") < section.index("test_acc  | 0.1011")
    # a scaled-down value row is not a paper number: it is not in the mirror
    assert "first principles" not in section and "ci/cifar10_random" not in section


def test_ours_is_mean_ci_and_n(tmp_path):
    recs = [make_record(task="cifar10_random", width=1024, activation="relu", rep=rep, profile="paper", n=2000,
                        d=3072, k=10, acc=a, test_acc=t, epochs=20)
            for rep, (a, t) in enumerate([(0.99, 0.10), (0.995, 0.102), (0.993, 0.099)])]
    recs.append(make_record(task="cifar10_random", width=2048, activation="tanh", rep=0, profile="paper", n=2000,
                            d=3072, k=10, acc=0.97, test_acc=0.1, epochs=20))
    df = to_frame(recs)
    text = write_report(df, recs, run_checks(df, load_references()), tmp_path).read_text()
    mirror = text.split("## Paper values (Table 3 mirror)")[1].split("## Ablation")[0]
    assert re.search(r"\| 1024 +\| relu +\| train_acc +\| 0\.9931 +\| 0\.9927 ± 0\.0063 \(n=3\) +\| -0\.0004 +"
                     r"\| ±0\.01 +\| PASS", mirror)  # CI [0.9864, 0.9990] inside [0.9831, 1.0031]
    assert re.search(r"\| 2048 +\| tanh +\| train_acc +\| 0\.9927 +\| 0\.97 \(n=1, no CI\) +\| -0\.0227 +"
                     r"\| ±0\.01 +\| FAIL", mirror)


def test_ablation_table_and_orderings(rendered):
    _, text, *_ = rendered
    section = text.split("## Ablation")[1].split("## All verdicts")[0]
    assert "`mli_paired_pgd < constraint_only, no_mirroring, sgd`" in section
    assert ("Measured ordering: mli_paired_pgd (0.0105) < no_mirroring (0.0525) < sgd (0.105) < "
            "constraint_only (0.21).") in section
    assert "### profile `ci`, width 20, tanh" in section
    assert "### profile `ci`, width 40, tanh" in section  # the diverged sgd cell
    assert "sgd (diverged)" in section


def test_all_verdicts_and_cells(rendered):
    _, text, verdicts, recs, df = rendered
    section = text.split("## All verdicts")[1].split("## Cells")[0]
    assert section.count("\n| ") == len(verdicts) + 1  # header + one line per verdict
    cells = text.split("## Cells: the width condition")[1].split("## Time and cost")[0]
    assert "m·d/(2n)" in cells
    # 1024 * 3072 / (2 * 2000) = 786.4
    assert re.search(r"width=1024,activation=relu,rep=0\] +\| ci +\| done +\| 1024 +\| 2000 +\| 3072 +\| 10 +"
                     r"\| 786 +\| yes", cells)
    assert re.search(r"width=20,activation=tanh,rep=0\] +\| ci +\| done +\| 20 +\| 1000 +\| 100 +\| 1 +\| 1 +\| yes",
                     cells)
    assert "CUDA out of memory" in cells and "non-finite by epoch 21" in cells
    cost = text.split("## Time and cost per cell")[1].split("## Training curves")[0]
    assert "| 20 " in cost and "0.008" in cost and "| 4 " in cost  # epochs/s = 40 / 2, TFLOP/s, group size


def test_plots_are_written_and_linked(rendered):
    path, text, *_ = rendered
    plots = sorted(p.name for p in (path.parent / "plots").glob("*.png"))
    links = re.findall(r"\]\(plots/([^)]+\.png)\)", text)
    assert sorted(links) == plots
    # synthetic: 2 reps at width 20 + the diverged width-40 cell; cifar: 2 reps (the error cell has no curves)
    assert len(plots) == 5
    assert "cifar10_random__ci__w1024__relu__rep0.png" in plots
    for name in plots:
        assert (path.parent / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_provenance_footnote(rendered):
    _, text, *_ = rendered
    prov = text.split("## Provenance")[1]
    assert "cifar10_random: CIFAR-10, JPEG re-encoding" in prov
    assert "0123456789abcdef" in prov and "python 3.11.7, torch 2.4.1" in prov
    assert "2024-05-01T12:00:00+00:00 … 2024-05-02T08:00:00+00:00" in prov
    # the only timestamps in the report are the records' own
    stamps = set(re.findall(r"\d{4}-\d\d-\d\dT[\d:]+", text))
    assert stamps <= {"2024-05-01T12:00:00", "2024-05-02T08:00:00", "2024-05-01T12:01:00"}


def test_dirty_commit_is_flagged(tmp_path):
    recs = [make_record(dirty=True)]
    text = write_report(to_frame(recs), recs, run_checks(to_frame(recs), []), tmp_path).read_text()
    assert "0123456789abcdef (dirty)" in text


def test_same_inputs_same_bytes(rendered, tmp_path):
    path, text, verdicts, recs, df = rendered
    # shuffled inputs, a second directory: byte-identical markdown and PNGs
    again = write_report(df.sample(frac=1.0, random_state=3), list(reversed(recs)),
                         verdicts.sample(frac=1.0, random_state=5), tmp_path / "ci-run", title="CPU run",
                         note_lines=("CPU-scale results are not comparable with Table 3", "second note"))
    assert again.read_bytes() == path.read_bytes()
    first = sorted((path.parent / "plots").glob("*.png"))
    second = sorted((again.parent / "plots").glob("*.png"))
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name
        assert b"Software" not in a.read_bytes()


def test_empty_store(tmp_path):
    path = write_report(to_frame([]), [], run_checks(pd.DataFrame(), load_references()),
                        tmp_path / "empty")
    text = path.read_text()
    assert text.startswith("# bench_suite report\n")
    assert "_No results for this task" in text and "_No records._" in text
    assert "exit code 0" in text  # nothing failed (docs/checks.md, "Exit codes")
    assert not (tmp_path / "empty" / "plots").exists() or not list((tmp_path / "empty" / "plots").iterdir())
