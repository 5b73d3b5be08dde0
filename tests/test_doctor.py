"""`python -m bench_suite doctor`: it passes on this CPU, fails on a real fault, and its CUDA-graph
check covers what the paper grid runs (checked here with the fold decisions CUDA makes)."""

import math

import pytest

from bench_suite.diagnostics import doctor
from bench_suite.train import train_group
from bench_suite.train.engine import step as step_module
from bench_suite.train.engine.state import FOLD_CADENCES


@pytest.mark.slow
def test_doctor_passes_on_the_cpu(capsys):
    from bench_suite.cli import main

    assert main(["doctor", "--device", "cpu", "--rate-seconds", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("doctor: ") and " 0 failed" in out[-1]
    assert all(line.startswith(("[ok] ", "[skipped] ")) for line in out[:-1])
    names = [line.split("] ", 1)[1].split(":", 1)[0] for line in out[:-1]]
    for name in ("versions", "device", "fused = alone", "fold path at a tight radius", "float32 at eps 1e-4",
                 "a blown-up net is diverged", "tf32 = fp32", "bf16 = fp32", "step rate"):
        assert name in names
    assert sum(n.startswith("engine = autograd loop, ") for n in names) == 4  # one per method
    assert "[skipped] CUDA graphs = eager: no CUDA" in out
    assert any(n.startswith("estimated time, profile paper") for n in names)


def test_doctor_fails_on_a_broken_fold(monkeypatch):
    # a fault the doctor exists to find: the device-side fold does nothing
    monkeypatch.setattr(step_module._FusedEngine, "fold_small", lambda self: None)
    checks = doctor.check_folds(doctor._device("cpu"))
    assert [c.status for c in checks[:2]] == [doctor.FAIL, doctor.FAIL], [c.line() for c in checks]


def test_doctor_exits_non_zero_on_a_mismatch(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "check_fused_vs_alone",
                        lambda device: doctor.Check("fused = alone", doctor.FAIL, "max relative difference 0.1"))
    monkeypatch.setattr(doctor, "check_rate", lambda device, seconds, store=None: [])
    assert doctor.main("cpu") == 1
    out = capsys.readouterr().out
    assert "[FAIL] fused = alone" in out and " 1 failed" in out.splitlines()[-1]


def test_the_graph_check_covers_what_the_paper_grid_runs():
    # issue 13, 2.3: more steps per epoch than the largest fold cadence, masked folds inside the
    # (captured) epoch, momentum 0.9 and both tracking paths
    data, groups = doctor.graph_check_problem(epochs=2)
    steps_per_epoch = math.ceil(data.n / groups[0][0][0].config.batch_size)
    assert steps_per_epoch > max(FOLD_CADENCES)
    trackings = set()
    with doctor.device_side_folds():
        for cells, tracking in groups:
            res = train_group(data, cells, order_seed=0, norm_tracking=tracking)
            trackings.add(res[0].timing["engine"].split("/")[1])
            cadences = {int(k) for k in res[0].timing["fold_cadence_segments"] if k != "none"}
            assert cadences and min(cadences) < steps_per_epoch  # folds inside an epoch
            assert sum(r.timing["small_folds"] for r in res) > 0
            assert all(r.status == "done" for r in res)
    assert trackings == {"exact", "lowrank"}
    assert any(c.config.momentum == 0.9 for c in groups[0][0])


def test_the_graph_check_is_skipped_without_cuda():
    check = doctor.graph_check(doctor._device("cpu"))
    assert check.status == doctor.SKIP and check.detail == "no CUDA"


def test_the_float32_fused_alone_check_is_equal_on_the_cpu_and_names_where_a_grouping_parts(monkeypatch):
    import torch

    from bench_suite.diagnostics import doctor
    from bench_suite.train.engine.step import _FusedEngine

    ok = doctor.check_fused_vs_alone_float32(torch.device("cpu"), steps=100)
    assert ok.status == doctor.OK and "equal bit for bit" in ok.detail
    # the output-layer gradient as a GEMV over the group's padded width (what parted them before)
    monkeypatch.setattr(_FusedEngine, "output_grad",
                        staticmethod(lambda dout, featpad: torch.bmm(dout, featpad.transpose(1, 2))))
    parted = doctor.check_fused_vs_alone_float32(torch.device("cpu"), steps=100)
    assert parted.status == doctor.FAIL and "they part at step" in parted.detail
