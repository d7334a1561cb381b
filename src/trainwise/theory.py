"""Closed forms of McCandlish, Kaplan, Amodei et al. 2018, "An Empirical Model of Large-Batch Training".

Reference: arXiv:1812.06162, §2 and Appendix A (see also ``docs/science.md`` §1).

Notation (the paper's symbols, with the argument names used here):

============  ======================  =====================================================
symbol        argument                meaning
============  ======================  =====================================================
``B``         ``batch_size``          examples (or tokens) per optimizer step
``|G|²``      ``grad_sq_norm``        squared norm of the true gradient
``tr(Σ)``     ``trace_sigma``         trace of the per-example gradient covariance
``GᵀHG``      ``ghg``                 curvature along the gradient
``tr(HΣ)``    ``trace_h_sigma``       Hessian-weighted noise
``ε_max``     ``eps_max``             best learning rate at infinite batch, ``|G|²/GᵀHG``
``ΔL_max``    ``delta_l_max``         best loss decrease per step at infinite batch, ``|G|⁴/(2GᵀHG)``
``B_noise``   ``b_noise``             ``tr(HΣ)/GᵀHG``
``B_simple``  ``b_simple``            ``tr(Σ)/|G|²`` (``B_noise`` when ``H ∝ I``)
``S_min``     ``s_min``               fewest optimizer steps to reach a loss (``B → ∞``)
``E_min``     ``e_min``               fewest examples to reach a loss (``B → 0``)
``B_crit``    ``b_crit``              ``E_min/S_min``
============  ======================  =====================================================

The second-order model of one SGD step with batch ``B`` is::

    E[L(θ − ε G_B)] ≈ L − ε|G|² + ½ ε² (GᵀHG + tr(HΣ)/B)

whose minimiser over ``ε`` gives ``ε_opt(B) = ε_max/(1 + B_noise/B)`` and
``ΔL_opt(B) = ΔL_max/(1 + B_noise/B)``. Integrated over training this yields the steps/examples
trade-off ``(S/S_min − 1)(E/E_min − 1) = 1`` with ``E = B·S``, i.e.::

    S(B) = S_min (1 + B_crit/B),   E(B) = E_min (1 + B/B_crit).

All functions accept floats or numpy arrays (broadcasting) and return the same.
"""

from __future__ import annotations

from typing import Union

import numpy as np

__all__ = [
    "b_noise",
    "b_simple",
    "eps_max",
    "delta_l_max",
    "eps_opt",
    "delta_l_opt",
    "steps_at",
    "examples_at",
    "steps_examples_tradeoff",
    "b_crit",
    "s_min_from",
    "e_min_from",
    "training_efficiency",
    "temperature",
    "b_noise_at_temperature",
]

ArrayLike = Union[float, np.ndarray]


def _positive(name: str, value: ArrayLike) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return array


def _out(array: np.ndarray) -> ArrayLike:
    return float(array) if np.ndim(array) == 0 else array


def b_simple(trace_sigma: ArrayLike, grad_sq_norm: ArrayLike) -> ArrayLike:
    """Simple noise scale ``B_simple = tr(Σ)/|G|²`` (eq. 2.9); equals ``B_noise`` when ``H ∝ I``."""
    return _out(np.asarray(trace_sigma, dtype=float) / _positive("grad_sq_norm", grad_sq_norm))


def b_noise(trace_h_sigma: ArrayLike, ghg: ArrayLike) -> ArrayLike:
    """Noise scale ``B_noise = tr(HΣ)/GᵀHG`` (eq. 2.8)."""
    return _out(np.asarray(trace_h_sigma, dtype=float) / _positive("ghg", ghg))


def eps_max(grad_sq_norm: ArrayLike, ghg: ArrayLike) -> ArrayLike:
    """Best learning rate with a noiseless gradient, ``ε_max = |G|²/GᵀHG`` (eq. 2.7)."""
    return _out(np.asarray(grad_sq_norm, dtype=float) / _positive("ghg", ghg))


def delta_l_max(grad_sq_norm: ArrayLike, ghg: ArrayLike) -> ArrayLike:
    """Best loss decrease per step with a noiseless gradient, ``ΔL_max = |G|⁴/(2 GᵀHG)``."""
    grad_sq_norm = np.asarray(grad_sq_norm, dtype=float)
    return _out(grad_sq_norm**2 / (2.0 * _positive("ghg", ghg)))


def eps_opt(batch_size: ArrayLike, eps_max: ArrayLike, b_noise: ArrayLike) -> ArrayLike:
    """Optimal SGD step at batch ``B``: ``ε_opt(B) = ε_max/(1 + B_noise/B)`` (eq. 2.6).

    >>> eps_opt(100.0, eps_max=0.2, b_noise=100.0)
    0.1
    """
    batch = _positive("batch_size", batch_size)
    return _out(np.asarray(eps_max, dtype=float) / (1.0 + np.asarray(b_noise, dtype=float) / batch))


def delta_l_opt(batch_size: ArrayLike, delta_l_max: ArrayLike, b_noise: ArrayLike) -> ArrayLike:
    """Best loss decrease of one step at batch ``B``: ``ΔL_opt(B) = ΔL_max/(1 + B_noise/B)`` (eq. 2.7)."""
    batch = _positive("batch_size", batch_size)
    return _out(np.asarray(delta_l_max, dtype=float) / (1.0 + np.asarray(b_noise, dtype=float) / batch))


def steps_at(batch_size: ArrayLike, s_min: ArrayLike, b_crit: ArrayLike) -> ArrayLike:
    """Optimizer steps to reach a loss at batch ``B``: ``S(B) = S_min (1 + B_crit/B)`` (eq. 2.11).

    >>> steps_at(1000.0, s_min=500.0, b_crit=1000.0)   # at B_crit, twice the minimum
    1000.0
    """
    batch = _positive("batch_size", batch_size)
    return _out(np.asarray(s_min, dtype=float) * (1.0 + np.asarray(b_crit, dtype=float) / batch))


def examples_at(batch_size: ArrayLike, e_min: ArrayLike, b_crit: ArrayLike) -> ArrayLike:
    """Examples to reach a loss at batch ``B``: ``E(B) = E_min (1 + B/B_crit)`` (eq. 2.11)."""
    batch = _positive("batch_size", batch_size)
    return _out(np.asarray(e_min, dtype=float) * (1.0 + batch / _positive("b_crit", b_crit)))


def steps_examples_tradeoff(examples: ArrayLike, s_min: float, e_min: float) -> ArrayLike:
    """Steps needed when spending ``E`` examples, from ``(S/S_min − 1)(E/E_min − 1) = 1``.

    ``S = S_min (1 + 1/(E/E_min − 1)) = S_min·E/(E − E_min)``, defined for ``E > E_min``.

    >>> steps_examples_tradeoff(2000.0, s_min=10.0, e_min=1000.0)
    20.0
    """
    examples = np.asarray(examples, dtype=float)
    if np.any(examples <= e_min):
        raise ValueError(f"examples must exceed E_min={e_min!r}; got {examples!r}")
    return _out(s_min * examples / (examples - e_min))


def b_crit(s_min: ArrayLike, e_min: ArrayLike) -> ArrayLike:
    """Critical batch size ``B_crit = E_min/S_min`` (eq. 2.12): the batch where ``S = 2 S_min`` and ``E = 2 E_min``."""
    return _out(np.asarray(e_min, dtype=float) / _positive("s_min", s_min))


def s_min_from(steps: ArrayLike, batch_size: ArrayLike, b_crit: ArrayLike) -> ArrayLike:
    """Adjust a run's steps to the minimum: ``S_min = S/(1 + B_crit/B)`` (Kaplan et al. 2020, eq. 5.4)."""
    batch = _positive("batch_size", batch_size)
    return _out(np.asarray(steps, dtype=float) / (1.0 + np.asarray(b_crit, dtype=float) / batch))


def e_min_from(examples: ArrayLike, batch_size: ArrayLike, b_crit: ArrayLike) -> ArrayLike:
    """Adjust a run's examples (or compute) to the minimum: ``E_min = E/(1 + B/B_crit)`` (Kaplan et al. 2020, eq. 5.5)."""
    batch = _positive("batch_size", batch_size)
    return _out(np.asarray(examples, dtype=float) / (1.0 + batch / _positive("b_crit", b_crit)))


def training_efficiency(batch_size: ArrayLike, b_crit: ArrayLike) -> dict[str, ArrayLike]:
    """Where ``B`` sits on the trade-off: ``S/S_min = 1 + B_crit/B`` and ``E/E_min = 1 + B/B_crit``.

    Returns ``{"steps_over_min": ..., "examples_over_min": ...}``; at ``B = B_crit`` both are 2.
    """
    batch = _positive("batch_size", batch_size)
    crit = _positive("b_crit", b_crit)
    return {"steps_over_min": _out(1.0 + crit / batch), "examples_over_min": _out(1.0 + batch / crit)}


def temperature(lr: ArrayLike, batch_size: ArrayLike) -> ArrayLike:
    """SGD temperature ``T = ε/B`` (§2.3): for small batches the dynamics depend on ``ε`` and ``B`` only through ``T``."""
    return _out(np.asarray(lr, dtype=float) / _positive("batch_size", batch_size))


def b_noise_at_temperature(b_noise_ref: ArrayLike, temperature_ref: ArrayLike, temperature_new: ArrayLike) -> ArrayLike:
    """Noise scale expected after changing the temperature: ``B_noise ∝ 1/T`` (§2.3, Fig. 7).

    A noise scale measured at temperature ``T_ref`` read at ``T_new`` is ``B_noise · T_ref/T_new``; decaying the
    learning rate by 10× grows the measured noise scale about 10×.
    """
    return _out(
        np.asarray(b_noise_ref, dtype=float)
        * _positive("temperature_ref", temperature_ref)
        / _positive("temperature_new", temperature_new)
    )
