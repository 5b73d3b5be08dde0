"""Report sections: a registry (name -> section), the blocks a section returns, and which
sections a task gets.

A section is a function of a :class:`SectionInput` (the results, records and verdicts of the
tasks it applies to) that returns a list of blocks: :class:`Text`, :class:`Table` and
:class:`Figure`. Both writers read the same blocks: the HTML page shows them all; the markdown
summary (report.md) shows only those marked ``summary=True`` (the few that carry a claim).

Which tasks a section applies to, by any of:

- the task's class attribute ``report_sections`` (names of sections, in
  ``bench_suite/tasks/base.py``; ``None``, the default, means "the defaults for its kind": the
  ``accuracy`` section for a classification task, nothing more);
- the section's own ``tasks`` (a tuple of task names, or ``"*"``: every task, e.g. the
  training curves);

so a new task gets its sections without editing this package, and a new section reaches
existing tasks without editing them. A plug-in registers one with :func:`register_section`
(examples/my_report_section.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from ..core.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure as MplFigure

    from ..core.records import Record

ALL = "*"


# --------------------------------------------------------------------------------------------
# blocks
# --------------------------------------------------------------------------------------------
@dataclass
class Text:
    """A paragraph (markdown: `code`, **bold**, [links](url); HTML renders the same marks)."""

    text: str
    summary: bool = False


@dataclass
class Table:
    """A table (every cell already text or a number); ``caption`` goes above it."""

    frame: "pd.DataFrame"
    caption: str = ""
    summary: bool = False


@dataclass
class Figure:
    """A figure: ``views`` maps a view's label to a function that draws it (returns a
    matplotlib Figure, no pyplot). The HTML page shows the first view and a toggle for the
    others; report.md links the first view, written as ``figures/<name>.<format>``."""

    name: str
    title: str
    views: dict[str, Callable[[], "MplFigure"]]
    caption: str = ""
    summary: bool = False


Block = Text | Table | Figure


@dataclass
class SectionInput:
    """What a section reads: the rows of the tasks it applies to. ``frame`` is the results
    table (``bench_suite.core.records.COLUMNS``, plus ``_profile``: the profile as text),
    ``records`` the records (with their curves), ``verdicts`` the verdict rows of those tasks
    (``bench_suite.scoring.checks.VERDICT_COLUMNS``)."""

    tasks: list[str]
    frame: "pd.DataFrame"
    records: list["Record"]
    verdicts: "pd.DataFrame"


@dataclass(frozen=True)
class Section:
    """A registered section. ``render(SectionInput) -> list[Block]``; ``tasks``: the tasks it
    applies to beyond those that ask for it (``"*"``: all); ``order``: its place in the report
    (lower first)."""

    name: str
    title: str
    render: Callable[[SectionInput], list]
    tasks: tuple[str, ...] | str = ()
    order: int = 100
    anchor: str = field(default="")


SECTIONS: Registry[Section] = Registry("report section")


def register_section(name: str, *, title: str, tasks: Iterable[str] | str = (), order: int = 100,
                     replace: bool = False) -> Callable:
    """Decorator: register ``render`` as the report section ``name``.

    ``title``: its heading; ``tasks``: task names it applies to even if they do not list it
    (``"*"``: every task); ``order``: its place among the sections (built-ins use 10-90).
    ``replace=True`` re-registers a name (a re-run notebook cell). Raises ``ValueError`` for a
    name taken by another section."""
    scope: tuple[str, ...] | str = ALL if tasks == ALL else tuple(tasks)

    def decorator(render: Callable[[SectionInput], list]) -> Callable[[SectionInput], list]:
        SECTIONS.add(name, Section(name=name, title=title, render=render, tasks=scope, order=order,
                                   anchor=f"section-{name}"), replace=replace)
        return render

    return decorator


def task_sections(task: str) -> tuple[str, ...]:
    """The sections task ``task`` asks for: its class's ``report_sections``, or the defaults for
    its kind (``accuracy`` for a classification task) when it declares none (None) or is not
    registered here (a plug-in that was not loaded)."""
    from ..tasks import TASKS

    if task not in TASKS:
        return ()
    cls = TASKS.get(task)
    declared = getattr(cls, "report_sections", None)
    if declared is not None:
        return tuple(declared)
    return ("accuracy",) if getattr(cls, "classification", None) else ()


def plan_sections(tasks: Sequence[str]) -> tuple[list[tuple[Section, list[str]]], list[str]]:
    """(sections, problems): each registered section that applies to some of ``tasks``, with
    those tasks, in report order; and one line per section a task asks for that is not
    registered (its plug-in was not loaded)."""
    _load_builtins()
    wanted: dict[str, list[str]] = {}
    problems = []
    for task in sorted(set(tasks)):
        for name in task_sections(task):
            if name not in SECTIONS:
                problems.append(f"task {task} asks for the report section {name!r}, which is not registered (load "
                                f"the plug-in that defines it with --plugin); registered: "
                                f"{', '.join(SECTIONS.names())}")
                continue
            wanted.setdefault(name, []).append(task)
    for name in SECTIONS.names():
        section = SECTIONS.get(name)
        scope = sorted(set(tasks)) if section.tasks == ALL else [t for t in sorted(set(tasks)) if t in section.tasks]
        for task in scope:
            if task not in wanted.setdefault(name, []):
                wanted[name].append(task)
    plan = [(SECTIONS.get(n), sorted(ts)) for n, ts in wanted.items() if ts]
    plan.sort(key=lambda st: (st[0].order, st[0].name))
    return plan, problems


_BUILTINS = ("accuracy", "ordering", "theory", "kkt", "study", "ablation_map", "curves")


def _load_builtins() -> None:
    """Import the built-in sections (each module registers its own on import)."""
    import importlib

    for module in _BUILTINS:
        importlib.import_module(f"{__package__}.{module}")


def section_input(section_tasks: Sequence[str], frame: "pd.DataFrame", records: Sequence["Record"],
                  verdicts: "pd.DataFrame") -> SectionInput:
    """The rows of ``section_tasks`` only."""
    keep = set(section_tasks)
    sub = frame[frame["task"].isin(keep)] if len(frame) else frame
    verd = verdicts[verdicts["task"].isin(keep)] if len(verdicts) else verdicts
    return SectionInput(sorted(keep), sub, [r for r in records if r.task in keep], verd)


__all__ = ["ALL", "Block", "Figure", "SECTIONS", "Section", "SectionInput", "Table", "Text", "plan_sections",
           "register_section", "section_input", "task_sections"]
