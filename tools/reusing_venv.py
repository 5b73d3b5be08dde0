"""A fresh virtual environment that reuses the current one's installed packages.

Installing the package the way a user does needs a clean environment, but torch's CUDA build is
about 6 GB: :func:`create` makes a venv whose interpreter also sees the packages installed where
this interpreter runs (through a folder of links added as a site directory, so their ``.pth``
files run), except bench_suite itself (an editable install of a source tree). Used by
``nox -s install`` and tests/test_packaging.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

OWN = ("bench_suite", "bench-suite", "__editable__", "_bench_suite")  # this package's installed files


def create(path: str | Path, python: str = sys.executable) -> Path:
    """A virtual environment at ``path`` (without pip of its own: the reused one runs) that sees
    ``python``'s installed packages but bench_suite. Returns its interpreter."""
    path = Path(path)
    subprocess.run([python, "-m", "venv", "--without-pip", str(path)], check=True)
    reuse = path / "reused-site-packages"
    reuse.mkdir()
    query = "import json, sysconfig; p = sysconfig.get_paths(); print(json.dumps([p['purelib'], p['platlib']]))"
    sources = json.loads(subprocess.run([python, "-c", query], check=True, capture_output=True, text=True).stdout)
    for source in dict.fromkeys(Path(s) for s in sources):
        for entry in source.iterdir():
            if entry.name.lower().startswith(OWN) or (reuse / entry.name).exists():
                continue
            (reuse / entry.name).symlink_to(entry)
    new_python = path / "bin" / "python"
    site = subprocess.run([str(new_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "_reused.pth").write_text(f"import site; site.addsitedir({str(reuse)!r})\n")
    return new_python
