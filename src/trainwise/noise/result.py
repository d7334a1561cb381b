"""Result types of noise-scale measurements."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Measured", "NoiseScaleResult"]


@dataclass(frozen=True)
class Measured:
    """A measured quantity: ``value`` with its ``stderr`` (standard error) over ``n`` samples.

    ``low``/``high``: a stored confidence interval (95% in
    :func:`~trainwise.noise.measure.measure_noise_scale`: Fieller's for the ratios ``B_simple``,
    ``B_noise``, ``ε_max``), ``None`` when none was computed; ``-inf``/``inf`` when it is unbounded
    (a ratio whose denominator is not significantly non-zero). For such a ratio ``stderr`` is the
    interval's half-width over its critical value, so :attr:`relative_error` is what the
    ``rel_err`` stopping rule reads. ``positive`` marks a quantity that must be positive.

    ``float(m)`` gives the value; :meth:`interval` the stored interval or a normal approximation.
    """

    value: float
    stderr: float
    n: int = 0
    low: float | None = None
    high: float | None = None
    positive: bool = False

    def __float__(self) -> float:
        return float(self.value)

    def interval(self, z: float | None = None) -> tuple[float, float]:
        """The stored ``(low, high)`` when there is one and ``z`` is not given; else ``value ± z·stderr`` (``z = 1.96``)."""
        if z is None and self.low is not None and self.high is not None:
            return (self.low, self.high)
        z = 1.96 if z is None else z
        return (self.value - z * self.stderr, self.value + z * self.stderr)

    @property
    def bounded(self) -> bool:
        """Whether the uncertainty is finite: a finite ``stderr`` and, when stored, a finite interval."""
        if self.low is not None and not math.isfinite(self.low):
            return False
        if self.high is not None and not math.isfinite(self.high):
            return False
        return math.isfinite(self.stderr)

    @property
    def resolved(self) -> bool:
        """A finite value (positive when ``positive``) with a bounded interval: safe to act on."""
        if not math.isfinite(self.value) or (self.positive and self.value <= 0):
            return False
        return self.bounded

    @property
    def relative_error(self) -> float:
        return abs(self.stderr / self.value) if self.value else math.inf

    def scaled(self, factor: float) -> "Measured":
        low = None if self.low is None else self.low * factor
        high = None if self.high is None else self.high * factor
        if factor < 0:
            low, high = high, low
        positive = self.positive and factor > 0
        return Measured(self.value * factor, self.stderr * abs(factor), self.n, low, high, positive)

    def to_dict(self) -> dict[str, float | int | bool | None]:
        """Strict JSON: non-finite numbers (an unbounded interval, an infinite stderr) become ``None``."""
        return {
            "value": _json_float(self.value),
            "stderr": _json_float(self.stderr),
            "n": self.n,
            "low": None if self.low is None else _json_float(self.low),
            "high": None if self.high is None else _json_float(self.high),
            "resolved": self.resolved,
        }

    def __format__(self, spec: str) -> str:
        spec = spec or ".4g"
        text = f"{format(self.value, spec)} ± {format(self.stderr, spec)}"
        if self.low is not None and self.high is not None:
            if math.isfinite(self.low) and math.isfinite(self.high):
                text += f" [{format(self.low, spec)}, {format(self.high, spec)}]"
            else:
                text += " [unbounded: not resolved]"
        return text


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
    Hessian quantities are ``None`` when measured with ``hessian=False``. The ratios ``b_simple``,
    ``b_noise`` and ``eps_max`` carry a 95% Fieller interval (``low``, ``high``) and
    :attr:`Measured.resolved`; ``info["stopped"]`` says why the measurement ended
    (:func:`~trainwise.noise.measure.measure_noise_scale`).

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


