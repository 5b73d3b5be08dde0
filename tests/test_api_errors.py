"""The Python API raises the package's own exceptions (BenchSuiteError and its subclasses) with
one line in API words: argument names (``store``, ``plugins``, ``device``), never --flags."""

from __future__ import annotations

import inspect
import re
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


PUBLIC_FUNCTIONS = sorted(name for name in api.__all__ if inspect.isfunction(getattr(api, name)))


def test_the_package_exports_only_checked_functions():
    assert set(bs._API) <= set(PUBLIC_FUNCTIONS)  # bench_suite.<name> is api.<name>, checked below
    assert {"run", "load_results", "load_curves", "check", "export", "report", "compare"} <= set(PUBLIC_FUNCTIONS)


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_every_public_function_names_a_misspelled_keyword_and_the_closest(name):
    func = getattr(bs, name, None) or getattr(api, name)
    assert inspect.signature(func) == inspect.signature(func.__wrapped__)  # functools.wraps of checked_arguments
    valid = max(inspect.signature(func).parameters, key=len)  # e.g. 'profile'
    typo = valid[:-1]  # 'profil'
    message = one_line_api_error(lambda: func(**{typo: 1}), UnknownArgument)
    assert message.startswith(f"{name}() got an unknown argument {typo!r} (did you mean {valid!r}?); its arguments: ")


@pytest.mark.parametrize(("call", "words"), [
    (lambda: bs.report(STORE, dir="x"), "report() got an unknown argument 'dir' (did you mean 'out'?)"),
    (lambda: bs.export(STORE, dir="x"), "export() got an unknown argument 'dir' (did you mean 'out_dir'?)"),
    (lambda: bs.compare(STORE, STORE, profil="ci"),
     "compare() got an unknown argument 'profil' (did you mean 'profile'?)"),
    (lambda: bs.report(STORE, "out", "ci"), "report(): too many positional arguments"),
])
def test_the_newcomers_keywords_are_refused_by_name(call, words):
    assert words in one_line_api_error(call, UnknownArgument)


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
    # the numbers the command line's options refuse, refused by keyword (bench_suite.core.values)
    (lambda tmp: bs.run(profile="smoke", store=tmp, repetitions=-2), InvalidArgument,
     "repetitions=-2: not a positive integer"),
    (lambda tmp: bs.run(store=tmp, repetitions=0), InvalidArgument, "repetitions=0: not a positive integer"),
    (lambda tmp: bs.run(store=tmp, repetitions=2.5), InvalidArgument, "repetitions=2.5: not a positive integer"),
    (lambda tmp: bs.run(store=tmp, repetitions=[]), InvalidArgument, "repetitions=[]: no repetition"),
    (lambda tmp: bs.run(store=tmp, max_group=0), InvalidArgument, "max_group=0: not a positive integer"),
    (lambda tmp: bs.run(store=tmp, checkpoint_every=-1), InvalidArgument,
     "checkpoint_every=-1: not an integer >= 0"),
    (lambda tmp: bs.run(store=tmp, time_budget_s=-5), InvalidArgument, "time_budget_s=-5: not a number > 0"),
    (lambda tmp: bs.run(store=tmp, time_budget_s=float("inf")), InvalidArgument,
     "time_budget_s=inf: not a finite number"),
    (lambda tmp: bs.check(STORE, confidence=1.5), InvalidArgument, "confidence=1.5: not a number in (0, 1)"),
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


def test_a_bad_number_leaves_no_store_behind(tmp_path):
    with pytest.raises(InvalidArgument):
        bs.run(profile="smoke", store=tmp_path / "s", repetitions=-2)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(("kind", "good", "bad", "words"), [
    ("POSITIVE_INT", [1, 7], [0, -2, 2.0, True, "3"], "not a positive integer"),
    ("NONNEG_INT", [0, 3], [-1, 1.5, None], "not an integer >= 0"),
    ("POSITIVE_FLOAT", [1e-9, 2, 3.5], [0, -1.0, "1"], "not a number > 0"),
    ("NONNEG_FLOAT", [0, 0.5], [-0.1], "negative (expected a number >= 0)"),
    ("FINITE", [-3, 0.0], [float("nan"), float("-inf")], "not a finite number"),
])
def test_number_kinds_are_the_same_for_api_keywords_and_options(kind, good, bad, words):
    import argparse

    from bench_suite.cli import common
    from bench_suite.core import values

    spec = getattr(values, kind)
    parser = {"POSITIVE_INT": common._positive_int, "NONNEG_INT": common._nonneg_int,
              "POSITIVE_FLOAT": common._positive_float, "NONNEG_FLOAT": common._nonneg_float,
              "FINITE": common._float}[kind]
    for value in good:
        assert values.check_number("x", value, spec) == value
        assert parser(str(value)) == value
    for value in bad:
        with pytest.raises(InvalidArgument, match=r"^x="):
            values.check_number("x", value, spec)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not spec.in_range(value):
            with pytest.raises(argparse.ArgumentTypeError, match=re.escape(words)):
                parser(str(value))
    assert words in str(pytest.raises(InvalidArgument, values.check_number, "x", bad[0], spec).value)
