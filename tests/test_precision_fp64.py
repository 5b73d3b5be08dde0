"""``--precision fp64`` (issue 21, ask 6): data and weights in float64 from the command line, the
same numbers as training on float64 data, the record says how it ran, TF32 off, and ``plan``
prices fp64 groups from fp64 runs only."""

from __future__ import annotations

import torch

from bench_suite.cli import main
from bench_suite.core.config import PRECISIONS, TrainConfig
from bench_suite.core.seeds import seeds_for
from bench_suite.data.gaussian import gaussian_regression
from bench_suite.methods import METHODS
from bench_suite.runner.cost import CostModel, word_size
from bench_suite.store.result_store import ResultStore
from bench_suite.train import CellSpec, train_cells

ARGS = ["--task", "synthetic_ablation", "--width", "6", "--option", "n=40",
        "--option", "d=5", "--epochs", "12", "--eval-every", "6", "--quiet", "--threads", "1"]


def test_fp64_is_a_precision_of_the_command_line_and_its_records_say_so(tmp_path):
    assert "fp64" in PRECISIONS
    store = tmp_path / "store"
    assert main(["run", *ARGS, "--method", "mli_paired_pgd,sgd,adam", "--precision", "fp64", "--store",
                 str(store)]) == 0
    records = {r.method: r for r in ResultStore(store).records()}
    assert set(records) == {"mli_paired_pgd", "sgd", "adam"}
    for record in records.values():
        assert record.status == "done" and record.config["train"]["precision"] == "fp64"
        assert record.timing["dtype"] == "float64" and record.provenance["precision"] == "fp64"
        assert record.provenance["tf32_matmul"] is False and record.provenance["tf32_cudnn"] is False
    # the same numbers as the trainers on the task's data cast to float64 by hand (fp32 settings)
    cell = records["mli_paired_pgd"]
    seeds = seeds_for("synthetic_ablation", 0)
    data = gaussian_regression(40, 5, data_seed=seeds["data"]).to("cpu", torch.float64)
    config = TrainConfig(**{**cell.config["train"], "precision": "fp32"})
    specs = [CellSpec(METHODS.get(m), 6, "tanh", config, seeds["init"]) for m in ("mli_paired_pgd", "sgd")]
    by_hand = train_cells(data, specs, order_seed=seeds["order"])
    assert by_hand[0].timing["dtype"] == "float64"
    assert by_hand[0].final["train_loss"] == cell.final["train_loss"]
    assert by_hand[1].final["train_loss"] == records["sgd"].final["train_loss"]


def test_fp64_and_fp32_of_one_cell_are_two_cells_and_differ_only_by_rounding(tmp_path):
    store = tmp_path / "store"
    assert main(["run", *ARGS, "--method", "mli_paired_pgd", "--precision", "fp32,fp64", "--store", str(store)]) == 0
    records = {r.config["train"]["precision"]: r for r in ResultStore(store).records()}
    assert records["fp32"].cell_id != records["fp64"].cell_id
    assert records["fp32"].timing["dtype"] == "float32"
    assert records["fp32"].w0_digest == records["fp64"].w0_digest  # the same float32 draw of W0
    fp32, fp64 = records["fp32"].final["train_loss"], records["fp64"].final["train_loss"]
    assert fp32 != fp64 and abs(fp32 - fp64) <= 1e-5 * abs(fp64)


def test_plan_prices_fp64_groups_from_fp64_runs_only(tmp_path):
    store = tmp_path / "store"
    assert main(["run", *ARGS, "--method", "mli_paired_pgd", "--precision", "fp64", "--store", str(store)]) == 0
    (record,) = ResultStore(store).records()
    model = CostModel(ResultStore(store).records)
    device, per_step = record.provenance["device_name"], record.timing["flops"] / 12
    assert model.rate(device, per_step, precision="fp64")[1] == 1
    assert model.rate(device, per_step, precision="fp32") is None  # no float32 run to price it from
    assert model.rate(device, per_step) is not None  # no precision given: any run
    assert word_size("fp64") == 8 and {word_size(p) for p in ("fp32", "tf32", "bf16")} == {4}
