"""Options of the labeled image tasks, checked without reading data (no torch, no numpy):
seeded subsets ``n_train`` / ``n_test`` of a published split, yes/no flags, and the
:class:`ImageSubsets` task mixin that gives such a task its option check and its shape."""

from __future__ import annotations

from typing import Any, ClassVar


def check_subset_size(name: str, value: Any, available: int) -> int | None:
    """A subset size: None (all) or an integer in [1, ``available``]; ``ValueError`` naming the option."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= available:
        raise ValueError(f"option {name} must be None (all) or an integer in [1, {available}], got {value!r}")
    return value


def option_flag(name: str, value: Any) -> bool:
    """A yes/no option; ``--option download=true`` arrives as the string "true"."""
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "yes", "false", "no"):
        return value.lower() in ("true", "yes")
    raise ValueError(f"option {name} must be true or false, got {value!r}")


class ImageSubsets:
    """What a task on a labeled image set with a published train/test split shares (a mixin
    before ``Task`` in the task's bases): options ``n_train`` / ``n_test`` (None: all of the
    split) checked against ``train_count`` / ``test_count``, a ``download`` flag when the task
    declares one, and the shape (``input_dim`` inputs, :meth:`outputs` classes)."""

    train_count: ClassVar[int]
    test_count: ClassVar[int]
    input_dim: ClassVar[int]
    classes_count: ClassVar[int] = 10

    @classmethod
    def outputs(cls, options: dict[str, Any]) -> int:
        """The number of classes under these options."""
        return cls.classes_count

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        out = dict(options)
        if "download" in cls.options:  # type: ignore[attr-defined]
            out["download"] = option_flag("download", options.get("download", False))
        out["n_train"] = check_subset_size("n_train", options.get("n_train"), cls.train_count)
        out["n_test"] = check_subset_size("n_test", options.get("n_test"), cls.test_count)
        return out

    @classmethod
    def shape(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {"n": options.get("n_train") or cls.train_count, "d": cls.input_dim, "k": cls.outputs(options),
                "n_test": options.get("n_test") or cls.test_count}
