"""Result types of noise-scale measurements."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Measured", "NoiseScaleResult"]


@dataclass(frozen=True)
class Measured:
    """A measured quantity: ``value`` with its ``stderr`` (standard error) over ``n`` samples.

    ``float(m)`` gives the value; :meth:`interval` a normal-approximation confidence interval.
    """

    value: float
    stderr: float
    n: int = 0

    def __float__(self) -> float:
        return float(self.value)

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        return (self.value - z * self.stderr, self.value + z * self.stderr)

    @property
    def relative_error(self) -> float:
        return abs(self.stderr / self.value) if self.value else math.inf

    def scaled(self, factor: float) -> "Measured":
        return Measured(self.value * factor, self.stderr * abs(factor), self.n)

    def to_dict(self) -> dict[str, float]:
        return {"value": _json_float(self.value), "stderr": _json_float(self.stderr), "n": self.n}

    def __format__(self, spec: str) -> str:
        spec = spec or ".4g"
        return f"{format(self.value, spec)} ± {format(self.stderr, spec)}"


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


_QUANTITIES = (
    "b_simple",
    "b_noise",
    "grad_sq_norm",
    "trace_sigma",
    "ghg",
    "trace_h_sigma",
    "eps_max",
    "delta_l_max",
)


@dataclass(frozen=True)
class NoiseScaleResult:
    r"""Noise-scale quantities measured at fixed parameters (McCandlish et al. 2018).

    Attributes are named after the quantities: ``b_simple = tr(Σ)/|G|²``,
    ``b_noise = tr(HΣ)/GᵀHG``, ``grad_sq_norm = |G|²``, ``trace_sigma = tr(Σ)``, ``ghg = GᵀHG``,
    ``trace_h_sigma = tr(HΣ)``, ``eps_max = |G|²/GᵀHG``, ``delta_l_max = |G|⁴/(2GᵀHG)``.
    Hessian quantities are ``None`` when measured with ``hessian=False``.

    Batch sizes (``b_simple``, ``b_noise``) are in ``unit``: ``"examples"``, or ``"tokens"``
    (examples × ``tokens_per_example``); ``trace_sigma`` and ``trace_h_sigma`` are then per token
    (× ``tokens_per_example``) so that the ratios stay consistent.
    """

    b_simple: Measured
    grad_sq_norm: Measured
    trace_sigma: Measured
    b_noise: Measured | None = None
    ghg: Measured | None = None
    trace_h_sigma: Measured | None = None
    eps_max: Measured | None = None
    delta_l_max: Measured | None = None
    examples: int = 0
    rounds: int = 0
    unit: str = "examples"
    tokens_per_example: float | None = None
    b_small: float = 1.0
    b_big: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in _QUANTITIES:
            value = getattr(self, name)
            out[name] = value.to_dict() if value is not None else None
        out.update(
            examples=self.examples,
            rounds=self.rounds,
            unit=self.unit,
            tokens_per_example=self.tokens_per_example,
            b_small=self.b_small,
            b_big=self.b_big,
            info=dict(self.info),
        )
        return out

    def __str__(self) -> str:
        rows = [f"{name:>14}: {getattr(self, name):.4g}" for name in _QUANTITIES if getattr(self, name) is not None]
        head = f"NoiseScaleResult ({self.rounds} rounds, {self.examples} examples, unit={self.unit})"
        return "\n".join([head, *rows])


