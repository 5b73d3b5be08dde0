"""The section ``kkt_points`` (tasks that ask for it: ``kkt_bound``): Theorem 2 tested as the bound
it is (docs/theory.md, "Theorem 2 as a bound"). One row per instance (``theory.kkt_bound_table``):
its shape and scope, the starts, the certified KKT points, the non-degenerate ones above the
float64 floor, the largest loss and floor, the growth of loss/eps^2 when it can be tested, and
the instance's verdict line. The rows' verdicts are in the claims table. Plain pandas."""

from __future__ import annotations

from .. import theory
from .sections import SectionInput, Table, Text, register_section


@register_section("kkt_points", title="Theorem 2 as a bound: KKT points near MLI", order=65)
def kkt_bound_section(data: SectionInput) -> list:
    table = theory.kkt_bound_table(data.frame)
    if table.empty:
        return [Text("_No record carries Theorem 2's KKT study (the `kkt_bound` task's cells)._")]
    in_scope = table[table["scope"] == "in scope"]
    above = int(in_scope["above floor"].sum()) if len(in_scope) else 0
    lead = (f"{len(in_scope)} instance(s) in the theorem's scope (m·d/(2n) ≥ 1), {int(in_scope['starts'].sum())} "
            f"starts, {int(in_scope['KKT'].sum())} certified KKT points; {above} non-degenerate KKT point(s) above "
            f"the float64 floor" + (": no bad KKT points near MLI, and the ε² rate is untestable on these "
                                    "instances (stated, not fitted)." if above == 0 else "."))
    return [Text(lead, summary=True),
            Table(table, caption="One row per instance; controls below the width condition are shown, not scored.")]
