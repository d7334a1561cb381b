"""The training drivers: what ``trainwise measure``, ``sweep`` and ``compare-optimizers`` run on a task.

All of them run the one loop of :mod:`trainwise.experiments.loop`; this is the only package besides ``cli/``
that imports :mod:`trainwise.tasks`, and nothing below it (``noise``, ``optim``, ``adapt``, ``sweep``, ``plan``,
``scaling``, ``theory``, ``data``) imports it (``docs/architecture.md``).

* :func:`~trainwise.experiments.measure.run_measurement`: train briefly, measure the noise scale along the way;
* :func:`~trainwise.experiments.sweep.run_sweep`: train to target losses across batch sizes (critical batch);
* :func:`~trainwise.experiments.branched.run_branched`: Merrill et al.'s branched critical batch;
* :func:`~trainwise.experiments.compare.compare_optimizers`: several optimizers at an equal budget.

Submodules are imported on first use, so ``import trainwise.experiments`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["run_measurement", "run_sweep", "train_to_targets", "run_branched", "compare_optimizers", "train_with",
           "default_noise_measure", "train", "StepInfo"]

_WHERE = {"run_measurement": "measure", "run_sweep": "sweep", "train_to_targets": "sweep", "run_branched": "branched",
          "compare_optimizers": "compare", "train_with": "compare", "default_noise_measure": "noise_probe",
          "train": "loop", "StepInfo": "loop"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"trainwise.experiments.{_WHERE[name]}"), name)
