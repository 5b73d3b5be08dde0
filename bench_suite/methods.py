"""The training methods: each a named combination of init, output layer and constraint.

Add a method from your own module::

    from bench_suite.methods import Method, METHODS
    METHODS.add("mli_free_pgd", Method("mli_free_pgd", "MLI + free output + PGD",
                                       init="mirrored_lecun", output="free", constrained=True))
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import INITS, OUTPUTS, check_choice
from .registry import Registry


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    init: str  # "lecun" | "mirrored_lecun"
    output: str  # "free" | "paired"
    constrained: bool  # projected GD onto ||W - W0||_F <= eps after every step

    def __post_init__(self) -> None:
        check_choice("init", self.init, INITS)
        check_choice("output layer", self.output, OUTPUTS)


METHODS: Registry[Method] = Registry("method")

for _method in (
    Method(
        "mli_paired_pgd",
        "the paper: mirrored LeCun init + paired output layer + projected GD (||W-W0||_F <= eps)",
        init="mirrored_lecun", output="paired", constrained=True,
    ),
    Method(
        "sgd", "LeCun init + free output layer + unconstrained SGD", init="lecun", output="free", constrained=False
    ),
    Method(
        "constraint_only", "LeCun init + free output layer + projected GD",
        init="lecun", output="free", constrained=True,
    ),
    Method(
        "no_mirroring",
        "LeCun init (halves not mirrored) + paired output layer + projected GD",
        init="lecun", output="paired", constrained=True,
    ),
):
    METHODS.add(_method.name, _method)
