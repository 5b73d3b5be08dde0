"""The synthetic ablation study's tables (docs/ablation.md), built from the store's records.

The study is the profiles ``ablation_*`` of the task that asks for the ``study`` report section
(``synthetic_ablation``: one profile per sweep, declared in ``bench_suite/tasks/synthetic.py``; a
TOML profile file may add more). For each such profile
present in a store, :func:`study_section` builds, from the records the profile declares
(:func:`bench_suite.grid.profile_declares`, current code only), the tables of the study:

- the **summary**: one row per setting; each method's final training loss as mean ± sd over
  repetitions, a diverged repetition left out of mean ± sd and counted as "(k div)"; "ordering
  holds k/n": in how many repetitions ``mli_paired_pgd`` has a strictly lower loss than each of
  the paper's ablations (``ABLATIONS``: sgd, constraint_only, no_mirroring); "ours < (…)": the
  same count against each other method alone, the method's variants (``mli_paired_pgd_fixed_v``,
  ``mli_paired_pgd_per_neuron``) included. Methods are paired by
  repetition (same data, same W0 draws, ``bench_suite/core/seeds.py``); only repetitions every
  method of the row has count; a diverged cell counts as infinitely bad, and so does a cell
  recorded done whose loss or final ||W - W0||_F is not finite (its weights blew up although
  the engine did not flag it: :func:`unflagged_blowups`; the section names such cells);
- the **best per method** (sweeps that tune an axis, ``StudyTables.tune_over``): per
  repetition, each method at the value of the tuned axes that gives it its lowest loss, grouped
  by the other labels; ``[v]`` is the value most often chosen (ties: the earliest repetition's);
- the **detail**: per setting and method, means over the done repetitions of ||W - W0||_F at
  the end, the radius and the fraction of steps with an active projection;
- the **loss after T steps** (``StudyTables.at_steps``): the three tables above with a ``steps``
  column, read off the exact evaluations of one long run (GD with a constant lr: the first T
  steps of a long run are a T-step run); a cell that diverged before T is diverged at T.

``report`` puts them in its HTML page with heat maps (:mod:`.study`); ``report --section ablation`` writes only
them (:func:`write_study`). Plain pandas (tables by ``DataFrame.to_markdown``), no torch.
Source of the definitions: the study as it was first run (docs/ablation.md); our choice.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd

from ..core.records import USABLE, Record, Status

STUDY_SECTION = "study"  # the report section of the study: a task asks for it in its ``report_sections``
PREFIX = "ablation_"
OURS = "mli_paired_pgd"
# the paper's ablations: "ordering holds" is ours below each of them (the claim of the study)
ABLATIONS = ("sgd", "constraint_only", "no_mirroring")
METHOD_ORDER = ("mli_paired_pgd", "sgd", "constraint_only", "no_mirroring", "mli_paired_pgd_fixed_v",
                "mli_paired_pgd_per_neuron", "adam")
_SHORT = {"constraint_only": "c_only", "no_mirroring": "no_mirr", "mli_paired_pgd_fixed_v": "fixed_v",
          "mli_paired_pgd_per_neuron": "per_neuron"}
DASH = "—"
SECTION_TITLE = "Synthetic ablation study"


class StudyError(ValueError):
    """A table that cannot be built from these records (one line: what and which record)."""


@dataclass(frozen=True)
class StudyTables:
    """Which tables a profile gets. ``labels``: the columns that name a setting (keys of
    :data:`LABELS`; empty: the axes whose value varies among the records). ``tune_over``: the
    labels the best-per-method table minimizes over (none: no such table). ``at_steps``: read the
    loss after each of these numbers of steps off the evaluation curve (each must be an
    evaluation point of the profile's runs)."""

    labels: tuple[str, ...] = ()
    tune_over: tuple[str, ...] = ()
    at_steps: tuple[int, ...] = ()


# the study's sweeps (docs/ablation.md); a profile not listed here gets the varying axes as labels
TABLES: dict[str, StudyTables] = {
    "ablation_naive": StudyTables(labels=("lr", "eps")),
    "ablation_lr": StudyTables(labels=("lr",), tune_over=("lr",)),
    "ablation_lr_wv": StudyTables(labels=("lr_w", "lr_v"), tune_over=("lr_w", "lr_v")),
    "ablation_eps": StudyTables(labels=("eps", "eps/‖W0‖")),
    "ablation_steps": StudyTables(labels=("lr_w", "lr_v"), at_steps=(500, 1000, 2000, 5000, 10000)),
    "ablation_activation": StudyTables(labels=("activation", "lr"), tune_over=("lr",)),
    "ablation_softplus": StudyTables(labels=("lr",), at_steps=(1000, 2000, 5000)),
    "ablation_width": StudyTables(labels=("m", "md/2n", "eps")),
    "ablation_wide_d": StudyTables(labels=("d", "m", "md/2n", "eps")),
    "ablation_smoke": StudyTables(labels=("eps",), tune_over=("eps",), at_steps=(25, 50)),
}


def _train(r: Record) -> dict[str, Any]:
    return r.config.get("train") or {}


def _option(r: Record, key: str) -> Any:
    return (r.config.get("task_options") or {}).get(key)


def _width_ratio(r: Record) -> float:
    return r.config["width"] * _option(r, "d") / (2 * _option(r, "n"))


# label -> its value for a record (``steps`` is the record's epochs, or T in a loss-after-T table)
LABELS: dict[str, Callable[[Record], Any]] = {
    "n": lambda r: _option(r, "n"),
    "d": lambda r: _option(r, "d"),
    "activation": lambda r: r.config.get("activation"),
    "m": lambda r: r.config.get("width"),
    "md/2n": _width_ratio,
    "lr": lambda r: _train(r).get("lr_w") if _train(r).get("lr_w") == _train(r).get("lr_v") else math.nan,
    "lr_w": lambda r: _train(r).get("lr_w"),
    "lr_v": lambda r: _train(r).get("lr_v"),
    "eps": lambda r: _train(r).get("eps"),
    # ||W0||_F ~ sqrt(m) for LeCun init (w ~ N(0, I/d)): the radius relative to the start
    "eps/‖W0‖": lambda r: _train(r).get("eps") / math.sqrt(r.config["width"]),
    "steps": lambda r: _train(r).get("epochs"),
}
# shown rounded to 3 decimals (the values stay exact for grouping)
_ROUNDED = ("eps", "eps/‖W0‖", "md/2n")
_AUTO_ORDER = ("d", "n", "activation", "m", "lr_w", "lr_v", "eps", "steps")


# --------------------------------------------------------------------------------------------
# records -> one row per cell (and T)
# --------------------------------------------------------------------------------------------
FRAME_COLUMNS = ("method", "repetition", "status", "train_loss", "dist_w0", "radius", "proj_active_frac")


def auto_labels(records: Sequence[Record]) -> tuple[str, ...]:
    """The labels whose value varies among ``records`` (``lr`` for lr_w = lr_v where they move
    together), in a fixed order; ``("m",)`` if none varies."""
    def varies(name: str) -> bool:
        return len({_key_value(LABELS[name](r)) for r in records}) > 1

    names = [n for n in _AUTO_ORDER if varies(n)]
    if ("lr_w" in names or "lr_v" in names) and all(_train(r).get("lr_w") == _train(r).get("lr_v")
                                                    for r in records):
        names = [n for n in names if n not in ("lr_w", "lr_v")]
        names.insert(names.index("eps") if "eps" in names else len(names), "lr")
    return tuple(names) or ("m",)


def _key_value(v: Any) -> Any:
    return "nan" if isinstance(v, float) and math.isnan(v) else v


def study_frame(records: Iterable[Record], labels: Sequence[str], at_steps: Sequence[int] = ()) -> pd.DataFrame:
    """One row per record (per record and T with ``at_steps``): the labels, then
    :data:`FRAME_COLUMNS`. ``status`` is ``done`` or ``diverged``; ``train_loss`` is NaN for a
    diverged cell, and a done one whose loss or ||W - W0||_F is not finite is ``diverged`` too
    (:func:`unflagged_blowups`; at T: its loss or distance at T).
    Raises :class:`StudyError` for a record that is not done or diverged, or a T that is not an
    evaluation point of a done record."""
    unknown = [n for n in labels if n not in LABELS]
    if unknown:
        raise StudyError(f"unknown table label(s) {', '.join(unknown)}; valid: {', '.join(LABELS)}")
    rows = []
    for r in records:
        if r.status not in USABLE:
            raise StudyError(f"record {r.name} is {r.status.value}, not a measurement (done or diverged)")
        final = r.final or {}
        base = {n: LABELS[n](r) for n in labels if n != "steps"}
        common = {"method": r.method, "repetition": r.config.get("repetition"), "radius": final.get("radius")}
        if not at_steps:
            loss = _finite_or_nan(final.get("train_loss")) if r.status == Status.DONE else math.nan
            loss = math.nan if _not_finite(final.get("dist_w0")) else loss
            rows.append({**base, **({"steps": LABELS["steps"](r)} if "steps" in labels else {}), **common,
                         "status": "done" if math.isfinite(loss) else "diverged", "train_loss": loss,
                         "dist_w0": final.get("dist_w0"), "proj_active_frac": final.get("proj_active_frac")})
            continue
        if r.curves is None:
            raise StudyError(f"record {r.name} has no curves in memory (read records with "
                             f"ResultStore.records(with_curves=True))")
        curves = r.curves
        at = {name: dict(zip(curves.get("eval_epoch") or [], curves.get(name) or []))
              for name in ("eval_train_loss", "dist_w0", "proj_active_frac")}
        for T in at_steps:
            if T not in at["eval_train_loss"] and r.status == Status.DONE:
                raise StudyError(f"step {T} is not an evaluation point of {r.name} (its eval_every is "
                                 f"{_train(r).get('eval_every')}): fix the profile's table definition")
            loss = _finite_or_nan(at["eval_train_loss"].get(T))
            loss = math.nan if _not_finite(at["dist_w0"].get(T)) else loss
            rows.append({**base, "steps": T, **common, "status": "done" if math.isfinite(loss) else "diverged",
                         "train_loss": loss, "dist_w0": at["dist_w0"].get(T),
                         "proj_active_frac": at["proj_active_frac"].get(T)})
    names = [n for n in labels if n != "steps"] + (["steps"] if at_steps or "steps" in labels else [])
    frame = pd.DataFrame(rows, columns=[*names, *FRAME_COLUMNS])
    for col in ("train_loss", "dist_w0", "radius", "proj_active_frac"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame


def _not_finite(x: Any) -> bool:
    """A distance that was measured and is NaN or infinite (None: not measured)."""
    return x is not None and math.isnan(_finite_or_nan(x))


def unflagged_blowups(records: Iterable[Record]) -> list[Record]:
    """Records ``done`` whose final ||W - W0||_F is not finite: the weights blew up although the
    engine did not flag the cell (its loss can sit at the zero predictor's, looking finite).
    The tables count them as diverged, the status vocabulary's own definition."""
    return [r for r in records if r.status == Status.DONE and _not_finite((r.final or {}).get("dist_w0"))]


def _finite_or_nan(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


# --------------------------------------------------------------------------------------------
# the tables
# --------------------------------------------------------------------------------------------
def _label_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in FRAME_COLUMNS]


def _sort_key(values: tuple) -> tuple:
    return tuple((1, str(v)) if isinstance(v, str) else (0, float(v)) for v in values)


def _settings(frame: pd.DataFrame, labels: Sequence[str]) -> list[tuple]:
    """The distinct label tuples of ``frame``, sorted (numbers by value, then text)."""
    keys = {tuple(_key_value(v) for v in row) for row in frame[list(labels)].itertuples(index=False)}
    return sorted(keys, key=_sort_key)


def _rows_of(frame: pd.DataFrame, labels: Sequence[str], key: tuple) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for name, value in zip(labels, key):
        mask &= frame[name].map(_key_value) == value
    return frame[mask]


def _methods(frame: pd.DataFrame) -> list[str]:
    present = set(frame["method"])
    return [m for m in METHOD_ORDER if m in present] + sorted(present - set(METHOD_ORDER))


def per_repetition(rows: pd.DataFrame) -> dict[str, dict[int, float]]:
    """method -> repetition -> loss, a diverged cell as +inf."""
    out: dict[str, dict[int, float]] = {}
    for method, rep, loss, status in zip(rows["method"], rows["repetition"], rows["train_loss"], rows["status"]):
        ok = status == "done" and math.isfinite(loss)
        out.setdefault(method, {})[int(rep)] = float(loss) if ok else math.inf
    return out


def format_losses(values: Sequence[float]) -> str:
    """``mean ± sd`` of the finite values (sd with n - 1; 0 for one value), ``(k div)`` for the
    others; ``diverged (k/n)`` when none is finite."""
    ok = [v for v in values if math.isfinite(v)]
    div = len(values) - len(ok)
    if not values:
        return DASH
    if not ok:
        return f"diverged ({div}/{len(values)})"
    mean = sum(ok) / len(ok)
    sd = (sum((v - mean) ** 2 for v in ok) / (len(ok) - 1)) ** 0.5 if len(ok) > 1 else 0.0
    return f"{mean:.3g} ± {sd:.2g}" + (f" ({div} div)" if div else "")


def ordering_columns(losses: dict[str, dict[int, float]], methods: Sequence[str]) -> dict[str, str]:
    """``ordering holds``: in how many repetitions ``mli_paired_pgd`` is strictly below each of
    the paper's ablations present (:data:`ABLATIONS`; every other method when none is); ``ours <
    (…)``: against each other method alone, variants included. Paired by repetition, over the
    repetitions every method has. Empty when ``mli_paired_pgd`` or every other method is absent."""
    others = [m for m in methods if m != OURS and m in losses]
    if OURS not in losses or not others:
        return {}
    rivals = [m for m in others if m in ABLATIONS] or others
    reps = sorted(set(losses[OURS]).intersection(*(set(losses[m]) for m in others)))
    wins = sum(all(losses[OURS][r] < losses[m][r] for m in rivals) for r in reps)
    beats = [sum(losses[OURS][r] < losses[m][r] for r in reps) for m in others]
    header = f"ours < ({', '.join(_SHORT.get(m, m) for m in others)})"
    return {"ordering holds": f"{wins}/{len(reps)}", header: ", ".join(map(str, beats))}


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per setting (the frame's label columns): each method's loss, mean ± sd over
    repetitions, and the ordering counts (:func:`ordering_columns`)."""
    labels = _label_columns(frame)
    methods = _methods(frame)
    rows = []
    for key in _settings(frame, labels):
        losses = per_repetition(_rows_of(frame, labels, key))
        row: dict[str, Any] = dict(zip(labels, key))
        for m in methods:
            row[m] = format_losses([losses[m][r] for r in sorted(losses[m])]) if m in losses else DASH
        row.update(ordering_columns(losses, methods))
        rows.append(row)
    return pd.DataFrame(rows)


def _tag(values: Iterable[Any]) -> str:
    return ",".join(f"{v}" for v in values)


def best_table(frame: pd.DataFrame, tune_over: Sequence[str]) -> pd.DataFrame:
    """Each method at its own best value of the ``tune_over`` labels: per repetition, the lowest
    loss over the settings that share the other labels (a diverged cell is never best unless
    all are). One row per value of the other labels (or one row "tuned over"); ``[v]`` after
    each entry is the most frequent choice (ties: the earliest repetition's)."""
    labels = _label_columns(frame)
    missing = [t for t in tune_over if t not in labels]
    if missing:
        raise StudyError(f"cannot tune over {', '.join(missing)}: not a label of this table ({', '.join(labels)})")
    rest = [n for n in labels if n not in tune_over]
    tuned_at = [labels.index(t) for t in tune_over]
    methods = _methods(frame)
    groups: dict[tuple, list[tuple]] = {}
    for key in _settings(frame, labels):
        groups.setdefault(tuple(key[labels.index(n)] for n in rest), []).append(key)
    rows = []
    for rest_key, keys in groups.items():
        per = [(key, per_repetition(_rows_of(frame, labels, key))) for key in keys]
        best: dict[str, dict[int, float]] = {}
        row: dict[str, Any] = dict(zip(rest, rest_key)) if rest else {"tuned over": ", ".join(tune_over)}
        for m in methods:
            reps = sorted({r for _, losses in per for r in losses.get(m, {})})
            if not reps:
                row[m] = DASH
                continue
            choice: Counter[str] = Counter()
            for r in reps:
                key, loss = min(((k, ls[m][r]) for k, ls in per if r in ls.get(m, {})), key=lambda t: t[1])
                best.setdefault(m, {})[r] = loss
                choice[_tag(key[i] for i in tuned_at)] += 1
            mode = max(choice, key=lambda tag: choice[tag])  # first of the most frequent, in repetition order
            row[m] = f"{format_losses([best[m][r] for r in reps])} [{mode}]"
        row.update(ordering_columns(best, methods))
        rows.append(row)
    return pd.DataFrame(rows)


DETAIL_COLUMNS = ("‖W−W0‖_F", "radius", "proj. active (frac. of steps)")


def detail_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per setting and method with a done repetition: the means over its done
    repetitions of ||W - W0||_F, the radius and the fraction of steps with an active projection
    (NaN for an unconstrained method, whose radius is null)."""
    labels = _label_columns(frame)
    methods = _methods(frame)
    rows = []
    for key in _settings(frame, labels):
        part = _rows_of(frame, labels, key)
        for m in methods:
            done = part[(part["method"] == m) & (part["status"] == "done")]
            if done.empty:
                continue
            constrained = done["radius"].notna().any()
            rows.append({**dict(zip(labels, key)), "method": m, DETAIL_COLUMNS[0]: done["dist_w0"].mean(),
                         DETAIL_COLUMNS[1]: done["radius"].mean() if constrained else math.nan,
                         DETAIL_COLUMNS[2]: done["proj_active_frac"].mean() if constrained else math.nan})
    return pd.DataFrame(rows, columns=[*labels, "method", *DETAIL_COLUMNS])


def _for_display(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    for col in _ROUNDED:
        if col in out.columns:
            out[col] = [round(float(v), 3) if isinstance(v, (int, float)) else v for v in out[col]]
    return out


def to_markdown(table: pd.DataFrame, *, floatfmt: str = "g") -> str:
    """A pipe table via ``DataFrame.to_markdown`` (tabulate); label values rounded for display."""
    if table.empty:
        return "_none_"
    return _for_display(table).to_markdown(index=False, floatfmt=floatfmt)


# --------------------------------------------------------------------------------------------
# which records a profile's tables use
# --------------------------------------------------------------------------------------------
@dataclass
class Selection:
    """The records of one profile a table uses, and what was left out (for the notes)."""

    profile: str
    used: list[Record]
    expected: int  # cells the profile declares under the current code
    missing: int  # of those, without a usable record
    old_code: int  # records the profile declares, computed by other code
    not_measured: list[Record]  # current-code records that are neither done nor diverged


def study_task(profile: str | None = None) -> str:
    """The task whose ``ablation_*`` profiles make the study: among the tasks that ask for the
    ``study`` report section, the one declaring ``profile`` (the first, without a profile).
    Raises :class:`StudyError` when no task asks for it."""
    from ..grid import profiles_of
    from ..tasks import TASKS
    from .sections import task_sections

    tasks = [t for t in TASKS.names() if STUDY_SECTION in task_sections(t)]
    if not tasks:
        raise StudyError(f"no task asks for the report section {STUDY_SECTION!r} (Task.report_sections)")
    return next((t for t in tasks if profile in profiles_of(t)), tasks[0]) if profile else tasks[0]


def select(records: Sequence[Record], profile: str, *, task: str | None = None) -> Selection:
    """The current-code, done-or-diverged records whose configuration ``profile`` declares (any
    record of that configuration, whichever profile it was first run for)."""
    from ..grid import expand, profile_declares
    from ..grid.versions import is_current

    task = task or study_task(profile)
    declared = [r for r in records if r.task == task and profile_declares(task, profile, r.config) is None]
    now = [r for r in declared if is_current(r)]
    used = [r for r in now if r.status in USABLE]
    expected = {c.cell_id for c in expand(task, profile=profile)}
    have = {r.cell_id for r in used}
    return Selection(profile, used, len(expected), len(expected - have), len(declared) - len(now),
                     [r for r in now if r.status not in USABLE])


def study_profiles(records: Sequence[Record], *, task: str | None = None) -> tuple[list[str], list[str]]:
    """(declared, undeclared): the ``ablation_*`` profiles of ``task`` (default:
    :func:`study_task`) that some record belongs to, sorted; and the ``ablation_*`` names
    records carry that are not declared here (a profile file that was not loaded). The maps
    (``ablation_map*``, :data:`.ablation_map.MAPS`) have their own section and are left out."""
    from ..grid import profile_declares, profiles_of
    from .ablation_map import MAPS

    task = task or study_task()
    mine = [r for r in records if r.task == task]
    declared = sorted(p for p in profiles_of(task) if p.startswith(PREFIX) and p not in MAPS
                      and any(profile_declares(task, p, r.config) is None for r in mine))
    known = set(profiles_of(task))
    undeclared = sorted({str(r.profile) for r in mine if r.profile and r.profile.startswith(PREFIX)} - known)
    return declared, undeclared


# --------------------------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------------------------
LEGEND = (
    "The study of docs/ablation.md: one profile per sweep (`ablation_*` of `synthetic_ablation`). Losses are the "
    "exact full-data training loss (mean square error; the zero predictor's is ≈ Var(y) ≈ 1) after the last "
    "step, or after T steps where a `steps` column is read off one long run's evaluations: mean ± sd over "
    "repetitions, a diverged repetition left out and counted as \"(k div)\". *ordering holds k/n*: repetitions "
    "in which `mli_paired_pgd` is strictly below each of the paper's ablations (`sgd`, `constraint_only`, "
    "`no_mirroring`); *ours < (…)*: the count against each other method alone, the variants `fixed_v` (V frozen "
    "at V0) and `per_neuron` (per-unit balls) included (paired by repetition; a diverged cell counts as "
    "infinitely bad, and so does one recorded done whose ‖W − W0‖_F is not finite). A cell two sweeps share is "
    "one record, trained with the sweep that ran it first."
)


def _provenance_line(records: Sequence[Record]) -> str:
    def tally(values: Iterable[str]) -> str:
        counts = Counter(values)
        return ", ".join(f"{v}" if len(counts) == 1 else f"{v} ({n})" for v, n in sorted(counts.items()))

    commits = tally(f"{r.provenance.get('git_commit', '?')!s:.7}{' (dirty)' if r.provenance.get('git_dirty') else ''}"
                    for r in records)
    versions = tally(f"python {r.provenance.get('python')}, torch {r.provenance.get('torch')}" for r in records)
    devices = tally(f"{r.provenance.get('device')} ({r.provenance.get('device_name')})" for r in records)
    from ..core.records import code_version_text

    codes = tally(str(code_version_text(r)) for r in records)
    return f"Records: commit {commits}; {versions}; {devices}; code version {codes}."


@dataclass
class ProfileStudy:
    """One profile's part of the study: its heading and notes (markdown lines without blank
    lines), and its tables (empty when no record is usable): ``summary``, ``best`` (or None),
    ``detail``, and ``final`` (the study frame of the final losses, for figures)."""

    profile: str
    heading: str
    notes: list[str]
    at_steps: bool = False
    n_reps: int = 0
    tune_over: tuple[str, ...] = ()
    summary: pd.DataFrame | None = None
    best: pd.DataFrame | None = None
    detail: pd.DataFrame | None = None
    final: pd.DataFrame | None = None


def profile_study(records: Sequence[Record], profile: str, *, task: str | None = None) -> ProfileStudy:
    """The notes and tables of one ``ablation_*`` profile of ``task`` (default: the task that
    declares ``profile`` among those asking for the ``study`` section)."""
    from ..grid import profiles_of

    task = task or study_task(profile)
    spec = profiles_of(task).get(profile, {})
    tables = TABLES.get(profile, StudyTables())
    sel = select(records, profile, task=task)
    notes = [f"`python -m bench_suite run --task {task} --profile {profile} --store STORE`"]
    statuses = Counter(r.status.value for r in sel.used)
    status_text = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) or "none"
    line = f"{len(sel.used)} of the profile's {sel.expected} cells have a result ({status_text})"
    if sel.missing:
        line += f"; {sel.missing} have none yet: run the command above (it resumes)"
    notes.append(line + ".")
    if sel.old_code:
        notes.append(f"{sel.old_code} record(s) of this profile computed by other code are left out (re-run to "
                     "include them).")
    if sel.not_measured:
        names = ", ".join(f"{r.name} ({r.status.value})" for r in sorted(sel.not_measured, key=lambda r: r.name))
        notes.append(f"Left out, not measurements: {names}.")
    out = ProfileStudy(profile, f"`{profile}`: {spec.get('description', '(no description)')}", notes,
                       at_steps=bool(tables.at_steps), tune_over=tables.tune_over)
    if not sel.used:
        return out
    notes.append(_provenance_line(sel.used))
    blown = unflagged_blowups(sel.used)
    if blown:
        names = ", ".join(sorted(r.name for r in blown))
        notes.append(f"Counted as diverged: {len(blown)} cell(s) recorded done whose final ‖W − W0‖_F is not finite "
                     f"(the weights blew up; the loss sits at a finite value such as the zero predictor's): {names}.")
    used = sel.used
    if tables.at_steps and any(r.curves is None for r in used):  # stored curves refused: said on stderr
        names = ", ".join(sorted(r.name for r in used if r.curves is None))
        notes.append(f"Left out of the tables at T steps, their curves could not be loaded: {names}.")
        used = [r for r in used if r.curves is not None]
        if not used:
            return out
    labels = tables.labels or auto_labels(used)
    used = sorted(used, key=lambda r: (r.name, r.cell_id))
    frame = study_frame(used, labels, tables.at_steps)
    out.n_reps = int(frame["repetition"].nunique())
    out.summary = summary_table(frame)
    out.best = best_table(frame, tables.tune_over) if tables.tune_over else None
    out.detail = detail_table(frame)
    out.final = study_frame(used, [n for n in labels if n != "steps"]) if tables.at_steps else frame
    return out


def profile_section(records: Sequence[Record], profile: str, *, task: str | None = None,
                    heading: str = "###") -> list[str]:
    """The markdown of one profile's tables (a list of lines)."""
    study = profile_study(records, profile, task=task)
    out = [f"{heading} {study.heading}", ""]
    for note in study.notes:
        out += [note, ""]
    if study.summary is None:
        return out
    what = "Training loss after T steps" if study.at_steps else "Final training loss"
    out += [f"{what} (mean ± sd over {study.n_reps} repetitions):", "", to_markdown(study.summary), ""]
    if study.best is not None:
        out += [f"Each method at its own best {' / '.join(study.tune_over)} (per repetition, the lowest loss over "
                "the values above; [value] = the most frequent choice):", "", to_markdown(study.best), ""]
    out += ["<details><summary>‖W − W0‖_F at the end, radius, fraction of steps with an active projection "
            "(means over the done repetitions)</summary>", "",
            to_markdown(study.detail, floatfmt=".3g"), "", "</details>", ""]
    return out


def study_section(records: Sequence[Record], *, profiles: Sequence[str] | None = None, task: str | None = None,
                  heading: str = "##") -> list[str]:
    """The report's section "Synthetic ablation study": the tables of every ``ablation_*``
    profile some record belongs to (sorted by name), or of ``profiles``. Empty (no section)
    when the records hold none and no profile is asked for."""
    task = task or study_task(profiles[0] if profiles else None)
    declared, undeclared = study_profiles(records, task=task)
    names = sorted(profiles) if profiles else declared
    if not names and not undeclared:
        return []
    out = [f"{heading} {SECTION_TITLE}", "", LEGEND, ""]
    if undeclared:
        out += [f"Not declared here (load their --profile-file to build their tables): {', '.join(undeclared)}.", ""]
    for name in names:
        out += profile_section(records, name, task=task, heading=heading + "#")
    return out


def write_study(records: Sequence[Record], out_dir: str | Path, *, profiles: Sequence[str] | None = None,
                title: str = f"bench_suite: {SECTION_TITLE.lower()}") -> Path:
    """Write ``out_dir/report.md`` with only the study's section (``report --section ablation``);
    return its path. Deterministic: same records, same bytes."""
    from ..grid import profiles_of

    task = study_task(profiles[0] if profiles else None)
    if profiles:
        unknown = [p for p in profiles if p not in profiles_of(task)]
        if unknown:
            raise StudyError(f"{task} has no profile {', '.join(unknown)}; its ablation profiles: "
                             f"{', '.join(sorted(p for p in profiles_of(task) if p.startswith(PREFIX)))}")
    lines = [f"# {title}", ""]
    section = study_section(records, profiles=profiles, task=task)
    lines += section or [f"_No records of an `{PREFIX}*` profile of `{task}` in this store._", ""]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.md"
    path.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    return path


__all__ = ["LABELS", "PREFIX", "ProfileStudy", "SECTION_TITLE", "STUDY_SECTION", "StudyError", "StudyTables", "TABLES",
           "auto_labels", "best_table", "detail_table", "format_losses", "ordering_columns", "profile_section",
           "profile_study", "select", "study_frame", "study_profiles", "study_section", "study_task",
           "summary_table", "unflagged_blowups", "write_study"]
