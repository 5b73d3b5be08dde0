"""The generalization tasks cifar10 (true labels), mnist and cifar100: contract, profiles, loading
on fixtures in every layout, SKIPPED without data, reference rows, the report's section, and an
end-to-end check on the real CIFAR-10 (BENCH_SUITE_CIFAR10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from data_fixtures import (
    CIFAR100_SMALL_COUNTS,
    MNIST_SMALL_COUNTS,
    SMALL_COUNTS,
    mnist_digits,
    no_data_env,  # noqa: F401 - fixture
    skip_cifar100_md5,  # noqa: F401 - fixture
    write_cifar100_image_folder,
    write_cifar100_python,
    write_cifar100_zip,
    write_cifar_zip,
    write_mnist_idx,
    write_mnist_image_folder,
    write_mnist_zip,
)

from bench_suite.cli import main
from bench_suite.data.classnames import CIFAR100_COARSE_OF_FINE
from bench_suite.grid import expand
from bench_suite.methods import METHODS
from bench_suite.reporting.build import write_report
from bench_suite.scoring.checks import FAIL, INCONCLUSIVE, PASS, run_checks
from bench_suite.scoring.references import load_references
from bench_suite.store.result_store import ResultStore
from bench_suite.tasks import TASKS
from bench_suite.tasks.base import DataUnavailable
from bench_suite.train import CellSpec, TrainConfig, train_group

NAMES = ("cifar10", "mnist", "cifar100")
FOUR = {"mli_paired_pgd", "sgd", "constraint_only", "no_mirroring"}


@pytest.fixture
def small_counts(monkeypatch):
    """The readers accept the small fixtures as the real data sets."""
    monkeypatch.setattr("bench_suite.data.cifar10.CIFAR10_COUNTS", dict(SMALL_COUNTS))
    monkeypatch.setattr("bench_suite.data.mnist.MNIST_COUNTS", dict(MNIST_SMALL_COUNTS))
    monkeypatch.setattr("bench_suite.data.cifar100.CIFAR100_COUNTS", dict(CIFAR100_SMALL_COUNTS))


def load(name, root, cache, seed=0, **options):
    task = TASKS.get(name)
    return task().load(task.check_options({**task.options, **options}), data_seed=seed, data_root=str(root),
                       cache_dir=str(cache))


def assert_standardized(x, channels):
    per_channel = x.reshape(len(x), channels, -1)
    torch.testing.assert_close(per_channel.mean(dim=(0, 2)), torch.zeros(channels), atol=1e-4, rtol=0)
    torch.testing.assert_close(per_channel.std(dim=(0, 2), unbiased=False), torch.ones(channels), atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- contract and profiles


def test_tasks_are_registered_with_smoke_ci_and_paper_profiles():
    for name in NAMES:
        task = TASKS.get(name)
        assert {"smoke", "ci", "paper"} <= set(task.profiles), name
        assert set(task.grid["methods"]) == FOUR and task.grid["widths"] == [16, 64, 256, 1024, 4096]
        assert task.profiles["smoke"]["device"] == task.profiles["ci"]["device"] == "cpu"
        assert task.profiles["paper"]["device"] == "cuda" and task.profiles["paper"]["seeds"] == 3
        assert task.train_defaults["epochs"] == 100 and task.train_defaults["loss"] == "ce"
        assert task.defaults_rationale and "publishes no" in task.defaults_rationale
        for profile, spec in task.profiles.items():
            assert json.loads(json.dumps(spec)) == spec  # plain data
            assert set(spec["methods"]) == FOUR, (name, profile)
            cells = expand(name, profile=profile)  # no data needed
            assert {c.repetition for c in cells} == set(range(spec["seeds"]))
            assert len(cells) == 4 * len(spec["widths"]) * spec["seeds"]
            shape = task.shape(task.check_options({**task.options, **spec.get("options", {})}))
            assert shape["n_test"] == 10_000 or profile == "smoke"  # ci and paper: the whole test set


def test_shapes_without_data():
    assert TASKS.get("mnist").shape({"n_train": None, "n_test": None}) == {"n": 60_000, "d": 784, "k": 10,
                                                                          "n_test": 10_000}
    cifar100 = TASKS.get("cifar100")
    assert cifar100.shape(cifar100.check_options(dict(cifar100.options)))["k"] == 100
    assert cifar100.shape(cifar100.check_options({**cifar100.options, "labels": "coarse"}))["k"] == 20
    assert TASKS.get("cifar10").shape({"n_train": 5000})["n"] == 5000


@pytest.mark.parametrize("name, option, bad", [
    ("mnist", "n_train", 60_001), ("mnist", "n_test", 0), ("cifar10", "n_train", 2.5), ("cifar100", "n_test", "all"),
    ("cifar100", "labels", "medium"), ("cifar10", "download", "maybe"),
])
def test_bad_option_values_name_the_option_before_any_data(name, option, bad):
    with pytest.raises(ValueError, match=f"option {option}"):
        expand(name, profile="smoke", options={option: bad})


def test_listing_the_tasks_imports_neither_torch_nor_numpy():
    code = ("import sys, bench_suite.tasks as t; assert {'cifar10', 'mnist', 'cifar100'} <= set(t.TASKS.names()); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'PIL')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- loading fixtures


@pytest.mark.parametrize("layout", ["idx-gz", "idx-plain", "folder", "zip"])
def test_mnist_task_in_every_layout(tmp_path, small_counts, layout):
    if layout.startswith("idx"):
        write_mnist_idx(tmp_path / "data", compress="gz" if layout == "idx-gz" else "none")
        root = tmp_path / "data"
    elif layout == "folder":
        root = write_mnist_image_folder(tmp_path / "data")
    else:
        root = write_mnist_zip(tmp_path / "mnist.zip")
    data = load("mnist", root, tmp_path / "cache")
    assert data.x_train.shape == (40, 784) and data.x_test.shape == (20, 784) and data.dim == 784
    assert data.num_outputs == 10 and data.classification and data.y_train.dtype == torch.int64
    assert_standardized(data.x_train, 1)
    assert data.source.startswith("MNIST, ") and data.checksum
    assert data.info["class_counts_train"] == [4] * 10 and data.info["class_counts_test"] == [2] * 10
    if layout.startswith("idx"):  # the true labels, in the file's order
        assert data.y_train.tolist() == mnist_digits("train")
    # each image's one gray level encodes its digit: the standardized value is a function of it
    levels = data.x_train[:, 0]
    for digit in range(10):
        assert len(set(levels[data.y_train == digit].tolist())) <= 4


def test_test_set_uses_the_training_statistics(tmp_path, small_counts):
    write_mnist_idx(tmp_path)
    data = load("mnist", tmp_path, tmp_path / "cache")
    mean, std = data.info["channel_mean"][0], data.info["channel_std"][0]
    from data_fixtures import mnist_pixel_value
    raw = mnist_pixel_value(int(data.y_test[0]), 0) / 255.0
    assert float(data.x_test[0, 0]) == pytest.approx((raw - mean) / std, abs=1e-5)


def test_a_constant_channel_is_exactly_centered_not_blown_up():
    from bench_suite.data.features import standardized_features

    images = np.random.default_rng(0).integers(0, 256, size=(50, 4, 4, 3), dtype=np.uint8)
    images[..., 2] = 7  # E[x^2] - mean^2 is a rounding residue here, not 0
    x, (mean, std) = standardized_features(images)
    assert mean[2] == 7 / 255 and std[2] == 1.0
    assert float(x.view(50, 3, 16)[:, 2].abs().max()) < 1e-6  # float32 rounding of 7/255 only
    assert_standardized(x.view(50, 3, 16)[:, :2].reshape(50, -1), 2)


def test_subsets_are_seeded_and_standardized_on_their_own_statistics(tmp_path, small_counts):
    write_mnist_idx(tmp_path)
    a, b = load("mnist", tmp_path, tmp_path / "cache", seed=4, n_train=12, n_test=5), \
        load("mnist", tmp_path, tmp_path / "cache", seed=4, n_train=12, n_test=5)
    c = load("mnist", tmp_path, tmp_path / "cache", seed=5, n_train=12, n_test=5)
    assert a.x_train.shape == (12, 784) and a.x_test.shape == (5, 784)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.y_train, c.y_train) or not torch.equal(a.x_train, c.x_train)
    assert_standardized(a.x_train, 1)
    with pytest.raises(ValueError, match="n_train"):
        load("mnist", tmp_path, tmp_path / "cache", n_train=41)  # more than the (small) data set holds


@pytest.mark.parametrize("layout", ["pickles", "folder", "zip"])
@pytest.mark.parametrize("labels", ["fine", "coarse"])
def test_cifar100_task_fine_and_coarse(tmp_path, small_counts, skip_cifar100_md5, layout, labels):  # noqa: F811
    root = {"pickles": lambda: write_cifar100_python(tmp_path / "data").parent,
            "folder": lambda: write_cifar100_image_folder(tmp_path / "data"),
            "zip": lambda: write_cifar100_zip(tmp_path / "cifar100.zip")}[layout]()
    data = load("cifar100", root, tmp_path / "cache", labels=labels)
    assert data.x_train.shape == (200, 3072) and data.x_test.shape == (100, 3072)
    assert data.num_outputs == (100 if labels == "fine" else 20) == len(data.info["classes"])
    assert data.info["labels"] == labels and data.source.startswith("CIFAR-100, ")
    assert_standardized(data.x_train, 3)
    fine = load("cifar100", root, tmp_path / "cache", labels="fine")
    if labels == "coarse":  # the coarse label of every image is its fine label's superclass
        np.testing.assert_array_equal(data.y_train.numpy(), np.asarray(CIFAR100_COARSE_OF_FINE)[fine.y_train.numpy()])
    assert data.info["class_counts_test"] == ([1] * 100 if labels == "fine" else [5] * 20)


def test_cifar10_task_has_the_true_labels(tmp_path, small_counts):
    path = write_cifar_zip(tmp_path / "cifar10-jpeg.zip")
    data = load("cifar10", path, tmp_path / "cache")
    assert data.y_train.tolist() == [c for c in range(10) for _ in range(3)]  # sorted class folders
    assert data.y_test.tolist() == list(range(10)) and data.x_train.shape == (30, 3072)
    assert data.source == "CIFAR-10, JPEG re-encoding (cifar10-jpeg.zip)" and data.checksum.startswith("sha256:")
    random = TASKS.get("cifar10_random")().load({**TASKS.get("cifar10_random").options}, data_seed=0,
                                                 data_root=str(path), cache_dir=str(tmp_path / "cache"))
    assert random.info["from_cache"]  # one reader, one cache entry for both tasks
    torch.testing.assert_close(random.x_train, data.x_train)  # same images, same features


@pytest.mark.parametrize("name", NAMES)
def test_no_data_is_unavailable(no_data_env, tmp_path, name):  # noqa: F811
    with pytest.raises(DataUnavailable, match="--data-root"):
        TASKS.get(name)().load(dict(TASKS.get(name).options), data_seed=0, data_root=None, cache_dir=str(tmp_path))


# --------------------------------------------------------------------------- through the runner


@pytest.mark.parametrize("name", ["mnist", "cifar100"])
def test_run_skips_cleanly_without_data_and_with_another_data_set(no_data_env, tmp_path, capsys, name):  # noqa: F811
    store = tmp_path / "store"
    args = ["run", "--task", name, "--profile", "smoke", "--quiet", "--store", str(store)]
    assert main(args + ["--data-root", str(tmp_path / "nothing")]) == 2  # a path that does not exist: a typo
    assert "--data-root" in capsys.readouterr().err
    (tmp_path / "nothing").mkdir()
    assert main(args + ["--data-root", str(tmp_path / "nothing")]) == 3
    err = capsys.readouterr().err
    assert "SKIPPED" in err and "Traceback" not in err
    records = ResultStore(store).records()
    assert len(records) == 8 and {r.status for r in records} == {"skipped"}
    assert all("not found" in r.reason and "--data-root" in r.reason for r in records)
    # the CI's case: the CIFAR-10 zip is the data root of every task
    cifar = write_cifar_zip(tmp_path / "cifar10-jpeg.zip")
    assert main(args + ["--data-root", str(cifar)]) == 3
    assert "Traceback" not in capsys.readouterr().err
    reasons = {r.reason for r in ResultStore(store).records()}
    assert len(reasons) == 1 and "an image tree of CIFAR-10" in reasons.pop()


def test_run_mnist_on_a_fixture_end_to_end(tmp_path, small_counts, capsys):
    write_mnist_idx(tmp_path / "data")
    store = tmp_path / "store"
    args = ["run", "--task", "mnist", "--profile", "smoke", "--option", "n_train=40", "--option", "n_test=20",
            "--quiet", "--store", str(store), "--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "c")]
    assert main(args) == 0, capsys.readouterr().err
    records = ResultStore(store).records()
    assert len(records) == 8 and {r.status for r in records} == {"done"}
    for r in records:
        assert r.provenance["data_source"].startswith("MNIST, IDX files (gzipped; MNIST/raw)")
        assert r.provenance["data_checksum"].startswith("sha256:")
        assert r.shape["d"] == 784 and r.shape["n"] == 40 and r.final["test_acc"] is not None
    assert len({r.label_digest for r in records}) == 1  # paired: every method saw the same data


def test_bad_data_is_an_error_in_one_line(tmp_path, small_counts, capsys):
    folder = write_mnist_idx(tmp_path / "data")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    store = tmp_path / "store"
    args = ["run", "--task", "mnist", "--profile", "smoke", "--option", "n_train=40", "--option", "n_test=20",
            "--quiet", "--store", str(store), "--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "c")]
    assert main(args) == 2  # data that is there but unusable stops a plain run: one line, no records
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert "Traceback" not in err and len(errors) == 1 and "train-images-idx3-ubyte.gz" in errors[0], err
    assert ResultStore(store).records() == []


# --------------------------------------------------------------------------- reference rows and checks


def test_reference_rows_cover_each_data_set_in_ci_and_paper():
    refs = load_references()
    for name in NAMES:
        task = TASKS.get(name)
        for profile in ("ci", "paper"):
            mine = [r for r in refs if r.task == name and r.profile == profile]
            (comp,) = [r for r in mine if r.kind == "comparison"]
            (floor,) = [r for r in mine if r.kind == "threshold"]
            widths = task.profiles[profile]["widths"]
            assert (comp.method, comp.versus, comp.metric, comp.direction) == ("mli_paired_pgd", "sgd", "test_acc",
                                                                               "at_least")
            assert comp.target == 0 and comp.tolerance == 0.01 and comp.widths == (16, 64)
            assert set(comp.widths) <= set(widths) and comp.widths[0] == min(widths)
            assert floor.widths == (max(widths),) and floor.method == "sgd" and floor.metric == "test_acc"
            chance = 1 / task.shape(task.check_options(dict(task.options)))["k"]
            assert floor.bound == pytest.approx(2 * chance)


def ci_frame(diff_per_rep, sgd_acc=0.40, widths=(16, 64, 256), task="cifar10"):
    rows = []
    for width in widths:
        for rep, diff in enumerate(diff_per_rep):
            for method, acc in (("sgd", sgd_acc), ("mli_paired_pgd", sgd_acc + diff)):
                rows.append({"task": task, "profile": "ci", "protocol": 1, "method": method, "width": width,
                             "activation": "relu", "repetition": rep, "status": "done", "test_acc": acc,
                             "cell_id": f"{method}-{width}-{rep}", "name": f"{method}-{width}-{rep}"})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("diffs, verdict", [
    ([0.01, 0.012, 0.008], PASS),  # higher
    ([-0.004, -0.006, -0.005], PASS),  # competitive: within the 0.01 margin
    ([-0.05, -0.06, -0.055], FAIL),  # clearly below
    ([-0.002, -0.02, -0.01], INCONCLUSIVE),
])
def test_the_ci_rows_score_the_claim_as_documented(diffs, verdict):
    refs = [r for r in load_references() if r.id.startswith("ci/cifar10/")]
    v = run_checks(ci_frame(diffs), refs)
    comp = v[v["kind"] == "comparison"]
    assert list(comp["width"]) == [16, 64] and set(comp["verdict"]) == {verdict}
    assert v[v["kind"] == "threshold"].iloc[0]["verdict"] == PASS  # 0.40 >= 0.20 at width 256


# --------------------------------------------------------------------------- the report


def test_report_has_a_generalization_section_per_data_set(tmp_path):
    df = ci_frame([-0.004, -0.006, -0.005])
    df = pd.concat([df, ci_frame([0.01, 0.01, 0.02], sgd_acc=0.95, task="mnist")], ignore_index=True)
    df["data_source"] = np.where(df["task"] == "mnist", "MNIST, IDX files (gzipped; MNIST/raw)",
                                 "CIFAR-10, JPEG re-encoding (cifar10-jpeg.zip)")
    df["n"], df["d"] = 10_000, np.where(df["task"] == "mnist", 784, 3072)
    df["width_ratio"] = df["width"] * df["d"] / (2 * df["n"])
    verdicts = run_checks(df, load_references())
    paths = write_report(df, [], verdicts, tmp_path / "r")
    text = paths[0].read_text()
    section = text[text.index("## Accuracy against width"):text.index("## More")]
    page = paths[1].read_text()
    for task, source in (("cifar10", "CIFAR-10, JPEG re-encoding (cifar10-jpeg.zip)"),
                         ("mnist", "MNIST, IDX files (gzipped; MNIST/raw)")):
        assert f"**`{task}`, profile `ci`, relu**: data {source}" in section
        assert (tmp_path / "r" / "figures" / f"accuracy__{task}__ci__relu.svg").stat().st_size > 1000
        assert f"`ci/{task}/test-acc-at-least-sgd/narrow`" in text and f"`ci/{task}/above-chance/widest`" in text
    assert "2n/d = 6.51" in section and "2n/d = 1.57e+03" not in section
    assert "0.395 ± 0.001 (n=3)" in page  # mli_paired_pgd at 16: 0.40 - 0.005, sd of the three (the page's table)
    assert "no results in this store for `cifar100`" in text
    first = [p.read_bytes() for p in paths]
    assert [p.read_bytes() for p in write_report(df, [], verdicts, tmp_path / "r")] == first  # deterministic


# --------------------------------------------------------------------------- real data


@pytest.mark.realdata
@pytest.mark.slow
def test_real_cifar10_true_labels_generalize(cifar10_path, tmp_path_factory):
    """n = 5000 true labels, width 64, relu, sgd with the task's defaults, 5 epochs: the test
    accuracy is far above the 0.10 chance level (an MLP on raw CIFAR-10 pixels reaches ~0.4)."""
    task = TASKS.get("cifar10")()
    data = task.load({**task.options, "n_train": 5000}, data_seed=7, data_root=cifar10_path,
                     cache_dir=None if os.environ.get("BENCH_SUITE_CACHE") else str(tmp_path_factory.mktemp("c")))
    assert data.n == 5000 and data.x_test.shape == (10_000, 3072) and "CIFAR-10" in data.source
    assert data.info["class_counts_test"] == [1000] * 10 and min(data.info["class_counts_train"]) > 400
    config = TrainConfig(**{**task.train_defaults, "epochs": 5, "eval_every": 5})
    (result,) = train_group(data, [CellSpec(METHODS.get("sgd"), 64, "relu", config, init_seed=1)], order_seed=2)
    print(f"test acc {result.final['test_acc']:.3f}, train acc {result.final['train_acc']:.3f}")
    assert result.status == "done" and result.final["test_acc"] > 0.25
