"""Load a :class:`~trainwise.tasks.base.Task` from a built-in name or a user's Python file."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import torch

from trainwise.tasks.base import Task

__all__ = ["load_task"]


def load_task(spec: str, device: str | torch.device = "cpu", **kwargs) -> Task:
    """``spec`` is a registered name (``digits-mlp``) or a path to a ``.py`` file that defines one of: a ``Task``
    instance named ``task``/``TASK``, a function ``make_task(device=..., **kwargs)``, or exactly one ``Task`` subclass."""
    from trainwise.tasks import TASKS, get_task

    if spec in TASKS:
        return get_task(spec, device=device, **kwargs)
    path = Path(spec)
    if path.suffix != ".py":
        raise ValueError(f"unknown task {spec!r}: give a built-in name ({', '.join(sorted(TASKS))}) or a .py file")
    if not path.exists():
        raise FileNotFoundError(f"task file {spec!r} does not exist")
    module_name = f"trainwise_user_task_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    for name in ("task", "TASK"):
        if isinstance(getattr(module, name, None), Task):
            return getattr(module, name)
    if callable(getattr(module, "make_task", None)):
        task = module.make_task(device=device, **kwargs)
        if not isinstance(task, Task):
            raise ValueError(f"{spec}: make_task() returned {type(task).__name__}, not a trainwise Task")
        return task
    classes = [c for c in vars(module).values()
               if inspect.isclass(c) and issubclass(c, Task) and c is not Task and c.__module__ == module_name
               and not inspect.isabstract(c)]
    if len(classes) == 1:
        return classes[0](device=device, **kwargs)
    raise ValueError(f"{spec} defines {len(classes)} Task subclasses and no `task` or `make_task`; define exactly one")
