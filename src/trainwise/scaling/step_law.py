"""Step Law: Li et al. 2025, "Predictable Scale: Part I — Optimal Hyperparameter Scaling Law in LLM
Pretraining" (arXiv:2503.04715), eq. 4–5.

From ~3,700 trained models (dense and MoE, AdamW, fixed final learning rate 1e-5)::

    η(N, D) = 1.79 · N^(−0.713) · D^(0.307),        B(D) = 0.58 · D^(0.571)  tokens

``N`` non-embedding parameters, ``D`` training tokens. The batch size depends on the data only; the
learning rate falls with model size and rises with data. Their headline check is a 1B-parameter model on
100B tokens, where the law gives ``B ≈ 1.1 M`` tokens and ``η ≈ 1.6e-3``.
"""

from __future__ import annotations

import math

__all__ = ["step_law_lr", "step_law_batch_tokens", "CITATION"]

CITATION = "Li et al. 2025, Predictable Scale Part I (Step Law), arXiv:2503.04715"


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value


def step_law_lr(params: float, tokens: float) -> float:
    """Optimal peak learning rate ``η = 1.79·N^−0.713·D^0.307``.

    >>> round(step_law_lr(1e9, 1e11), 5)
    0.00163
    """
    return 1.79 * _positive("params", params) ** -0.713 * _positive("tokens", tokens) ** 0.307


def step_law_batch_tokens(tokens: float) -> float:
    """Optimal batch size in tokens ``B = 0.58·D^0.571``.

    >>> round(step_law_batch_tokens(1e11) / 1e6, 2)
    1.11
    """
    return 0.58 * _positive("tokens", tokens) ** 0.571
