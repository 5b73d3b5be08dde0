"""Built-in tasks register themselves on import."""

from . import synthetic  # noqa: F401
from .base import TASKS, DataUnavailable, Task, TaskData, register_task

__all__ = ["TASKS", "DataUnavailable", "Task", "TaskData", "register_task"]
