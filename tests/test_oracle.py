"""The reference trainer is the fused engine's oracle (bench_suite/diagnostics/oracle.py): for every built-in
method the engine runs, both give the same numbers in float64, and the comparison can fail."""

from __future__ import annotations

import torch

from bench_suite.diagnostics import oracle
from bench_suite.methods import BUILTIN_METHODS, METHODS


def test_the_cases_cover_what_the_engine_runs():
    fused = oracle.fused_builtin_methods()
    assert set(fused) == {m for m in BUILTIN_METHODS if METHODS.get(m).trainer == "fused"}
    assert {"mli_paired_pgd", "sgd", "constraint_only", "no_mirroring", "mli_paired_pgd_fixed_v"} == set(fused)
    cases = oracle.oracle_cases()
    cells = [c for case in cases for c in case.cells]
    assert {c.activation for c in cells} == set(oracle.ACTIVATIONS)
    assert {c.method.output for c in cells} == {"free", "paired"} and {c.method.constrained for c in cells} == {
        True, False}
    assert {c.config.momentum for c in cells} == {0.0, 0.9} and {c.config.batch_size for c in cells} == {None, 16}
    assert {c.config.loss for c in cells} == {"ce", "mse"} and {c.config.eps_mode for c in cells} == {
        "relative", "absolute"}
    assert 40 % 16 != 0  # the mini-batch cases end each epoch on a partial batch


def test_the_fused_engine_equals_the_reference_trainer_in_float64():
    from bench_suite.train.dispatch import train_cells

    for case in oracle.oracle_cases(dtype=torch.float64):
        for cell, diff, problems in oracle.run_case(case):
            assert not problems, (case.label, cell.method.name, cell.activation, problems)
            assert diff <= oracle.RTOL, (case.label, cell.method.name, cell.activation, cell.config.momentum, diff)
        # the projection was active in (nearly) every constrained cell: the radius is small enough
        # (measured: 29 of 32 with labels at full batch, 32 of 32 in the other cases)
        results = train_cells(case.data, case.cells, order_seed=case.order_seed)
        fracs = [r.final["proj_active_frac"] for c, r in zip(case.cells, results) if c.method.constrained]
        assert sum(f > 0 for f in fracs) >= 0.8 * len(fracs), case.label


def test_the_comparison_fails_on_a_wrong_projection(monkeypatch):
    import bench_suite.train.reference as rt

    real = rt.project_frobenius_ball
    monkeypatch.setattr(rt, "project_frobenius_ball", lambda w, w0, eps: real(w, w0, eps * 1.001))
    case = oracle.oracle_cases(methods=["mli_paired_pgd"])[0]
    worst = max(diff for _, diff, _ in oracle.run_case(case))
    assert worst > 1e-6


def test_the_comparison_sees_a_frozen_output_layer_that_moves(monkeypatch):
    from bench_suite.train.engine import loop as epochs

    monkeypatch.setattr(epochs, "_FusedEngine", _engine_ignoring_frozen(epochs._FusedEngine))
    case = oracle.oracle_cases(methods=["mli_paired_pgd_fixed_v"])[1]
    assert max(diff for _, diff, _ in oracle.run_case(case)) > 1e-6


def _engine_ignoring_frozen(cls):
    class Broken(cls):
        def __init__(self, data, cells, **kwargs):
            super().__init__(data, cells, **kwargs)
            self.lr_v.fill_(0.1)  # trains V although the method freezes it

    return Broken


def test_doctor_runs_the_oracle():
    from bench_suite.diagnostics import doctor

    checks = doctor.check_oracle(doctor._device("cpu"))
    assert len(checks) == 4 and all(c.status == doctor.OK for c in checks), [c.line() for c in checks]
    assert all(c.name.startswith("fused engine = reference trainer, ") for c in checks)
