r"""Which average of a run's noise scale predicts the critical batch.

McCandlish et al. (2018, §2.2 and App. D) model the loss gained per step at batch ``B`` and the optimal step as
``ΔL_max/(1 + B_noise/B)``, with ``B_noise`` changing as training goes on. Summing the steps needed to fall
from the start to a target loss,

.. math::
    S(B) = \int \Big(1 + \frac{B_{noise}}{B}\Big)\,\frac{dL}{\Delta L_{max}} = S_{min} + \frac{E_{min}}{B},
    \qquad S_{min} = \int \frac{dL}{\Delta L_{max}}, \quad E_{min} = \int B_{noise}\,\frac{dL}{\Delta L_{max}},

so the critical batch ``B_crit = E_min/S_min`` is the mean of ``B_noise`` over the steps of the
infinite-batch path (``dS_min = dL/ΔL_max``). A run at batch ``B`` spends ``dS = (1 + B_noise/B)\,dS_min``
steps at each loss, so its steps over-represent the noisy stretches; weighting step ``t`` by
``w_t = 1/(1 + B_noise(t)/B)`` undoes that:

.. math::
    \hat B_{crit} = \frac{\sum_t w_t\,B_{noise}(t)}{\sum_t w_t}.

This is neither the ratio of window averages ``Σ tr(Σ)/Σ |G|²`` (weighted by ``|G|²``, so dominated by the
first steps where the gradient is large and the noise scale small) nor the plain step average (biased towards
the late, noisy steps when ``B < B_noise``). Both readings of the same run are averaged this way:
``B_simple`` from per-step ``|G|²``, ``tr(Σ)`` gathered into short blocks, and ``B_noise`` from Hessian readings
at checkpoints, each standing for the steps nearest to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

__all__ = ["Span", "step_blocks", "checkpoint_spans", "span_weights", "s_min_weighted_mean", "weighted_mean_with_stderr",
           "noise_window_average"]


@dataclass
class Span:
    """Steps ``[start, end)`` of a run and the mean numerator/denominator of the noise scale over them
    (``tr(Σ)`` and ``|G|²`` for ``B_simple``; ``tr(HΣ)`` and ``GᵀHG`` for ``B_noise``)."""

    start: float
    end: float
    numerator: float
    denominator: float

    @property
    def length(self) -> float:
        return self.end - self.start

    @property
    def value(self) -> float:
        return self.numerator / self.denominator if self.denominator > 0 else math.inf

    def to_list(self) -> list[float]:
        return [self.start, self.end, self.numerator, self.denominator]

    @classmethod
    def from_list(cls, row: Sequence[float]) -> "Span":
        return cls(*(float(x) for x in row))


def step_blocks(steps: Sequence[int], grad_sq_norm: Sequence[float], trace_sigma: Sequence[float],
                growth: float = 1.1, min_steps: int = 4) -> list[Span]:
    """Gather per-step ``|G|²`` and ``tr(Σ)`` estimates into consecutive blocks of geometrically growing length
    (each about ``growth − 1`` of its starting step, at least ``min_steps``), averaging each quantity per block.

    Block ``k`` covers the steps ``(previous end, its last step]``, written as the span ``[first − 1, last)``
    so that spans tile the run from step 0.
    """
    if not (len(steps) == len(grad_sq_norm) == len(trace_sigma)):
        raise ValueError("steps, grad_sq_norm and trace_sigma must have the same length")
    if growth <= 1.0 or min_steps < 1:
        raise ValueError(f"need growth > 1 and min_steps >= 1, got {growth!r}, {min_steps!r}")
    blocks: list[Span] = []
    i, n = 0, len(steps)
    while i < n:
        first = steps[i]
        length = max(min_steps, math.ceil(first * (growth - 1.0)))
        j = min(n, i + length)
        if n - j < min_steps:  # do not leave a short tail block
            j = n
        g = [grad_sq_norm[k] for k in range(i, j)]
        s = [trace_sigma[k] for k in range(i, j)]
        if all(math.isfinite(x) for x in g + s):
            blocks.append(Span(first - 1, steps[j - 1], sum(s) / len(s), sum(g) / len(g)))
        i = j
    return blocks


def checkpoint_spans(readings: Sequence[tuple[float, float, float]], first_step: float = 0.0) -> list[Span]:
    """Readings ``(step, numerator, denominator)`` at checkpoints, each standing for the steps nearest to it:
    from the midpoint with the previous checkpoint (or ``first_step``) to the midpoint with the next (the last
    one's span ends at its own step and is extended by :func:`s_min_weighted_mean`'s window if needed)."""
    readings = sorted(readings)
    spans = []
    for k, (step, num, den) in enumerate(readings):
        start = first_step if k == 0 else 0.5 * (readings[k - 1][0] + step)
        end = 0.5 * (step + readings[k + 1][0]) if k + 1 < len(readings) else step
        spans.append(Span(start, max(end, start), num, den))
    return spans


def _merge_nonpositive(spans: list[Span]) -> list[Span]:
    """Pool neighbouring spans (length-weighted means) until every denominator is positive: a non-positive
    ``|G|²`` or ``GᵀHG`` estimate means the true value is small next to its noise, so the noise scale there is
    large; dropping such spans would bias the average low."""
    out = [Span(s.start, s.end, s.numerator, s.denominator) for s in spans if s.length > 0]
    while len(out) > 1:
        bad = [k for k, s in enumerate(out) if not s.denominator > 0]
        if not bad:
            break
        k = bad[0]
        # merge with the neighbour whose denominator is smaller (the noisier side), or the only one
        if k == 0:
            m = 1
        elif k == len(out) - 1:
            m = k - 1
        else:
            m = k - 1 if out[k - 1].denominator <= out[k + 1].denominator else k + 1
        a, b = sorted((k, m))
        left, right = out[a], out[b]
        total = left.length + right.length
        pooled = Span(left.start, right.end,
                      (left.numerator * left.length + right.numerator * right.length) / total,
                      (left.denominator * left.length + right.denominator * right.length) / total)
        out[a:b + 1] = [pooled]
    return out


def span_weights(spans: Sequence[Span], batch_size: float) -> list[float]:
    """``ℓ/(1 + B̂/B)`` per span: its length in steps times the weight that maps a run at batch ``B`` onto the
    steps of the infinite-batch path (module docstring; ``B = inf`` gives plain step counts)."""
    return [span.length / (1.0 + max(span.value, 0.0) / batch_size) for span in spans]


def s_min_weighted_mean(spans: Sequence[Span], batch_size: float, first_step: float, last_step: float,
                        stretch_last: bool = True) -> dict[str, float]:
    r"""``Σ w·ℓ·B̂ / Σ w·ℓ`` over the spans clipped to ``[first_step, last_step]``, with ``ℓ`` the span's length in
    steps, ``B̂ = numerator/denominator`` and ``w = 1/(1 + B̂/B)`` (module docstring).

    Spans whose denominator is not positive are first pooled with a neighbour. The last span is stretched to
    ``last_step`` when it ends before it (unless ``stretch_last`` is false). Returns ``value`` (``nan`` when nothing is left), ``steps`` (covered),
    ``spans`` (after pooling) and ``unweighted`` (the plain step average, for comparison).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size!r}")
    clipped = []
    for k, span in enumerate(sorted(spans, key=lambda s: s.start)):
        end = span.end
        if stretch_last and k == len(spans) - 1 and end < last_step:
            end = last_step
        start, end = max(span.start, first_step), min(end, last_step)
        if end > start and math.isfinite(span.numerator) and math.isfinite(span.denominator):
            clipped.append(Span(start, end, span.numerator, span.denominator))
    pooled = _merge_nonpositive(clipped)
    if not pooled or not all(s.denominator > 0 for s in pooled):
        return {"value": math.nan, "steps": 0.0, "spans": len(pooled), "unweighted": math.nan}
    weights = span_weights(pooled, batch_size)
    values = [max(span.value, 0.0) for span in pooled]
    length = sum(span.length for span in pooled)
    return {"value": sum(w * v for w, v in zip(weights, values)) / sum(weights), "steps": length,
            "spans": len(pooled), "unweighted": sum(span.length * v for span, v in zip(pooled, values)) / length}


def weighted_mean_with_stderr(spans: Sequence[Span], batch_size: float | None, first_step: float, last_step: float,
                              pieces: int = 10) -> dict[str, float]:
    """:func:`s_min_weighted_mean` (``batch_size=None``: no weight, a plain step average) with a delete-one
    jackknife standard error over ``pieces`` consecutive stretches of spans (``nan`` with fewer than three)."""
    batch = batch_size if batch_size and batch_size > 0 else math.inf
    spans = sorted(spans, key=lambda s: s.start)
    if spans and spans[-1].end < last_step:  # stretch once, so that leaving out the last stretch does not re-stretch
        spans[-1] = Span(spans[-1].start, last_step, spans[-1].numerator, spans[-1].denominator)
    whole = s_min_weighted_mean(spans, batch, first_step, last_step)
    out = {"value": whole["value"], "stderr": math.nan, "unweighted": whole["unweighted"]}
    n = min(pieces, len(spans))
    if not math.isfinite(whole["value"]) or n < 3:
        return out
    bounds = [round(k * len(spans) / n) for k in range(n + 1)]
    leave_out = []
    for k in range(n):
        rest = spans[:bounds[k]] + spans[bounds[k + 1]:]
        value = s_min_weighted_mean(rest, batch, first_step, last_step, stretch_last=False)["value"] if rest else math.nan
        if math.isfinite(value):
            leave_out.append(value)
    m = len(leave_out)
    if m >= 3:
        mean = sum(leave_out) / m
        out["stderr"] = math.sqrt((m - 1) / m * sum((v - mean) ** 2 for v in leave_out))
    return out


def noise_window_average(
    steps: Sequence[int], grad_sq_norm: Sequence[float], trace_sigma: Sequence[float], first_step: float, last_step: float
) -> dict:
    """``B_simple`` over a window of steps: mean of the unbiased ``tr(Σ)`` estimates over mean of the ``|G|²`` ones.

    The ratio of averages (not the average of per-step ratios, which is biased and heavy-tailed), by
    :func:`~trainwise.noise.estimators.ratio_of_means` with the delta-method standard error from the per-step
    scatter of both estimates, treating steps as independent (they are not quite, so it is a lower bound).
    Fewer than two steps, or a mean ``|G|²`` that is not positive, give NaN.

    >>> out = noise_window_average([1, 2, 3], [1.0, 2.0, 3.0], [10.0, 20.0, 30.0], 1, 3)
    >>> out["b_simple"]["value"], out["window"]["steps"]
    (10.0, 3)
    """
    import numpy as np

    from trainwise.noise.estimators import ratio_of_means

    step_arr = np.asarray(steps, dtype=float)
    in_window = (step_arr >= first_step) & (step_arr <= last_step)
    g = np.asarray(grad_sq_norm, dtype=float)[in_window]
    s = np.asarray(trace_sigma, dtype=float)[in_window]
    n = int(in_window.sum())
    out: dict = {"window": {"first_step": int(first_step), "last_step": int(last_step), "steps": n}}
    if n < 2 or g.mean() <= 0:
        out.update(b_simple={"value": math.nan, "stderr": math.nan}, grad_sq_norm=float(g.mean()) if n else math.nan,
                   trace_sigma=float(s.mean()) if n else math.nan)
        return out
    ratio = ratio_of_means(s, g, method="delta")
    out.update(b_simple={"value": ratio.value, "stderr": ratio.stderr}, grad_sq_norm=float(g.mean()),
               trace_sigma=float(s.mean()))
    return out
