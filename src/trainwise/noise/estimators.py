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
denominator separately and divide the averages (:func:`ratio_of_means`), with Fieller's interval
(:func:`fieller_interval`), which stays honest when the denominator mean is noisy. On a single step either
estimate can be negative: that is sampling noise, kept as information, never clipped.

The same identity holds with a Hessian between the vectors, ``E[G_Bᵀ H G_B] = GᵀHG + tr(HΣ)/B``,
which gives ``GᵀHG`` and ``tr(HΣ)`` and with them ``B_noise = tr(HΣ)/GᵀHG``,
``ε_max = |G|²/GᵀHG`` and ``ΔL_max = |G|⁴/(2 GᵀHG)``.

All functions accept Python floats, NumPy arrays or torch tensors.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np

from trainwise.noise.result import Measured

__all__ = [
    "grad_sq_norm_estimate",
    "trace_sigma_estimate",
    "effective_small_batch",
    "ratio_of_means",
    "fieller_interval",
    "t_critical",
    "PairedMeans",
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


def t_critical(level: float, dof: int) -> float:
    r"""Two-sided Student-t critical value ``t`` with ``P(|T_ν| ≤ t) = level`` for ``ν = dof``.

    Exact for integer ``ν ≤ 2000`` from the finite series of Abramowitz & Stegun 26.7.3–4 for
    ``A(t|ν) = P(|T_ν| ≤ t)`` (with ``θ = atan(t/√ν)``), inverted by bisection; above that the
    Cornish–Fisher expansion A&S 26.7.5 in the normal quantile (error far below 1e-6 there).

    >>> round(t_critical(0.95, 7), 4)
    2.3646
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if isinstance(dof, bool) or not isinstance(dof, (int, np.integer)) or dof < 1:
        raise ValueError(f"dof must be a positive integer, got {dof!r}")
    return _t_critical(float(level), int(dof))


@functools.lru_cache(maxsize=256)
def _t_critical(level: float, dof: int) -> float:
    if dof > 2000:
        x = _normal_quantile(0.5 + level / 2)
        g1 = (x**3 + x) / 4
        g2 = (5 * x**5 + 16 * x**3 + 3 * x) / 96
        g3 = (3 * x**7 + 19 * x**5 + 17 * x**3 - 15 * x) / 384
        return x + g1 / dof + g2 / dof**2 + g3 / dof**3
    low, high = 0.0, 1.0
    while _t_two_sided_mass(high, dof) < level:
        high *= 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if _t_two_sided_mass(mid, dof) < level:
            low = mid
        else:
            high = mid
        if high - low <= 1e-13 * high:
            break
    return 0.5 * (low + high)


def _t_two_sided_mass(t: float, dof: int) -> float:
    """``A(t|ν) = P(|T_ν| ≤ t)`` by A&S 26.7.3 (ν odd) and 26.7.4 (ν even)."""
    theta = math.atan(t / math.sqrt(dof))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if dof % 2 == 0:  # sinθ (1 + cos²θ/2 + 1·3/(2·4) cos⁴θ + … + 1·3⋯(ν−3)/(2·4⋯(ν−2)) cos^{ν−2}θ)
        term, total = 1.0, 1.0
        for k in range(1, dof // 2):
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        return sin * total
    if dof == 1:
        return 2 * theta / math.pi
    # (2/π)(θ + sinθ cosθ (1 + 2/3 cos²θ + 2·4/(3·5) cos⁴θ + … + 2·4⋯(ν−3)/(3·5⋯(ν−2)) cos^{ν−3}θ))
    term, total = 1.0, 1.0
    for k in range(1, (dof - 1) // 2):
        term *= cos2 * (2 * k) / (2 * k + 1)
        total += term
    return 2 / math.pi * (theta + sin * math.cos(theta) * total)


def _normal_quantile(p: float) -> float:
    """Standard normal quantile by bisection on ``erf`` (only used for huge ``dof``)."""
    low, high = -40.0, 40.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def fieller_interval(
    x_mean: float, y_mean: float, var_x_mean: float, var_y_mean: float, cov_xy_mean: float, t: float
) -> tuple[float, float] | None:
    r"""Fieller's confidence interval for ``R = E[x]/E[y]`` from paired means; ``None`` when unbounded.

    With ``x̄, ȳ`` the means and ``v_xx, v_yy, v_xy`` the (estimated) variances and covariance *of
    the means*, ``x̄ − Rȳ`` has variance ``v_xx − 2R v_xy + R² v_yy``; the interval is every ``R``
    the t-test of ``x̄ − Rȳ = 0`` does not reject:

    .. math::
        (\bar x - R\bar y)^2 \le t^2 (v_{xx} - 2R v_{xy} + R^2 v_{yy})
        \iff a R^2 - 2bR + c \le 0,

    ``a = ȳ² − t²v_yy``, ``b = x̄ȳ − t²v_xy``, ``c = x̄² − t²v_xx``. When ``a > 0`` (the denominator
    is significantly non-zero, ``|ȳ|/√v_yy > t``) this is the bounded interval
    ``[(b − √(b² − ac))/a, (b + √(b² − ac))/a]``, which contains ``x̄/ȳ``; otherwise the set is
    unbounded (the whole line, or the line minus an interval) and the ratio is not resolved.
    With ``n`` i.i.d. bivariate-normal pairs, the sample (co)variances ``/n`` and ``t`` the
    ``t_{n−1}`` critical value, the coverage is exact (Fieller 1954) — unlike the delta method,
    whose interval ``x̄/ȳ ± t·se`` under-covers when ``ȳ`` is noisy.
    """
    a = y_mean**2 - t**2 * var_y_mean
    if not a > 0:
        return None
    b = x_mean * y_mean - t**2 * cov_xy_mean
    c = x_mean**2 - t**2 * var_x_mean
    root = math.sqrt(max(b * b - a * c, 0.0))
    return (b - root) / a, (b + root) / a


def _ratio_from_moments(
    n: int, x_mean: float, y_mean: float, s_xx: float, s_yy: float, s_xy: float,
    scale: float, method: str, level: float, positive: bool,
) -> Measured:
    """:func:`ratio_of_means` from ``n`` and the sample means, variances and covariance (ddof=1)."""
    ratio = x_mean / y_mean if y_mean != 0 else math.copysign(math.inf, x_mean) if x_mean else math.nan
    value = float(scale * ratio)
    if n < 2 or not math.isfinite(ratio):
        low_high = (-math.inf, math.inf) if method == "fieller" else (None, None)
        return Measured(value, math.inf, n, *low_high, positive=positive)
    if method == "delta":
        var = (s_xx - 2 * ratio * s_xy + ratio**2 * s_yy) / (n * y_mean**2)
        return Measured(value, float(abs(scale) * math.sqrt(max(var, 0.0))), n, positive=positive)
    t = _t_critical(level, n - 1)
    bounds = fieller_interval(x_mean, y_mean, s_xx / n, s_yy / n, s_xy / n, t)
    if bounds is None:
        return Measured(value, math.inf, n, -math.inf, math.inf, positive=positive)
    low, high = sorted((scale * bounds[0], scale * bounds[1]))
    return Measured(value, float((high - low) / (2 * t)), n, float(low), float(high), positive=positive)


_RATIO_METHODS = ("fieller", "delta")


def _check_ratio_args(method: str, level: float) -> None:
    if method not in _RATIO_METHODS:
        raise ValueError(f"method must be one of {_RATIO_METHODS}, got {method!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


def ratio_of_means(
    numerator_samples,
    denominator_samples,
    scale: float = 1.0,
    *,
    method: str = "fieller",
    level: float = 0.95,
    positive: bool = False,
) -> Measured:
    r"""``R = scale · x̄/ȳ`` for paired samples ``(x_i, y_i)``, with an interval that stays honest.

    ``method="fieller"`` (default): :func:`fieller_interval` at ``level`` with the ``t_{n−1}``
    critical value, stored as ``low``/``high``; ``stderr`` is its half-width over ``t``,
    ``(high − low)/(2t)``, which tends to the delta-method value when ``ȳ`` is well resolved and
    grows without bound as ``ȳ`` becomes indistinguishable from zero. When the interval is
    unbounded, ``low = −inf``, ``high = inf`` and ``stderr = inf``: the ratio is not resolved.

    ``method="delta"``: the first-order standard error
    ``Var(R) ≈ (s_x² − 2R s_xy + R² s_y²) / (n ȳ²)`` and no stored interval (the old behaviour;
    it under-covers when the denominator is noisy).

    ``positive`` marks a quantity that must be positive (``B_simple``, ``B_noise``, ``ε_max``):
    :attr:`Measured.resolved` is then false for a non-positive value.
    """
    _check_ratio_args(method, level)
    x = np.asarray(numerator_samples, dtype=np.float64)
    y = np.asarray(denominator_samples, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"numerator and denominator samples differ in shape: {x.shape} vs {y.shape}")
    n = x.size
    if n == 0:
        return Measured(math.nan, math.nan, 0, positive=positive)
    if n > 1:
        cov = np.cov(np.stack([x.ravel(), y.ravel()]), ddof=1)
        s_xx, s_yy, s_xy = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
    else:
        s_xx = s_yy = s_xy = math.nan
    return _ratio_from_moments(n, float(x.mean()), float(y.mean()), s_xx, s_yy, s_xy, scale, method, level, positive)


class PairedMeans:
    """Running means, variances and covariance of paired samples ``(x_i, y_i)`` (Welford updates).

    ``add`` is O(1), so a stopping rule can ask for :meth:`ratio` after every sample;
    ``PairedMeans`` fed ``x`` and ``y`` gives the same :meth:`ratio` as
    :func:`ratio_of_means(x, y) <ratio_of_means>` (up to rounding).
    """

    def __init__(self) -> None:
        self.n = 0
        self.x_mean = self.y_mean = 0.0
        self._m_xx = self._m_yy = self._m_xy = 0.0  # sums of centred products

    def add(self, x: float, y: float) -> None:
        self.n += 1
        dx = x - self.x_mean
        dy = y - self.y_mean
        self.x_mean += dx / self.n
        self.y_mean += dy / self.n
        self._m_xx += dx * (x - self.x_mean)
        self._m_yy += dy * (y - self.y_mean)
        self._m_xy += dx * (y - self.y_mean)

    def ratio(self, scale: float = 1.0, *, method: str = "fieller", level: float = 0.95, positive: bool = False) -> Measured:
        _check_ratio_args(method, level)
        if self.n == 0:
            return Measured(math.nan, math.nan, 0, positive=positive)
        dof = max(self.n - 1, 1)
        return _ratio_from_moments(self.n, self.x_mean, self.y_mean, self._m_xx / dof, self._m_yy / dof,
                                   self._m_xy / dof, scale, method, level, positive)


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
