"""A report's content, built once and written twice: the markdown summary (report.md) and the
HTML page (report.html), from the store's results, records and verdicts.

:func:`collect` gathers what was run, the claims, and every section's blocks (the sections
each task asks for: :mod:`.sections`); :func:`write_report` renders the figures and writes the
files. Deterministic: no clock is read (the only timestamps are the records' own), everything
is sorted, figures carry no date.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..core.records import COLUMN_NAMES, Record, code_version_text
from . import figures, fmt
from .claims import Claim, claims
from .sections import Figure, Section, plan_sections, section_input

FORMATS = ("md", "html")


@dataclass
class ReportData:
    """Everything both writers read."""

    title: str
    notes: list[str]
    frame: pd.DataFrame
    records: list[Record]
    verdicts: pd.DataFrame
    claims: list[Claim]
    run_info: list[tuple[str, str]]
    sections: list[tuple[Section, list]]
    left_out: pd.DataFrame | None = None
    store_label: str = ""  # the store as the user named it (fmt.display_path)
    problems: list[str] = field(default_factory=list)
    store_link: str = ""  # the store's path relative to the report folder (links to records)


def prepare_frame(df: pd.DataFrame | None) -> pd.DataFrame:
    """The results table with every column (missing ones read as missing), ``_profile`` (the
    profile as text) and a deterministic order."""
    df = pd.DataFrame() if df is None else df.copy()
    for c in COLUMN_NAMES:
        if c not in df.columns:
            df[c] = None
    df["_profile"] = df["profile"].map(fmt.profile_name)
    df["_key"] = [(str(t), p, fmt.sort_key(w), str(a), str(m), fmt.sort_key(r), str(c))
                  for t, p, w, a, m, r, c in zip(df["task"], df["_profile"], df["width"], df["activation"],
                                                 df["method"], df["repetition"], df["cell_id"])]
    return df.sort_values("_key", kind="mergesort").drop(columns="_key").reset_index(drop=True)


def sorted_verdicts(verdicts: pd.DataFrame | None) -> pd.DataFrame:
    if verdicts is None or len(verdicts) == 0:
        return pd.DataFrame(columns=["id", "task", "profile", "width", "activation", "verdict", "note"])
    v = verdicts.copy()
    v["_key"] = [(str(i), fmt.sort_key(w), fmt.sort_key(a)) for i, w, a in zip(v["id"], v["width"], v["activation"])]
    return v.sort_values("_key", kind="mergesort").drop(columns="_key").reset_index(drop=True)


def _tally(values: Sequence[str], limit: int = 4) -> str:
    counts = Counter(v for v in values if v)
    if not counts:
        return fmt.DASH
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = [v if len(counts) == 1 else f"{v} ({n})" for v, n in items[:limit]]
    return "; ".join(shown) + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def run_info(frame: pd.DataFrame, records: Sequence[Record], store_label: str, profile: str | None) -> list:
    """(field, value) rows of "what was run": store, profile, cells, code, data, machine."""
    rows = [("store", f"`{store_label}`" if store_label else fmt.DASH),
            ("profile", f"`{profile}`" if profile else "all profiles in the store")]
    counts = frame["status"].fillna("unknown").value_counts() if len(frame) else pd.Series(dtype=int)
    per_task = frame["task"].value_counts() if len(frame) else pd.Series(dtype=int)
    rows.append(("cells", f"{len(frame)} ({', '.join(f'{int(counts[s])} {s}' for s in sorted(counts.index)) or 'none'})"
                 + (": " + ", ".join(f"`{t}` {int(per_task[t])}" for t in sorted(per_task.index)) if len(per_task)
                    else "")))
    prov = [r.provenance for r in records]
    rows.append(("code version", _tally([str(code_version_text(r)) for r in records], 2)))
    rows.append(("git commit", _tally([f"{str(p.get('git_commit'))[:12]}{' (dirty)' if p.get('git_dirty') else ''}"
                                       for p in prov if p.get("git_commit")])))
    data = []
    for task in sorted({r.task for r in records}):
        sources = {re.sub(r", seed=-?\d+", "", fmt.scrub_paths(r.provenance.get("data_source")))
                   for r in records if r.task == task and r.provenance.get("data_source")}
        sums = {str(r.provenance.get("data_checksum")).split(":")[-1][:12] for r in records if r.task == task
                and r.provenance.get("data_checksum")}
        data.append(f"`{task}`: {'; '.join(sorted(sources)) or fmt.DASH}"
                    + (f" (checksum {', '.join(sorted(sums))})" if sums else ""))
    rows.append(("data", "; ".join(data) or fmt.DASH))
    rows.append(("machine", _tally([f"{p.get('device')}" + (f" ({p.get('device_name')})" if p.get("device_name")
                                                             else "") for p in prov])))
    soft = [f"python {p.get('python')}, torch {p.get('torch')}" + (f", CUDA {p['cuda']}" if p.get("cuda") else "")
            for p in prov]
    rows.append(("software", _tally(soft, 2)))
    rows.append(("precision", _tally([f"{p.get('precision')}{', TF32 matmul' if p.get('tf32_matmul') else ''}"
                                      for p in prov])))
    rows.append(("executor", _tally([str(p.get("executor")) for p in prov if p.get("executor")])))
    jobs = sorted({str(j) for j in (_job(p) for p in prov) if j})  # the SLURM jobs / Dask workers that wrote them
    if jobs:
        rows.append(("cluster jobs / workers", f"{len(jobs)}: {', '.join(jobs[:12])}"
                     + (f" and {len(jobs) - 12} more" if len(jobs) > 12 else "")))
    created = sorted(str(p["created"]) for p in prov if p.get("created"))
    if created:
        rows.append(("created", f"{created[0]} … {created[-1]}"))
    return rows


def report_notes(df: pd.DataFrame, stale: Sequence[Record], store_label: str) -> list[str]:
    """The lines under the report's title: CPU-scale results, an empty selection, records of
    older code (named by the store's path relative to the report)."""
    notes = []
    if stale:
        from ..grid.versions import why_not_current

        reasons = sorted({why_not_current(r) for r in stale})
        profiles = sorted({fmt.profile_name(r.profile) for r in stale})
        notes.append(f"STALE: {len(stale)} record(s) of profile(s) {', '.join(profiles)} in the store were computed by "
                     f"other code ({'; '.join(reasons)}) and are not scored; re-run them (e.g. `nox -s reproduce`).")
    devices = sorted({str(d) for d in df["device"].dropna()}) if len(df) else []
    if "cpu" in devices:
        notes.append("CPU-scale results are not comparable with Table 3: these runs used the CPU (scaled-down "
                     "profiles); Table 3 rows are checked only against `paper`-profile results.")
    if df.empty:
        notes.append(f"The store (`{store_label}`) holds no results for this selection.")
    return notes


def _job(p: dict) -> str | None:
    """The SLURM job (``51_3`` for an array task, as squeue names it) or Dask worker of a record."""
    if p.get("slurm_job"):
        return str(p["slurm_job"])
    if p.get("slurm_array_job_id") and p.get("slurm_array_task_id") is not None:
        return f"{p['slurm_array_job_id']}_{p['slurm_array_task_id']}"
    return p.get("slurm_job_id") or p.get("dask_worker")


def collect(df: pd.DataFrame, records: Sequence[Record], verdicts: pd.DataFrame, *, title: str,
            notes: Sequence[str] = (), left_out: pd.DataFrame | None = None, references: Sequence = (),
            store_label: str = "", store_link: str = "", profile: str | None = None) -> ReportData:
    """Build the report's content: run the sections that the tasks of ``df`` and ``verdicts``
    ask for (:func:`.sections.plan_sections`). A section that raises is shown as one line (the
    rest of the report is still written)."""
    frame = prepare_frame(df)
    verd = sorted_verdicts(verdicts)
    recs = sorted(records or [], key=lambda r: (r.name, r.cell_id))
    texts = {str(r.id): str(getattr(r, "claim", "") or "") for r in references}
    tasks = sorted({str(t) for t in frame["task"].dropna()})  # tasks without results: their claims say so
    plan, problems = plan_sections(tasks)
    sections = []
    for section, its_tasks in plan:
        data = section_input(its_tasks, frame, recs, verd)
        try:
            blocks = list(section.render(data) or [])
        except Exception as exc:  # noqa: BLE001 - a plug-in's section must not cost the whole report
            line = f"the report section {section.name!r} failed: {type(exc).__name__}: {exc}"
            print(f"warning: {line}", file=sys.stderr)
            problems.append(line)
            continue
        if blocks:
            sections.append((section, blocks))
    return ReportData(title, [fmt.scrub_paths(n) for n in notes], frame, recs, verd, claims(verd, texts),
                      run_info(frame, recs, store_label, profile), sections, left_out, store_label, problems,
                      store_link)


def render_figures(data: ReportData, out_dir: Path, *, figure_format: str, html: bool,
                   markdown: bool) -> tuple[dict[str, dict[str, str]], list[Path]]:
    """Draw every figure: (name -> view -> inline SVG) for the page, and the files of the
    summary's figures (``figures/<name>.<format>``, their first view) for report.md."""
    from ..core.files import atomic_write

    inline: dict[str, dict[str, str]] = {}
    files: list[Path] = []
    for _, blocks in data.sections:
        for block in blocks:
            if not isinstance(block, Figure):
                continue
            views = list(block.views.items())
            if html:
                inline[block.name] = {}
            for i, (view, make) in enumerate(views):
                svg = figures.render(make, "svg", salt=f"{block.name}-{i}") if html or figure_format == "svg" else None
                if html:
                    inline[block.name][view] = figures.svg_inline(svg)
                if markdown and block.summary and i == 0:
                    payload = svg if figure_format == "svg" else figures.render(make, figure_format,
                                                                                  salt=block.name)
                    files.append(atomic_write(out_dir / "figures" / f"{block.name}.{figure_format}", payload))
    return inline, files


def write_report(df: pd.DataFrame, records: list[Record], verdicts: pd.DataFrame, out_dir: str | Path, *,
                 title: str = "bench_suite report", note_lines: Sequence[str] = (),
                 left_out: pd.DataFrame | None = None, references: Sequence = (), store_label: str = "",
                 store_link: str = "", profile: str | None = None, formats: Sequence[str] = FORMATS,
                 figure_format: str = "svg") -> list[Path]:
    """Write ``out_dir/report.md`` (the summary, with ``figures/``) and/or ``out_dir/report.html``
    (the whole report, self-contained); return the paths written, the report files first.

    ``df`` is ``ResultStore.to_dataframe()`` (or ``records.to_frame``), ``records`` the records
    (with curves for the curves section), ``verdicts`` :func:`bench_suite.scoring.checks.run_checks`'s
    output; ``note_lines`` go under the title; ``references`` give the claims their sentences.
    Raises ``ValueError`` for an unknown format."""
    check_formats(formats, figure_format)
    data = collect(df, records, verdicts, title=title, notes=note_lines, left_out=left_out, references=references,
                   store_label=store_label, store_link=store_link, profile=profile)
    return write_collected(data, out_dir, formats=formats, figure_format=figure_format)


def check_formats(formats: Sequence[str], figure_format: str) -> None:
    """``ValueError`` (one line) for an unknown report or figure format."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"report format {', '.join(bad) or '(none)'}: choose md, html or both")
    if figure_format not in figures.FORMATS:
        raise ValueError(f"figure format {figure_format!r}: choose one of {', '.join(figures.FORMATS)}")


def figure_files(data: ReportData, figure_format: str) -> list[str]:
    """The figure files report.md links (``figures/<name>.<format>``), relative to its folder."""
    return [f"figures/{b.name}.{figure_format}" for _, blocks in data.sections for b in blocks
            if isinstance(b, Figure) and b.summary]


def write_collected(data: ReportData, out_dir: str | Path, *, formats: Sequence[str] = FORMATS,
                    figure_format: str = "svg") -> list[Path]:
    """Render the figures and write the report files of :func:`collect`'s content; the paths."""
    from . import html as html_writer
    from . import markdown as md_writer

    check_formats(formats, figure_format)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inline, files = render_figures(data, out, figure_format=figure_format, html="html" in formats,
                                   markdown="md" in formats)
    written = []
    if "md" in formats:
        written.append(md_writer.write_summary(data, out, figure_format=figure_format))
    if "html" in formats:
        written.append(html_writer.write_page(data, out, inline))
    return written + files


__all__ = ["FORMATS", "ReportData", "check_formats", "collect", "figure_files", "prepare_frame", "render_figures",
           "report_notes", "run_info", "sorted_verdicts", "write_collected", "write_report"]
