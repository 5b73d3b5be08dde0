"""The docs' profile-file examples are what `list --profiles --export` writes (same keys), and
they load and expand."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from bench_suite.grid import export_profiles
from bench_suite.tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent


def profile_examples() -> list[tuple[str, str]]:
    """(file, TOML text) of every ```toml block in README.md and docs/ whose tables are task profiles."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```toml\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
            try:
                data = tomllib.loads(block)
            except tomllib.TOMLDecodeError:  # not a profile file (e.g. an abridged reference file)
                continue
            if data and all(key in TASKS for key in data):
                found.append((path.name, block))
    return found


def test_the_examples_use_the_keys_the_export_writes():
    exported = tomllib.loads(export_profiles())
    export_keys = {key for profiles in exported.values() for spec in profiles.values() for key in spec} | {"cases"}
    assert "repetitions" in export_keys and "seeds" not in export_keys
    examples = profile_examples()
    assert any(name == "runner.md" for name, _ in examples)
    for name, block in examples:
        for task, profiles in tomllib.loads(block).items():
            for profile, spec in profiles.items():
                assert set(spec) <= export_keys, (name, task, profile, set(spec) - export_keys)


def test_the_examples_load_and_expand(tmp_path):
    for i, (name, block) in enumerate(profile_examples()):
        path = tmp_path / f"example{i}.toml"
        path.write_text(block)
        code = ("import sys; from bench_suite.grid import expand, load_profile_file\n"
                "for task, profile in load_profile_file(sys.argv[1]):\n"
                "    print(task, profile, len(expand(task, profile=profile)))\n")
        out = subprocess.run([sys.executable, "-c", code, str(path)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, (name, out.stderr[-2000:])
        assert all(int(line.split()[-1]) > 0 for line in out.stdout.splitlines()), out.stdout
