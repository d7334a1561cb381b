"""The summary of a measurement: checkpoint readings and the monitor's per-step records averaged over a window.

Numerators (``tr Σ``, ``tr(HΣ)``) and denominators (``|G|²``, ``GᵀHG``) are pooled, never ratios averaged; each
reading stands for the steps nearest to it and steps are weighted by ``1/(1 + B̂/B)``
(:mod:`trainwise.noise.averaging`). Used by ``trainwise measure`` (:mod:`trainwise.experiments.measure`) and read
back by the plan.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trainwise.noise.averaging import (
    Span,
    checkpoint_spans,
    s_min_weighted_mean,
    span_weights,
    step_blocks,
    weighted_mean_with_stderr,
)
from trainwise.units import BatchUnit

__all__ = ["checkpoint_steps", "summarize_checkpoints"]


def checkpoint_steps(steps: int, checkpoints: int) -> list[int]:
    """``checkpoints`` steps spread over ``[0, steps]`` (0 = initialisation, ``steps`` = the end)."""
    if checkpoints < 1:
        return []
    if checkpoints == 1:
        return [steps]
    return sorted({int(round(x)) for x in np.linspace(0, steps, checkpoints)})


#: summary quantities: name -> (numerator, denominator, is a batch size)
_RATIOS = {"b_simple": ("trace_sigma", "grad_sq_norm", True), "b_noise": ("trace_h_sigma", "ghg", True),
           "eps_max": ("grad_sq_norm", "ghg", False)}


def _value(entry) -> float | None:
    value = entry.get("value") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _pooled_average(rows: list[tuple[float, float, float, float | None]], batch_size: float | None, first: float,
                    last: float) -> dict[str, Any]:
    """Checkpoint readings ``(step, numerator, denominator, stderr of their ratio)`` (batch sizes in examples), each
    standing for the steps nearest to it, averaged as ``Σ w·ℓ·B̂ / Σ w·ℓ`` with ``w = 1/(1 + B̂/B)``
    (:mod:`trainwise.noise.averaging`). A checkpoint whose denominator is not positive is pooled with a
    neighbour (numerators and denominators averaged, never ratios). The error propagates each reading's standard
    error through the weights; ``value`` is ``None`` when the average is not positive and finite (not resolved)."""
    if not rows:
        return {"value": None, "stderr": None, "n": 0}
    spans = checkpoint_spans([(s, num, den) for s, num, den, _ in rows], first_step=first)
    batch = batch_size if batch_size and batch_size > 0 else math.inf
    if len(rows) == 1:  # a single reading stands for the whole window
        spans = [Span(first, max(last, first + 1.0), spans[0].numerator, spans[0].denominator)]
    average = s_min_weighted_mean(spans, batch, first, max(last, first + 1.0))
    value = average["value"]
    if not (math.isfinite(value) and value > 0):
        return {"value": None, "stderr": None, "n": len(rows), "resolved": False}
    stderr = None
    if all(den > 0 and err is not None and math.isfinite(err) for _, _, den, err in rows):
        weights = span_weights(spans, batch)
        total = sum(weights)
        if total > 0:
            stderr = math.sqrt(sum((w * err) ** 2 for w, (_, _, _, err) in zip(weights, rows))) / total
    return {"value": float(value), "stderr": stderr, "n": len(rows)}


def summarize_checkpoints(checkpoints: list[dict], history: list[dict], skip_initial: bool = True,
                          batch_size: float | None = None, unit: BatchUnit | None = None) -> dict:
    """Average the checkpoint readings over a window (all but the initialisation by default).

    The noise scale at initialisation is atypical (McCandlish et al. report start and average separately), so
    the window starts at the first checkpoint after step 0 when there is one. Each reading stands for the steps
    nearest to it and steps are weighted by ``1/(1 + B̂/B)`` with ``B`` the run's ``batch_size`` in examples
    (:mod:`trainwise.noise.averaging`: the average that predicts ``B_crit``). Numerators (``tr Σ``, ``tr(HΣ)``) and
    denominators (``|G|²``, ``GᵀHG``) are pooled, never ratios averaged. Values are in ``unit`` (records' unit);
    the arithmetic is in examples.
    """
    unit = unit or BatchUnit()
    window = [c for c in checkpoints if not (skip_initial and c["step"] == 0)] or checkpoints
    first = float(checkpoints[0]["step"]) if checkpoints else 0.0
    last = float(window[-1]["step"]) if window else 0.0
    summary: dict[str, Any] = {
        "window": {
            "first_step": window[0]["step"] if window else None,
            "last_step": window[-1]["step"] if window else None,
            "checkpoints": len(window),
            "how": "checkpoint readings, each standing for the steps nearest to it, steps weighted by 1/(1 + B̂/B); "
            "numerators and denominators pooled",
        }
    }
    for suffix, part in (("", lambda c: c), ("_precond", lambda c: c.get("precond") or {})):
        for name, (num, den, is_batch) in _RATIOS.items():
            rows = []
            for c in window:
                entry = part(c)
                numerator, denominator = _value(entry.get(num)), _value(entry.get(den))
                if suffix and name == "eps_max":  # ε_max of P⁻¹g is GᵀP⁻¹G/ĜᵀHĜ: its numerator is not |Ĝ|²
                    numerator, denominator = _value(entry.get(name)), 1.0
                if numerator is None or denominator is None:
                    continue
                ratio_err = _value({"value": (entry.get(name) or {}).get("stderr")})
                if is_batch:
                    numerator = unit.to_examples(numerator)
                    ratio_err = unit.to_examples(ratio_err) if ratio_err is not None else None
                rows.append((float(c["step"]), numerator, denominator, ratio_err))
            if not rows:
                continue
            average = _pooled_average(rows, batch_size if is_batch else None, first, last)
            if is_batch and average["value"] is not None:
                average["value"] = unit.from_examples(average["value"])
                average["stderr"] = unit.from_examples(average["stderr"]) if average["stderr"] is not None else None
            summary[name + suffix] = average
    steps = [r for r in history if first < r["step"] <= last] or history
    if steps:
        blocks = step_blocks([r["step"] for r in steps], [r["grad_sq_norm"] for r in steps],
                             [unit.to_examples(r["trace_sigma"]) for r in steps])
        monitor = weighted_mean_with_stderr(blocks, batch_size, steps[0]["step"] - 1, steps[-1]["step"])
        resolved = math.isfinite(monitor["value"]) and monitor["value"] > 0
        summary["b_simple_monitor"] = {
            "value": unit.from_examples(monitor["value"]) if resolved else None,
            "stderr": unit.from_examples(monitor["stderr"]) if resolved and math.isfinite(monitor["stderr"]) else None,
            "unweighted": unit.from_examples(monitor["unweighted"]) if math.isfinite(monitor["unweighted"]) else None,
            "steps": [steps[0]["step"], steps[-1]["step"]],
        }
    return summary


_checkpoint_steps = checkpoint_steps
