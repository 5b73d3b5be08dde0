"""report.html in a real headless browser (Debian's ``chromium``; ``.ci/run`` installs it): the
page loads with no console message (no script error, no resource it fails to fetch), its own
self-test (``#selftest``: the claims filter, a sort of the cells table, a figure's views)
passes, and a screenshot of it is taken and is not blank. Skipped where no chromium is
installed (``BENCH_SUITE_CHROMIUM`` names another binary); set ``BENCH_SUITE_SCREENSHOT`` to a
path to keep the screenshot."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_report import _skipped, sample_records

from bench_suite.core.records import to_frame
from bench_suite.reporting.build import write_report
from bench_suite.scoring.checks import run_checks
from bench_suite.scoring.references import load_references


def _chromium() -> str | None:
    named = os.environ.get("BENCH_SUITE_CHROMIUM")
    if named:
        return shutil.which(named) or named
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (.ci/run installs Debian's: apt-get "
                                                          "install chromium)")


def _browse(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"  # its own profile: no state from elsewhere
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    recs = sample_records() + [_skipped(w) for w in (16, 64)]
    df = to_frame(recs)
    refs = load_references()
    out = tmp_path_factory.mktemp("page")
    paths = write_report(df, recs, run_checks(df, refs), out, references=refs, formats=("html",),
                         store_label="results", store_link="../results")
    return paths[0]


def test_the_page_loads_without_a_console_message_and_passes_its_selftest(page, tmp_path):
    proc = _browse(tmp_path, page.as_uri() + "#selftest", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # any console.log/error, uncaught exception or failed fetch is logged here
    dom = proc.stdout
    assert 'data-ready="1"' in dom  # the script ran to its end
    result = json.loads(re.search(r'<pre id="selftest">([^<]*)</pre>', dom).group(1))
    assert all(shown == expected for shown, expected in result["filter"].values()), result
    assert result["filter"]["all"][0] == len(re.findall(r'<tr id="claim-', dom)) > 0
    assert result["sorted"] is True and result["views"] is True and result["svgs"] >= 5


def test_a_screenshot_of_the_page(page, tmp_path):
    from PIL import Image

    shot = Path(os.environ.get("BENCH_SUITE_SCREENSHOT") or tmp_path / "report.png")
    proc = _browse(tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1280,2400",
                   "--hide-scrollbars")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        colors = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colors is None or len(colors) > 50  # text, tables and figures, not a blank page
