"""Profile files: profiles read from TOML (``--profile-file``) and written to it
(``list --profiles --export``), in one format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..tasks import TASKS
from . import profiles as _profiles
from .profiles import PROFILE_KEYS, GridError, profile_repetitions, profiles_of


def load_profile_file(path: str | Path) -> list[tuple[str, str]]:
    """Read profiles from a TOML file (the format ``list --profiles --export`` writes) and make them
    available to ``run``/``plan``/``check``; returns the (task, profile) pairs it declared.

    Layout: one table per task and profile, ``[TASK.PROFILE]``, with the keys of a task's
    ``profiles`` declaration (``PROFILE_KEYS``); any training setting or task option may be a
    list (an axis). ``"none"`` stands for None in options, ``"full"`` for a full batch.
    Raises :class:`GridError` naming the file and what is wrong."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise GridError(f"--profile-file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GridError(f"--profile-file {path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"--profile-file {path}: not valid TOML ({exc})") from None
    declared = []
    for task, profiles in data.items():
        if task not in TASKS:
            raise GridError(f"--profile-file {path}: unknown task {task!r}; valid: {', '.join(TASKS.names())}")
        if not isinstance(profiles, dict):
            raise GridError(f"--profile-file {path}: [{task}] must hold tables [{task}.PROFILE]")
        for name, spec in profiles.items():
            if not isinstance(spec, dict):
                raise GridError(f"--profile-file {path}: {task}.{name} must be a table")
            unknown = sorted(set(spec) - set(PROFILE_KEYS))
            if unknown:
                raise GridError(f"--profile-file {path}: {task}.{name}: unknown key(s) {', '.join(unknown)}; "
                                f"valid: {', '.join(PROFILE_KEYS)}")
            builtin = TASKS.get(task).profiles.get(name)
            if builtin is not None:  # its reference rows were set for the built-in one
                if _is_exported_copy(spec, builtin):
                    continue  # an unchanged copy from `list --profiles --export`: the built-in stays
                raise GridError(f"--profile-file {path}: {task}.{name} is a built-in profile, changed here (its "
                                f"reference rows in baselines/ were set for the built-in one): give yours another "
                                f"name, e.g. [{task}.my_{name}]")
            spec = dict(spec)
            spec["options"] = {k: _from_toml(v) for k, v in (spec.get("options") or {}).items()}
            spec["train"] = {k: _from_toml(v, full=k == "batch_size") for k, v in (spec.get("train") or {}).items()}
            for case in spec.get("cases") or []:
                if isinstance(case, dict):
                    for key in ("options", "train"):
                        if key in case:
                            case[key] = {k: _from_toml(v, full=k == "batch_size") for k, v in case[key].items()}
            try:  # the declaration must build: bad values are reported now, naming the file
                from .expand import _expand_spec

                _expand_spec(task, name, spec, {})
            except (GridError, ValueError) as exc:
                raise GridError(f"--profile-file {path}: {task}.{name}: {exc}") from None
            _profiles._FILE_PROFILES.setdefault(task, {})[name] = spec
            declared.append((task, name))
    return declared


def _from_toml(value: Any, *, full: bool = False) -> Any:
    if isinstance(value, list):
        return [_from_toml(v, full=full) for v in value]
    if isinstance(value, str) and (value.lower() == "none" or (full and value.lower() == "full")):
        return None
    return value


def _to_toml(value: Any, *, full: bool = False) -> Any:
    if isinstance(value, list):
        return [_to_toml(v, full=full) for v in value]
    if value is None:
        return "full" if full else "none"
    return value


def export_profiles(tasks: list[str] | None = None) -> str:
    """The tasks' profiles as TOML (the format :func:`load_profile_file` reads)."""
    import tomli_w

    out: dict[str, Any] = {}
    for task in tasks or TASKS.names():
        for name, spec in sorted(profiles_of(task).items()):
            out.setdefault(task, {})[name] = _toml_entry(spec)
    return tomli_w.dumps(out)


def _toml_entry(spec: dict[str, Any]) -> dict[str, Any]:
    """One profile as the table ``export_profiles`` writes for it."""
    entry = {k: spec[k] for k in PROFILE_KEYS if k in spec and k not in ("options", "train", "seeds", "cases")}
    entry["repetitions"] = profile_repetitions(spec)  # the current name of the old "seeds"
    if spec.get("options"):
        entry["options"] = {k: _to_toml(v) for k, v in spec["options"].items()}
    if spec.get("train"):
        entry["train"] = {k: _to_toml(v, full=k == "batch_size") for k, v in spec["train"].items()}
    if spec.get("cases"):
        entry["cases"] = [{k: ({kk: _to_toml(vv, full=kk == "batch_size") for kk, vv in v.items()}
                               if k in ("options", "train") else v) for k, v in case.items()}
                          for case in spec["cases"]]
    return entry


def _is_exported_copy(spec: dict[str, Any], builtin: dict[str, Any]) -> bool:
    """Whether a file's table is the built-in profile as `list --profiles --export` wrote it."""
    import tomli_w

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(tomli_w.dumps({"p": _toml_entry(builtin)}))["p"] == spec

