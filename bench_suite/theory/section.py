"""The record's ``theory`` section of a cell (written by the runner for every cell small
enough): the Jacobian at init, the KKT residual at the end, the linearized floor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .floor import linearized_loss_floor
from .jacobian import MAX_JACOBIAN_ENTRIES, jacobian_entries, jacobian_stats
from .kkt import kkt_stats

if TYPE_CHECKING:  # pragma: no cover
    import torch


def wants_section(n: int, m: int, d: int, k: int = 1, *, max_entries: int = MAX_JACOBIAN_ENTRIES) -> bool:
    """Whether a cell of this shape gets a computed ``theory`` section (else one saying it was
    skipped and why): J's n*K x m*d entries within ``max_entries``. The KKT residual and the
    loss floor need passes of the same size, so one bound gates all three."""
    return jacobian_entries(n, m, d, k) <= max_entries


def record_section(x: "torch.Tensor", y: "torch.Tensor", *, method: Any, width: int, outputs: int, activation: str,
                   loss: str, extra: dict[str, Any] | None, radius: float | None, finished: bool,
                   max_entries: int = MAX_JACOBIAN_ENTRIES) -> dict[str, Any]:
    """The record's ``theory`` section of one cell of ``method`` (a ``bench_suite.methods.Method``:
    its init, output layer, projection and frozen parameters are read): ``jacobian``
    (:func:`jacobian_stats` at init), ``kkt`` (:func:`kkt_stats` at the end, for a finished
    cell), ``floor`` (:func:`linearized_loss_floor`, mse only). ``extra`` is ``train_cells(...,
    keep_weights=True)``'s ``result.extra`` (w0, v0, w, v on the CPU); ``x``, ``y`` the training
    data. Above ``max_entries`` every part is ``{"status": "skipped", "reason": ...}`` with the
    size and the bound (never a memory error).

    The KKT part fits the problem the method solves: with V frozen only W is a variable, so
    ``kkt_residual`` is the W block's residual (``kkt_residual_w``; ``kkt_variables`` says "W");
    a projection other than the Frobenius ball has other KKT conditions than
    :func:`kkt_residual`'s, so the part is skipped with that reason (and so is it with W frozen)."""
    section = _section(x, y, init=method.init, output=method.output, width=width, outputs=outputs,
                       activation=activation, loss=loss, extra=extra, radius=radius, finished=finished,
                       max_entries=max_entries)
    kkt = section.get("kkt")
    if not isinstance(kkt, dict) or kkt.get("status") != "done":
        return section
    if method.projection_name not in ("none", "frobenius"):
        section["kkt"] = {"status": "skipped",
                          "reason": f"the KKT residual is that of the Frobenius ball; method {method.name} projects "
                                    f"onto {method.projection_name}"}
    elif "w" in method.frozen:
        section["kkt"] = {"status": "skipped", "reason": f"method {method.name} freezes W: the KKT residual of V "
                                                         f"alone is not computed"}
    elif "v" in method.frozen:
        section["kkt"] = {**kkt, "kkt_residual": kkt.get("kkt_residual_w"), "kkt_variables": "W"}
    return section


def _section(x: "torch.Tensor", y: "torch.Tensor", *, init: str, output: str, width: int, outputs: int,
             activation: str, loss: str, extra: dict[str, Any] | None, radius: float | None, finished: bool,
             max_entries: int) -> dict[str, Any]:
    """The three parts for the (W, V) problem of an ``init`` / ``output`` net."""
    from ..model import effective_output_weights

    n, d = (int(s) for s in x.shape)
    m, k = int(width), int(outputs)
    if not wants_section(n, m, d, k, max_entries=max_entries):
        why = (f"J is {n * k} x {m * d} = {n * k * m * d} entries, above the exact-SVD bound of {max_entries} "
               f"(bench_suite.theory.MAX_JACOBIAN_ENTRIES)")
        skipped = {"status": "skipped", "reason": why}
        return {"jacobian": {**skipped, "jacobian_entries": n * k * m * d, "max_entries": max_entries},
                "kkt": skipped}
    if extra is None or "w0" not in extra:
        return {"jacobian": {"status": "skipped", "reason": "the initial weights were not kept"}}
    v0_eff = effective_output_weights(extra["v0"], output)
    x64 = x.detach().cpu().double()
    section: dict[str, Any] = {
        "jacobian": jacobian_stats(x64, extra["w0"].double(), v0_eff.double(), activation, init=init,
                                   max_entries=max_entries)}
    if finished and "w" in extra:
        targets = y.detach().cpu()
        section["kkt"] = {"status": "done", **kkt_stats(
            x64, targets, w=extra["w"], v=extra["v"], w0=extra["w0"], v0=extra["v0"], activation=activation,
            output=output, loss=loss, radius=radius)}
    else:
        section["kkt"] = {"status": "skipped", "reason": "the cell did not finish"}
    if loss == "mse" and y.is_floating_point():  # regression targets (labels would need their one-hot)
        section["floor"] = {"status": "done", **linearized_loss_floor(
            x64, y.detach().cpu(), extra["w0"], extra["v0"], activation=activation, output=output)}
    return section
