"""Learning-rate scaling rules for a batch-size change ``B → κB``.

* SGD, linear rule (Goyal et al. 2017, arXiv:1706.02677): ``η → κ η`` (use a warm-up).
* Adam, square-root rule (Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive
  Gradient Algorithms", arXiv:2205.10287): ``η → √κ η``, ``1 − β1 → κ (1 − β1)``,
  ``1 − β2 → κ (1 − β2)``, ``ε → ε / √κ``. Valid while ``κ(1 − β) < 1``.
* Surge (Li et al. 2024, arXiv:2405.14578): for Adam-style optimizers the best learning rate
  first rises with the batch size and then *falls* once the batch size passes the gradient noise
  scale ``B_noise``; scaling the LR up past it overshoots. :func:`check_surge` warns.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

__all__ = ["SurgeWarning", "AdamHyperparameters", "linear_scaling", "sqrt_scaling", "adam_sqrt_scaling", "check_surge"]


class SurgeWarning(UserWarning):
    """A batch size passed the measured noise scale: the Adam LR scaling rule no longer holds."""


def _positive(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def linear_scaling(lr: float, base_batch_size: float, new_batch_size: float) -> float:
    """SGD: ``η_new = η · (B_new / B_base)``."""
    lr = _positive("lr", lr)
    return lr * _positive("new_batch_size", new_batch_size) / _positive("base_batch_size", base_batch_size)


def sqrt_scaling(lr: float, base_batch_size: float, new_batch_size: float) -> float:
    """Adam-style: ``η_new = η · sqrt(B_new / B_base)``."""
    lr = _positive("lr", lr)
    return lr * math.sqrt(_positive("new_batch_size", new_batch_size) / _positive("base_batch_size", base_batch_size))


@dataclass(frozen=True)
class AdamHyperparameters:
    lr: float
    betas: tuple[float, float]
    eps: float


def adam_sqrt_scaling(
    lr: float,
    base_batch_size: float,
    new_batch_size: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    *,
    noise_scale: float | None = None,
) -> AdamHyperparameters:
    """Malladi et al.'s square-root rule for Adam with ``κ = B_new / B_base``.

    ``η → √κ η``, ``β_i → 1 − κ(1 − β_i)``, ``ε → ε/√κ``. Raises ``ValueError`` when
    ``κ(1 − β_i) ≥ 1`` (the rule leaves its range). With ``noise_scale`` (a measured ``B_noise``
    or ``B_simple`` in the same units as the batch sizes) it also calls :func:`check_surge`.

    >>> adam_sqrt_scaling(1e-3, 256, 1024, betas=(0.9, 0.999), eps=1e-8).lr
    0.002
    """
    kappa = _positive("new_batch_size", new_batch_size) / _positive("base_batch_size", base_batch_size)
    lr = _positive("lr", lr)
    eps = _positive("eps", eps)
    new_betas = []
    for i, beta in enumerate(betas):
        if not (0.0 <= beta < 1.0):
            raise ValueError(f"betas[{i}] must be in [0, 1), got {beta!r}")
        one_minus = kappa * (1.0 - beta)
        if one_minus >= 1.0:
            raise ValueError(
                f"square-root rule out of range: κ(1 − β{i + 1}) = {kappa:g} × {1 - beta:g} = {one_minus:g} ≥ 1 "
                f"(batch {base_batch_size:g} → {new_batch_size:g}); use a smaller batch-size change"
            )
        new_betas.append(1.0 - one_minus)
    if noise_scale is not None:
        check_surge(new_batch_size, noise_scale, base_batch_size=base_batch_size, stacklevel=3)
    return AdamHyperparameters(lr=lr * math.sqrt(kappa), betas=(new_betas[0], new_betas[1]), eps=eps / math.sqrt(kappa))


def check_surge(new_batch_size: float, noise_scale: float, *, base_batch_size: float | None = None,
                stacklevel: int = 2) -> bool:
    """Warn (:class:`SurgeWarning`) when ``new_batch_size`` exceeds the measured noise scale.

    Past ``B_noise`` the Adam-optimal LR decreases with the batch size (the surge
    phenomenon), so a square-root (or linear) scale-up overshoots; keep the LR near its value
    at ``B ≈ B_noise`` or re-tune. ``noise_scale`` is a float in the same units as the batch
    sizes (e.g. ``b_simple`` from a trainwise noise monitor; ``B_simple`` overestimates
    ``B_noise`` by 2–5×, so this warning is conservative). Returns True when it warned.
    """
    new_batch_size = _positive("new_batch_size", new_batch_size)
    try:
        noise = float(noise_scale)
    except (TypeError, ValueError):
        raise ValueError(f"noise_scale must be a number, got {noise_scale!r}") from None
    if math.isnan(noise):
        raise ValueError(f"noise_scale is NaN ({noise_scale!r}); measure it over more steps")
    if noise <= 0:
        warnings.warn(
            f"noise_scale={noise:g} is not positive (a noisy estimate); cannot check the surge condition",
            RuntimeWarning, stacklevel=stacklevel,
        )
        return False
    if new_batch_size <= noise:
        return False
    crossed = ""
    if base_batch_size is not None and _positive("base_batch_size", base_batch_size) <= noise:
        crossed = f" (it crosses it: the base batch {base_batch_size:g} is below)"
    warnings.warn(
        f"batch size {new_batch_size:g} exceeds the measured noise scale {noise:g}{crossed}: past it the "
        "best Adam learning rate falls with batch size (surge, Li et al. 2024); do not scale the LR up further, re-tune",
        SurgeWarning, stacklevel=stacklevel,
    )
    return True
