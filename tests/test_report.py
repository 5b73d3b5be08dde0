"""The report on synthetic records (built here per docs/design.md): report.md, the summary a
reader takes in at a glance, and report.html, the whole report on one page; their figures."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from bench_suite.core.records import Record, Status, to_frame
from bench_suite.reporting.build import write_report
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



SKIP_REASON = "data unavailable: CIFAR-10 not found at /home/alice/data/cifar10-jpeg.zip; pass --data-root"


def _skipped(width):
    return make_record(task="cifar10", width=width, activation="relu", status="skipped", reason=SKIP_REASON,
                       n=10000, d=3072, k=10, acc=None)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    recs = sample_records() + [_skipped(w) for w in (16, 64, 256)]
    df = to_frame(recs)
    refs = load_references()
    verdicts = run_checks(df, refs)
    out = tmp_path_factory.mktemp("reports") / "ci-run"
    paths = write_report(df, recs, verdicts, out, title="CPU run", references=refs, store_label="results",
                         store_link="../results", note_lines=("CPU-scale results are not comparable with Table 3",
                                                              "second note"))
    md = out / "report.md"
    return md, md.read_text(encoding="utf-8"), verdicts, recs, df, paths


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_the_summary_is_short_and_in_order(rendered):
    md, text, *_ = rendered
    lines = text.splitlines()
    assert lines[0] == "# CPU run"
    assert lines[2] == "> CPU-scale results are not comparable with Table 3" and lines[4] == "> second note"
    # the sections in their registered order
    assert text.index("## What was run") < text.index("## Claims") < text.index("## Accuracy against width") \
        < text.index("## Ordering of the methods") < text.index("## Training curves") < text.index("## More")
    assert len(lines) < 300
    # the per-cell, cost and all-verdict tables are not in it: they are in the files it names
    for gone in ("## All verdicts", "## Time and cost per cell", "## Cells: the width condition"):
        assert gone not in text
    assert "`results.csv`" in text and "`verdicts.csv`" in text and "`report.html`" in text


def test_what_was_run_names_profile_code_data_machine_and_no_machine_path(rendered):
    md, text, *_ = rendered
    run = _section(text, "## What was run")
    for needle in ("| store ", "`results`", "| code version ", "engine 1", "| data ", "CIFAR-10, JPEG re-encoding",
                   "| machine ", "cpu (x86_64 CPU)", "| software ", "python 3.11.7, torch 2.4.1",
                   "0123456789ab", "2024-05-01T12:00:00+00:00 … 2024-05-02T08:00:00+00:00"):
        assert needle in run, needle
    for path in (md.parent, "/home/alice"):
        assert str(path) not in text
    html = (md.parent / "report.html").read_text()
    assert "/home/alice" not in html and str(md.parent) not in html


def test_one_claims_table_with_reference_ours_n_verdict_and_known_deviation(rendered):
    _, text, verdicts, *_ = rendered
    claims = _section(text, "## Claims")
    header = next(line for line in claims.splitlines() if line.startswith("| claim"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "claim", "task", "reference", "ours (95% CI)", "repetitions", "verdict", "known deviation"]
    rows = [line for line in claims.splitlines() if line.startswith("| `")]
    ran = set(verdicts["task"]) & {"synthetic_ablation", "cifar10_random", "cifar10"}
    shown = verdicts[verdicts["task"].isin(ran)]["id"].nunique()
    assert len(rows) == shown  # one row per claim of a task with results
    row = next(r for r in rows if "`ci/ablation/lower-loss-than/sgd`" in r)
    assert "train_loss[mli_paired_pgd − sgd] < 0" in row and "unconstrained GD memorizes" in row
    # the claims of tasks that were not run: one line, not a row each
    assert "no results in this store for" in claims and "`mnist`" in claims.split("### Not scored")[1]
    assert "`ci/mnist/above-chance/widest`" not in claims


def test_ours_is_mean_ci_and_n(tmp_path):
    recs = [make_record(task="cifar10_random", width=1024, activation="relu", rep=rep, profile="paper", n=2000,
                        d=3072, k=10, acc=a, test_acc=t, epochs=20)
            for rep, (a, t) in enumerate([(0.99, 0.10), (0.995, 0.102), (0.993, 0.099)])]
    recs.append(make_record(task="cifar10_random", width=2048, activation="tanh", rep=0, profile="paper", n=2000,
                            d=3072, k=10, acc=0.97, test_acc=0.1, epochs=20))
    df = to_frame(recs)
    write_report(df, recs, run_checks(df, load_references()), tmp_path, formats=("md",))
    text = (tmp_path / "report.md").read_text()
    # CI [0.9864, 0.9990] inside [0.9831, 1.0031]
    # one-sided (at least the paper's value minus the tolerance): the paper's number is the reference
    assert re.search(r"\| `table3/relu/1024/train_acc` +\| cifar10_random +\| train_acc\[mli_paired_pgd\] ≥ 0\.9931 "
                     r"\(tolerance 0\.01\) +\| 0\.9927 ± 0\.0063 \(n=3\) +\| 3 +\| PASS ", text)
    # centred on chance, the paper's number beside it
    assert re.search(r"\| `table3/relu/1024/test_acc` +\| cifar10_random +\| test_acc\[mli_paired_pgd\] = 0\.1 "
                     r"± 0\.02 \(the paper: 0\.1011\)", text)
    assert re.search(r"\| `table3/tanh/2048/train_acc` .*\| 0\.97 \(n=1, no CI\) +\| 1 +\| FAIL ", text)
    assert not (tmp_path / "report.html").exists()


def test_skipped_cells_are_one_line_per_task_and_reason_without_the_path(rendered):
    _, text, *_ = rendered
    part = text.split("### Not scored")[1].split("\n## ")[0]
    lines = [line for line in part.splitlines() if line.startswith("- `cifar10`: 3 cell(s)")]
    assert lines == ["- `cifar10`: 3 cell(s) skipped: data unavailable: CIFAR-10 not found at …/cifar10-jpeg.zip; "
                     "pass --data-root."]
    assert "- `cifar10_random`: 1 cell(s) error: CUDA out of memory." in part


def test_figures_carry_the_claims_and_are_linked(rendered):
    md, text, *_, paths = rendered
    links = re.findall(r"\]\((figures/[^)]+)\)", text)
    files = sorted(p.relative_to(md.parent).as_posix() for p in (md.parent / "figures").iterdir())
    assert sorted(links) == files and len(files) >= 3
    assert "figures/accuracy__cifar10_random__ci__relu.svg" in files
    assert "figures/ordering__synthetic_ablation__ci__w20__tanh.svg" in files
    for name in files:
        data = (md.parent / name).read_bytes()
        assert data.startswith(b"<?xml") and b"<svg" in data and b"<dc:date>" not in data
    assert paths[0] == md and paths[1].name == "report.html" and set(paths[2:]) == {md.parent / f for f in files}


def test_the_page_has_every_part(rendered):
    from html.parser import HTMLParser

    md, _, verdicts, recs, df, _ = rendered

    class Parts(HTMLParser):
        def __init__(self):
            super().__init__()
            self.ids, self.svgs, self.scripts, self.rows, self.sources = set(), 0, 0, {}, []
            self.table = []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if "id" in a:
                self.ids.add(a["id"])
            if tag == "svg":
                self.svgs += 1
            if tag == "script":
                self.scripts += 1
            if tag in ("script", "img", "link", "iframe") and ("src" in a or "href" in a):
                self.sources.append((tag, a))
            if tag == "table":
                self.table.append(a.get("id"))
            if tag == "tr" and self.table and self.table[-1]:
                self.rows[self.table[-1]] = self.rows.get(self.table[-1], 0) + 1

        def handle_endtag(self, tag):
            if tag == "table":
                self.table.pop()

    page = Parts()
    page.feed((md.parent / "report.html").read_text())
    for part in ("run", "claims", "cells", "section-accuracy", "section-ordering", "section-curves",
                 "filter-verdict", "filter-task", "selftest"):
        assert part in page.ids, part
    assert page.rows["claims-table"] == 1 + verdicts["id"].nunique()  # header + one row per claim
    assert page.rows["cells-table"] == 1 + len(recs)
    assert f"cell-{recs[0].cell_id}" in page.ids
    assert page.svgs >= 3 + 3 * 3  # the summary figures, and three views of each curves figure
    assert page.scripts == 1 and page.sources == []  # inline only: nothing fetched


def test_claims_link_to_their_cells_and_cells_to_their_records(rendered):
    md, _, verdicts, recs, *_ = rendered
    html = (md.parent / "report.html").read_text()
    row = verdicts[verdicts["id"] == "ci/ablation/lower-loss-than/sgd"].iloc[0]
    for cell in row["cells"]:
        assert f'href="#cell-{cell}"' in html and f'id="cell-{cell}"' in html
        assert f'href="../results/records/{cell}.json"' in html


def test_the_curves_figure_has_three_views(rendered):
    md, *_ = rendered
    html = (md.parent / "report.html").read_text()
    start = html.index('id="fig-curves__synthetic_ablation__ci__w20__tanh"')
    figure = html[start:html.index("</figure>", start)]
    for view in ("mean and range over repetitions", "each repetition", "linear scale"):
        assert f">{view}</button>" in figure
    assert figure.count("<svg") == 3 and figure.count(" hidden>") == 2


def test_coinciding_lines_are_named(tmp_path):
    recs = [make_record(task="cifar10_random", method=m, width=w, activation="relu", rep=r, n=2000, d=3072, k=10,
                        acc=0.9 + 0.01 * r, test_acc=0.1, epochs=10) for m in ("sgd", "constraint_only")
            for w in (64, 128) for r in range(2)]
    df = to_frame(recs)
    write_report(df, recs, run_checks(df, []), tmp_path, formats=("md",))
    text = (tmp_path / "report.md").read_text()
    assert "Identical lines (drawn on top of each other, told apart by marker and line style): " \
           "constraint_only and sgd." in text


def test_same_inputs_same_bytes(rendered, tmp_path):
    md, text, verdicts, recs, df, paths = rendered
    again = write_report(df.sample(frac=1.0, random_state=3), list(reversed(recs)),
                         verdicts.sample(frac=1.0, random_state=5), tmp_path / "ci-run", title="CPU run",
                         references=load_references(), store_label="results", store_link="../results",
                         note_lines=("CPU-scale results are not comparable with Table 3", "second note"))
    assert [p.relative_to(tmp_path / "ci-run") for p in again] == [p.relative_to(md.parent) for p in paths]
    for a, b in zip(paths, again):
        assert a.read_bytes() == b.read_bytes(), a.name


@pytest.mark.parametrize("kind,magic", [("pdf", b"%PDF"), ("png", b"\x89PNG")])
def test_figures_on_request_as_pdf_or_png(tmp_path, kind, magic):
    recs = sample_records()
    df = to_frame(recs)
    paths = write_report(df, recs, run_checks(df, []), tmp_path, formats=("md",), figure_format=kind)
    figures = [p for p in paths if p.parent.name == "figures"]
    assert figures and all(p.suffix == f".{kind}" and p.read_bytes().startswith(magic) for p in figures)
    text = (tmp_path / "report.md").read_text()
    assert all(f"(figures/{p.name})" in text for p in figures)
    again = write_report(df, recs, run_checks(df, []), tmp_path / "again", formats=("md",), figure_format=kind)
    assert [p.read_bytes() for p in again if p.parent.name == "figures"] == [p.read_bytes() for p in figures]


def test_unknown_formats_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="figure format 'jpg': choose one of svg, pdf, png"):
        write_report(to_frame([]), [], run_checks(pd.DataFrame(), []), tmp_path, figure_format="jpg")
    with pytest.raises(ValueError, match="report format tex: choose md, html or both"):
        write_report(to_frame([]), [], run_checks(pd.DataFrame(), []), tmp_path, formats=("tex",))


def test_empty_store(tmp_path):
    paths = write_report(to_frame([]), [], run_checks(pd.DataFrame(), load_references()), tmp_path / "empty")
    text = paths[0].read_text()
    assert text.startswith("# bench_suite report\n")
    assert "exit code 0" in text and "no results in this store for" in text  # nothing failed (docs/checks.md)
    assert not (tmp_path / "empty" / "figures").exists()
    assert "<svg" not in paths[1].read_text()


# ---------------------------------------------------------------------------------------------
# the figures' numbers
# ---------------------------------------------------------------------------------------------
def test_aggregate_is_the_mean_range_and_envelope_over_repetitions():
    from bench_suite.reporting.figures import aggregate, thin

    curves = [{"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.25], "train_loss:min": [1.0, 0.4, 0.2],
               "train_loss:max": [1.0, 0.9, 0.3]},
              {"epoch": [1, 2, 3], "train_loss": [3.0, 1.5, math.inf]},  # diverged at its last point
              {"epoch": [1, 2], "train_loss": [2.0, 1.0]}]
    agg = aggregate(curves, "train_loss")
    assert agg["x"] == [1.0, 2.0, 3.0] and agg["n"] == [3.0, 3.0, 1.0]
    assert agg["mean"] == [2.0, 1.0, 0.25] and agg["low"] == [1.0, 0.5, 0.25] and agg["high"] == [3.0, 1.5, 0.25]
    assert agg["env_low"] == [1.0, 0.4, 0.2] and agg["env_high"] == [3.0, 1.5, 0.3]
    assert aggregate([{"epoch": [1]}], "train_loss") is None
    long = {k: [float(i) for i in range(1000)] for k in ("x", "mean", "low", "high", "env_low", "env_high", "n")}
    short = thin(long, 100)
    assert len(short["x"]) == 100 and short["env_low"][0] == 0.0 and short["env_high"][-1] == 999.0
    assert short["low"][1] == 10.0 and short["high"][1] == 19.0  # a bin's band keeps its extremes


def test_coinciding_groups_identical_series():
    from bench_suite.reporting.figures import coinciding

    assert coinciding({"a": [1.0, 2.0], "b": [1.0, 2.0], "c": [1.0, 2.1], "d": [1.0, 2.1]}) == [["a", "b"],
                                                                                                 ["c", "d"]]
    assert coinciding({"a": [1.0], "b": [1.0 + 1e-6]}) == []


def test_the_drawn_rank_law_is_the_theorys():
    from bench_suite import theory
    from bench_suite.reporting.theory import rank_law

    for n, m, d, k in ((200, 6, 20, 1), (200, 20, 20, 1), (200, 80, 20, 1), (100, 10, 10, 3), (1000, 20, 100, 1)):
        for init in ("mirrored_lecun", "lecun"):
            assert rank_law(init, m * d / (2 * n), k) * n == pytest.approx(
                theory.predicted_rank(n, m, d, k, init=init)), (n, m, d, k, init)
    assert rank_law("orthogonal", 1.0) is None


def test_machine_paths_are_scrubbed():
    from bench_suite.reporting.fmt import display_path, scrub_paths

    assert scrub_paths("not found at /home/alice/data/x.zip; pass --data-root") == \
        "not found at …/x.zip; pass --data-root"
    assert scrub_paths("C:\\Users\\bob\\cifar (a zip)") == "…/cifar (a zip)"
    assert scrub_paths("m·d/(2n) = 1, lr_w/lr_v, a/b, ~2^-(m/2)") == "m·d/(2n) = 1, lr_w/lr_v, a/b, ~2^-(m/2)"
    assert scrub_paths("see ~/data/x.zip") == "see …/x.zip"
    assert display_path("results") == "results" and display_path("/nowhere/else/store") == "…/store"
