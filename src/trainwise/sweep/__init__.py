"""Empirical critical batch size: train to target losses across batch sizes, fit ``S = S_min(1 + B_crit/B)``.

See :mod:`trainwise.sweep.runner` (the resumable sweep), :mod:`trainwise.sweep.fit` (the trade-off fit) and
:mod:`trainwise.sweep.branched` (Merrill et al. 2025's branched method).
"""

from trainwise.sweep.branched import BranchedConfig, run_branched
from trainwise.sweep.fit import TradeoffFit, fit_tradeoff
from trainwise.sweep.runner import RunResult, SweepConfig, SweepResult, lr_for_rule, run_sweep, train_to_targets
from trainwise.sweep.task_file import load_task

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
