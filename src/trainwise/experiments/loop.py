"""The one training loop every driver runs: fetch a batch, backward (optionally in micro-batches, read by a
noise-scale monitor), step the optimizer and the scheduler, and let the driver react through callbacks.

The drivers (:mod:`~trainwise.experiments.measure`, :mod:`~trainwise.experiments.sweep`,
:mod:`~trainwise.experiments.branched`, :mod:`~trainwise.experiments.compare`) differ only in what they do between
steps (evaluate, checkpoint, stop at a target); the step itself is written once, here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

__all__ = ["StepInfo", "backward", "train"]

#: ``loss_fn(model, batch) -> per-example losses [B]`` (a task's :meth:`~trainwise.tasks.base.Task.loss_fn`)
LossFn = Callable[[nn.Module, Any], torch.Tensor]


@dataclass
class StepInfo:
    """What one optimizer step produced."""

    step: int  #: 1-based optimizer step
    loss: float  #: training loss of the step (mean over its batch)
    record: dict | None  #: the monitor's record of the step (None without a monitor, or a skipped step)
    seconds: float  #: wall time of the update (hooks, forward, backward, monitor, optimizer and scheduler steps)


def backward(model: nn.Module, batch: tuple, loss_fn: LossFn, *, micro_batch_sizes: Sequence[int] | None = None,
             monitor: Any | None = None) -> tuple[float, dict | None]:
    """Accumulate the gradient of the batch's mean loss into ``.grad``; returns ``(loss, monitor record)``.

    ``micro_batch_sizes`` (summing to the batch size) splits the batch into consecutive micro-batches of those
    sizes, each loss weighted ``b_j/B`` so the accumulated gradient is the mean over the batch; after each
    backward the monitor (source ``accumulation``) reads the micro-batch gradient. Without it, one backward over
    the whole batch and the monitor (source ``per_example``) reads per-example norms.
    """
    if not micro_batch_sizes:
        loss = loss_fn(model, batch).mean()
        loss.backward()
        value = float(loss.detach())
        record = monitor.step(batch_size=len(batch[0]), loss=value) if monitor is not None else None
        return value, record
    total = sum(micro_batch_sizes)
    value, start = 0.0, 0
    for size in micro_batch_sizes:
        part = tuple(t[start : start + size] for t in batch)
        start += size
        loss = loss_fn(model, part).mean() * (size / total)
        loss.backward()
        if monitor is not None:
            monitor.micro_step(size)
        value += float(loss.detach())
    record = monitor.step(batch_size=total, loss=value) if monitor is not None else None
    return value, record


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple],
    steps: int,
    loss_fn: LossFn,
    *,
    first_step: int = 1,
    micro_batch_sizes: Sequence[int] | None = None,
    monitor: Any | None = None,
    scheduler: Any | None = None,
    before_backward: Callable[[int], None] | None = None,
    after_backward: Callable[[int, float, dict | None], str | None] | None = None,
    after_step: Callable[[StepInfo], str | None] | None = None,
) -> tuple[int, str | None]:
    """Run optimizer steps ``first_step … first_step + steps − 1``; returns ``(last step, stop reason)``.

    ``before_backward(step)`` runs after ``zero_grad`` (e.g. a Sophia Hessian estimate). ``after_backward(step,
    loss, record)`` runs before the update and may return a reason to stop without updating (``"diverged"``).
    ``after_step(info)`` runs after the update (evaluations, checkpoints) and may return a reason to stop. The
    reason is ``None`` when all ``steps`` ran.
    """
    step = first_step - 1
    for step in range(first_step, first_step + steps):
        batch = next(batches)
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        if before_backward is not None:
            before_backward(step)
        loss, record = backward(model, batch, loss_fn, micro_batch_sizes=micro_batch_sizes, monitor=monitor)
        if after_backward is not None:
            reason = after_backward(step, loss, record)
            if reason:
                return step, reason
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        seconds = time.perf_counter() - started
        if after_step is not None:
            reason = after_step(StepInfo(step, loss, record, seconds))
            if reason:
                return step, reason
    return step, None
