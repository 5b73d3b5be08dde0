"""Verdicts list the data checksums of the records they used, and only real ones: a store mixing
records with a data checksum (a data set read from files) and records without (generated data)
once gave `"data_checksums": ["nan"]` for the latter (pandas' missing value passed a `None` test)."""

from __future__ import annotations

import json

import torch

from bench_suite import api
from bench_suite.cli import main
from bench_suite.tasks import TASKS, Task, TaskData, register_task

CHECKSUM = "5eed" * 16


def _gaussian(options, data_seed):
    g = torch.Generator().manual_seed(data_seed)
    x = torch.randn(options["n"], options["d"], generator=g)
    return x, x[:, :1] * 0.5


class _Tiny(Task):
    options = {"n": 40, "d": 8}
    train_defaults = {"epochs": 4, "batch_size": None, "lr_w": 0.3, "lr_v": 0.3, "loss": "mse", "eps": 1.0,
                      "eps_mode": "absolute", "eval_every": 2}
    grid = {"methods": ["sgd"], "widths": [4], "activations": ["tanh"]}
    profiles = {"ci": {"description": "test", "seeds": 2}}

    @classmethod
    def shape(cls, options):
        return {"n": options["n"], "d": options["d"], "k": 1, "n_test": 0}


if "checksum_files_task" not in TASKS:
    @register_task
    class FromFiles(_Tiny):
        """Data as if read from a file: the record carries the file's checksum."""

        name = "checksum_files_task"
        description = "test task whose data has a checksum"

        def load(self, options, *, data_seed, data_root=None, cache_dir=None):
            x, y = _gaussian(options, data_seed)
            return TaskData(x, y, 1, False, "a file", checksum=CHECKSUM)

    @register_task
    class Generated(_Tiny):
        """Generated data: no checksum."""

        name = "checksum_generated_task"
        description = "test task whose data has no checksum"

        def load(self, options, *, data_seed, data_root=None, cache_dir=None):
            x, y = _gaussian(options, data_seed)
            return TaskData(x, y, 1, False, "generated")


REFERENCES = "protocol = 1\n" + "".join(f"""
[[reference]]
id = "{task}/loss"
kind = "threshold"
task = "{task}"
profile = "ci"
method = "sgd"
metric = "train_loss"
direction = "at_most"
bound = 10.0
""" for task in ("checksum_files_task", "checksum_generated_task"))


def test_a_store_mixing_records_with_and_without_data_checksums(tmp_path):
    store = tmp_path / "store"
    for task in ("checksum_files_task", "checksum_generated_task"):
        assert main(["run", "--task", task, "--profile", "ci", "--quiet", "--store", str(store)]) == 0
    refs = tmp_path / "refs.toml"
    refs.write_text(REFERENCES)

    results = api.load_results(store)
    assert results["data_checksum"].isna().sum() == 2 and (results["data_checksum"] == CHECKSUM).sum() == 2

    verdicts = api.check(store, profile="ci", baselines=str(refs)).set_index("id")
    assert list(verdicts.loc["checksum_files_task/loss", "data_checksums"]) == [CHECKSUM]
    assert list(verdicts.loc["checksum_generated_task/loss", "data_checksums"]) == []
    assert set(verdicts["verdict"]) == {"PASS"}

    saved = tmp_path / "verdicts"
    assert main(["check", "--store", str(store), "--profile", "ci", "--baselines", str(refs), "--save",
                 str(saved)]) == 0
    text = (saved / "verdicts.json").read_text()
    assert "nan" not in text.lower()
    rows = {r["id"]: r for r in json.loads(text)["verdicts"]}
    assert rows["checksum_files_task/loss"]["data_checksums"] == [CHECKSUM]
    assert rows["checksum_generated_task/loss"]["data_checksums"] == []
