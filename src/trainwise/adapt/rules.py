r"""Learning-rate rules for a batch that differs from the one the learning rate was tuned for.

Notation (McCandlish et al. 2018; Johnson et al. 2020, "AdaScale SGD"): ``B0`` the batch size the
schedule was tuned at, ``B = s·B0`` the batch used now, ``|G|²`` the squared true gradient norm,
``tr(Σ)`` the trace of the per-example gradient covariance, ``B_simple = tr(Σ)/|G|²``.

- AdaScale gain: ``r(s) = (tr(Σ)/B0 + |G|²) / (tr(Σ)/(s·B0) + |G|²) = s·(B_simple + B0)/(B_simple + B)``,
  ``1 ≤ r(s) ≤ s``: the number of ``B0``-steps one step at ``B`` is worth.
- Statistical efficiency (AdaptDL/Pollux): ``E(B) = r(s)/s = (B_simple + B0)/(B_simple + B)``, the
  progress per example at ``B`` relative to ``B0``.
- LR multiplier on top of the schedule: ``r`` for SGD (linear rule in the noise-dominated regime),
  ``√r`` for Adam (square-root rule, Malladi et al. 2022); docs/science.md §4.
"""

from __future__ import annotations

import math

from trainwise.optim.lr_scaling import LR_RULE_ALIASES, lr_rule_exponent
from trainwise.optim.lr_scaling import LR_RULES as _RULES

__all__ = ["LR_RULES", "adascale_gain", "lr_multiplier", "statistical_efficiency"]

#: name → exponent applied to the AdaScale gain: the rules of :data:`trainwise.optim.lr_scaling.LR_RULES`
#: under both their names (``sgd``/``linear``, ``adam``/``sqrt``, ``none``/``constant``)
LR_RULES = {**_RULES, **{alias: _RULES[name] for alias, name in LR_RULE_ALIASES.items()}}


def _check(b_simple: float, base_batch_size: float, batch_size: float) -> None:
    if not base_batch_size > 0:
        raise ValueError(f"base_batch_size must be > 0, got {base_batch_size!r}")
    if not batch_size > 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size!r}")
    if math.isnan(b_simple):
        raise ValueError("b_simple is NaN (no noise-scale measurement yet?)")


def statistical_efficiency(b_simple: float, base_batch_size: float, batch_size: float) -> float:
    """``E(B) = (B_simple + B0)/(B_simple + B)``; ``B_simple`` is clamped at 0 (a negative estimate means no noise)."""
    _check(b_simple, base_batch_size, batch_size)
    phi = max(float(b_simple), 0.0)
    return (phi + base_batch_size) / (phi + batch_size)


def adascale_gain(b_simple: float, base_batch_size: float, batch_size: float) -> float:
    """``r(s) = s·(B_simple + B0)/(B_simple + B)`` with ``s = B/B0``.

    >>> round(adascale_gain(b_simple=100.0, base_batch_size=10, batch_size=40), 4)  # 4·110/140
    3.1429
    """
    efficiency = statistical_efficiency(b_simple, base_batch_size, batch_size)
    return batch_size / base_batch_size * efficiency


def lr_multiplier(rule: str, b_simple: float, base_batch_size: float, batch_size: float) -> float:
    """The factor on the scheduled LR: ``r(s)^p`` with ``p`` = 1 (``sgd``), ½ (``adam``), 0 (``none``)."""
    if rule not in LR_RULES:
        raise ValueError(f"unknown lr rule {rule!r}; choose one of {sorted(LR_RULES)}")
    exponent = lr_rule_exponent(rule)
    if exponent == 0.0:
        return 1.0
    return adascale_gain(b_simple, base_batch_size, batch_size) ** exponent
