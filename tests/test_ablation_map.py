"""The ablation map (issue 21, ask 3): the profiles ``ablation_map*`` of synthetic_ablation and the
report section ``map`` (bench_suite/reporting/ablation_map.py): the choice of each method's
learning rates on the tuning repetitions and the held-out comparison, on small hand-made
records; and run -> store -> report on the tiny ``ablation_map_smoke``."""

from __future__ import annotations

import itertools
import math
import re

import pytest

from bench_suite.core.records import Record, Status
from bench_suite.reporting.ablation_map import (
    FAILS,
    HOLDS,
    MAPS,
    UNDECIDED,
    MapDesign,
    choose,
    counts,
    map_frame,
    map_rows,
    map_table,
    summary_sentence,
    tuning_table,
)

TASK = "synthetic_ablation"
T975_DF2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom (tables)
DESIGN = MapDesign(tune=(0, 1), score=(2, 3, 4))


def rec(method, rep, tail, *, lr_w=0.1, lr_v=0.1, eps=1.0, width=20, status="done", final=None, dist=1.0, n=1000,
        d=100):
    """A record as the store holds it (no file): what the map reads. ``final``: the last loss
    (default: the tail median)."""
    constrained = method != "sgd"
    train = {"epochs": 100, "eval_every": 50, "lr_w": lr_w, "lr_v": lr_v, "eps": eps if constrained else 1.0,
             "eps_mode": "relative", "batch_size": None, "loss": "mse", "momentum": 0.0, "precision": "fp32"}
    config = {"task": TASK, "task_options": {"n": n, "d": d}, "method": method, "width": width,
              "activation": "tanh", "repetition": rep, "train": train}
    ok = status == "done"
    values = {"train_loss": (tail if final is None else final) if ok else math.nan,
              "train_loss_tail_median": tail if ok else math.nan, "dist_w0": dist if ok else math.nan,
              "radius": eps if constrained else None}
    return Record(cell_id=f"{method}-{rep}-{lr_w}-{lr_v}-{eps}-{width}", name=f"{method}[rep={rep}]",
                  status=Status(status), config=config, seeds={}, provenance={"code_version": {"engine": 2}},
                  final=values)


def grid(method, tails, *, eps=1.0, width=20):
    """Records of ``method`` at one (width, eps): ``tails`` maps (lr_w, lr_v) -> per-repetition
    tail medians (None: diverged)."""
    return [rec(method, rep, v, lr_w=lw, lr_v=lv, eps=eps, width=width, status="diverged" if v is None else "done")
            for (lw, lv), values in tails.items() for rep, v in enumerate(values)]


# ------------------------------------------------------------------------------------------
# the choice of learning rates
# ------------------------------------------------------------------------------------------
def test_the_choice_reads_the_tuning_repetitions_only():
    # (0.1, 0.1) is the best on repetitions 2-4, (1, 0.01) on the tuning repetitions 0-1
    rows = map_frame(grid("sgd", {(0.1, 0.1): [0.5, 0.5, 0.0, 0.0, 0.0], (1.0, 0.01): [0.3, 0.2, 0.9, 0.9, 0.9]}))
    choice = choose(rows, "sgd", (0, 1))
    assert choice.lr == (1.0, 0.01) and choice.score == pytest.approx(0.25) and choice.complete
    assert choice.tuning == {(0.1, 0.1): pytest.approx(0.5), (1.0, 0.01): pytest.approx(0.25)}


def test_a_diverged_tuning_repetition_rules_a_pair_out_and_ties_go_to_the_smallest_pair():
    rows = map_frame(grid("sgd", {(0.01, 0.1): [0.4, 0.4], (0.1, 0.01): [0.4, 0.4], (1.0, 1.0): [0.0, None]}))
    choice = choose(rows, "sgd", (0, 1))
    assert choice.lr == (0.01, 0.1) and math.isinf(choice.tuning[(1.0, 1.0)])
    everywhere = choose(map_frame(grid("sgd", {(0.1, 0.1): [None, 0.1], (1.0, 1.0): [0.1, None]})), "sgd", (0, 1))
    assert everywhere.lr == (0.1, 0.1) and math.isinf(everywhere.score) and "diverged at every" in everywhere.note


def test_a_done_cell_whose_window_or_distance_is_not_finite_counts_as_diverged():
    records = [rec("sgd", 0, math.nan), rec("sgd", 1, 0.2, dist=math.inf), rec("sgd", 2, 0.2, final=math.nan),
               rec("sgd", 3, 0.2)]
    assert list(map_frame(records)["status"]) == ["diverged", "diverged", "diverged", "done"]


def test_a_pair_missing_a_tuning_repetition_makes_the_choice_incomplete():
    rows = map_frame(grid("sgd", {(0.1, 0.1): [0.3, 0.3], (1.0, 1.0): [0.1]}))
    choice = choose(rows, "sgd", (0, 1))
    assert choice.lr == (0.1, 0.1) and not choice.complete and math.isnan(choice.tuning[(1.0, 1.0)])


def test_a_design_keeps_tuning_and_scoring_apart():
    with pytest.raises(ValueError, match="disjoint"):
        MapDesign(tune=(0, 1), score=(1, 2, 3))
    with pytest.raises(ValueError, match="at least two held-out"):
        MapDesign(tune=(0,), score=(1,))


# ------------------------------------------------------------------------------------------
# the map: held-out paired differences, verdict words
# ------------------------------------------------------------------------------------------
OURS_HELD = [0.10, 0.12, 0.11]
SGD_HELD = [0.01, 0.02, 0.015]


def _setting(eps=1.0):
    """One width, one eps: ours best at (0.1, 0.1), each ablation at another pair."""
    return [*grid("mli_paired_pgd", {(0.1, 0.1): [0.2, 0.2, *OURS_HELD], (1.0, 1.0): [0.3, 0.3, 0.0, 0.0, 0.0]},
                  eps=eps),
            *grid("constraint_only", {(0.1, 0.1): [0.6, 0.6, 0.6, 0.6, 0.6], (0.01, 0.01): [0.5, 0.5, 0.4, 0.5, 0.45]},
                  eps=eps),
            *grid("no_mirroring", {(0.1, 0.1): [0.3, 0.3, 0.05, 0.2, 0.14]}, eps=eps)]


def _sgd():
    return grid("sgd", {(1.0, 0.01): [0.05, 0.05, *SGD_HELD], (0.1, 0.1): [0.1, 0.1, 0.1, 0.1, 0.1]})


def _by(rows, eps, versus):
    return next(r for r in rows if r["eps"] == eps and r["versus"] == versus)


def test_the_map_scores_the_held_out_paired_differences_with_a_t_interval():
    rows = map_rows([*_setting(0.3), *_setting(1.0), *_sgd()], "ablation_map", task=TASK, design=DESIGN)
    assert [(r["eps"], r["versus"]) for r in rows] == list(itertools.product(
        (0.3, 1.0), ("sgd", "constraint_only", "no_mirroring")))
    vs_sgd = _by(rows, 1.0, "sgd")
    assert vs_sgd["ours"].lr == (0.1, 0.1) and vs_sgd["theirs"].lr == (1.0, 0.01)
    assert vs_sgd["ratio"] == 20 * 100 / (2 * 1000)
    diffs = [a - b for a, b in zip(OURS_HELD, SGD_HELD)]  # 0.09, 0.10, 0.095
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 2)
    half = T975_DF2 * sd / math.sqrt(3)
    tail = vs_sgd["tail"]
    assert tail["ours"] == pytest.approx(0.095) and tail["n"] == 3
    assert (tail["ci_low"], tail["ci_high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert tail["method_mean"] == pytest.approx(0.11) and tail["versus_mean"] == pytest.approx(0.015)
    assert vs_sgd["word"] == FAILS  # the whole interval above 0
    # constraint_only at its own best (0.01, 0.01): 0.11 - (0.4, 0.5, 0.45) = -0.29, -0.38, -0.34
    co = _by(rows, 1.0, "constraint_only")
    assert co["theirs"].lr == (0.01, 0.01) and co["word"] == HOLDS
    assert co["tail"]["ours"] == pytest.approx((0.10 - 0.4 + 0.12 - 0.5 + 0.11 - 0.45) / 3)
    # no_mirroring: +0.05, -0.08, -0.03: the interval straddles 0
    assert _by(rows, 1.0, "no_mirroring")["word"] == UNDECIDED
    # sgd has no radius: one choice for every eps
    assert _by(rows, 0.3, "sgd")["theirs"] is not None and _by(rows, 0.3, "sgd")["tail"]["ours"] == tail["ours"]


def test_the_final_loss_is_scored_beside_the_tail_median():
    records = [*_setting(), *_sgd()]
    for r in records:  # the last step lands on a spike of ours in repetition 4
        if r.method == "mli_paired_pgd" and r.config["repetition"] == 4 and r.config["train"]["lr_w"] == 0.1:
            r.final["train_loss"] = 5.0
    row = _by(map_rows(records, "ablation_map", task=TASK, design=DESIGN), 1.0, "constraint_only")
    assert row["word"] == HOLDS and row["final"]["word"] == UNDECIDED
    assert row["final"]["ours"] == pytest.approx((0.10 - 0.4 + 0.12 - 0.5 + 5.0 - 0.45) / 3)
    assert map_table([row]).iloc[0]["final verdict"] == UNDECIDED


def test_a_missing_held_out_repetition_leaves_the_setting_undecided():
    records = [r for r in [*_setting(), *_sgd()] if not (r.method == "sgd" and r.config["repetition"] == 4)]
    row = _by(map_rows(records, "ablation_map", task=TASK, design=DESIGN), 1.0, "sgd")
    assert row["tail"]["verdict"] == "FAIL"  # the two repetitions left would decide it ...
    assert row["word"] == UNDECIDED and "partial: sgd lacks held-out repetition(s) [4]" in row["tail"]["note"]


def test_a_held_out_divergence_of_the_method_fails_and_one_of_the_ablation_is_won():
    records = [*_setting(), *_sgd()]
    ours4 = next(r for r in records if r.method == "mli_paired_pgd" and r.config["repetition"] == 4
                 and r.config["train"]["lr_w"] == 0.1)
    ours4.status, ours4.final["train_loss_tail_median"] = Status.DIVERGED, math.nan
    rows = map_rows(records, "ablation_map", task=TASK, design=DESIGN)
    assert _by(rows, 1.0, "constraint_only")["word"] == FAILS
    records = [*_setting(), *grid("sgd", {(0.1, 0.1): [0.05, 0.05, None, None, None]})]
    assert _by(map_rows(records, "ablation_map", task=TASK, design=DESIGN), 1.0, "sgd")["word"] == HOLDS


def test_counts_and_the_summary_sentence():
    rows = map_rows([*_setting(0.3), *_setting(1.0), *_sgd()], "ablation_map", task=TASK, design=DESIGN)
    c = counts(rows)
    assert c["sgd"] == {HOLDS: 0, FAILS: 2, UNDECIDED: 0} and c["constraint_only"][HOLDS] == 2
    assert c["all"] == {HOLDS: 0, FAILS: 2, UNDECIDED: 0}
    text = summary_sentence(rows, DESIGN)
    assert "below all three ablations in 0 of 2" in text and "above at least one of them in 2" in text
    assert "chosen on repetition(s) 0, 1, scored on 2, 3, 4" in text


def test_the_tuning_table_marks_the_choice_and_lists_sgd_once_per_width():
    rows = map_rows([*_setting(0.3), *_setting(1.0), *_sgd()], "ablation_map", task=TASK, design=DESIGN)
    table = tuning_table(rows)
    assert (table["method"] == "sgd").sum() == 1 and (table["method"] == "mli_paired_pgd").sum() == 2
    sgd = table[table["method"] == "sgd"].iloc[0]
    assert sgd["(1, 0.01)"] == "0.05*" and sgd["(0.1, 0.1)"] == "0.1" and sgd["ε/‖W0‖_F"] == "—"


# ------------------------------------------------------------------------------------------
# the profiles
# ------------------------------------------------------------------------------------------
def test_the_map_profile_is_the_declared_grid_and_sgd_is_not_repeated_per_eps():
    from bench_suite.grid import expand

    cells = expand(TASK, profile="ablation_map")
    assert len(cells) == len({c.cell_id for c in cells}) == 5 * 3 * 9 * (1 + 3 * 4)
    lrs = set(itertools.product((0.01, 0.1, 1.0), repeat=2))
    for method in ("mli_paired_pgd", "sgd", "constraint_only", "no_mirroring"):
        mine = [c for c in cells if c.method == method]
        radii = {1.0} if method == "sgd" else {0.1, 0.3, 1.0, 3.0}
        assert {(c.width, c.train.lr_w, c.train.lr_v, c.train.eps, c.repetition) for c in mine} == {
            (m, lw, lv, e, r) for m in (10, 20, 60) for lw, lv in lrs for e in radii for r in range(5)}
        assert len(mine) == 3 * 9 * len(radii) * 5
    for c in cells:  # what the map pins, whatever the task defaults become
        t = c.train
        assert (t.eps_mode, t.epochs, t.batch_size, t.loss, t.momentum, t.precision, c.activation) == (
            "relative", 2000, None, "mse", 0.0, "fp32", "tanh")
        assert c.options == {"n": 1000, "d": 100}
    assert (1.0, 0.01) in {(c.train.lr_w, c.train.lr_v) for c in cells if c.method == "sgd"}  # GD with lr_v < lr_w


@pytest.mark.parametrize("profile", sorted(MAPS))
def test_each_map_design_covers_its_profiles_repetitions(profile):
    from bench_suite.grid import profile_repetitions, profiles_of

    spec = profiles_of(TASK)[profile]
    assert sorted(MAPS[profile].tune + MAPS[profile].score) == list(range(profile_repetitions(spec)))
    # the description says what it maps, no time (the time is `plan`'s, from this machine's runs)
    assert not re.search(r"\b\d+(\.\d+)?\s*(s|sec|seconds?|min|minutes?|h|hours?)\b", spec["description"])


# ------------------------------------------------------------------------------------------
# run -> store -> report, on the tiny ablation_map_smoke profile
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def map_store(tmp_path_factory):
    from bench_suite.cli import main

    store = tmp_path_factory.mktemp("map") / "store"
    assert main(["run", "--task", TASK, "--profile", "ablation_map_smoke", "--store", str(store), "--quiet",
                 "--threads", "1"]) == 0
    return store


def test_map_smoke_run_then_report(map_store, tmp_path, capsys):
    import bench_suite as bs
    from bench_suite.cli import main
    from bench_suite.reporting.ablation_map import map_markdown
    from bench_suite.store import ResultStore

    assert main(["list", "--profiles"]) == 0
    assert re.search(r"^synthetic_ablation\s+ablation_map\s", capsys.readouterr().out, flags=re.M)
    out = tmp_path / "report"
    assert main(["report", "--store", str(map_store), "--dir", str(out)]) == 0
    md = (out / "report.md").read_text()
    part = md[md.index("## Where the paper's ordering holds"):]
    part = part[:part.index("\n## ", 1)]
    assert "`mli_paired_pgd` is below all three ablations in" in part and "of 4 (width ratio, ε) settings" in part
    assert "figures/map__synthetic_ablation__ablation_map_smoke.svg" in part and "| versus" not in part
    assert (out / "figures" / "map__synthetic_ablation__ablation_map_smoke.svg").exists()
    page = (out / "report.html").read_text()
    assert 'id="fig-map__synthetic_ablation__ablation_map_smoke"' in page and "Δ tail median [95% CI]" in page
    from bench_suite.reporting.ablation import study_profiles

    records = ResultStore(map_store).records()
    assert study_profiles(records, task=TASK) == ([], [])  # the study's tables leave the map to its section
    assert "## Synthetic ablation study" not in md
    # one row recomputed from the results table: width 16, eps 1, versus no_mirroring
    table = map_markdown(records, "ablation_map_smoke")
    df = bs.load_results(map_store)
    df = df[df["width"] == 16]

    def best(method, eps):
        mine = df[(df["method"] == method) & ((df["eps"] == eps) if method != "sgd" else True)]
        tune = mine[mine["repetition"] == 0].sort_values(["train_loss_tail_median", "lr_w", "lr_v"])
        lr_w = tune.iloc[0]["lr_w"]
        held = mine[(mine["lr_w"] == lr_w) & mine["repetition"].isin([1, 2])].sort_values("repetition")
        return lr_w, list(held["train_loss_tail_median"])

    lw_ours, ours = best("mli_paired_pgd", 1.0)
    lw_nm, nm = best("no_mirroring", 1.0)
    diff = (ours[0] - nm[0] + ours[1] - nm[1]) / 2
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    cells = next(r for r in rows if r[:4] == ["2", "16", "1", "no_mirroring"])
    assert cells[4] == f"({lw_ours:g}, 0.1)" and cells[5] == f"({lw_nm:g}, 0.1)"
    assert cells[8].startswith(f"{diff:+.3g}") and cells[9] == "2"
