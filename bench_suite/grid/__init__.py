"""Cells and grids: what one run of one configuration is, its canonical name and its id.

A cell is (task, task options, method, width, activation, TrainConfig, repetition). Values
resolve in this order, later winning: ``TrainConfig`` defaults < the task's ``train_defaults``
< the method's ``train_defaults`` (e.g. ``adam``'s lr 1e-3) < the profile's ``train`` <
command-line overrides (the same for task options, without the method's layer, and for the
method/width/activation axes, which fall back to the task's ``grid``).

Modules: ``cells`` (``Cell``: config, name, id), ``profiles`` (declarations, resolution,
membership: ``profile_declares``), ``profile_files`` (TOML in and out), ``expand`` (a grid of
cells), ``versions`` (the code versions in a cell's id).
"""

from ..core.records import PROTOCOL_VERSION  # noqa: F401 - read from here by tests and plug-ins
from .cells import Cell
from .expand import MAX_CELLS_DEFAULT, MAX_CELLS_ENV, expand, grid_size_from, max_cells
from .profile_files import export_profiles, load_profile_file
from .profiles import (
    CASE_KEYS,
    PROFILE_KEYS,
    GridError,
    profile_declares,
    profile_names,
    profile_repetitions,
    profiles_of,
)

__all__ = [
    "CASE_KEYS", "MAX_CELLS_DEFAULT", "MAX_CELLS_ENV", "PROFILE_KEYS", "Cell", "GridError", "export_profiles",
    "expand", "grid_size_from", "load_profile_file", "max_cells", "profile_declares", "profile_names",
    "profile_repetitions", "profiles_of",
]
