"""The Python entry points beside the CLI: ``run``, ``load_results``, ``load_curves``, ``check``,
``export``, ``report``, ``compare``.

Each is what the command of the same name does, returning data instead of printing it::

    import bench_suite as bs
    summary = bs.run(task="synthetic_ablation", profile="smoke", store="results")
    results = bs.load_results("results")          # one row per record
    curves = bs.load_curves("results")            # long form, one row per (cell, epoch, metric)
    verdicts = bs.check("results", profile="ci")  # one row per reference row and cell group
    paths = bs.report("results", profile="ci")    # results/report/report.md and report.html
    moved = bs.compare("reports/ci", "results")   # what moved: .claims, .metrics, .worse

Only :func:`run` imports torch.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .core.curves import EPOCH_CURVES  # noqa: F401 - part of this module's names
from .core.errors import InvalidArgument, checked_arguments
from .core.records import COLUMNS, Record
from .core.values import FINITE, NONNEG_INT, POSITIVE_FLOAT, POSITIVE_INT, check_number, check_optional

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .runner.summary import RunSummary
    from .store.result_store import ResultStore

from .reporting.tables import CURVE_COLUMNS  # noqa: E402,F401 - part of this module's names


def _store(store: str | os.PathLike):
    from .store import existing_store

    return existing_store(store, "store=")


def run(task: str | Iterable[str] = "synthetic_ablation", *, profile: str | None = None,
        store: str | os.PathLike = "results", methods: list[str] | None = None, widths: list[int] | None = None,
        activations: list[str] | None = None, repetitions: int | list[int] | None = None,
        options: dict[str, Any] | None = None, train: dict[str, Any] | None = None, device: str = "auto",
        data_root: str | None = None, cache_dir: str | None = None, force: bool = False, fuse: bool = True,
        max_group: int | None = None, plugins: list[str] | None = None, confirm: bool = False,
        executor: str = "local", devices: list[str] | None = None, executor_options: dict[str, Any] | None = None,
        checkpoint_every: int | None = None, time_budget_s: float | None = None,
        on_record: Callable[[Record], None] | None = None) -> "RunSummary":
    """Run the cells of ``task`` (a profile and/or axes) into ``store``, as ``bench-suite run``
    (the same path: :func:`bench_suite.executors.session.run_grid`). Returns the
    :class:`~bench_suite.runner.summary.RunSummary`: ``.records`` (one
    :class:`~bench_suite.core.records.Record` per cell, run or found finished), ``.to_frame()`` and
    ``.exit_code`` (0 all done, 1 some failed, 3 some skipped, 75 stopped by the time budget).

    Keywords (each as the command-line option of the same name):

    - ``task``: a task name or a list of them (``bench_suite.tasks.TASKS``);
    - ``profile``: a named grid of the task (``list --profiles``); None: the task's defaults;
    - ``store``: the result store's folder (created if needed; finished cells are not re-run);
    - ``methods``, ``widths``, ``activations``: the axes to run (lists), overriding the profile's;
    - ``repetitions``: a count (repetitions 0..N-1) or a list of repetition indexes;
    - ``options``: task option -> value or list of values (a list is an axis);
    - ``train``: training setting (a ``TrainConfig`` field, or ``lr`` for both learning rates)
      -> value or list of values;
    - ``device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``;
    - ``data_root``: where the data sets are (default ``$BENCH_SUITE_DATA_ROOT``);
    - ``cache_dir``: the decoded-data cache (default ``$BENCH_SUITE_CACHE``);
    - ``force``: re-run cells that have a finished record; ``fuse``: train a task's cells of one
      repetition together (the fused engine); ``max_group``: at most this many cells a group;
    - ``plugins``: modules to import first (as ``--plugin``); ``$BENCH_SUITE_PLUGINS`` and
      installed entry points are loaded too;
    - ``executor``: a name of ``bench_suite.executors.EXECUTORS`` (``local``, ``dask``, ``slurm`` or
      a plug-in's); ``devices``: local, a worker process per device; ``executor_options``:
      ``{"scheduler": ADDRESS}`` for dask, ``SlurmParams`` fields for slurm, a plug-in executor's own;
    - ``checkpoint_every``: epochs between checkpoints; ``time_budget_s``: stop and checkpoint
      before this many seconds (``.exit_code`` 75); ``on_record``: called with each cell's record;
    - ``confirm``: a run on a device its profile was not made for, or estimated over
      ``$BENCH_SUITE_CONFIRM_OVER_H`` hours (docs/runner.md), raises
      :class:`~bench_suite.executors.session.ConfirmationNeeded` (saying why, with the estimate)
      unless ``confirm=True``.

    Errors are :class:`~bench_suite.core.errors.BenchSuiteError` subclasses (or ``ValueError``s)
    with a one-line message naming the argument: an unknown keyword
    (:class:`~bench_suite.core.errors.UnknownArgument`, naming the valid ones), a number out of
    its range (:class:`~bench_suite.core.errors.InvalidArgument`: ``repetitions``, ``max_group``
    positive integers, ``checkpoint_every`` >= 0, ``time_budget_s`` > 0, as their options), a bad grid
    (``GridError``, ``UnknownNameError``), a store that cannot be written
    (:class:`~bench_suite.core.errors.PathProblem`), a plug-in that cannot be loaded
    (:class:`~bench_suite.core.registry.PluginError`)."""
    from .core.config import check_device_text
    from .core.env import check_flags
    from .core.registry import load_plugins
    from .executors.session import RunRequest, run_grid
    from .grid import expand

    check_flags()  # a junk switch in the environment: one EnvVarError now, not one per cell
    reps = _repetitions(repetitions)
    max_group = check_optional("max_group", max_group, POSITIVE_INT)
    checkpoint_every = check_optional("checkpoint_every", checkpoint_every, NONNEG_INT)
    time_budget_s = check_optional("time_budget_s", time_budget_s, POSITIVE_FLOAT)
    load_plugins(plugins, option="plugins")
    device = check_device_text(device, "device")
    tasks = [task] if isinstance(task, str) else list(task)
    cells = []
    for name in tasks:
        cells += expand(name, profile=profile, methods=methods, widths=widths, activations=activations,
                        repetitions=reps, options=options, train=train)
    extra = dict(executor_options or {})
    request = RunRequest(
        store=store, executor=executor, device=device, devices=devices, data_root=data_root, cache_dir=cache_dir,
        force=force, fuse=fuse, max_group=max_group, plugins=list(plugins or []), checkpoint_every=checkpoint_every,
        time_budget_s=time_budget_s, scheduler=extra.pop("scheduler", None) if executor == "dask" else None,
        slurm=extra if executor == "slurm" else {}, executor_options=extra if executor not in ("dask", "slurm") else {},
    )
    return run_grid(cells, request, confirm=confirm, confirm_how="pass confirm=True", on_record=on_record,
                    store_option="store=", data_root_option="data_root=")


def _repetitions(repetitions: int | list[int] | None) -> range | list[int] | None:
    """``run``'s ``repetitions``: a count (a positive integer, as ``--repetitions``) as the range of
    indexes, or a list of indexes (the grid checks each is an integer >= 0, as ``--repetition``)."""
    if repetitions is None:
        return None
    if isinstance(repetitions, (list, tuple, range)):
        if not repetitions:
            raise InvalidArgument("repetitions=[]: no repetition; give a count (a positive integer) or indexes")
        return list(repetitions)
    return range(check_number("repetitions", repetitions, POSITIVE_INT))


def pack_curves(store: "ResultStore") -> str | None:
    """Pack the store's curves (``ResultStore.pack``); None, or one line saying why not."""
    from .executors.session import pack_curves as pack

    return pack(store)


def load_results(store: str | os.PathLike) -> "pd.DataFrame":
    """The store's results table: one row per record, flat, typed columns (``bench_suite.core.records.COLUMNS``:
    config, final metrics, timing, shape, provenance; statuses kept, so failed cells are rows
    too). Raises ``ValueError`` when ``store`` is not a result store."""
    return _store(store).to_dataframe()


def curves_frame(records: Iterable[Record]) -> "pd.DataFrame":
    """The curves of ``records`` in long form (:func:`bench_suite.reporting.tables.curves_frame`)."""
    from .reporting.tables import curves_frame as frame

    return frame(records)


def load_curves(store: str | os.PathLike) -> "pd.DataFrame":
    """Every record's curves in long form: columns ``cell_id, task, profile, method, width,
    activation, repetition, epoch, metric, value``. Per-epoch running means (``train_loss``,
    ``train_acc``) are indexed by epoch; exact evaluations (``eval_train_loss``, ``test_acc``,
    ``dist_w0``, ...) by the epoch they were taken at. A metric not defined for a cell (stored as
    null: ``test_acc`` of a regression task) has no rows; a NaN value (a diverged run) is kept.
    Curves longer than 256 points are stored
    thinned, with their envelope between the kept points as the metrics ``<curve>:min`` and
    ``<curve>:max`` (docs/runner.md "Curves"); each record's are verified against its
    ``curves_digest``, and those that do not match are left out with one warning line each."""
    return curves_frame(_store(store).records(with_curves=True))


@dataclass
class Scoring:
    """Everything a verdict was computed from: the reference rows, the records scored (one row
    per record and profile), the records left out and why, the verdicts, the current code."""

    store: Any
    records: list[Record]
    references: list
    scored: "pd.DataFrame"
    left_out: "pd.DataFrame"
    verdicts: "pd.DataFrame"
    current_code: dict[str, Any]  # versions.current_versions: the engine, theory, tasks and methods in scope

    def stale(self) -> list[Record]:
        """Records of the checked profiles computed by other code than the current one."""
        from .grid.versions import is_current

        profiles = {(r.task, r.profile) for r in self.references}
        return [r for r in self.records if (r.task, r.profile) in profiles and not is_current(r)]


def score(store: str | os.PathLike, *, profile: str | None = None, tasks: list[str] | None = None,
          baselines: str | os.PathLike | None = None, include_old_code: bool = False,
          confidence: float = 0.95) -> Scoring:
    """Select and score: the rules of docs/checks.md ("Which results count"). Raises
    :class:`~bench_suite.core.errors.BenchSuiteError` subclasses for a bad store, task, profile or
    reference file."""
    from .grid import profile_declares
    from .grid.versions import current_versions, is_current, why_not_current
    from .scoring import explain_skips, load_references, run_checks, select
    from .tasks import TASKS

    if not 0 < check_number("confidence", confidence, FINITE) < 1:
        raise InvalidArgument(f"confidence={confidence!r}: not a number in (0, 1), e.g. 0.95")
    st = _store(store)
    records = st.records()
    for name in tasks or []:
        TASKS.get(name)  # an unknown task: ValueError naming the valid ones
    if profile is not None:
        from .grid import profiles_of

        declared = set().union(*(profiles_of(t) for t in TASKS.names()))
        if profile not in declared:
            raise InvalidArgument(f"profile {profile!r}: no task declares it; profiles: {', '.join(sorted(declared))}")
    refs = load_references(baselines)
    if profile:
        refs = [r for r in refs if r.profile == profile]
    if tasks:
        refs = [r for r in refs if r.task in tasks]
    current = current_versions({r.task for r in refs} | {r.task for r in records}, {r.method for r in records})
    scored, left_out = select(records, refs, is_current=is_current, why_not_current=why_not_current,
                              declares=profile_declares, declared_repetitions=_declared_repetitions,
                              include_old_code=include_old_code, rejected=st.rejected)
    verdicts = explain_skips(run_checks(scored, refs, confidence=confidence), records, left_out)
    return Scoring(st, records, refs, scored, left_out, verdicts, current)


def _declared_repetitions(task: str, profile: str, config: dict) -> int | None:
    """How many repetitions ``profile`` declares for a configuration of ``task`` (a profile's
    cases share its count), or None when the task has no such profile here."""
    from .grid import profile_repetitions, profiles_of

    spec = profiles_of(task).get(profile)
    return None if spec is None else profile_repetitions(spec)


def check(store: str | os.PathLike, *, profile: str | None = None, tasks: list[str] | None = None,
          baselines: str | os.PathLike | None = None, include_old_code: bool = False,
          confidence: float = 0.95) -> "pd.DataFrame":
    """The verdict table of ``store`` against the reference rows (``baselines/``), as ``check``:
    one row per reference row and (width, activation) group, columns ``scoring.VERDICT_COLUMNS``
    (verdict PASS / FAIL / INCONCLUSIVE / SKIPPED / OUT_OF_SCOPE, its outcome, the statistic and its CI, the
    cells, code versions and data checksums used). ``.attrs["left_out"]`` holds the records not scored and why."""
    result = score(store, profile=profile, tasks=tasks, baselines=baselines, include_old_code=include_old_code,
                   confidence=confidence)
    verdicts = result.verdicts
    verdicts.attrs["left_out"] = result.left_out
    return verdicts


def export(store: str | os.PathLike, out_dir: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """Write ``results.csv``/``.parquet`` and ``curves.csv``/``.parquet`` of ``store`` into
    ``out_dir``; return the paths written (parquet needs pyarrow; without it only CSV).
    Raises :class:`~bench_suite.reporting.output.OutputError` (a ``ValueError``) when
    ``out_dir`` holds such files that ``export`` did not write from this store, or files git
    tracks, unless ``overwrite``; :class:`~bench_suite.core.errors.PathProblem` for a folder
    that cannot be written."""
    from .core.files import writable_dir
    from .core.records import to_frame
    from .reporting import output
    from .reporting.tables import curves_frame, write_tables

    st = _store(store)
    names = [f"{n}.{ext}" for n in ("results", "curves") for ext in ("csv", "parquet")]
    claimed = output.claim(Path(out_dir), st.root, names, overwrite=overwrite, manifest=".export-files",
                           what="export", option="out_dir")
    _warn(claimed.messages)
    out = writable_dir(out_dir, "out_dir")
    records = st.records(with_curves=True)
    paths = write_tables(to_frame(records), curves_frame(records), out)
    output.finish(claimed, paths)
    return paths


def write_tables(results: "pd.DataFrame", curves: "pd.DataFrame", out_dir: str | os.PathLike) -> list[Path]:
    """:func:`bench_suite.reporting.tables.write_tables`."""
    from .reporting.tables import write_tables as write

    return write(results, curves, out_dir)


def _warn(messages: list[str]) -> None:
    import warnings

    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=3)


REPORT_FILES = ["report.md", "report.html", "verdicts.json", "verdicts.csv", "results.csv", "results.parquet"]


@dataclass
class ReportWritten:
    """What :func:`report` wrote: the folder, the files (report.md / report.html first), and
    what it said about replacing an earlier report (``--overwrite``)."""

    folder: Path
    paths: list[Path]
    messages: list[str]


def report(store: str | os.PathLike, out: str | os.PathLike | None = None, *, profile: str | None = None,
           tasks: list[str] | None = None, title: str | None = None, formats: Iterable[str] = ("md", "html"),
           figure_format: str = "svg", overwrite: bool = False, baselines: str | os.PathLike | None = None,
           include_old_code: bool = False, confidence: float = 0.95) -> list[Path]:
    """Write the report of ``store`` into ``out`` (default ``<store>/report``), as ``report``:
    ``report.md`` (a summary under 300 lines, its figures in ``figures/``), ``report.html`` (the
    whole report, one self-contained page), ``verdicts.json``/``.csv`` and ``results.csv``/
    ``.parquet``. Returns the paths written, the report files first.

    ``formats``: ``md``, ``html`` or both; ``figure_format``: ``svg``, ``pdf`` or ``png`` (the
    summary's figure files; the page always inlines SVG). Raises
    :class:`~bench_suite.reporting.output.OutputError` (a ``ValueError``) when ``out`` holds a
    report of another store, files ``report`` did not write, or files git tracks, unless
    ``overwrite``; ``ValueError`` for an unknown task, profile or format."""
    return write_report_of(store, out, profile=profile, tasks=tasks, title=title, formats=formats,
                           figure_format=figure_format, overwrite=overwrite, baselines=baselines,
                           include_old_code=include_old_code, confidence=confidence, option="out").paths


def write_report_of(store, out, *, profile=None, tasks=None, title=None, formats=("md", "html"), figure_format="svg",
                    overwrite=False, baselines=None, include_old_code=False, confidence=0.95,
                    option: str = "--dir") -> ReportWritten:
    """:func:`report`, returning the folder and the messages too (the CLI prints them)."""
    from .core.files import writable_dir
    from .core.records import to_frame
    from .grid import profile_declares
    from .reporting import fmt, output
    from .reporting.build import check_formats, collect, figure_files, report_notes, write_collected
    from .reporting.fmt import display_path, scrub_paths
    from .reporting.fmt import missing as _missing
    from .reporting.tables import write_table
    from .scoring.checks import save_verdicts

    formats = [formats] if isinstance(formats, str) else list(formats)
    check_formats(formats, figure_format)
    result = score(store, profile=profile, tasks=tasks, baselines=baselines, include_old_code=include_old_code,
                   confidence=confidence)
    folder = Path(out) if out is not None else output.default_folder(Path(result.store.root))
    output.claim(folder, result.store.root, REPORT_FILES, overwrite=overwrite, option=option)  # fail fast
    records = result.records
    if tasks:
        records = [r for r in records if r.task in tasks]
    if profile:  # the cells the profile declares (whatever profile first ran them), and those run as it
        records = [r for r in records if r.profile == profile or profile_declares(r.task, profile, r.config) is None]
    records = result.store.attach_curves(records)  # the curves, the ablation tables at T steps
    df = to_frame(records)
    label = display_path(store)
    data = collect(df, records, result.verdicts, title=title or f"bench_suite report: {profile or 'all'}",
                   notes=report_notes(df, result.stale(), label), left_out=result.left_out,
                   references=result.references, store_label=label,
                   store_link=fmt.relative_to(result.store.root, folder), profile=profile)
    figure_names = figure_files(data, figure_format) if "md" in formats else []
    claimed = output.claim(folder, result.store.root, REPORT_FILES + figure_names, overwrite=overwrite,
                           option=option)
    folder = writable_dir(folder, option)
    paths = write_collected(data, folder, formats=formats, figure_format=figure_format)
    context = {"store": label, "profile": profile, "tasks": tasks,
               "include_old_code": bool(include_old_code), "current_code": dict(sorted(result.current_code.items())),
               "records": len(result.records), "left_out": len(result.left_out)}
    left = result.left_out.copy()
    if "detail" in left.columns:
        left["detail"] = left["detail"].map(lambda v: v if _missing(v) else scrub_paths(v))
    verdicts = result.verdicts.copy()
    verdicts["note"] = verdicts["note"].map(lambda v: v if _missing(v) else scrub_paths(v))
    paths += save_verdicts(verdicts, folder, left_out=left, context=context)
    table = df.copy()
    for col in ("reason", "data_source"):  # a committed report names no machine's folders
        table[col] = table[col].map(lambda v: None if _missing(v) else scrub_paths(v)).astype("string")
    paths += write_table(table, folder, "results")
    output.finish(claimed, paths)
    return ReportWritten(folder, paths, claimed.messages)


def compare(a: str | os.PathLike, b: str | os.PathLike, *, profile: str | None = None,
            tasks: list[str] | None = None, baselines: str | os.PathLike | None = None,
            include_old_code: bool = False, confidence: float = 0.95):
    """Compare store ``b`` with store ``a`` (``a`` the reference: a committed ``reports/<p>``
    folder holding ``store/`` is taken as its store), as ``compare``: a
    :class:`~bench_suite.reporting.compare.Comparison` with ``.claims`` (each verdict row's
    verdict in A and B, the change, ours in each and the difference B − A with its CI),
    ``.metrics`` (every final metric of matching cells, the difference paired by cell id where
    both hold the cell), ``.only_a`` / ``.only_b`` (cells on one side), ``.worse`` and
    ``.exit_code`` (1 when a verdict got worse). Raises ``ValueError`` when either is not a
    result store."""
    from .core.records import to_frame
    from .reporting.compare import compare as compare_frames

    sides = []
    for path in (a, b):
        root = _store_or_report(path)
        result = score(root, profile=profile, tasks=tasks, baselines=baselines, include_old_code=include_old_code,
                       confidence=confidence)
        records = result.records
        if tasks:
            records = [r for r in records if r.task in tasks]
        sides.append((str(path), to_frame(records), result.verdicts))
    (la, fa, va), (lb, fb, vb) = sides
    return compare_frames(fa, va, fb, vb, a=la, b=lb, confidence=confidence)


def _store_or_report(path: str | os.PathLike) -> Path:
    """A store, or a report folder with its store in ``store/`` (as ``reports/ci``)."""
    p = Path(path)
    if not (p / "records").is_dir() and (p / "store" / "records").is_dir():
        return p / "store"
    return p


__all__ = ["COLUMNS", "CURVE_COLUMNS", "EPOCH_CURVES", "ReportWritten", "Scoring", "check", "compare", "curves_frame",
           "export", "load_curves", "load_results", "pack_curves", "report", "run", "score"]


# keywords a caller may carry over from the command line, where the option is spelled otherwise
_CLI_SPELLINGS = {"report": {"dir": "out"}, "export": {"dir": "out_dir"}, "run": {"seeds": "repetitions"}}


def _check_keywords_of(names: Iterable[str]) -> None:
    """Every public function of this module checks its arguments (:func:`checked_arguments`): a
    misspelled keyword raises :class:`~bench_suite.core.errors.UnknownArgument` naming it and the
    closest valid one. Applied here, to all of ``__all__`` at once, so no function is left out."""
    for name in names:
        func = globals()[name]
        if inspect.isfunction(func):
            globals()[name] = checked_arguments(func, aliases=_CLI_SPELLINGS.get(name))


_check_keywords_of(__all__)
