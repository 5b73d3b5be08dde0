"""The record's ``theory`` section of a cell (written by the runner for every cell small
enough): the Jacobian at init, the KKT residual at the end, the linearized floor."""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable

from .floor import linearized_loss_floor
from .jacobian import MAX_JACOBIAN_ENTRIES, jacobian_entries, jacobian_stats
from .kkt import kkt_stats

if TYPE_CHECKING:  # pragma: no cover
    import torch


# The Jacobian at init and the linearized floor depend only on the data and the initial weights
# (and the activation, init and output layer), not on the learning rates or the radius: the cells
# of a sweep share them, and at n 1000, d 100, m 60 each takes seconds. So each is computed once per
# content digest of its inputs (the same numbers, bit for bit), in a small per-process LRU.
_AT_INIT: OrderedDict[str, dict[str, Any]] = OrderedDict()
_AT_INIT_SIZE = 32


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        if hasattr(part, "detach"):  # a tensor: its dtype, shape and bytes
            t = part.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes())
        else:
            h.update(repr(part).encode())
        h.update(b"|")
    return h.hexdigest()


def _at_init(key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``compute()``, or a copy of what it returned for ``key`` before in this process."""
    if key in _AT_INIT:
        _AT_INIT.move_to_end(key)
        return copy.deepcopy(_AT_INIT[key])
    value = compute()
    _AT_INIT[key] = copy.deepcopy(value)
    while len(_AT_INIT) > _AT_INIT_SIZE:
        _AT_INIT.popitem(last=False)
    return value


def wants_section(n: int, m: int, d: int, k: int = 1, *, max_entries: int = MAX_JACOBIAN_ENTRIES) -> bool:
    """Whether a cell of this shape gets a computed ``theory`` section (else one saying it was
    skipped and why): J's n*K x m*d entries within ``max_entries``. The KKT residual and the
    loss floor need passes of the same size, so one bound gates all three."""
    return jacobian_entries(n, m, d, k) <= max_entries


def record_section(x: "torch.Tensor", y: "torch.Tensor", *, method: Any, width: int, outputs: int, activation: str,
                   loss: str, extra: dict[str, Any] | None, radius: float | None, finished: bool,
                   max_entries: int = MAX_JACOBIAN_ENTRIES, parts: dict[str, dict[str, Any]] | None = None,
                   ) -> dict[str, Any]:
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
    :func:`kkt_residual`'s, so the part is skipped with that reason (and so is it with W frozen).

    ``parts``: further parts by name with their settings, as a task asks for them
    (``Task.theory_parts``): ``kkt_bound`` (:func:`kkt_bound_part`)."""
    section = _section(x, y, init=method.init, output=method.output, width=width, outputs=outputs,
                       activation=activation, loss=loss, extra=extra, radius=radius, finished=finished,
                       max_entries=max_entries)
    kkt = section.get("kkt")
    done = isinstance(kkt, dict) and kkt.get("status") == "done"
    if not done:
        pass  # nothing to fit
    elif method.projection_name not in ("none", "frobenius"):
        section["kkt"] = {"status": "skipped",
                          "reason": f"the KKT residual is that of the Frobenius ball; method {method.name} projects "
                                    f"onto {method.projection_name}"}
    elif "w" in method.frozen:
        section["kkt"] = {"status": "skipped", "reason": f"method {method.name} freezes W: the KKT residual of V "
                                                         f"alone is not computed"}
    elif "v" in method.frozen:
        section["kkt"] = {**kkt, "kkt_residual": kkt.get("kkt_residual_w"), "kkt_variables": "W"}
    return _with_parts(section, parts, x, y, method=method, activation=activation, extra=extra)


PARTS = ("kkt_bound",)


def _with_parts(section: dict[str, Any], parts: dict[str, dict[str, Any]] | None, x, y, *, method: Any,
                activation: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    for name, settings in (parts or {}).items():
        if name == "kkt_bound":
            section[name] = kkt_bound_part(x, y, method=method, activation=activation, extra=extra, **settings)
        else:
            section[name] = {"status": "error", "reason": f"unknown theory part {name!r}; known: {', '.join(PARTS)}"}
    return section


def kkt_bound_part(x: "torch.Tensor", y: "torch.Tensor", *, method: Any, activation: str,
                   extra: dict[str, Any] | None, eps_min_rel: float, eps_max_rel: float, eps_count: int,
                   starts: int) -> dict[str, Any]:
    """Theorem 2's KKT study of the cell's instance (``kkt_study.measure``: its data and its
    initial W0, at ``eps_count`` radii log-spaced over [eps_min_rel, eps_max_rel] x ||W0||_F,
    ``starts`` starts of each kind), or ``{"status": "skipped", "reason": ...}`` where the cell
    is not Theorem 2's problem: the paired output layer under MLI, a smooth activation."""
    from .kkt_solver import ACTIVATIONS

    if method.output != "paired" or method.init != "mirrored_lecun":
        return {"status": "skipped", "reason": f"Theorem 2's problem is the paired output layer at MLI; method "
                                               f"{method.name} has init {method.init}, output {method.output}"}
    if activation not in ACTIVATIONS:
        return {"status": "skipped", "reason": f"Theorem 2 assumes a smooth activation; the solver has "
                                               f"{', '.join(ACTIVATIONS)}, not {activation}"}
    if extra is None or "w0" not in extra:
        return {"status": "skipped", "reason": "the initial weights were not kept"}
    from .kkt_study import eps_grid, measure

    return measure(x, y, extra["w0"], activation=activation, eps_rel=eps_grid(eps_min_rel, eps_max_rel, eps_count),
                   starts=starts)


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
    section: dict[str, Any] = {"jacobian": _at_init(
        _digest("jacobian", x, extra["w0"], v0_eff, activation, init, max_entries),
        lambda: jacobian_stats(x64, extra["w0"].double(), v0_eff.double(), activation, init=init,
                               max_entries=max_entries))}
    if finished and "w" in extra:
        targets = y.detach().cpu()
        section["kkt"] = {"status": "done", **kkt_stats(
            x64, targets, w=extra["w"], v=extra["v"], w0=extra["w0"], v0=extra["v0"], activation=activation,
            output=output, loss=loss, radius=radius)}
    else:
        section["kkt"] = {"status": "skipped", "reason": "the cell did not finish"}
    if loss == "mse" and y.is_floating_point():  # regression targets (labels would need their one-hot)
        section["floor"] = {"status": "done", **_at_init(
            _digest("floor", x, y, extra["w0"], extra["v0"], activation, output),
            lambda: linearized_loss_floor(x64, y.detach().cpu(), extra["w0"], extra["v0"], activation=activation,
                                          output=output))}
    return section
