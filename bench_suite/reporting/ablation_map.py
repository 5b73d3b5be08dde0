"""The section ``map`` (tasks that ask for it: ``synthetic_ablation``): where the paper's ordering
holds, each method at its own best learning rates (docs/ablation.md, "The map").

A map is a profile of :data:`MAPS` (``ablation_map``, declared in ``bench_suite/tasks/synthetic.py``):
widths x radii (eps) x lr_w x lr_v for ``mli_paired_pgd`` and the paper's three ablations
(``sgd``, ``constraint_only``, ``no_mirroring``), over repetitions split in two
(:class:`MapDesign`):

- **tuning** (:func:`choose`): per (width, eps, method), the (lr_w, lr_v) with the lowest mean
  over the tuning repetitions of the records' ``train_loss_tail_median`` (the median over the
  last quarter of training, docs/checks.md "Curve claims"); a diverged cell, or one whose window
  or final ||W - W0||_F is not finite, counts as +inf; ties go to the smallest (lr_w, lr_v).
  ``sgd`` has no radius: its choice per width serves every eps;
- **scoring** (:func:`map_rows`): on the held-out repetitions only, the paired per-repetition
  difference ``tail_median[mli_paired_pgd] - tail_median[versus]`` at the two chosen pairs,
  scored as the comparison kind scores it (``bench_suite.scoring.kinds.score_comparison``:
  Student-t interval at 95%, a repetition where ``mli_paired_pgd`` diverged fails the claim, one
  where only the other diverged is won by it). PASS is "holds", FAIL "fails", anything else
  "undecided"; so is a setting whose tuning grid or held-out repetitions are incomplete (never
  decided on fewer repetitions than the design's). The same difference of the final loss is
  shown beside it.

Choosing on the tuning repetitions and scoring on the others keeps the choice from biasing the
comparison (the minimum over nine pairs of a noisy loss is biased low on the repetitions it was
taken on). Plain pandas and matplotlib; the statistics are the scoring package's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from ..core.records import Record, Status
from ..methods import METHODS
from ..scoring.kinds import score_comparison
from ..scoring.references import Reference
from ..scoring.verdicts import FAIL, PASS
from . import fmt
from .ablation import ABLATIONS, OURS, select
from .sections import Figure, SectionInput, Table, Text, register_section

MAP_SECTION = "map"
STATISTIC = "tail_median"  # the statistic the lrs are chosen on and the ordering is scored on
COLUMN = "train_loss_tail_median"
FINAL = "train_loss"
HOLDS, FAILS, UNDECIDED = "holds", "fails", "undecided"
WORDS = {PASS: HOLDS, FAIL: FAILS}  # any other verdict (INCONCLUSIVE, SKIPPED) is undecided
COLORS = {HOLDS: "#1b9e77", FAILS: "#d95f02", UNDECIDED: "#bdbdbd"}


@dataclass(frozen=True)
class MapDesign:
    """Which repetitions choose the learning rates (``tune``) and which score the ordering
    (``score``): disjoint, so the choice does not bias the comparison. ``confidence``: of the
    paired t-interval."""

    tune: tuple[int, ...]
    score: tuple[int, ...]
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if not self.tune or len(self.score) < 2 or set(self.tune) & set(self.score):
            raise ValueError(f"a map needs tuning repetitions and at least two held-out ones, disjoint; got tune "
                             f"{self.tune}, score {self.score}")


# the maps: profile -> its design (the profiles are the task's, bench_suite/tasks/synthetic.py)
MAPS: dict[str, MapDesign] = {
    "ablation_map": MapDesign(tune=(0, 1), score=(2, 3, 4)),
    "ablation_map_smoke": MapDesign(tune=(0,), score=(1, 2)),
}


# --------------------------------------------------------------------------------------------
# records -> one row per cell
# --------------------------------------------------------------------------------------------
FRAME_COLUMNS = ("cell_id", "name", "method", "width", "ratio", "eps", "eps_mode", "lr_w", "lr_v", "repetition",
                 "status", "reason", COLUMN, FINAL, "code_version", "data_checksum", "protocol")


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def map_frame(records: Sequence[Record]) -> pd.DataFrame:
    """One row per record (:data:`FRAME_COLUMNS`): ``ratio`` = m·d/(2n); ``eps`` NaN for an
    unconstrained method (it has no radius); ``status`` ``diverged`` also for a cell recorded
    done whose tail window, final loss or final ||W - W0||_F is not finite (it blew up
    unflagged: :func:`.ablation.unflagged_blowups`), else ``done``. Records must be done or
    diverged (:func:`.ablation.select` gives such)."""
    rows = []
    for r in records:
        flat = r.flat()
        options = r.config.get("task_options") or {}
        n, d = options.get("n"), options.get("d")
        final = r.final or {}
        distance = final.get("dist_w0")
        blown = r.status == Status.DONE and (not all(_finite(final.get(k)) for k in (COLUMN, FINAL))
                                             or (distance is not None and not _finite(distance)))
        constrained = METHODS.get(r.method).constrained if r.method in METHODS else flat["radius"] is not None
        rows.append({**{k: flat.get(k) for k in FRAME_COLUMNS if k in flat},
                     "ratio": flat["width"] * d / (2 * n) if n and d else math.nan,
                     "eps": flat["eps"] if constrained else math.nan,
                     "status": "diverged" if r.status == Status.DIVERGED or blown else "done"})
    frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    for col in (COLUMN, FINAL, "ratio", "eps", "lr_w", "lr_v"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    frame["status_value"] = [v if st == "done" else math.inf for v, st in zip(frame[COLUMN], frame["status"])]
    return frame


# --------------------------------------------------------------------------------------------
# tuning
# --------------------------------------------------------------------------------------------
@dataclass
class Choice:
    """One method's learning rates at one (width, eps), chosen on the tuning repetitions.
    ``lr``: (lr_w, lr_v), None when no pair has a record; ``tuning``: each pair's mean over the
    tuning repetitions (+inf: a repetition diverged; NaN: a repetition is missing);
    ``complete``: every pair has every tuning repetition."""

    method: str
    lr: tuple[float, float] | None
    score: float
    tuning: dict[tuple[float, float], float] = field(default_factory=dict)
    complete: bool = True
    note: str = ""


def choose(rows: pd.DataFrame, method: str, tune: Sequence[int]) -> Choice:
    """The (lr_w, lr_v) of ``method`` with the lowest mean ``train_loss_tail_median`` over the
    repetitions ``tune`` (a diverged repetition: +inf; ties: the smallest lr_w, then lr_v).
    ``rows``: :func:`map_frame` rows of one setting (width, eps), any methods. A pair missing a
    tuning repetition is left out of the choice and makes it incomplete."""
    mine = rows[(rows["method"] == method) & rows["repetition"].isin(list(tune))]
    tuning: dict[tuple[float, float], float] = {}
    for (lr_w, lr_v), part in mine.groupby(["lr_w", "lr_v"], sort=True):
        values = {int(r): v for r, v in zip(part["repetition"], part["status_value"])}
        have = [values[r] for r in tune if r in values]
        if any(math.isinf(v) for v in have):  # never the best, whatever the missing repetitions hold
            value = math.inf
        elif len(have) < len(tune):
            value = math.nan
        else:
            value = math.fsum(have) / len(have)
        tuning[(float(lr_w), float(lr_v))] = value
    complete_pairs = {k: v for k, v in tuning.items() if not math.isnan(v)}
    partial = sorted(k for k, v in tuning.items() if math.isnan(v))
    if not complete_pairs:
        return Choice(method, None, math.nan, tuning, False, f"{method}: no (lr_w, lr_v) has every tuning repetition")
    lr, score = min(complete_pairs.items(), key=lambda kv: (kv[1], kv[0]))
    notes = []
    if partial:
        notes.append(f"{method}: {len(partial)} (lr_w, lr_v) pair(s) lack tuning repetitions")
    if math.isinf(score):
        notes.append(f"{method} diverged at every (lr_w, lr_v) on the tuning repetitions")
    return Choice(method, lr, score, tuning, not partial, "; ".join(notes))


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------
def _reference(task: str, profile: str, rival: str, statistic: str, protocol: int) -> Reference:
    return Reference(id=f"{profile}:{OURS}<{rival}", kind="comparison", task=task, profile=profile, method=OURS,
                     metric=FINAL, direction="lower", protocol=protocol, versus=rival, bound=0.0,
                     statistic=statistic, claim=f"{OURS} reaches a lower training loss than {rival}")


def _cells(rows: pd.DataFrame, choice: Choice, reps: Sequence[int]) -> pd.DataFrame:
    """The rows of ``choice``'s method at its chosen pair on the repetitions ``reps``, as the
    comparison scorer reads them (a blown-up cell as diverged)."""
    if choice.lr is None:
        return rows.iloc[0:0]
    return rows[(rows["method"] == choice.method) & (rows["lr_w"] == choice.lr[0]) & (rows["lr_v"] == choice.lr[1])
                & rows["repetition"].isin(list(reps))]


def score_pair(rows: pd.DataFrame, ours: Choice, theirs: Choice, design: MapDesign, *, task: str, profile: str,
               statistic: str = STATISTIC) -> dict:
    """The comparison of ``mli_paired_pgd`` at ``ours`` against ``theirs`` on the held-out
    repetitions: the verdict row of ``score_comparison`` (``ours`` = the mean paired difference,
    ``ci_low``/``ci_high``, ``n``, ``method_mean``/``versus_mean``, ``verdict``, ``note``) plus
    ``word`` (holds / fails / undecided). Undecided, whatever the interval says, when a choice is
    incomplete or a held-out repetition is missing for either method."""
    cells = pd.concat([_cells(rows, ours, design.score), _cells(rows, theirs, design.score)])
    protocol = int(cells["protocol"].dropna().iloc[0]) if cells["protocol"].notna().any() else 1
    ref = _reference(task, profile, theirs.method, statistic, protocol)
    row = score_comparison(ref, cells, None, None, design.confidence)
    row["word"] = WORDS.get(row["verdict"], UNDECIDED)
    problems = [c.note for c in (ours, theirs) if not c.complete]
    for choice in (ours, theirs):
        have = set(int(r) for r in _cells(rows, choice, design.score)["repetition"])
        lacking = sorted(set(design.score) - have)
        if lacking:
            problems.append(f"partial: {choice.method} lacks held-out repetition(s) {lacking} (of "
                            f"{list(design.score)})")
    if problems:
        row["word"] = UNDECIDED
        row["note"] = "; ".join(problems + [row["note"]])
    return row


def map_rows(records: Sequence[Record], profile: str, *, task: str, design: MapDesign | None = None) -> list[dict]:
    """One row per (width, eps, versus) of the map ``profile``: the chosen pairs, the held-out
    comparison on the tail median (``tail``: :func:`score_pair`'s row) and on the final loss
    (``final``), the word, in order of width ratio, eps, versus (:data:`ABLATIONS`' order).
    ``records``: the profile's records (current code, done or diverged: :func:`.ablation.select`)."""
    design = design or MAPS[profile]
    frame = map_frame(records)
    if frame.empty:
        return []
    out = []
    for width in sorted(frame["width"].dropna().unique()):
        at_width = frame[frame["width"] == width]
        ratio = float(at_width["ratio"].iloc[0])
        radii = sorted(at_width["eps"].dropna().unique())
        free = {m: choose(at_width[at_width["eps"].isna()], m, design.tune)
                for m in ABLATIONS if m in set(at_width.loc[at_width["eps"].isna(), "method"])}
        for eps in radii:
            here = at_width[(at_width["eps"] == eps) | at_width["eps"].isna()]
            constrained = at_width[at_width["eps"] == eps]
            ours = choose(constrained, OURS, design.tune)
            for rival in ABLATIONS:
                theirs = free.get(rival) or choose(constrained, rival, design.tune)
                tail = score_pair(here, ours, theirs, design, task=task, profile=profile)
                final = score_pair(here, ours, theirs, design, task=task, profile=profile, statistic="final")
                out.append({"width": int(width), "ratio": ratio, "eps": float(eps),
                            "eps_mode": str(constrained["eps_mode"].iloc[0]) if len(constrained) else "",
                            "versus": rival, "ours": ours, "theirs": theirs, "tail": tail, "final": final,
                            "word": tail["word"]})
    return out


# --------------------------------------------------------------------------------------------
# tables and figure
# --------------------------------------------------------------------------------------------
def _lr(choice: Choice) -> str:
    return "—" if choice.lr is None else f"({choice.lr[0]:g}, {choice.lr[1]:g})"


def _num(x: Any, spec: str = ".3g") -> str:
    return f"{x:{spec}}" if isinstance(x, (int, float)) and not math.isnan(x) else "—"


def _diff(row: dict) -> str:
    mean, lo, hi = row["ours"], row["ci_low"], row["ci_high"]
    text = _num(mean, "+.3g")
    return text + (f" [{lo:+.3g}, {hi:+.3g}]" if _finite(lo) and _finite(hi) else "")


def eps_label(rows: Sequence[dict]) -> str:
    """The eps column's name: ``ε/‖W0‖_F`` for relative radii."""
    modes = {r["eps_mode"] for r in rows}
    return "ε/‖W0‖_F" if modes == {"relative"} else "ε"


def map_table(rows: Sequence[dict]) -> pd.DataFrame:
    """The map as a table: one row per (width ratio, eps, versus): the chosen (lr_w, lr_v) of
    both methods, their held-out mean tail medians, the mean paired difference with its 95%
    interval, the held-out repetitions paired, the word, and the final loss's difference and word."""
    eps_name = eps_label(rows)
    out = []
    for r in rows:
        tail, final = r["tail"], r["final"]
        out.append({"m·d/(2n)": f"{r['ratio']:g}", "m": str(r["width"]), eps_name: f"{r['eps']:g}",
                    "versus": r["versus"], "lr ours (w, v)": _lr(r["ours"]), "lr versus (w, v)": _lr(r["theirs"]),
                    "ours": _num(tail["method_mean"]), "versus loss": _num(tail["versus_mean"]),
                    "Δ tail median [95% CI]": _diff(tail), "n": str(int(tail["n"])), "verdict": r["word"],
                    "Δ final": _num(final["ours"], "+.3g"), "final verdict": final["word"]})
    return pd.DataFrame(out)


def tuning_table(rows: Sequence[dict]) -> pd.DataFrame:
    """Each method's tuning grid per (width, eps): the mean tail median over the tuning
    repetitions of every (lr_w, lr_v) ("div": a repetition diverged; "—": incomplete), the
    chosen pair marked ``*``. ``sgd`` once per width (it has no radius)."""
    eps_name = eps_label(rows)
    seen: set = set()
    out = []
    for r in rows:
        for choice, eps in ((r["ours"], r["eps"]), (r["theirs"], r["eps"])):
            key = (r["width"], None if choice.method == "sgd" else eps, choice.method)
            if key in seen:
                continue
            seen.add(key)
            row: dict[str, str] = {"m·d/(2n)": f"{r['ratio']:g}", eps_name: "—" if key[1] is None else f"{eps:g}",
                                   "method": choice.method}
            for lr, value in sorted(choice.tuning.items()):
                text = "div" if math.isinf(value) else _num(value)
                row[f"({lr[0]:g}, {lr[1]:g})"] = text + ("*" if lr == choice.lr else "")
            out.append(row)
    frame = pd.DataFrame(out)
    return frame.fillna("—") if len(frame) else frame


def counts(rows: Sequence[dict]) -> dict[str, dict[str, int]]:
    """versus -> word -> how many settings; and ``all`` (the three at once: holds when each
    holds, fails when one fails, else undecided)."""
    out: dict[str, dict[str, int]] = {}
    by_setting: dict[tuple, list[str]] = {}
    for r in rows:
        out.setdefault(r["versus"], {HOLDS: 0, FAILS: 0, UNDECIDED: 0})[r["word"]] += 1
        by_setting.setdefault((r["width"], r["eps"]), []).append(r["word"])
    every = {HOLDS: 0, FAILS: 0, UNDECIDED: 0}
    for words in by_setting.values():
        every[HOLDS if all(w == HOLDS for w in words) else FAILS if FAILS in words else UNDECIDED] += 1
    out["all"] = every
    return out


def summary_sentence(rows: Sequence[dict], design: MapDesign) -> str:
    """One sentence: in how many (width ratio, eps) settings the full ordering holds, and the
    counts per ablation."""
    c = counts(rows)
    total = sum(c["all"].values())
    per = "; ".join(f"vs `{m}` {c[m][HOLDS]} hold, {c[m][FAILS]} fail, {c[m][UNDECIDED]} undecided"
                    for m in ABLATIONS if m in c)
    tune = ", ".join(map(str, design.tune))
    score = ", ".join(map(str, design.score))
    return (f"With each method at its own best (lr_w, lr_v) (chosen on repetition(s) {tune}, scored on {score}: "
            f"paired t-interval of the tail-median difference, {int(round(design.confidence * 100))}%), "
            f"`{OURS}` is below all three ablations in {c['all'][HOLDS]} of {total} (width ratio, ε) settings and "
            f"above at least one of them in {c['all'][FAILS]} ({per}).")


def map_figure(rows: Sequence[dict], title: str):
    """One panel per ablation: width ratio (x) by eps (y), coloured by the word, annotated
    with the mean paired difference of the tail median."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from . import figures

    rivals = [m for m in ABLATIONS if any(r["versus"] == m for r in rows)]
    ratios = sorted({r["ratio"] for r in rows})
    radii = sorted({r["eps"] for r in rows})
    words = [HOLDS, FAILS, UNDECIDED]
    cmap = ListedColormap([COLORS[w] for w in words]).with_extremes(bad="white")
    fig, axes = figures.new(len(rivals), width=3.3 * len(rivals) + 0.6, height=3.4)
    for ax, rival in zip(axes, rivals):
        grid = [[math.nan] * len(ratios) for _ in radii]
        notes = [[""] * len(ratios) for _ in radii]
        for r in rows:
            if r["versus"] != rival:
                continue
            i, j = radii.index(r["eps"]), ratios.index(r["ratio"])
            grid[i][j] = words.index(r["word"])
            notes[i][j] = _num(r["tail"]["ours"], "+.2g")
        arr = np.ma.masked_invalid(np.array(grid, dtype=float))
        ax.imshow(arr, cmap=cmap, vmin=-0.5, vmax=2.5, aspect="auto", origin="lower")
        for i in range(len(radii)):
            for j in range(len(ratios)):
                ax.text(j, i, notes[i][j], ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(ratios)), [f"{x:g}" for x in ratios])
        ax.set_yticks(range(len(radii)), [f"{y:g}" for y in radii])
        ax.set_xlabel("m·d/(2n)")
        ax.set_ylabel(eps_label(rows))
        ax.set_title(f"{OURS} < {rival}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.legend(handles=[Patch(color=COLORS[w], label=w) for w in words], loc="lower center", ncol=3, fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def map_task(profile: str) -> str:
    """The task that declares the map ``profile`` among those asking for the ``map`` section;
    ValueError naming the maps when none does."""
    from ..grid import profiles_of
    from ..tasks import TASKS
    from .sections import task_sections

    for task in TASKS.names():
        if MAP_SECTION in task_sections(task) and profile in profiles_of(task) and profile in MAPS:
            return task
    raise ValueError(f"no task declares the map {profile!r}; the maps: {', '.join(MAPS)}")


def map_markdown(records: Sequence[Record], profile: str, *, task: str | None = None) -> str:
    """The map's table as markdown (``DataFrame.to_markdown``), from a store's records (any:
    the profile's current-code ones are selected), for docs/ablation.md."""
    task = task or map_task(profile)
    rows = map_rows(select(records, profile, task=task).used, profile, task=task)
    return map_table(rows).to_markdown(index=False) if rows else "_no records of the map_"


# --------------------------------------------------------------------------------------------
# the section
# --------------------------------------------------------------------------------------------
def map_profiles(records: Sequence[Record], task: str) -> list[str]:
    """The profiles of :data:`MAPS` that ``task`` declares and some of ``records`` belong to."""
    from ..grid import profile_declares, profiles_of

    declared = profiles_of(task)
    mine = [r for r in records if r.task == task]
    return [p for p in MAPS if p in declared and any(profile_declares(task, p, r.config) is None for r in mine)]


LEGEND = (
    "Each method at its own best (lr_w, lr_v), chosen on the tuning repetitions (lowest mean tail median) and "
    "scored on the held-out ones: Δ = tail median of `mli_paired_pgd` − that of the ablation, paired by "
    "repetition, mean and 95% t-interval (as `check`'s comparison kind). *holds*: the interval is below 0; "
    "*fails*: above 0; *undecided*: it straddles 0, or the grid is incomplete. The tail median is the median "
    "training loss over the last quarter of the steps (docs/checks.md, \"Curve claims\"); Δ final is the same "
    "difference of the loss after the last step, shown beside it. `sgd` has no radius: its choice per width "
    "serves every ε."
)


@register_section(MAP_SECTION, title="Where the paper's ordering holds (ablation map)", order=72)
def map_section(data: SectionInput) -> list:
    out: list = []
    for task in data.tasks:
        for profile in map_profiles(data.records, task):
            design = MAPS[profile]
            sel = select(data.records, profile, task=task)
            head = (f"**`{profile}`** ({task}): {len(sel.used)} of the profile's {sel.expected} cells have a result"
                    + (f"; {sel.missing} have none yet (the settings lacking them are undecided)" if sel.missing
                       else "") + ".")
            rows = map_rows(sel.used, profile, task=task, design=design)
            if not rows:
                out.append(Text(head, summary=True))
                continue
            title = f"{task} · {profile}: where {OURS} is below each ablation"
            out += [
                Text(head),
                Text(summary_sentence(rows, design), summary=True),
                Figure(name=fmt.slug("map", task, profile), title=title,
                       views={"verdicts": lambda rows=rows, title=title: map_figure(rows, title)},
                       caption="Green: holds, orange: fails, grey: undecided; the number is the mean paired "
                               "difference of the tail median (negative: the method is lower).", summary=True),
                Text(LEGEND),
                Table(map_table(rows), caption="The map: one row per (width ratio, ε, ablation)."),
                Table(tuning_table(rows), caption="The tuning grids: mean tail median over the tuning repetitions "
                                                  "per (lr_w, lr_v); * = chosen; div = a repetition diverged."),
            ]
            if sel.old_code:
                out.append(Text(f"{sel.old_code} record(s) of this profile computed by other code are left out."))
    return out


__all__ = ["COLUMN", "Choice", "FAILS", "HOLDS", "LEGEND", "MAPS", "MAP_SECTION", "MapDesign", "UNDECIDED", "choose",
           "counts", "map_figure", "map_frame", "map_markdown", "map_profiles", "map_rows", "map_section", "map_table",
           "map_task", "score_pair", "summary_sentence", "tuning_table"]
