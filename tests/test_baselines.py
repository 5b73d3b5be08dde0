"""The reference-file reader: the repository's baselines and the validation of malformed rows."""

from __future__ import annotations

import math

import pytest

from bench_suite.scoring.references import (
    BaselineError,
    default_baselines_path,
    load_references,
    loads_references,
)

TABLE3 = {
    (1024, "relu"): (0.9931, 0.1011),
    (2048, "relu"): (0.9984, 0.1022),
    (4096, "relu"): (0.9998, 0.0962),
    (1024, "tanh"): (0.9872, 0.0991),
    (2048, "tanh"): (0.9927, 0.1024),
    (4096, "tanh"): (0.9938, 0.0962),
}


@pytest.fixture(scope="module")
def repo_refs():
    return load_references()


def test_repo_baselines_hold_table3_each_row_in_the_direction_of_its_claim(repo_refs):
    rows = [r for r in repo_refs if r.task == "cifar10_random" and r.profile == "paper"]
    assert len(rows) == 12
    for r in rows:
        assert r.kind == "value" and r.method == "mli_paired_pgd" and r.protocol == 1
        (width,), (act,) = r.widths, r.activations
        train, test = TABLE3[(width, act)]
        if r.metric == "train_acc":  # "can memorize": at least the paper's number minus 0.01, no upper edge
            assert (r.direction, r.paper_value, r.target, r.tolerance) == ("at_least", train, train, 0.01)
            low, high, _, _ = r.acceptance()
            assert low == pytest.approx(train - 0.01) and high == math.inf
        else:  # at chance: centred on 1/10, the paper's number shown beside ours
            assert r.metric == "test_acc" and r.direction == "within" and r.paper_value == test
            assert (r.target, r.tolerance) == (0.10, 0.02)
        assert r.claim  # the reason is stated


def test_repo_baselines_claims(repo_refs):
    ablation = [r for r in repo_refs if r.task == "synthetic_ablation" and r.profile == "paper"]
    assert sorted(r.versus for r in ablation) == ["constraint_only", "no_mirroring", "sgd"]
    for r in ablation:
        assert (r.kind, r.method, r.metric, r.direction, r.target) == (
            "comparison", "mli_paired_pgd", "train_loss", "lower", 0.0)
        assert r.widths is None and r.activations is None  # every cell of the profile
    (imnet,) = [r for r in repo_refs if r.task == "restricted_imagenet"]
    assert imnet.widths == (64, 128) and imnet.direction == "higher" and imnet.versus == "sgd"  # "outperforms"
    assert imnet.metric == "test_acc" and imnet.profile == "paper"


def test_scaled_down_rows_are_their_own(repo_refs):
    ci = [r for r in repo_refs if r.task == "cifar10_random" and r.profile == "ci"]
    kinds = sorted((r.kind, r.metric) for r in ci)
    assert kinds == [("threshold", "train_acc"), ("value", "test_acc")]
    for r in ci:
        assert r.widths is None and r.activations is None  # all cells of task/method/profile
        assert "paper" not in r.file.rsplit("/", 1)[-1]
    mem = next(r for r in ci if r.kind == "threshold")
    assert mem.direction == "at_least" and mem.bound > 0.5  # far above the 0.10 chance level
    # no paper number is ever attached to a non-paper profile
    for r in repo_refs:
        if r.file.endswith("paper.toml"):
            assert r.profile == "paper"


def test_ids_unique_and_default_path(repo_refs):
    assert len({r.id for r in repo_refs}) == len(repo_refs)
    assert default_baselines_path().name == "baselines"


def test_env_var_and_single_file(tmp_path, monkeypatch):
    f = tmp_path / "mine.toml"
    f.write_text('protocol = 2\n[[reference]]\nkind = "threshold"\ntask = "t"\nprofile = "p"\n'
                 'method = "sgd"\nmetric = "train_acc"\ndirection = "at_most"\nbound = 0.5\n')
    monkeypatch.setenv("BENCH_SUITE_BASELINES", str(tmp_path))
    (ref,) = load_references()
    assert ref.protocol == 2 and ref.id == "t/p/sgd/train_acc" and ref.file == str(f)
    assert load_references(f) == [ref]
    assert load_references([f]) == [ref]
    with pytest.raises(BaselineError, match="no reference file"):
        load_references(tmp_path / "missing.toml")


def test_group_rows_inherit_and_override():
    refs = loads_references(
        """
        protocol = 1
        [[group]]
        kind = "value"
        task = "t"
        profile = "paper"
        method = "a"
        metric = "train_acc"
        tolerance = 0.01
        rows = [
          { width = 8, activation = "relu", value = 0.9 },
          { width = [8, 16], value = 0.8, tolerance = 0.05, metric = "test_acc", id = "custom" },
        ]
        """
    )
    assert [r.id for r in refs] == ["t/paper/a/train_acc/w8/relu", "custom"]
    assert refs[0].tolerance == 0.01 and refs[1].tolerance == 0.05
    assert refs[1].widths == (8, 16) and refs[1].activations is None
    low, high, lc, hc = refs[0].acceptance()
    assert (low, high, lc, hc) == (pytest.approx(0.89), pytest.approx(0.91), True, True)


def test_acceptance_intervals():
    refs = loads_references(
        """
        protocol = 1
        [[group]]
        kind = "comparison"
        task = "t"
        profile = "p"
        method = "a"
        versus = "b"
        metric = "train_loss"
        rows = [
          { id = "lo", direction = "lower" },
          { id = "hi", direction = "higher", tolerance = 0.1 },
          { id = "le", direction = "at_most", bound = 1.0 },
          { id = "ge", direction = "at_least", tolerance = 0.2 },
        ]
        """
    )
    got = {r.id: r.acceptance() for r in refs}
    assert got["lo"] == (-math.inf, 0.0, False, False)
    assert got["hi"] == (pytest.approx(-0.1), math.inf, False, False)
    assert got["le"] == (-math.inf, 1.0, False, True)
    assert got["ge"] == (pytest.approx(-0.2), math.inf, True, False)
    assert "train_loss[a] - train_loss[b] < 0" in refs[0].describe()


BASE = 'protocol = 1\n[[reference]]\ntask = "t"\nprofile = "p"\nmethod = "a"\nmetric = "train_acc"\n'


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[reference]]\ntask = "t"\n', "protocol"),
        ('protocol = 0\n', "protocol"),
        ('protocol = 1\nextra = 1\n', "unknown top-level"),
        (BASE + 'value = 0.5\n', "explicit `tolerance`"),
        (BASE + 'value = 0.5\ntolerance = 0.1\nwidht = 3\n', "unknown field"),
        (BASE + 'value = 0.5\ntolerance = -0.1\n', "tolerance must be >= 0"),
        (BASE + 'kind = "threshold"\ndirection = "at_least"\n', "needs `bound`"),
        (BASE + 'kind = "threshold"\ndirection = "within"\nbound = 0.5\n', "direction"),
        (BASE + 'kind = "comparison"\ndirection = "lower"\n', "versus"),
        (BASE + 'kind = "comparison"\ndirection = "lower"\nversus = "a"\n', "two different methods"),
        (BASE + 'kind = "value"\nvalue = 0.5\ntolerance = 0.1\nversus = "b"\n', "only belongs"),
        (BASE + 'kind = "magic"\n', "kind must be"),
        (BASE.replace("train_acc", "accuracy") + 'value = 0.5\ntolerance = 0.1\n', "metric must be"),
        (BASE + 'value = 0.5\ntolerance = 0.1\nwidth = [8, 8]\n', "twice"),
        (BASE + 'value = 0.5\ntolerance = 0.1\nwidth = "8"\n', "`width` must be"),
        (BASE + 'value = "0.5"\ntolerance = 0.1\n', "finite number"),
        (BASE + 'value = 0.5\ntolerance = 0.1\n' + BASE.split("\n", 1)[1] + 'value = 0.5\ntolerance = 0.1\n',
         "duplicate reference id"),
        ('protocol = 1\n[[group]]\ntask = "t"\n', "non-empty `rows"),
        ('protocol = 1\nnot toml at all', "not valid TOML"),
    ],
)
def test_malformed_rows_are_rejected(text, message):
    with pytest.raises(BaselineError, match=message):
        loads_references(text)


def test_reference_protocol_matches_the_code(repo_refs):
    """Bumping PROTOCOL_VERSION forces a decision: which reference rows still hold?"""
    grid = pytest.importorskip("bench_suite.grid")
    assert {r.protocol for r in repo_refs} == {grid.PROTOCOL_VERSION}
