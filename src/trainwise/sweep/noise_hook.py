"""The Hessian noise measurement used at checkpoints of a sweep's tuned runs (``trainwise.noise`` when present)."""

from __future__ import annotations

from typing import Callable

import torch

from trainwise.tasks.base import Task

__all__ = ["default_noise_measure"]

QUANTITIES = ("b_simple", "b_noise", "grad_sq_norm", "trace_sigma", "ghg", "trace_h_sigma", "eps_max", "delta_l_max")


def default_noise_measure(batch_size: int = 64, rounds: int = 8, seed: int = 12345
                          ) -> Callable[[torch.nn.Module, Task, int], dict] | None:
    """``measure(model, task, step) -> {quantity: {"value", "stderr"}}`` from
    :func:`trainwise.noise.measure_noise_scale` with Hessian-vector products, or ``None`` if that module is absent.

    Values are per example (``tokens_per_example=None``), matching the sweep's batch sizes in examples.
    """
    try:
        from trainwise.noise import measure_noise_scale
    except ImportError:
        return None

    def measure(model: torch.nn.Module, task: Task, step: int) -> dict:
        batches = task.batches(batch_size, seed=seed + step)
        result = measure_noise_scale(model, task.loss_fn, batches, rounds=rounds, hessian=True,
                                     tokens_per_example=None)
        out = {}
        for name in QUANTITIES:
            estimate = getattr(result, name, None)
            if estimate is not None and getattr(estimate, "value", None) is not None:
                out[name] = {"value": float(estimate.value), "stderr": float(getattr(estimate, "stderr", float("nan")))}
        return out

    return measure
