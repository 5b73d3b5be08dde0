"""Built-in tasks register themselves on import."""

from . import cifar10, cifar100, mnist, restricted_imagenet, synthetic, width_threshold  # noqa: F401
from .base import TASKS, DataError, DataUnavailable, Task, TaskData, register_task

__all__ = ["TASKS", "DataError", "DataUnavailable", "Task", "TaskData", "register_task"]
