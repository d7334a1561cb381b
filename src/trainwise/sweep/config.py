"""What a sweep or a branched run trains: the configurations, their learning-rate rule, and the keys of runs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from trainwise.optim.lr_scaling import LR_RULE_ALIASES, lr_rule, scale_lr

__all__ = ["SweepConfig", "BranchedConfig", "LR_RULES", "lr_for_rule", "run_key", "target_key"]

#: the sweep's rules: ``grid`` (an explicit LR grid shared by all batch sizes) and the rules of
#: :data:`trainwise.optim.lr_scaling.LR_RULES`
LR_RULES = ("grid", "constant", "linear", "sqrt")


def lr_for_rule(rule: str, batch_size: float, base_lr: float, base_batch: float) -> float:
    """Learning rate at batch ``B`` from a reference ``(base_lr, base_batch)``.

    ``constant`` (and ``grid``): ``η``; ``linear``: ``η·B/B₀`` (SGD, Goyal et al. 2017); ``sqrt``: ``η·sqrt(B/B₀)``
    (Adam, Malladi et al. 2022). :func:`trainwise.optim.lr_scaling.scale_lr` with the sweep's argument order.

    >>> lr_for_rule("sqrt", 64, 0.1, 16)
    0.2
    """
    if rule == "grid":
        return base_lr
    if rule not in LR_RULES and rule not in LR_RULE_ALIASES:
        raise ValueError(f"unknown learning-rate rule {rule!r}; use one of {', '.join(LR_RULES)}")
    return scale_lr(rule, base_lr, base_batch, batch_size)


def run_key(batch_size: int, lr: float) -> str:
    """The name of the run at ``(batch_size, lr)`` in the sweep state and on disk."""
    return f"B{batch_size}_lr{lr:.6g}"


def target_key(target: float) -> str:
    return f"{target:.6g}"


@dataclass
class SweepConfig:
    """What to sweep. ``lrs`` (an explicit grid shared by all batch sizes) selects rule ``grid``; otherwise
    each batch size gets ``lr_for_rule(lr_rule, B, base_lr, base_batch) × f`` for ``f`` in ``lr_factors``."""

    task: str
    batch_sizes: list[int]
    targets: list[float]
    lr_rule: str = "sqrt"
    base_lr: float | None = None
    base_batch: int | None = None
    lr_factors: list[float] = field(default_factory=lambda: [0.25, 1.0, 4.0])
    lrs: list[float] | None = None
    optimizer: str | None = None
    max_steps: int = 5000
    max_examples: int | None = None
    eval_growth: float = 1.05
    seed: int = 0
    noise_window: tuple[float, float] = (0.0, 1.0)
    noise_checkpoints: int = 8
    noise_source: str = "halves"
    task_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.batch_sizes = sorted(int(b) for b in self.batch_sizes)
        self.targets = sorted((float(t) for t in self.targets), reverse=True)
        if not self.batch_sizes or self.batch_sizes[0] < 2:
            raise ValueError(f"batch sizes must be >= 2 (a noise estimate needs two examples per step), got {self.batch_sizes!r}")
        if not self.targets or any(not math.isfinite(t) for t in self.targets):
            raise ValueError(f"targets must be finite losses, got {self.targets!r}")
        if self.lrs is not None:
            self.lr_rule = "grid"
            if not self.lrs or any(not (lr > 0) for lr in self.lrs):
                raise ValueError(f"learning rates must be positive, got {self.lrs!r}")
        if self.lr_rule in LR_RULE_ALIASES:  # one vocabulary: sgd/adam/none name the same rules
            self.lr_rule = lr_rule(self.lr_rule)
        if self.lr_rule not in LR_RULES:
            raise ValueError(f"unknown learning-rate rule {self.lr_rule!r}; use one of {', '.join(LR_RULES)}")
        if self.lr_rule == "grid" and self.lrs is None:
            raise ValueError("lr_rule 'grid' needs an explicit list of learning rates (lrs)")
        if any(not (f > 0) for f in self.lr_factors):
            raise ValueError(f"lr_factors must be positive, got {self.lr_factors!r}")
        if self.noise_checkpoints < 1:
            raise ValueError(f"noise_checkpoints must be >= 1, got {self.noise_checkpoints!r}")
        if self.noise_source not in ("halves", "monitor"):
            raise ValueError(f"noise_source must be 'halves' or 'monitor', got {self.noise_source!r}")
        if self.max_steps < 1 or self.eval_growth <= 1.0:
            raise ValueError(f"need max_steps >= 1 and eval_growth > 1, got {self.max_steps!r}, {self.eval_growth!r}")
        lo, hi = self.noise_window
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"noise_window must be fractions 0 <= lo < hi <= 1 of the run, got {self.noise_window!r}")
        self.noise_window = (float(lo), float(hi))

    def lrs_for(self, batch_size: int, task: Any) -> list[float]:
        """The learning rates tried at ``batch_size``; ``task`` supplies ``default_lr``/``default_batch_size``."""
        if self.lr_rule == "grid":
            return sorted(float(lr) for lr in self.lrs)  # type: ignore[union-attr]
        base_lr = self.base_lr if self.base_lr is not None else task.default_lr
        base_batch = self.base_batch if self.base_batch is not None else task.default_batch_size
        center = lr_for_rule(self.lr_rule, batch_size, base_lr, base_batch)
        return sorted(center * f for f in self.lr_factors)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["noise_window"] = list(self.noise_window)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "SweepConfig":
        data = dict(data)
        data["noise_window"] = tuple(data.get("noise_window", (0.0, 1.0)))
        return cls(**data)


@dataclass
class BranchedConfig:
    """Merrill et al. 2025's branched method (:func:`trainwise.experiments.branched.run_branched`)."""

    task: str
    base_batch: int
    base_lr: float
    checkpoint_steps: list[int]
    multipliers: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    branch_examples: int = 8192
    tolerance: float = 0.01  #: allowed excess loss over the B₀ branch, nats (absolute)
    lr_rule: str = "sqrt"
    lr_factors: list[float] = field(default_factory=lambda: [1.0])
    optimizer: str | None = None
    seed: int = 0
    task_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.checkpoint_steps = sorted(int(s) for s in self.checkpoint_steps)
        self.multipliers = sorted(int(k) for k in self.multipliers)
        if not self.checkpoint_steps or self.checkpoint_steps[0] < 0:
            raise ValueError(f"checkpoint_steps must be non-negative steps, got {self.checkpoint_steps!r}")
        if not self.multipliers or self.multipliers[0] != 1:
            raise ValueError(f"multipliers must include 1 (the reference branch), got {self.multipliers!r}")
        if self.base_batch < 1 or not self.base_lr > 0 or self.branch_examples < self.base_batch * max(self.multipliers):
            raise ValueError(
                f"need base_batch >= 1, base_lr > 0 and branch_examples >= the largest branch batch "
                f"({self.base_batch * max(self.multipliers)}); got {self.base_batch!r}, {self.base_lr!r}, {self.branch_examples!r}"
            )
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance!r}")

    def to_dict(self) -> dict:
        return asdict(self)
