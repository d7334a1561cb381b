"""Fit the steps/examples trade-off of McCandlish et al. 2018 (arXiv:1812.06162, eq. 2.11).

For one target loss, a sweep gives the steps ``S_i`` needed at batch sizes ``B_i``. The model

    (S/S_min − 1)(E/E_min − 1) = 1,   E = B·S     ⇔     S(B) = S_min + E_min / B

is **linear** in ``(S_min, E_min)`` with regressors ``(1, 1/B)``. We fit it by weighted least squares with
relative errors (weights ``1/S_i²``, since steps-to-target scatter in proportion to their size), take the
standard errors from the fit's covariance ``σ̂² (XᵀWX)⁻¹`` with ``σ̂² = RSS/(n − 2)``, and propagate them to
``B_crit = E_min/S_min`` by the delta method::

    Var(B_crit)/B_crit² ≈ Var(E_min)/E_min² + Var(S_min)/S_min² − 2 Cov(S_min, E_min)/(S_min E_min).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["TradeoffFit", "fit_tradeoff"]


@dataclass
class TradeoffFit:
    """Fitted ``S_min``, ``E_min`` and ``B_crit = E_min/S_min`` of one target, with standard errors."""

    target: float | None
    s_min: float
    s_min_stderr: float
    e_min: float
    e_min_stderr: float
    b_crit: float
    b_crit_stderr: float
    n_points: int
    rms_relative_residual: float
    batch_sizes: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def steps_at(self, batch_size: float | np.ndarray) -> float | np.ndarray:
        return self.s_min + self.e_min / np.asarray(batch_size, dtype=float)

    def examples_at(self, batch_size: float | np.ndarray) -> float | np.ndarray:
        return np.asarray(batch_size, dtype=float) * self.steps_at(batch_size)

    def to_dict(self) -> dict:
        return asdict(self)


def fit_tradeoff(batch_sizes: Sequence[float], steps: Sequence[float], target: float | None = None) -> TradeoffFit:
    """Fit ``S(B) = S_min + E_min/B`` to steps-to-target ``steps`` at ``batch_sizes``.

    Needs at least two distinct batch sizes (three for standard errors). Raises ``ValueError`` on
    non-positive or non-finite input, quoting it. Warns (and records in ``.warnings``) when a fitted
    ``S_min`` or ``E_min`` is not positive, i.e. the data do not show the hyperbola.

    >>> b = [4, 16, 64, 256]; s = [100 * (1 + 32 / x) for x in b]
    >>> round(fit_tradeoff(b, s).b_crit, 6)
    32.0
    """
    batch = np.asarray(batch_sizes, dtype=float)
    steps_arr = np.asarray(steps, dtype=float)
    if batch.shape != steps_arr.shape or batch.ndim != 1:
        raise ValueError(f"batch_sizes and steps must be 1-D of equal length, got {batch.shape} and {steps_arr.shape}")
    for name, values in (("batch_sizes", batch), ("steps", steps_arr)):
        bad = values[~np.isfinite(values) | (values <= 0)]
        if bad.size:
            raise ValueError(f"{name} must be positive and finite; got {bad.tolist()!r}")
    if len(np.unique(batch)) < 2:
        raise ValueError(f"need at least two distinct batch sizes to fit S_min and E_min, got {batch.tolist()!r}")
    design = np.stack([np.ones_like(batch), 1.0 / batch], axis=1)  # [n, 2]
    weight = 1.0 / steps_arr**2
    xtw = design.T * weight  # [2, n]
    normal = xtw @ design
    coef = np.linalg.solve(normal, xtw @ steps_arr)
    s_min, e_min = float(coef[0]), float(coef[1])
    residual = (steps_arr - design @ coef) / steps_arr
    n = len(batch)
    notes: list[str] = []
    if n > 2:
        sigma_sq = float(residual @ residual) / (n - 2)
        cov = sigma_sq * np.linalg.inv(normal)
    else:
        cov = np.full((2, 2), np.nan)
        notes.append("only two batch sizes: no standard errors")
    s_var, e_var, se_cov = cov[0, 0], cov[1, 1], cov[0, 1]
    if s_min <= 0 or e_min <= 0:
        notes.append(
            f"fit gave S_min={s_min:.4g}, E_min={e_min:.4g}: the steps do not follow S_min(1 + B_crit/B) "
            "over these batch sizes (widen the range or add runs)"
        )
        warnings.warn(notes[-1], RuntimeWarning, stacklevel=2)
    b_crit = e_min / s_min if s_min != 0 else math.inf
    rel_var = e_var / e_min**2 + s_var / s_min**2 - 2 * se_cov / (s_min * e_min) if s_min and e_min else np.nan
    b_crit_stderr = abs(b_crit) * math.sqrt(max(float(rel_var), 0.0)) if np.isfinite(rel_var) else math.nan
    return TradeoffFit(
        target=target,
        s_min=s_min,
        s_min_stderr=math.sqrt(s_var) if np.isfinite(s_var) else math.nan,
        e_min=e_min,
        e_min_stderr=math.sqrt(e_var) if np.isfinite(e_var) else math.nan,
        b_crit=b_crit,
        b_crit_stderr=b_crit_stderr,
        n_points=n,
        rms_relative_residual=float(math.sqrt(np.mean(residual**2))),
        batch_sizes=batch.tolist(),
        steps=steps_arr.tolist(),
        warnings=notes,
    )
