r"""Unbiased estimators of the gradient noise scale (McCandlish et al. 2018, Appendix A).

Notation: ``G`` is the true gradient, ``Σ`` the per-example gradient covariance, ``H`` the Hessian,
and ``G_B`` the mean gradient over a batch of ``B`` i.i.d. examples, so that

.. math::  \mathbb{E}|G_B|^2 = |G|^2 + \operatorname{tr}(\Sigma)/B .

Given squared norms measured at two batch sizes ``B_small < B_big`` this linear relation is solved
for its two unknowns; each solution is unbiased:

.. math::
    |G|^2 \approx \frac{B_{big}|G_{B_{big}}|^2 - B_{small}|G_{B_{small}}|^2}{B_{big} - B_{small}},
    \qquad
    \operatorname{tr}(\Sigma) \approx \frac{|G_{B_{small}}|^2 - |G_{B_{big}}|^2}{1/B_{small} - 1/B_{big}} .

Their ratio ``B_simple = tr(Σ)/|G|²`` is *not* unbiased, so callers average numerator and
denominator separately and divide the averages (:func:`ratio_of_means`). On a single step either
estimate can be negative: that is sampling noise, kept as information, never clipped.

The same identity holds with a Hessian between the vectors, ``E[G_Bᵀ H G_B] = GᵀHG + tr(HΣ)/B``,
which gives ``GᵀHG`` and ``tr(HΣ)`` and with them ``B_noise = tr(HΣ)/GᵀHG``,
``ε_max = |G|²/GᵀHG`` and ``ΔL_max = |G|⁴/(2 GᵀHG)``.

All functions accept Python floats, NumPy arrays or torch tensors.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from trainwise.noise.result import Measured

__all__ = [
    "grad_sq_norm_estimate",
    "trace_sigma_estimate",
    "effective_small_batch",
    "ratio_of_means",
    "mean_of",
    "delta_l_max_of_means",
]


def _check_sizes(b_small, b_big) -> None:
    if isinstance(b_small, (int, float)) and isinstance(b_big, (int, float)):
        if not (0 < b_small < b_big):
            raise ValueError(f"need 0 < b_small < b_big, got b_small={b_small}, b_big={b_big}")


def grad_sq_norm_estimate(b_small, sq_norm_small, b_big, sq_norm_big):
    r"""Unbiased ``|G|²`` from ``|G_small|²`` at ``B_small`` and ``|G_big|²`` at ``B_big``.

    ``|G|² ≈ (B_big |G_big|² − B_small |G_small|²) / (B_big − B_small)``.

    >>> grad_sq_norm_estimate(1, 11.0, 10, 2.0)  # |G|²=1, tr Σ=10
    1.0
    """
    _check_sizes(b_small, b_big)
    return (b_big * sq_norm_big - b_small * sq_norm_small) / (b_big - b_small)


def trace_sigma_estimate(b_small, sq_norm_small, b_big, sq_norm_big):
    r"""Unbiased ``tr(Σ)``: ``(|G_small|² − |G_big|²) / (1/B_small − 1/B_big)``.

    >>> trace_sigma_estimate(1, 11.0, 10, 2.0)
    10.0
    """
    _check_sizes(b_small, b_big)
    return (sq_norm_small - sq_norm_big) / (1.0 / b_small - 1.0 / b_big)


def effective_small_batch(micro_batch_sizes: Sequence[float]) -> float:
    r"""The ``B_small`` that makes the mean of micro-batch squared norms unbiased.

    With micro-batches of sizes ``b_j``, ``E[mean_j |G_{b_j}|²] = |G|² + tr(Σ)·mean_j(1/b_j)``,
    so the mean behaves like one batch of size ``1/mean_j(1/b_j)`` (the harmonic mean).
    """
    sizes = [float(b) for b in micro_batch_sizes]
    if not sizes or min(sizes) <= 0:
        raise ValueError(f"micro-batch sizes must be positive, got {list(micro_batch_sizes)}")
    return len(sizes) / sum(1.0 / b for b in sizes)


def mean_of(samples) -> Measured:
    """Sample mean with its standard error (``s/√n``)."""
    x = np.asarray(samples, dtype=np.float64)
    n = x.size
    if n == 0:
        return Measured(math.nan, math.nan, 0)
    stderr = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return Measured(float(x.mean()), stderr, n)


def ratio_of_means(numerator_samples, denominator_samples, scale: float = 1.0) -> Measured:
    r"""``scale · mean(x)/mean(y)`` with a delta-method standard error.

    For paired samples ``(x_i, y_i)`` and ``R = x̄/ȳ``:
    ``Var(R) ≈ (s_x² − 2R s_xy + R² s_y²) / (n ȳ²)``.
    """
    x = np.asarray(numerator_samples, dtype=np.float64)
    y = np.asarray(denominator_samples, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"numerator and denominator samples differ in shape: {x.shape} vs {y.shape}")
    n = x.size
    if n == 0:
        return Measured(math.nan, math.nan, 0)
    x_mean, y_mean = x.mean(), y.mean()
    ratio = x_mean / y_mean if y_mean != 0 else math.copysign(math.inf, x_mean) if x_mean else math.nan
    if n < 2 or not math.isfinite(ratio):
        return Measured(float(scale * ratio), math.inf, n)
    cov = np.cov(np.stack([x, y]), ddof=1)
    var = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / (n * y_mean**2)
    return Measured(float(scale * ratio), float(abs(scale) * math.sqrt(max(var, 0.0))), n)


def delta_l_max_of_means(grad_sq_norm_samples, ghg_samples) -> Measured:
    r"""``ΔL_max = |G|⁴ / (2 GᵀHG)`` from per-round samples.

    ``|G|⁴`` uses the U-statistic ``Σ_{i≠j} x_i x_j / (n(n−1))`` so the square of the mean does not
    add ``Var(x̄)``; the standard error is by the delta method.
    """
    x = np.asarray(grad_sq_norm_samples, dtype=np.float64)
    y = np.asarray(ghg_samples, dtype=np.float64)
    n = x.size
    if n == 0:
        return Measured(math.nan, math.nan, 0)
    x_mean, y_mean = x.mean(), y.mean()
    g4 = (x.sum() ** 2 - (x**2).sum()) / (n * (n - 1)) if n > 1 else x_mean**2
    value = g4 / (2 * y_mean) if y_mean != 0 else math.nan
    if n < 2 or not math.isfinite(value):
        return Measured(float(value), math.inf, n)
    grad = np.array([x_mean / y_mean, -(x_mean**2) / (2 * y_mean**2)])
    var = grad @ np.cov(np.stack([x, y]), ddof=1) @ grad / n
    return Measured(float(value), float(math.sqrt(max(var, 0.0))), n)
