"""Learning-rate schedules as pure ``step → multiplier`` functions.

Each schedule is a small frozen dataclass whose ``__call__(step)`` returns the factor that
multiplies the base learning rate at optimizer step ``step`` (0-based). They hold no state,
so resuming needs nothing beyond the step count; :func:`to_lambda_lr` adapts one to
``torch.optim.lr_scheduler.LambdaLR`` (whose ``state_dict`` then round-trips the schedule).

Shape, with ``w`` warm-up steps, ``T`` total steps and floor ``r = min_ratio``:

* warm-up (all schedules): ``(step + 1) / w`` for ``step < w`` (the first step already
  moves; the peak is reached at step ``w − 1``);
* :class:`Constant`: 1 after warm-up;
* :class:`LinearDecay`: ``r + (1 − r)(1 − p)`` with ``p = (step − w)/(T − w)`` clamped to [0, 1];
* :class:`CosineDecay`: ``r + (1 − r) · ½ (1 + cos π p)``;
* :class:`WarmupStableDecay` (WSD, MiniCPM, arXiv:2404.06395): 1 until the last
  ``decay_fraction · T`` steps, then decays to ``r`` (linear, cosine or ``1 − sqrt``); about 10%
  of the steps in the decay is enough per MiniCPM.

After ``T`` steps every decaying schedule stays at ``r`` (the min-LR floor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["Schedule", "Constant", "LinearDecay", "CosineDecay", "WarmupStableDecay", "make_schedule", "to_lambda_lr"]

Schedule = Callable[[int], float]


def _check_step(step: int) -> int:
    if isinstance(step, bool) or not float(step).is_integer() or step < 0:
        raise ValueError(f"step must be a non-negative integer, got {step!r}")
    return int(step)


def _validate(total_steps: int | None, warmup_steps: int, min_ratio: float) -> None:
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
    if total_steps is not None:
        if not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
        if warmup_steps > total_steps:
            raise ValueError(f"warmup_steps={warmup_steps} exceeds total_steps={total_steps}")
    if not (0.0 <= min_ratio <= 1.0):
        raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio!r}")


def _warmup(step: int, warmup_steps: int) -> float | None:
    return (step + 1) / warmup_steps if step < warmup_steps else None


@dataclass(frozen=True)
class Constant:
    """1 after an optional linear warm-up."""

    warmup_steps: int = 0

    def __post_init__(self) -> None:
        _validate(None, self.warmup_steps, 0.0)

    def __call__(self, step: int) -> float:
        step = _check_step(step)
        warm = _warmup(step, self.warmup_steps)
        return 1.0 if warm is None else warm


@dataclass(frozen=True)
class LinearDecay:
    """Linear warm-up, then linear decay to ``min_ratio`` at ``total_steps``."""

    total_steps: int
    warmup_steps: int = 0
    min_ratio: float = 0.0

    def __post_init__(self) -> None:
        _validate(self.total_steps, self.warmup_steps, self.min_ratio)

    def __call__(self, step: int) -> float:
        step = _check_step(step)
        warm = _warmup(step, self.warmup_steps)
        if warm is not None:
            return warm
        progress = _progress(step, self.warmup_steps, self.total_steps)
        return self.min_ratio + (1.0 - self.min_ratio) * (1.0 - progress)


@dataclass(frozen=True)
class CosineDecay:
    """Linear warm-up, then half-cosine decay to ``min_ratio`` at ``total_steps``."""

    total_steps: int
    warmup_steps: int = 0
    min_ratio: float = 0.0

    def __post_init__(self) -> None:
        _validate(self.total_steps, self.warmup_steps, self.min_ratio)

    def __call__(self, step: int) -> float:
        step = _check_step(step)
        warm = _warmup(step, self.warmup_steps)
        if warm is not None:
            return warm
        progress = _progress(step, self.warmup_steps, self.total_steps)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


_DECAY_SHAPES = ("linear", "cosine", "1-sqrt")


@dataclass(frozen=True)
class WarmupStableDecay:
    """Warm-up, a stable phase at 1, and a decay over the last ``decay_fraction`` of ``total_steps``."""

    total_steps: int
    warmup_steps: int = 0
    decay_fraction: float = 0.1
    min_ratio: float = 0.0
    decay_shape: str = "linear"

    def __post_init__(self) -> None:
        _validate(self.total_steps, self.warmup_steps, self.min_ratio)
        if not (0.0 < self.decay_fraction <= 1.0):
            raise ValueError(f"decay_fraction must be in (0, 1], got {self.decay_fraction!r}")
        if self.decay_shape not in _DECAY_SHAPES:
            raise ValueError(f"decay_shape must be one of {_DECAY_SHAPES}, got {self.decay_shape!r}")
        if self.decay_start < self.warmup_steps:
            raise ValueError(
                f"warm-up ({self.warmup_steps} steps) overlaps the decay, which starts at step {self.decay_start} "
                f"(total_steps={self.total_steps}, decay_fraction={self.decay_fraction})"
            )

    @property
    def decay_start(self) -> int:
        return self.total_steps - int(round(self.decay_fraction * self.total_steps))

    def __call__(self, step: int) -> float:
        step = _check_step(step)
        warm = _warmup(step, self.warmup_steps)
        if warm is not None:
            return warm
        if step < self.decay_start:
            return 1.0
        progress = _progress(step, self.decay_start, self.total_steps)
        if self.decay_shape == "linear":
            shape = 1.0 - progress
        elif self.decay_shape == "cosine":
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            shape = 1.0 - math.sqrt(progress)
        return self.min_ratio + (1.0 - self.min_ratio) * shape


def _progress(step: int, start: int, end: int) -> float:
    if end <= start:
        return 1.0
    return min(max((step - start) / (end - start), 0.0), 1.0)


def make_schedule(name: str, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0, **kwargs) -> Schedule:
    """``constant``, ``linear``, ``cosine`` or ``wsd`` by name (for configs and the CLI)."""
    if name == "constant":
        return Constant(warmup_steps)
    if name == "linear":
        return LinearDecay(total_steps, warmup_steps, min_ratio)
    if name == "cosine":
        return CosineDecay(total_steps, warmup_steps, min_ratio)
    if name == "wsd":
        return WarmupStableDecay(total_steps, warmup_steps, min_ratio=min_ratio, **kwargs)
    raise ValueError(f"unknown schedule {name!r}; use constant, linear, cosine or wsd")


def to_lambda_lr(optimizer: torch.optim.Optimizer, schedule: Schedule, last_epoch: int = -1) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` that sets ``lr = base_lr · schedule(step)``; call ``scheduler.step()`` after each optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=schedule, last_epoch=last_epoch)
