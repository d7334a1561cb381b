"""Built-in small, real training tasks used by the demo, the tests and the benchmarks."""

from __future__ import annotations

from typing import Callable

import torch

from trainwise.tasks.base import Batch, Task

__all__ = ["Task", "Batch", "get_task", "load_task", "TASKS", "register_task"]

TASKS: dict[str, Callable[..., Task]] = {}


def register_task(name: str, factory: Callable[..., Task]) -> None:
    TASKS[name] = factory


def _char_gpt(**kwargs) -> Task:
    from trainwise.tasks.char_gpt import CharGPT

    return CharGPT(**kwargs)


def _digits_mlp(**kwargs) -> Task:
    from trainwise.tasks.digits_mlp import DigitsMLP

    return DigitsMLP(**kwargs)


register_task("char-gpt", _char_gpt)
register_task("digits-mlp", _digits_mlp)


def _teacher_student(**kwargs) -> Task:
    from trainwise.tasks.teacher_student import TeacherStudent

    return TeacherStudent(**kwargs)


register_task("teacher-student", _teacher_student)


def get_task(name: str, device: str | torch.device = "cpu", **kwargs) -> Task:
    """Build a registered task by name (``char-gpt``, ``digits-mlp``, ...)."""
    try:
        factory = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; built-in tasks: {', '.join(sorted(TASKS))}") from None
    return factory(device=device, **kwargs)


def load_task(spec: str, device: str | torch.device = "cpu", **kwargs) -> Task:
    """A built-in name or a user's ``.py`` task file (:func:`trainwise.tasks.task_file.load_task`)."""
    from trainwise.tasks.task_file import load_task as _load

    return _load(spec, device=device, **kwargs)
