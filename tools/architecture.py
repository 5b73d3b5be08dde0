"""Write docs/architecture.md: the imports between bench_suite's stage packages, read from the
code, as a mermaid graph (GitHub renders it).

The stages and their order are the layering contract's (``[tool.importlinter]`` in
pyproject.toml); the imports are grimp's graph of the package (the one import-linter checks),
every import counted, those inside functions too. ``python tools/architecture.py`` rewrites the
file; ``--check`` exits 1 when the committed file differs from the code (tests/test_architecture.py
runs it, so a stale diagram fails the tests).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "architecture.md"
PACKAGE = "bench_suite"


def layers(pyproject: Path = ROOT / "pyproject.toml") -> list[list[str]]:
    """The stage contract's layers, high to low, each a list of sibling stages."""
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["id"] == "stages"]
    return [[name.strip() for name in line.replace(":", "|").split("|")] for line in contract["layers"]]


def stage_imports(stages: list[str]) -> dict[tuple[str, str], int]:
    """(importing stage, imported stage) -> number of module pairs, for stages that import each other."""
    import grimp

    sys.path.insert(0, str(ROOT))  # this tree's package, whatever else is installed
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    known = set(stages)

    def stage(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 and parts[1] in known else None

    edges: dict[tuple[str, str], int] = {}
    for module in graph.modules:
        a = stage(module)
        if a is None:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            b = stage(imported)
            if b is not None and b != a:
                edges[(a, b)] = edges.get((a, b), 0) + 1
    return edges


def render() -> str:
    levels = layers()
    stages = [s for level in levels for s in level]
    edges = stage_imports(stages)
    out = [
        "# Architecture: the imports between stages",
        "",
        "Generated from the code by `python tools/architecture.py` (do not edit: `tests/test_architecture.py`",
        "fails when this file and the code disagree). Each box is a stage package of `bench_suite/`, higher",
        "levels first, in the order of the layering contract (`[tool.importlinter]` in pyproject.toml, checked by",
        "`lint-imports`); an arrow is \"imports\", every import counted (those inside functions too). Arrows only",
        "point down. What each stage does: [design.md](design.md).",
        "",
        "```mermaid",
        "flowchart TD",
    ]
    for i, level in enumerate(levels):
        out.append(f"  subgraph L{i}[\" \"]")
        out.append("    direction LR")
        out += [f"    {s}[{s}/]" if (ROOT / PACKAGE / s).is_dir() else f"    {s}[{s}.py]" for s in level]
        out.append("  end")
    for (a, b) in sorted(edges, key=lambda e: (stages.index(e[0]), stages.index(e[1]))):
        out.append(f"  {a} --> {b}")
    out += ["```", "", "| stage | imports |", "|---|---|"]
    for s in stages:
        targets = [b for b in stages if (s, b) in edges]
        out.append(f"| `{s}` | {', '.join(f'`{b}`' for b in targets) or '—'} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/architecture.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run `python tools/architecture.py`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
