"""Bias-corrected exponential moving average with a time constant in examples."""

from __future__ import annotations

import math

__all__ = ["ExampleEMA"]


class ExampleEMA:
    r"""Moving average whose memory is measured in examples, not steps.

    A step that consumed ``B`` examples decays the average by ``β = exp(−B/τ)`` with ``τ`` the
    time constant in examples, so changing the batch size mid-run keeps the same memory in data.
    The bias correction tracks the total weight ``w ← β w + (1−β)`` (Adam's ``1−β^t`` for a
    constant β) and reports ``avg/w``.
    """

    def __init__(self, tau_examples: float):
        if not tau_examples > 0:
            raise ValueError(f"the moving-average time constant must be > 0 examples, got {tau_examples}")
        self.tau_examples = float(tau_examples)
        self.average = 0.0
        self.weight = 0.0

    def update(self, value: float, examples: float) -> float:
        beta = math.exp(-float(examples) / self.tau_examples)
        self.average = beta * self.average + (1.0 - beta) * float(value)
        self.weight = beta * self.weight + (1.0 - beta)
        return self.value

    @property
    def value(self) -> float:
        return self.average / self.weight if self.weight > 0 else math.nan

    def state_dict(self) -> dict:
        return {"tau_examples": self.tau_examples, "average": self.average, "weight": self.weight}

    def load_state_dict(self, state: dict) -> None:
        self.tau_examples = float(state["tau_examples"])
        self.average = float(state["average"])
        self.weight = float(state["weight"])
