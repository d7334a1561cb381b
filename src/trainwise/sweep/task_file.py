"""Deprecated: a user's task file is loaded by :func:`trainwise.tasks.load_task`."""

from trainwise._deprecated import moved

__getattr__ = moved(__name__, {"load_task": "trainwise.tasks.task_file"})
