"""asv benchmarks of the command line's start-up: `--help`, `list` and `import bench_suite` in a
fresh interpreter. These commands do not import torch (the CLI's flags come from
``bench_suite.core.config``), so they start in a fraction of a second; a regression that pulls torch
back in shows here as seconds.

    nox -s bench                 # quick: each once
    nox -s bench -- A B          # commit A against commit B (docs/performance.md)
"""

import os
import subprocess
import sys


def _python(*args: str) -> None:
    # asv's ASV_PYTHONPATH (the package under test first) reaches the child through PYTHONPATH
    env = dict(os.environ)
    extra = os.environ.get("ASV_PYTHONPATH")
    if extra:
        env["PYTHONPATH"] = os.pathsep.join([extra, *filter(None, [env.get("PYTHONPATH")])])
    subprocess.run([sys.executable, *args], check=True, capture_output=True, env=env)


class TimeStartup:
    """Wall time of one command in a new interpreter, seconds."""

    timeout = 120
    repeat = (2, 5, 30.0)

    def time_help(self):
        _python("-m", "bench_suite", "--help")

    def time_run_help(self):
        _python("-m", "bench_suite", "run", "--help")

    def time_list(self):
        _python("-m", "bench_suite", "list")

    def time_import(self):
        _python("-c", "import bench_suite")


class TrackStartupImportsTorch:
    """1 when `python -m bench_suite --help` imports torch, else 0 (it should be 0)."""

    def track_help_imports_torch(self):
        env = dict(os.environ)
        extra = os.environ.get("ASV_PYTHONPATH")
        if extra:
            env["PYTHONPATH"] = os.pathsep.join([extra, *filter(None, [env.get("PYTHONPATH")])])
        code = "import runpy, sys; sys.argv = ['bench_suite', '--help']\n" \
               "try:\n    runpy.run_module('bench_suite', run_name='__main__')\nexcept SystemExit:\n    pass\n" \
               "print(int('torch' in sys.modules), file=sys.stderr)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        return int(out.stderr.strip().splitlines()[-1])
