"""Reports: read a store's results and verdicts, write them for people and for machines.
Reads results; never runs anything.

- :func:`write_report` (:mod:`.build`): ``report.md``, a short summary (:mod:`.markdown`), and
  ``report.html``, the whole report on one self-contained page (:mod:`.html`);
- report sections, a plug-in point (:mod:`.sections`): :func:`register_section`, the blocks a
  section returns (:class:`Text`, :class:`Table`, :class:`Figure`), and the tasks' own
  ``report_sections``; the built-in sections live in :mod:`.accuracy`, :mod:`.ordering`,
  :mod:`.theory`, :mod:`.study` (the ablation study's tables, :mod:`.ablation`),
  :mod:`.ablation_map` (where the ablation ordering holds) and :mod:`.curves`; their figures in :mod:`.figures`;
- :mod:`.compare`: what moved between two stores; :mod:`.tables`: the results and curves as
  CSV/parquet; :mod:`.output`: where a report may write (never over results it did not make).
"""

from .sections import SECTIONS, Figure, Section, SectionInput, Table, Text, register_section


def __getattr__(name: str):
    if name == "write_report":  # pandas and the writers load on first use (the API's face stays light)
        from .build import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SECTIONS", "Figure", "Section", "SectionInput", "Table", "Text", "register_section", "write_report"]
