"""Where ``report`` and ``export`` write (bench_suite/reporting/output.py): beside the store by
default, never over results they did not make (another store's report, someone's files,
git-tracked files) without ``--overwrite``, which says what it replaced; the report's own
earlier files that it does not write again are removed, a user's file never."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from test_bad_input import TINY, assert_one_line, cli

import bench_suite as bs
from bench_suite.reporting.output import OutputError


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from bench_suite.cli import main

    root = tmp_path_factory.mktemp("stores")
    for name in ("a", "b"):
        assert main(["run", "--store", str(root / name), *TINY, "--method", "sgd,mli_paired_pgd",
                     "--repetitions", "2"]) == 0
    return root


def test_the_report_goes_beside_its_store_by_default(stores, capsys):
    store = stores / "a"
    code, out, err = cli(capsys, "report", "--store", str(store))
    assert code == 0, err
    folder = store / "report"
    assert {"report.md", "report.html", "verdicts.json", "verdicts.csv", "results.csv", ".report-files"} <= {
        p.name for p in folder.iterdir()}
    manifest = json.loads((folder / ".report-files").read_text())
    assert manifest["store"] == ".." and "report.md" in manifest["files"]
    assert f"report written to {folder / 'report.md'}, {folder / 'report.html'}" in out
    # again, from the same store: its own report, replaced without a word
    code, out, err = cli(capsys, "report", "--store", str(store))
    assert code == 0 and err == ""
    # the store's records are untouched and still read as a store
    assert len(bs.load_results(store)) == 4


def test_a_report_of_another_store_is_not_overwritten_without_the_flag(stores, capsys, tmp_path):
    folder = tmp_path / "shared"
    assert cli(capsys, "report", "--store", str(stores / "a"), "--dir", str(folder))[0] == 0
    before = (folder / "report.md").read_bytes()
    code, out, err = cli(capsys, "report", "--store", str(stores / "b"), "--dir", str(folder))
    assert_one_line(code, err, f"--dir {folder}: it holds a report made from another store")
    assert "pass --overwrite to replace them" in err and "report written" not in out
    assert (folder / "report.md").read_bytes() == before
    code, out, err = cli(capsys, "report", "--store", str(stores / "b"), "--dir", str(folder), "--overwrite")
    assert code == 0 and "overwriting in" in err and "another store" in err
    assert json.loads((folder / ".report-files").read_text())["store"].endswith("b")


def test_files_the_report_did_not_write_are_refused_and_a_users_own_file_is_kept(stores, capsys, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "report.md").write_text("my notes")
    code, _, err = cli(capsys, "report", "--store", str(stores / "a"), "--dir", str(folder))
    assert_one_line(code, err, "1 file(s) there were not written by `report` (report.md)")
    assert (folder / "report.md").read_text() == "my notes"
    (folder / "report.md").unlink()
    (folder / "figures").mkdir()
    (folder / "figures" / "my_plot.svg").write_text("<svg/>")
    assert cli(capsys, "report", "--store", str(stores / "a"), "--dir", str(folder))[0] == 0
    ours = json.loads((folder / ".report-files").read_text())["files"]
    assert "figures/my_plot.svg" not in ours
    # a later report that writes fewer figures removes its own stale ones, never the user's
    stale = folder / "figures" / "stale.svg"
    stale.write_text("<svg/>")
    manifest = json.loads((folder / ".report-files").read_text())
    manifest["files"].append("figures/stale.svg")
    (folder / ".report-files").write_text(json.dumps(manifest))
    assert cli(capsys, "report", "--store", str(stores / "a"), "--dir", str(folder), "--format", "html")[0] == 0
    assert not stale.exists() and not (folder / "report.md").exists()
    assert (folder / "figures" / "my_plot.svg").read_text() == "<svg/>"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_tracked_files_are_not_overwritten_without_the_flag(stores, capsys, tmp_path):
    repo = tmp_path / "clone"
    folder = repo / "reports" / "ci"
    assert cli(capsys, "report", "--store", str(stores / "a"), "--dir", str(folder))[0] == 0
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "committed report"], check=True)
    # the same store, but the files are committed: a clone's reference report
    code, _, err = cli(capsys, "report", "--store", str(stores / "a"), "--dir", str(folder))
    assert_one_line(code, err, "tracked by git, committed results")
    assert subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout == ""
    code, _, err = cli(capsys, "report", "--store", str(stores / "a"), "--dir", str(folder), "--overwrite")
    assert code == 0 and "tracked by git" in err


def test_the_api_raises_the_packages_error_in_api_words(stores, tmp_path):
    assert {"report", "compare"} <= set(bs.__all__) and callable(bs.report) and callable(bs.compare)
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "verdicts.csv").write_text("mine")
    with pytest.raises(OutputError, match=r"^out .*: 1 file\(s\) there were not written by `report` "
                                          r"\(verdicts.csv\); pass --overwrite .*\(overwrite=True in Python\)"):
        bs.report(stores / "a", folder)
    with pytest.raises(ValueError, match="figure format 'gif'"):
        bs.report(stores / "a", folder, figure_format="gif")
    paths = bs.report(stores / "a", folder, formats="md", overwrite=True)
    assert paths[0] == folder / "report.md" and not (folder / "report.html").exists()


def test_export_guards_its_folder_the_same_way(stores, capsys, tmp_path):
    out = tmp_path / "e"
    out.mkdir()
    (out / "results.csv").write_text("a colleague's table")
    code, _, err = cli(capsys, "export", "--store", str(stores / "a"), "--dir", str(out))
    assert_one_line(code, err, "1 file(s) there were not written by `export` (results.csv)")
    assert (out / "results.csv").read_text() == "a colleague's table"
    assert cli(capsys, "export", "--store", str(stores / "a"), "--dir", str(out), "--overwrite")[0] == 0
    assert cli(capsys, "export", "--store", str(stores / "a"), "--dir", str(out))[0] == 0  # its own now
    with pytest.raises(OutputError, match="made from another store"):
        bs.export(stores / "b", out)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        bs.export(stores / "a", a_file)


def test_a_report_names_no_machine_path(tmp_path, capsys, monkeypatch):
    import pandas as pd

    for name in ("BENCH_SUITE_CIFAR10", "BENCH_SUITE_DATA_ROOT"):  # the data must not be found elsewhere
        monkeypatch.delenv(name, raising=False)
    store = tmp_path / "s"
    data = tmp_path / "secret_place" / "data"  # an empty folder: the cells are skipped, their reason names it
    data.mkdir(parents=True)
    code, _, err = cli(capsys, "run", "--store", str(store), "--task", "cifar10_random", "--profile", "ci",
                       "--method", "sgd", "--data-root", str(data), "--quiet")
    assert code == 3, err  # skipped: no data there
    assert cli(capsys, "report", "--store", str(store), "--profile", "ci")[0] == 0
    folder = store / "report"
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix != ".parquet":
            text = path.read_text(encoding="utf-8")
            assert "secret_place" not in text and str(tmp_path) not in text, path.name
    table = pd.read_parquet(folder / "results.parquet")
    assert not table.astype(str).apply(lambda col: col.str.contains("secret_place")).any().any()
    assert "(searched …/data)" in (folder / "report.md").read_text()  # the reason, its path shortened
