"""Deprecated home of the critical-batch sweep, split along its seams (``docs/architecture.md``):

* the training drivers :func:`~trainwise.experiments.sweep.train_to_targets` and
  :func:`~trainwise.experiments.sweep.run_sweep`: :mod:`trainwise.experiments.sweep`;
* the configuration and its LR rule: :mod:`trainwise.sweep.config` (rules from :mod:`trainwise.optim.lr_scaling`);
* which checkpoints to keep: :mod:`trainwise.sweep.checkpoints`; the resumable state: :mod:`trainwise.sweep.state`;
* the fit and the predictions: :mod:`trainwise.sweep.summary`; the windowed ``B_simple``:
  :func:`trainwise.noise.averaging.noise_window_average`;
* the result types and the prediction table: :mod:`trainwise.results`.

The names below still work from here; the drivers warn (:class:`DeprecationWarning`) and call the new ones.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from trainwise._deprecated import moved, warn_moved
from trainwise.noise.averaging import noise_window_average
from trainwise.results import PREDICTOR_LABELS, PREDICTORS, RunResult, SweepResult, prediction_table
from trainwise.sweep.checkpoints import pick_checkpoints as _pick_checkpoints
from trainwise.sweep.checkpoints import thin_checkpoints as _thin_checkpoints
from trainwise.sweep.config import LR_RULES, SweepConfig, lr_for_rule
from trainwise.sweep.config import run_key as _key
from trainwise.sweep.config import target_key as _target_key
from trainwise.sweep.state import RESULT_FILE, STATE_FILE
from trainwise.sweep.state import load_state as _load_state
from trainwise.sweep.summary import (
    _b_noise_from_probes,
    _last_reached_step,
    _mean_stderr,
    _probe_spans,
    _run_spans,
    _tuned_key,
    steps_rise_with_batch,
    summarize,
)

__all__ = [
    "SweepConfig",
    "RunResult",
    "SweepResult",
    "run_sweep",
    "train_to_targets",
    "lr_for_rule",
    "noise_window_average",
    "prediction_table",
    "steps_rise_with_batch",
    "PREDICTORS",
    "PREDICTOR_LABELS",
    "NoiseMeasure",
    "LR_RULES",
    "STATE_FILE",
    "RESULT_FILE",
    "summarize",
]

_PRIVATE = (_b_noise_from_probes, _last_reached_step, _mean_stderr, _probe_spans, _run_spans, _tuned_key, _key,
            _target_key, _thin_checkpoints, _pick_checkpoints, _load_state)


def train_to_targets(*args: Any, **kwargs: Any):
    """Deprecated: :func:`trainwise.experiments.sweep.train_to_targets`."""
    warn_moved("trainwise.sweep.runner.train_to_targets", "trainwise.experiments.sweep.train_to_targets")
    from trainwise.experiments.sweep import train_to_targets as train

    return train(*args, **kwargs)


def run_sweep(task: Any, config: SweepConfig, out_dir: str | Path, **kwargs: Any) -> SweepResult:
    """Deprecated: :func:`trainwise.experiments.sweep.run_sweep`. Each run goes through this module's
    ``train_to_targets``, so code that replaced it here still sees every run."""
    warn_moved("trainwise.sweep.runner.run_sweep", "trainwise.experiments.sweep.run_sweep")
    from trainwise.experiments.sweep import run_sweep as sweep

    module = sys.modules[__name__]
    kwargs.setdefault("train_run", lambda *a, **k: module.train_to_targets(*a, **k))
    return sweep(task, config, out_dir, **kwargs)


__getattr__ = moved(__name__, {"NoiseMeasure": "trainwise.experiments.sweep", "_snapshot": "trainwise.experiments.sweep",
                               "_probe_tuned": "trainwise.experiments.sweep"})
