r"""Batch-size warm-up: grow the global batch during training to track the measured noise scale.

The global batch is ``B = world × k × b`` (``b`` micro-batch per replica, ``k`` accumulation steps).
Growth first fills the per-replica micro-batch up to ``max_micro_batch_size`` (memory), then adds
accumulation steps, so memory stays flat once the micro-batch is full.

Modes (every ``update_interval`` optimizer steps, once ``warmup_examples`` were seen):

``"noise"``
    target ``B* = noise_fraction × B_simple``. The default fraction 1.0 is the plan's reading of the critical
    batch (:mod:`trainwise.calibration`: with Adam, ``B_simple`` read 0.74–1.9× the swept ``B_crit``); a
    fraction below 1 is the cautious choice (McCandlish et al. 2018 found plain step averages of ``B_simple``
    2–5× above ``B_crit``). OLMo / Merrill et al. 2025 and nanoGNS warm the batch up along the noise scale.
``"goodput"``
    AdaptDL/Pollux: maximise ``goodput(B) = throughput(B) × E(B)`` over the feasible batches, with
    ``E(B) = (B_simple + B0)/(B_simple + B)`` and ``throughput`` from a
    :class:`~trainwise.adapt.throughput.StepTimeModel` fitted to measured step times (until two batch
    sizes were timed it follows the ``"noise"`` rule, and says so).

A change needs the target to differ from the current batch by ``growth_threshold`` (hysteresis),
grows by at most ``max_growth`` per decision and never shrinks unless ``allow_shrink``. Every
evaluation is a record ``{"kind": "batch_decision", "action": "grow"|"shrink"|"hold", "reason": ...}``
(in :attr:`decisions`, and one JSON line in ``log_path``).

The learning rate follows :func:`~trainwise.adapt.rules.lr_multiplier` on top of the schedule:
``r(B/B0)`` for SGD, ``√r`` for Adam, with the AdaScale gain ``r``. :attr:`scale_invariant_steps`
accumulates ``Σ r`` (AdaScale's progress in ``B0``-steps), to drive a schedule by if you wish.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainwise.adapt.rules import LR_RULES, adascale_gain, lr_multiplier, statistical_efficiency
from trainwise.adapt.throughput import StepTimeModel

__all__ = ["BatchPlan", "BatchSizeController", "MODES"]

MODES = ("noise", "goodput")


@dataclass(frozen=True)
class BatchPlan:
    """How a global batch is made: ``batch_size = world_size × accumulation_steps × micro_batch_size``."""

    batch_size: int
    micro_batch_size: int
    accumulation_steps: int
    world_size: int = 1

    @property
    def per_replica_batch_size(self) -> int:
        return self.micro_batch_size * self.accumulation_steps


class BatchSizeController:
    r"""Choose the global batch size from a :class:`~trainwise.noise.NoiseScaleMonitor`'s ``B_simple``.

    Args:
        base_batch_size: ``B0``, the global batch the learning rate (schedule) was tuned for.
        max_micro_batch_size: the largest per-replica forward/backward batch that fits in memory.
        max_batch_size: the largest global batch allowed.
        min_batch_size: the starting (and smallest) global batch; default ``base_batch_size``.
        world_size: number of data-parallel replicas.
        lr_rule: ``"adam"`` (``√gain``), ``"sgd"`` (``gain``) or ``"none"``.
        mode: ``"noise"`` or ``"goodput"``.
        noise_fraction: target ``B* = noise_fraction × B_simple`` in ``"noise"`` mode.
        growth_threshold: change only if ``B*/B ≥ growth_threshold`` (or ``≤ 1/growth_threshold``).
        max_growth: at most this factor per decision.
        allow_shrink: allow the batch to shrink when the noise scale falls.
        update_interval: evaluate every this many optimizer steps.
        warmup_examples: no decision before the monitor has seen this many examples.
        log_path: append each decision as a JSON line.
        min_efficiency: optional cap: never choose a batch whose statistical efficiency
            ``E(B) = (B_simple + B0)/(B_simple + B)`` is below this, i.e.
            ``B ≤ (B_simple + B0)/min_efficiency − B_simple`` (at most ``1/min_efficiency − 1``
            more examples per unit of progress than at ``B0``).
    """

    def __init__(
        self,
        base_batch_size: int,
        *,
        max_micro_batch_size: int,
        max_batch_size: int,
        min_batch_size: int | None = None,
        world_size: int = 1,
        lr_rule: str = "adam",
        mode: str = "noise",
        noise_fraction: float = 1.0,
        growth_threshold: float = 1.25,
        max_growth: float = 2.0,
        allow_shrink: bool = False,
        update_interval: int = 10,
        warmup_examples: int = 0,
        log_path: str | Path | None = None,
        step_time_model: StepTimeModel | None = None,
        min_efficiency: float | None = None,
    ):
        for name, value in (("base_batch_size", base_batch_size), ("max_micro_batch_size", max_micro_batch_size),
                            ("max_batch_size", max_batch_size), ("world_size", world_size),
                            ("update_interval", update_interval)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        min_batch_size = base_batch_size if min_batch_size is None else min_batch_size
        if not (isinstance(min_batch_size, int) and world_size <= min_batch_size <= max_batch_size):
            raise ValueError(
                f"need world_size <= min_batch_size <= max_batch_size, got {world_size}, {min_batch_size!r}, {max_batch_size}")
        if lr_rule not in LR_RULES:
            raise ValueError(f"unknown lr_rule {lr_rule!r}; choose one of {sorted(LR_RULES)}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        if not noise_fraction > 0:
            raise ValueError(f"noise_fraction must be > 0, got {noise_fraction!r}")
        if not growth_threshold >= 1:
            raise ValueError(f"growth_threshold must be >= 1, got {growth_threshold!r}")
        if not max_growth > 1:
            raise ValueError(f"max_growth must be > 1, got {max_growth!r}")
        if min_efficiency is not None and not 0 < min_efficiency <= 1:
            raise ValueError(f"min_efficiency must be in (0, 1], got {min_efficiency!r}")
        if warmup_examples < 0:
            raise ValueError(f"warmup_examples must be >= 0, got {warmup_examples!r}")
        self.base_batch_size = base_batch_size
        self.max_micro_batch_size = max_micro_batch_size
        self.max_batch_size = max_batch_size
        self.min_batch_size = min_batch_size
        self.world_size = world_size
        self.lr_rule = lr_rule
        self.mode = mode
        self.noise_fraction = float(noise_fraction)
        self.growth_threshold = float(growth_threshold)
        self.max_growth = float(max_growth)
        self.allow_shrink = allow_shrink
        self.update_interval = update_interval
        self.warmup_examples = warmup_examples
        self.min_efficiency = min_efficiency
        self.log_path = Path(log_path) if log_path else None
        self.step_time_model = step_time_model if step_time_model is not None else StepTimeModel()

        self.plan = self.plan_for(min_batch_size)
        self.b_simple = math.nan  # latest B_simple seen, in examples
        self.steps = 0
        self.examples = 0
        self.scale_invariant_steps = 0.0
        self.decisions: list[dict] = []

    # ------------------------------------------------------------------ batch arithmetic
    def plan_for(self, batch_size: int) -> BatchPlan:
        """The feasible plan with the largest global batch ``<= batch_size`` (at least ``world_size``)."""
        per_replica = max(1, int(batch_size) // self.world_size)
        if per_replica <= self.max_micro_batch_size:
            return BatchPlan(per_replica * self.world_size, per_replica, 1, self.world_size)
        accumulation = per_replica // self.max_micro_batch_size
        return BatchPlan(self.world_size * accumulation * self.max_micro_batch_size,
                         self.max_micro_batch_size, accumulation, self.world_size)

    def feasible_batch_sizes(self) -> list[int]:
        """Every global batch a plan can make within ``[min_batch_size, max_batch_size]``."""
        sizes = {self.plan_for(b).batch_size for b in range(self.min_batch_size, self.max_batch_size + 1, self.world_size)}
        return sorted(b for b in sizes if self.min_batch_size <= b <= self.max_batch_size) or [self.plan_for(self.min_batch_size).batch_size]

    @property
    def batch_size(self) -> int:
        return self.plan.batch_size

    @property
    def accumulation_steps(self) -> int:
        return self.plan.accumulation_steps

    @property
    def micro_batch_size(self) -> int:
        return self.plan.micro_batch_size

    # ------------------------------------------------------------------ LR
    def gain(self, batch_size: int | None = None) -> float:
        """AdaScale gain ``r(B/B0)`` at the latest ``B_simple`` (1 before the first measurement)."""
        batch = self.batch_size if batch_size is None else batch_size
        if math.isnan(self.b_simple):
            return 1.0
        return adascale_gain(self.b_simple, self.base_batch_size, batch)

    def lr_factor(self, batch_size: int | None = None) -> float:
        """Multiplier on the scheduled learning rate for the current (or given) batch."""
        batch = self.batch_size if batch_size is None else batch_size
        if math.isnan(self.b_simple):
            # no measurement yet: the rule at B_simple → ∞ (pure noise), i.e. linear / square-root in s
            return (batch / self.base_batch_size) ** LR_RULES[self.lr_rule]
        return lr_multiplier(self.lr_rule, self.b_simple, self.base_batch_size, batch)

    # ------------------------------------------------------------------ timing
    def observe_step_time(self, seconds: float, plan: BatchPlan | None = None) -> None:
        """Feed the wall-clock of one optimizer step (for ``mode="goodput"``)."""
        plan = plan or self.plan
        self.step_time_model.observe(plan.batch_size, plan.accumulation_steps, seconds)

    # ------------------------------------------------------------------ decisions
    def update(self, monitor: Any | None = None, *, b_simple: float | None = None,
               step: int | None = None, examples: int | None = None) -> dict | None:
        """Call once per optimizer step, after ``monitor.step()``. Returns the decision record of
        an evaluation step (``action`` = ``grow``/``shrink``/``hold``), else None.

        ``b_simple`` (examples) is read from ``monitor`` (converted from tokens if it reports
        tokens) unless given.
        """
        if b_simple is None:
            if monitor is None:
                raise ValueError("pass the NoiseScaleMonitor or b_simple=")
            b_simple = monitor.b_simple / (monitor.tokens_per_example or 1.0)
        if examples is None:
            examples = monitor.examples if monitor is not None else self.examples + self.batch_size
        self.steps = int(step) if step is not None else self.steps + 1
        self.examples = int(examples)
        if not math.isnan(b_simple):
            self.b_simple = float(b_simple)
        self.scale_invariant_steps += self.gain()
        if self.steps % self.update_interval:
            return None
        return self._decide()

    def _record(self, action: str, reason: str, target: float | None, new: BatchPlan, **extra) -> dict:
        old = self.plan
        efficiency = (statistical_efficiency(self.b_simple, self.base_batch_size, new.batch_size)
                      if not math.isnan(self.b_simple) else None)
        self.plan = new
        record = {
            "kind": "batch_decision",
            "step": self.steps,
            "examples": self.examples,
            "action": action,
            "reason": reason,
            "mode": self.mode,
            "b_simple": None if math.isnan(self.b_simple) else self.b_simple,
            "target_batch_size": target,
            "old_batch_size": old.batch_size,
            "batch_size": new.batch_size,
            "micro_batch_size": new.micro_batch_size,
            "accumulation_steps": new.accumulation_steps,
            "world_size": new.world_size,
            "efficiency": efficiency,
            "gain": self.gain(),
            "lr_factor": self.lr_factor(),
            **extra,
        }
        self.decisions.append(record)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        return record

    def _noise_target(self) -> float:
        return self.noise_fraction * max(self.b_simple, 0.0)

    def _goodput_target(self) -> tuple[float, dict]:
        model = self.step_time_model
        efficiency = {}
        best, best_goodput = None, -math.inf
        for batch in self.feasible_batch_sizes():
            plan = self.plan_for(batch)
            goodput = model.throughput(batch, plan.accumulation_steps) * statistical_efficiency(
                self.b_simple, self.base_batch_size, batch)
            efficiency[batch] = goodput
            if goodput > best_goodput:
                best, best_goodput = batch, goodput
        assert best is not None
        now = model.throughput(self.batch_size, self.accumulation_steps) * statistical_efficiency(
            self.b_simple, self.base_batch_size, self.batch_size)
        return float(best), {"goodput": now, "best_goodput": best_goodput, "step_time_model": dict(model.coefficients or {})}

    def _decide(self) -> dict:
        hold = self.plan
        if self.examples < self.warmup_examples:
            return self._record("hold", f"warm-up: {self.examples} of {self.warmup_examples} examples seen", None, hold)
        if math.isnan(self.b_simple):
            return self._record("hold", "no noise-scale estimate yet", None, hold)
        extra: dict = {}
        if self.mode == "goodput" and self.step_time_model.fitted:
            target, extra = self._goodput_target()
            why = f"goodput is highest at B={target:g}"
        else:
            target = self._noise_target()
            why = f"{self.noise_fraction:g}×B_simple={target:.1f}"
            if self.mode == "goodput":
                why = "goodput: step times known at one batch size only, following the noise scale: " + why
        if self.min_efficiency is not None:
            phi = max(self.b_simple, 0.0)
            cap = (phi + self.base_batch_size) / self.min_efficiency - phi
            if target > cap:
                target = cap
                why += f", capped at {cap:.1f} by min_efficiency={self.min_efficiency:g}"
        current = self.batch_size
        bounded = min(max(target, self.min_batch_size), self.max_batch_size)
        if bounded >= current * self.growth_threshold:
            new = self.plan_for(min(bounded, current * self.max_growth))
            if new.batch_size > current:
                capped = " (capped by max_growth)" if bounded > current * self.max_growth else ""
                capped += " (capped by max_batch_size)" if target > self.max_batch_size else ""
                return self._record("grow", f"{why} ≥ {self.growth_threshold:g}×B={current}{capped}", target, new, **extra)
            return self._record("hold", f"{why}: no feasible batch between {current} and {bounded:g}", target, hold, **extra)
        if target * self.growth_threshold <= current:
            if current <= self.min_batch_size:
                return self._record("hold", f"{why} < B={current}, already at min_batch_size", target, hold, **extra)
            if not self.allow_shrink:
                return self._record("hold", f"{why} < B={current}, shrinking disabled", target, hold, **extra)
            new = self.plan_for(max(bounded, current / self.max_growth, self.min_batch_size))
            if new.batch_size < current:
                return self._record("shrink", f"{why} ≤ B={current}/{self.growth_threshold:g}", target, new, **extra)
        if current >= self.max_batch_size and target > current:
            return self._record("hold", f"{why}: at max_batch_size={self.max_batch_size}", target, hold, **extra)
        return self._record("hold", f"{why} within ×{self.growth_threshold:g} of B={current}", target, hold, **extra)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "version": 1,
            "plan": asdict(self.plan),
            "b_simple": self.b_simple,
            "steps": self.steps,
            "examples": self.examples,
            "scale_invariant_steps": self.scale_invariant_steps,
            "decisions": [dict(d) for d in self.decisions],
            "step_time_model": self.step_time_model.state_dict(),
            "config": {"base_batch_size": self.base_batch_size, "world_size": self.world_size,
                       "max_micro_batch_size": self.max_micro_batch_size},
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("version") != 1:
            raise ValueError(f"unsupported BatchSizeController state version {state.get('version')!r}")
        config = state["config"]
        if config["world_size"] != self.world_size:
            # the global batch survives a change of world size; the plan is re-made for the new one
            plan = self.plan_for(state["plan"]["batch_size"])
        else:
            plan = BatchPlan(**state["plan"])
        if config["base_batch_size"] != self.base_batch_size:
            raise ValueError(f"state has base_batch_size={config['base_batch_size']}, this controller {self.base_batch_size}")
        self.plan = plan
        self.b_simple = float(state["b_simple"])
        self.steps = int(state["steps"])
        self.examples = int(state["examples"])
        self.scale_invariant_steps = float(state["scale_invariant_steps"])
        self.decisions = [dict(d) for d in state["decisions"]]
        self.step_time_model.load_state_dict(state["step_time_model"])
