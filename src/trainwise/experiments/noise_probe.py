"""The Hessian noise measurement used at checkpoints of a sweep's tuned runs (:func:`trainwise.noise.measure_noise_scale`)."""

from __future__ import annotations

from typing import Callable

import torch

from trainwise.noise.measure import measure_noise_scale
from trainwise.tasks.base import Task

__all__ = ["default_noise_measure"]

QUANTITIES = ("b_simple", "b_noise", "grad_sq_norm", "trace_sigma", "ghg", "trace_h_sigma", "eps_max", "delta_l_max")


def _has_adam_state(optimizer: torch.optim.Optimizer | None) -> bool:
    if optimizer is None:
        return False
    states = [optimizer.state.get(p, {}) for group in optimizer.param_groups for p in group["params"]]
    return bool(states) and all("exp_avg_sq" in st for st in states)


def default_noise_measure(batch_size: int = 64, rounds: int = 16, seed: int = 12345) -> Callable[..., dict]:
    """``measure(model, task, step, optimizer=None) -> {quantity: {"value", "stderr"}}`` from
    :func:`trainwise.noise.measure_noise_scale` with Hessian-vector products.

    With an Adam/AdamW ``optimizer`` (its state at the checkpoint) it also measures the preconditioned noise
    scale of the update ``P⁻¹g`` (``P = sqrt(v̂) + eps``), under keys prefixed ``precond_``. Values are per example
    (``tokens_per_example=None``), matching the sweep's batch sizes in examples. Both measurements read the same
    batches.
    """
    def extract(result, prefix: str, out: dict) -> None:
        for name in QUANTITIES:
            estimate = getattr(result, name, None)
            if estimate is not None and getattr(estimate, "value", None) is not None:
                out[prefix + name] = {"value": float(estimate.value), "stderr": float(getattr(estimate, "stderr", float("nan")))}

    def measure(model: torch.nn.Module, task: Task, step: int, optimizer: torch.optim.Optimizer | None = None) -> dict:
        out: dict = {}
        result = measure_noise_scale(model, task.loss_fn, task.batches(batch_size, seed=seed + step), rounds=rounds,
                                     hessian=True, tokens_per_example=None)
        extract(result, "", out)
        if _has_adam_state(optimizer):
            result = measure_noise_scale(model, task.loss_fn, task.batches(batch_size, seed=seed + step), rounds=rounds,
                                         hessian=True, tokens_per_example=None, preconditioner=optimizer)
            extract(result, "precond_", out)
        return out

    measure.settings = {"batch_size": batch_size, "rounds": rounds, "seed": seed}  # saved with a sweep's probes
    return measure
