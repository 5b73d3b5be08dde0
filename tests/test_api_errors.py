"""The Python API raises the package's own exceptions (BenchSuiteError and its subclasses) with
one line in API words: argument names (``store``, ``plugins``, ``device``), never --flags."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import bench_suite as bs
from bench_suite import api
from bench_suite.core.errors import BenchSuiteError, InvalidArgument, PathProblem, UnknownArgument, checked_arguments
from bench_suite.core.registry import PluginError, UnknownNameError

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "reports" / "ci" / "store"


def one_line_api_error(call, kind=BenchSuiteError) -> str:
    with pytest.raises(kind) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and not any(flag in message for flag in ("--store", "--plugin", "--device",
                                                                         "--baselines", "--save"))
    return message


def test_an_unknown_keyword_names_the_valid_ones_and_the_closest():
    message = one_line_api_error(lambda: bs.run(width=[20]), UnknownArgument)
    assert message.startswith("run() got an unknown argument 'width' (did you mean 'widths'?); its arguments: task, ")
    assert isinstance(UnknownArgument("x"), TypeError)  # what a caller catching TypeError expects
    message = one_line_api_error(lambda: bs.check(STORE, profiles="ci"), UnknownArgument)
    assert "'profiles' (did you mean 'profile'?)" in message
    message = one_line_api_error(lambda: bs.load_results(), UnknownArgument)
    assert "missing a required argument: 'store'" in message


def test_every_public_function_checks_its_keywords():
    for name in ("run", "load_results", "load_curves", "check", "export", "score"):
        func = getattr(api, name)
        assert func.__wrapped__ is not None, name  # functools.wraps of checked_arguments
        assert inspect.signature(func) == inspect.signature(func.__wrapped__)


def test_run_documents_each_keyword():
    doc = inspect.getdoc(api.run)
    for name in inspect.signature(api.run).parameters:
        assert f"``{name}``" in doc, name


@pytest.mark.parametrize(("call", "kind", "words"), [
    (lambda tmp: bs.run(plugins=["no_such_plugin_module"], store=tmp), PluginError,
     "plugins=['no_such_plugin_module']"),
    (lambda tmp: bs.run(device="tpu", store=tmp), InvalidArgument, "device 'tpu': not a device"),
    (lambda tmp: bs.run(task="no_such_task", store=tmp), UnknownNameError, "unknown task 'no_such_task'"),
    (lambda tmp: bs.run(methods=["no_such"], store=tmp), UnknownNameError, "unknown method 'no_such'"),
    (lambda tmp: bs.load_results(tmp / "missing"), PathProblem, "store='"),
    (lambda tmp: bs.load_curves(tmp / "missing"), PathProblem,
     "no such result store (run bench_suite.run(store=...) first"),
    (lambda tmp: bs.check(STORE, profile="no_such_profile"), InvalidArgument, "profile 'no_such_profile'"),
    (lambda tmp: bs.check(STORE, tasks=["no_such_task"]), UnknownNameError, "unknown task"),
    (lambda tmp: bs.check(STORE, baselines=tmp / "missing.toml"), BenchSuiteError, "no reference file or folder"),
    (lambda tmp: bs.export(STORE, Path(__file__)), PathProblem, "out_dir "),
    (lambda tmp: bs.run(store=Path(__file__)), PathProblem, "store= "),
])
def test_bad_input_is_a_package_exception_in_api_words(tmp_path, call, kind, words):
    message = one_line_api_error(lambda: call(tmp_path), kind)
    assert words in message, message


def test_a_junk_switch_stops_run_before_any_cell(tmp_path, monkeypatch):
    from bench_suite.core.env import EnvVarError

    monkeypatch.setenv("BENCH_SUITE_GIT_DIRTY", "perhaps")
    message = one_line_api_error(lambda: bs.run(profile="smoke", store=tmp_path / "s"), EnvVarError)
    assert message.startswith("$BENCH_SUITE_GIT_DIRTY='perhaps' is not a switch")
    assert not (tmp_path / "s").exists()


def test_checked_arguments_leaves_functions_with_kwargs_alone():
    @checked_arguments
    def anything(a, **rest):
        return a, rest

    assert anything(1, b=2) == (1, {"b": 2})
    with pytest.raises(UnknownArgument, match=r"anything\(\): .*its arguments: a"):
        anything()
