"""Train a task with several optimizers at an equal budget (steps × batch size): ``trainwise compare-optimizers``.

Every run starts from the same initial weights and sees the same batches (same seed); the
clock counts training only (forward, backward, optimizer step and, for Sophia, the Hessian
estimates), not the evaluations. Used by ``trainwise compare-optimizers`` and the benchmark.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from trainwise.experiments.loop import StepInfo, train
from trainwise.optim.hessian import GaussNewtonBartlett, maybe_update_hessian
from trainwise.optim.presets import make_preset
from trainwise.tasks.base import Task

__all__ = ["OPTIMIZERS", "DEFAULT_LRS", "CurvePoint", "OptimizerRun", "RunResult", "logits_fn_for", "train_with",
           "compare_optimizers"]

OPTIMIZERS = ("adamw", "sgd-cosine", "adamw-cosine", "sophiag")

#: learning rates tuned on a small grid for the default budget of each built-in task
DEFAULT_LRS: dict[str, dict[str, float]] = {
    "char-gpt": {"adamw": 2e-3, "sgd-cosine": 0.3, "adamw-cosine": 4e-3, "sophiag": 2e-3},
    "digits-mlp": {"adamw": 3e-3, "sgd-cosine": 0.1, "adamw-cosine": 3e-3, "sophiag": 5e-4},
}
_FALLBACK_LRS = {"adamw": 1e-3, "sgd-cosine": 0.05, "adamw-cosine": 1e-3, "sophiag": 5e-4}


@dataclass
class CurvePoint:
    step: int
    time_s: float
    train_loss: float
    val_loss: float


@dataclass
class OptimizerRun:
    """One optimizer's run: its learning-rate, the evaluated curve and the time per step."""

    optimizer: str
    lr: float
    curve: list[CurvePoint] = field(default_factory=list)
    time_per_step_ms: float = float("nan")
    hessian_updates: int = 0
    diagnostics: dict[str, float] | None = None

    @property
    def final_val_loss(self) -> float:
        return self.curve[-1].val_loss

    @property
    def best_val_loss(self) -> float:
        return min(point.val_loss for point in self.curve)

    def steps_to(self, target: float) -> int | None:
        """First evaluated step whose validation loss is ≤ ``target`` (None if never)."""
        return next((point.step for point in self.curve if point.val_loss <= target), None)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(final_val_loss=self.final_val_loss, best_val_loss=self.best_val_loss)
        return out


#: the old name of :class:`OptimizerRun` (the sweep has a ``RunResult`` too)
RunResult = OptimizerRun


def logits_fn_for(task: Task, model: nn.Module) -> Callable[[Any], torch.Tensor]:
    """``batch → logits`` for the GNB estimator: the task's :meth:`~trainwise.tasks.base.Task.logits`."""
    if type(task).logits is Task.logits:
        raise ValueError(f"no logits function for task {task.name!r}; SophiaG needs the model's logits "
                         "(define Task.logits(model, batch))")
    return lambda batch: task.logits(model, batch)


def tokens_per_batch(task: Task, batch_size: int) -> int:
    return batch_size * (task.tokens_per_example or 1)


def train_with(
    task: Task,
    optimizer_name: str,
    *,
    lr: float,
    steps: int,
    batch_size: int,
    eval_every: int,
    seed: int = 0,
    warmup_steps: int | None = None,
    hessian_interval: int = 10,
    on_step: Callable[[int], None] | None = None,
) -> OptimizerRun:
    """One run: same model init and batches for every optimizer (given ``seed``)."""
    if steps < 1 or batch_size < 1 or eval_every < 1:
        raise ValueError(f"steps, batch_size and eval_every must be >= 1, got {steps}, {batch_size}, {eval_every}")
    model = task.make_model(seed=seed)
    if warmup_steps is None:
        warmup_steps = max(1, steps // 20)
    kwargs: dict[str, Any] = dict(lr=lr, total_steps=steps)
    if optimizer_name == "adamw":
        kwargs.update(weight_decay=0.0, betas=(0.9, 0.95))
    elif optimizer_name == "adamw-cosine":
        kwargs.update(weight_decay=0.1, betas=(0.9, 0.95), warmup_steps=warmup_steps)
    elif optimizer_name == "sgd-cosine":
        kwargs.update(warmup_steps=warmup_steps)
    elif optimizer_name == "sophiag":
        kwargs.update(bs=tokens_per_batch(task, batch_size), warmup_steps=warmup_steps, weight_decay=0.2,
                      hessian_interval=hessian_interval, rho=0.04)
    setup = make_preset(optimizer_name, model, **kwargs)
    optimizer, scheduler = setup.optimizer, setup.scheduler
    estimator = None
    if optimizer_name == "sophiag":
        estimator = GaussNewtonBartlett(logits_fn_for(task, model), clip_norm=1.0)
    batches = task.batches(batch_size, seed=seed)
    hessian_batches = task.batches(batch_size, seed=seed + 10_000)  # a fresh batch for the estimator
    result = OptimizerRun(optimizer=optimizer_name, lr=lr)
    clock = {"elapsed": 0.0}
    recent: list[float] = []
    result.curve.append(CurvePoint(0, 0.0, float("nan"), task.eval_loss(model)))

    def before_backward(step: int) -> None:
        if estimator is not None:
            maybe_update_hessian(optimizer, estimator, lambda: [next(hessian_batches)])

    def after_step(info: StepInfo) -> None:
        clock["elapsed"] += info.seconds  # training only: the evaluations are not on the clock
        recent.append(info.loss)
        if on_step is not None:
            on_step(info.step - 1)
        if info.step % eval_every == 0 or info.step == steps:
            train_loss = sum(recent) / len(recent)
            recent.clear()
            result.curve.append(CurvePoint(info.step, clock["elapsed"], train_loss, task.eval_loss(model)))

    train(model, optimizer, batches, steps, task.loss_fn, scheduler=scheduler, before_backward=before_backward,
          after_step=after_step)
    elapsed = clock["elapsed"]
    result.time_per_step_ms = 1000.0 * elapsed / steps
    if hasattr(optimizer, "diagnostics"):
        diagnostics = optimizer.diagnostics()
        result.hessian_updates = diagnostics.hessian_updates
        result.diagnostics = diagnostics.as_dict()
    return result


def compare_optimizers(
    task: Task,
    optimizers: list[str],
    *,
    steps: int,
    batch_size: int,
    eval_every: int,
    seed: int = 0,
    lrs: dict[str, float] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[OptimizerRun]:
    """Run each optimizer with its LR (``lrs`` overrides :data:`DEFAULT_LRS`)."""
    unknown = [name for name in optimizers if name not in OPTIMIZERS]
    if unknown:
        raise ValueError(f"unknown optimizer(s) {', '.join(map(repr, unknown))}; choose from {', '.join(OPTIMIZERS)}")
    table = dict(DEFAULT_LRS.get(task.name, _FALLBACK_LRS))
    table.update(lrs or {})
    # Untimed warm-up: the first steps of a process pay for torch's lazy initialisation (kernels, thread pool,
    # allocator), which would otherwise show as the first optimizer's slow start on the wall-clock plot.
    train_with(task, optimizers[0], lr=table[optimizers[0]], steps=min(steps, 5), batch_size=batch_size,
               eval_every=max(1, min(steps, 5)), seed=seed + 1)
    return [
        train_with(task, name, lr=table[name], steps=steps, batch_size=batch_size, eval_every=eval_every,
                   seed=seed, on_step=on_step)
        for name in optimizers
    ]
