"""report.md: the summary a researcher reads in two minutes, that renders on GitHub and diffs
well. What was run, the verdicts, one claims table, what was not scored (one line per task and
reason), the few figures that carry the claims, and where the rest is (report.html, the
machine-readable tables). Tables by ``DataFrame.to_markdown`` (tabulate); no machine path (the
store is named relative to the report, absolute paths in reasons are shortened).
"""

from __future__ import annotations

from pathlib import Path

from ..scoring.verdicts import EXIT_CODE_MEANINGS, FAIL, VERDICTS, exit_code
from . import fmt
from .build import ReportData
from .claims import claims_table, skipped_lines, unfinished_lines
from .sections import Figure, Table, Text

EXIT_MEANING = EXIT_CODE_MEANINGS  # check's exit codes and what each means (bench_suite/scoring/verdicts.py)
MAX_LINES = 300  # the summary's budget: a reader's two minutes


def verdict_line(data: ReportData) -> str:
    verd = data.verdicts
    by_claim = {k: sum(1 for c in data.claims if c.verdict == k) for k in VERDICTS}
    rows = {k: int((verd["verdict"] == k).sum()) for k in VERDICTS} if len(verd) else dict.fromkeys(VERDICTS, 0)
    known = sum(1 for c in data.claims if c.known and c.verdict == FAIL)
    code = exit_code(verd)
    many = known > 1
    text = (f"**{len(data.claims)} claims:** " + ", ".join(f"{by_claim[k]} {k}" for k in VERDICTS)
            + (f" ({known} FAIL{'s are' if many else ' is a'} documented known deviation{'s' if many else ''}: "
               "a measured non-reproduction, see its note)" if known else "")
            + (f"; {stale} claim(s) written up as a known deviation now PASS (the write-up is stale: counted as a "
               "FAIL)" if (stale := sum(1 for c in data.claims if c.known and c.verdict == "PASS")) else "")
            + f"; over {len(verd)} verdict rows (" + ", ".join(f"{rows[k]} {k}" for k in VERDICTS) + ")"
            + f"; `check` exit code {code} ({EXIT_MEANING.get(code, '')}).")
    return text


def _block_lines(block, figure_format: str) -> list[str]:
    if isinstance(block, Text):
        return [block.text, ""]
    if isinstance(block, Table):
        rows = block.frame.astype(str).to_dict("records")
        return ([block.caption, ""] if block.caption else []) + [fmt.md_table(rows, list(block.frame.columns)), ""]
    if isinstance(block, Figure):
        link = f"figures/{block.name}.{figure_format}"
        if figure_format == "pdf":  # GitHub does not inline a PDF: a link
            return [f"[{block.title} (PDF)]({link})" + (f": {block.caption}" if block.caption else ""), ""]
        return [f"![{fmt.plain(block.title)}]({link})", ""] + ([f"_{block.caption.strip()}_", ""]
                                                               if block.caption else [])
    return []


def summary_lines(data: ReportData, *, figure_format: str = "svg") -> list[str]:
    """The lines of report.md."""
    lines = [f"# {data.title}", ""]
    for note in data.notes:
        lines += [f"> {note}", ""]
    for problem in data.problems:
        lines += [f"> Warning: {fmt.scrub_paths(problem)}", ""]
    lines += ["## What was run", "", fmt.md_table([{"": k, " ": v} for k, v in data.run_info], ["", " "]), ""]
    lines += ["## Claims", "", verdict_line(data), ""]
    ran = {str(t) for t in data.frame["task"].dropna()}
    shown = [c for c in data.claims if c.task in ran or c.verdict != "SKIPPED"]
    idle = sorted({c.task for c in data.claims} - {c.task for c in shown})
    if shown:
        lines += ["Ours is the mean over repetitions with its 95% CI half-width (for a comparison, the mean paired "
                  "difference); a claim scored on several (width, activation, setting) groups shows the range of "
                  "ours and the worst verdict (report.html lists each group and its cells).", "",
                  fmt.md_table(claims_table(shown), ["claim", "task", "reference", "ours (95% CI)",
                                                     "repetitions", "verdict", "known deviation"]), ""]
    elif not data.claims:
        lines += ["_No references were checked._", ""]
    skipped = skipped_lines(shown)
    if idle:
        n_idle = sum(1 for c in data.claims if c.task in idle)
        skipped.insert(0, f"no results in this store for {', '.join(f'`{t}`' for t in idle)}: their {n_idle} "
                          "claim(s) are SKIPPED (listed in report.html and verdicts.csv).")
    unfinished = unfinished_lines(data.frame)
    left = _left_out_lines(data)
    if skipped or unfinished or left:
        lines += ["### Not scored", ""]
        lines += [f"- {line}" for line in skipped + unfinished + left] + [""]
    for section, blocks in data.sections:
        shown = [b for b in blocks if getattr(b, "summary", False)]
        if not shown:
            continue
        lines += [f"## {section.title}", ""]
        for block in shown:
            lines += _block_lines(block, figure_format)
    lines += ["## More", "",
              "- `report.html` (beside this file when written): every table and figure, the claims with each group "
              "and its cells, the training curves (mean and range over repetitions, each repetition, log and linear "
              "scale), a sortable table of the cells linked to their records.",
              "- `results.csv` / `results.parquet`: one row per cell (status, reason, time, FLOPs, trainer, the width "
              "condition m·d/(2n), provenance).",
              "- `verdicts.csv` / `verdicts.json`: every verdict row, the cells it used, the records left out.",
              "- the curves in long form: `python -m bench_suite export --store STORE --dir DIR`.", ""]
    return lines


def _left_out_lines(data: ReportData) -> list[str]:
    left = data.left_out
    if left is None or len(left) == 0:
        return []
    return [f"{n} record(s) not scored: {why} (verdicts.json, \"left_out\")"
            for why, n in sorted(left["why"].value_counts().items())]


def write_summary(data: ReportData, out_dir: Path, *, figure_format: str = "svg") -> Path:
    """Write ``out_dir/report.md``; its path."""
    from ..core.files import atomic_write

    text = "\n".join(summary_lines(data, figure_format=figure_format)).rstrip("\n") + "\n"
    return atomic_write(Path(out_dir) / "report.md", text)


def write_report(df, records, verdicts, out_dir, **kwargs) -> Path:
    """The former face of this module (``bench_suite.report.write_report``):
    :func:`bench_suite.reporting.build.write_report`, returning report.md's path."""
    from .build import write_report as write

    return write(df, records, verdicts, out_dir, **kwargs)[0]


__all__ = ["EXIT_MEANING", "MAX_LINES", "summary_lines", "verdict_line", "write_report", "write_summary"]
