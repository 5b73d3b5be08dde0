"""report.html: the whole report on one self-contained page (no network: the CSS, the script and
every figure are inline; figures as SVG). Rendered with jinja2 from the templates shipped in
``bench_suite/reporting/templates``.

The page: what was run; the claims, filterable by verdict and task, each with its groups and
links to the cells it used; every section's tables and figures (each figure's views behind a
toggle); a sortable table of the cells (status, reason, time, FLOPs, trainer) linking each to
its record file in the store. Opened with ``#selftest`` the script exercises its own filter,
sorting and toggles and writes the outcome into the page (``<pre id="selftest">``): the
browser test reads it with ``chromium --headless --dump-dom``.
"""

from __future__ import annotations

import html as _html
import re
from pathlib import Path
from typing import Any

from ..scoring.verdicts import VERDICTS
from . import fmt
from .build import ReportData
from .claims import skipped_lines, unfinished_lines
from .markdown import verdict_line
from .sections import Figure, Table, Text

TEMPLATES = Path(__file__).with_name("templates")


def md_inline(text: Any) -> str:
    """A line of the report's markdown as HTML: escaped, with `code`, **bold**, _emphasis_
    (a whole line) and [links](url)."""
    out = _html.escape(str(text), quote=True)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', out)
    if len(out) > 2 and out.startswith("_") and out.endswith("_"):
        out = f"<em>{out[1:-1]}</em>"
    return out


def _cell_value(v: Any) -> tuple[str, str]:
    """(text, sort key) of a table cell: numbers sort as numbers."""
    if fmt.missing(v):
        return fmt.DASH, ""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (fmt.num(v) if isinstance(v, float) else str(v)), repr(float(v))
    return str(v), str(v)


def _blocks(blocks: list, inline: dict[str, dict[str, str]]) -> list[dict]:
    out = []
    for block in blocks:
        if isinstance(block, Text):
            out.append({"kind": "text", "html": md_inline(block.text)})
        elif isinstance(block, Table):
            cols = [str(c) for c in block.frame.columns]
            rows = [[_cell_value(v) for v in row] for row in block.frame.itertuples(index=False)]
            out.append({"kind": "table", "caption": md_inline(block.caption) if block.caption else "",
                        "columns": cols, "rows": rows})
        elif isinstance(block, Figure):
            views = inline.get(block.name, {})
            out.append({"kind": "figure", "name": block.name, "title": block.title,
                        "caption": md_inline(block.caption) if block.caption else "",
                        "views": [(label, views.get(label, "")) for label in block.views]})
    return out


def _claims(data: ReportData) -> list[dict]:
    names = dict(zip(data.frame["cell_id"], data.frame["name"])) if len(data.frame) else {}
    out = []
    for c in data.claims:
        groups = []
        for _, g in c.groups.iterrows():
            cells = g["cells"] if isinstance(g.get("cells"), (list, tuple)) else []
            groups.append({
                "width": fmt.integer(g["width"]) if not fmt.missing(g["width"]) else "all",
                "activation": g["activation"] if not fmt.missing(g["activation"]) else "all",
                "setting": "" if fmt.missing(g.get("setting")) else str(g.get("setting")),
                "ours": fmt.ours(g), "verdict": g["verdict"], "note": fmt.scrub_paths(g["note"] or ""),
                "cells": [(cid, names.get(cid, cid)) for cid in sorted(cells)]})
        out.append({"id": c.id, "task": c.task, "profile": c.profile, "text": c.text, "reference": c.reference,
                    "ours": c.ours, "n": c.n, "verdict": c.verdict, "verdict_text": c.verdict_text, "known": c.known,
                    "groups": groups, "n_cells": len(c.cells)})
    return out


def _cells(data: ReportData) -> list[dict]:
    out = []
    base = data.store_link.rstrip("/")
    for _, r in data.frame.iterrows():
        flops = None if fmt.missing(r["flops"]) else float(r["flops"]) / 1e9
        out.append({
            "id": r["cell_id"], "name": r["name"], "task": r["task"], "profile": r["_profile"], "method": r["method"],
            "width": _cell_value(r["width"] if fmt.missing(r["width"]) else int(r["width"])),
            "activation": r["activation"],
            "repetition": _cell_value(r["repetition"] if fmt.missing(r["repetition"]) else int(r["repetition"])),
            "status": r["status"], "reason": fmt.scrub_paths(r["reason"]) if not fmt.missing(r["reason"]) else "",
            "time": _cell_value(None if fmt.missing(r["train_time_s"]) else float(r["train_time_s"])),
            "gflop": _cell_value(flops),
            "trainer": "" if fmt.missing(r["trainer"]) else str(r["trainer"]),
            "group": _cell_value(None if fmt.missing(r["group_size"]) else int(r["group_size"])),
            "device": "" if fmt.missing(r["device_name"]) else str(r["device_name"]),
            "record": f"{base}/records/{r['cell_id']}.json" if base else "",
        })
    return out


def render_page(data: ReportData, inline: dict[str, dict[str, str]]) -> str:
    """The page's HTML."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["md"] = lambda s: Markup(md_inline(s))
    env.filters["raw"] = Markup  # our own SVG, CSS and script
    claims = _claims(data)
    left = data.left_out
    context = {
        "title": data.title, "notes": data.notes, "problems": [fmt.scrub_paths(p) for p in data.problems],
        "run_info": data.run_info, "verdict_line": verdict_line(data), "claims": claims,
        "verdicts": [v for v in VERDICTS if any(c["verdict"] == v for c in claims)],
        "tasks": sorted({c["task"] for c in claims}),
        "not_scored": skipped_lines(data.claims) + unfinished_lines(data.frame)
        + ([f"{n} record(s) not scored: {why}" for why, n in sorted(left["why"].value_counts().items())]
           if left is not None and len(left) else []),
        "sections": [{"title": s.title, "anchor": s.anchor or f"section-{s.name}", "blocks": _blocks(b, inline)}
                     for s, b in data.sections],
        "cells": _cells(data),
        "css": (TEMPLATES / "report.css").read_text(encoding="utf-8"),
        "script": (TEMPLATES / "report.js").read_text(encoding="utf-8"),
    }
    return env.get_template("report.html.j2").render(**context)


def write_page(data: ReportData, out_dir: Path, inline: dict[str, dict[str, str]]) -> Path:
    """Write ``out_dir/report.html``; its path."""
    from ..core.files import atomic_write

    return atomic_write(Path(out_dir) / "report.html", render_page(data, inline))


__all__ = ["md_inline", "render_page", "write_page"]
