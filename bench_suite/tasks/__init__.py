"""Built-in tasks register themselves on import."""

from . import cifar10, cifar100, kkt_bound, mnist, restricted_imagenet, synthetic, width_threshold  # noqa: F401
from .base import TASKS, DataError, DataUnavailable, Task, TaskData, register_task

# the tasks this package defines (plug-ins add to TASKS)
BUILTIN_TASKS = frozenset(TASKS.names())

__all__ = ["BUILTIN_TASKS", "TASKS", "DataError", "DataUnavailable", "Task", "TaskData", "register_task"]
