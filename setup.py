"""Build hooks; the project's metadata is in pyproject.toml.

The commit the package is built from is written into the wheel and the sdist as
``bench_suite/_build_info.py``, so that an installed copy's records name their code
(``bench_suite/runner/provenance.py``): git's HEAD when the project folder is the top of a git
work tree, the commit ``git archive`` wrote into ``.git_archival.txt``, or "unknown" and why.
An sdist carries its file to the wheel built from it; an editable install writes none (it
asks git in its source tree at run time).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
BUILD_INFO = Path("bench_suite", "_build_info.py")


def _source_commit() -> dict:
    # loaded by path: importing the package here would import its dependencies
    spec = importlib.util.spec_from_file_location("_bench_suite_commit", ROOT / "bench_suite" / "core" / "commit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.source_commit(ROOT)


def _build_info_text() -> str:
    carried = ROOT / BUILD_INFO
    if carried.is_file():  # building from an sdist: the commit it was made from
        return carried.read_text(encoding="utf-8")
    state = _source_commit()
    source = state["git_commit_source"]
    if state["git_commit"] is not None:
        source = f"the build, from a {source}"
    return (
        '"""Written by the build (setup.py): the commit this copy of bench_suite was built from."""\n\n'
        f"GIT_COMMIT = {state['git_commit']!r}\n"
        f"GIT_DIRTY = {state['git_dirty']!r}\n"
        f"GIT_COMMIT_SOURCE = {source!r}\n"
    )


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / BUILD_INFO
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_build_info_text(), encoding="utf-8")


class SDist(sdist):
    def make_release_tree(self, base_dir, files) -> None:
        super().make_release_tree(base_dir, files)
        target = Path(base_dir) / BUILD_INFO
        target.unlink(missing_ok=True)  # never write through a hard link into the source tree
        target.write_text(_build_info_text(), encoding="utf-8")


setup(cmdclass={"build_py": BuildPy, "sdist": SDist})
