"""Empirical critical batch size: the configuration, the trade-off fit ``S = S_min(1 + B_crit/B)`` and the summary.

See :mod:`trainwise.sweep.config` (what to sweep), :mod:`trainwise.sweep.fit` (the trade-off fit),
:mod:`trainwise.sweep.summary` (fits and noise-scale predictions from finished runs). The training drivers are in
:mod:`trainwise.experiments` (:func:`~trainwise.experiments.sweep.run_sweep`,
:func:`~trainwise.experiments.branched.run_branched`); ``run_sweep``, ``train_to_targets``, ``run_branched`` and
``load_task`` still import from here, with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

from typing import Any

from trainwise._deprecated import warn_moved
from trainwise.sweep.config import BranchedConfig, SweepConfig, lr_for_rule
from trainwise.sweep.fit import TradeoffFit, fit_tradeoff

__all__ = [
    "TradeoffFit",
    "fit_tradeoff",
    "SweepConfig",
    "SweepResult",
    "RunResult",
    "run_sweep",
    "train_to_targets",
    "lr_for_rule",
    "BranchedConfig",
    "run_branched",
    "load_task",
]

_MOVED = {"run_sweep": ("trainwise.sweep.runner", "trainwise.experiments.sweep"),
          "train_to_targets": ("trainwise.sweep.runner", "trainwise.experiments.sweep"),
          "run_branched": ("trainwise.experiments.branched", "trainwise.experiments.branched"),
          "load_task": ("trainwise.tasks.task_file", "trainwise.tasks")}


def __getattr__(name: str) -> Any:
    if name in ("RunResult", "SweepResult"):  # the result types live with the other schemas
        from trainwise import results

        return getattr(results, name)
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    source, new = _MOVED[name]
    if name in ("run_branched", "load_task"):  # the sweep runner's wrappers warn when called
        warn_moved(f"trainwise.sweep.{name}", f"{new}.{name}")
    return getattr(importlib.import_module(source), name)
