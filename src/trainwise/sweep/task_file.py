"""Moved to :mod:`trainwise.tasks.task_file` (every command takes ``--task FILE.py``); kept for old imports."""

from trainwise.tasks.task_file import load_task

__all__ = ["load_task"]
