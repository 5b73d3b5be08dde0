"""Where a theorem applies: the assumptions a reference row may declare (``assumes``), and the test
of a cell group against them (docs/checks.md, "Scope").

A row that checks a theorem names the theorem's assumptions; its groups whose cells lie outside
any of them get the verdict OUT_OF_SCOPE (measured and shown, not a check of the theorem), with
the reason in the ``scope`` column. The paper's slides: Theorems 1 and 2 hold
"for 1-hidden-layer nets with width m >= 2n/d"; Theorem 1's proof rests on the full rank of the
Jacobian at MLI and the inverse function theorem, which need a smooth activation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

_EPS = 1e-12


@dataclass(frozen=True)
class Assumption:
    """One assumption: ``violated(cells)`` is None when every record of the group meets it, else
    a short reason naming what the cells have."""

    name: str
    description: str
    violated: Callable[[pd.DataFrame], str | None]


def _width_condition(cells: pd.DataFrame) -> str | None:
    if "width_ratio" not in cells.columns:
        return None
    ratios = pd.to_numeric(cells["width_ratio"], errors="coerce").dropna()
    below = ratios[ratios < 1.0 - _EPS]
    if below.empty:
        return None
    return f"m d/(2n) = {float(below.min()):.3g} < 1"


# smooth (C^1 or better) activations among the built-in ones; any other is not assumed smooth
SMOOTH_ACTIVATIONS = {"tanh", "softplus", "gelu"}


def _smooth_activation(cells: pd.DataFrame) -> str | None:
    acts = sorted({str(a) for a in cells["activation"].dropna()} - SMOOTH_ACTIVATIONS)
    if not acts:
        return None
    return f"{', '.join(acts)} {'is' if len(acts) == 1 else 'are'} not smooth"


ASSUMPTIONS: dict[str, Assumption] = {
    "width_condition": Assumption("width_condition", "m >= 2n/d (width_ratio = m d/(2n) >= 1)", _width_condition),
    "smooth_activation": Assumption(
        "smooth_activation", f"a smooth activation ({', '.join(sorted(SMOOTH_ACTIVATIONS))})", _smooth_activation),
}
# a theorem's name stands for its assumptions
THEOREMS: dict[str, tuple[str, ...]] = {
    "theorem_1": ("width_condition", "smooth_activation"),
    "theorem_2": ("width_condition",),
}


def expand(names: tuple[str, ...]) -> tuple[str, ...]:
    """Assumption names, with each theorem's name replaced by its assumptions (order kept, unique).
    KeyError naming the unknown one."""
    out: list[str] = []
    for name in names:
        for a in THEOREMS.get(name, (name,)):
            if a not in ASSUMPTIONS:
                raise KeyError(name)
            if a not in out:
                out.append(a)
    return tuple(out)


def out_of_scope(assumes: tuple[str, ...], cells: pd.DataFrame) -> str | None:
    """None when the group's records meet every assumption of ``assumes`` (assumption or theorem
    names), else the reason, e.g. ``outside theorem_1: relu is not smooth``."""
    if not assumes or cells.empty:
        return None
    reasons = [why for a in expand(assumes) if (why := ASSUMPTIONS[a].violated(cells))]
    if not reasons:
        return None
    return f"outside {' + '.join(assumes)}: {'; '.join(reasons)}"


__all__ = ["ASSUMPTIONS", "Assumption", "SMOOTH_ACTIVATIONS", "THEOREMS", "expand", "out_of_scope"]
