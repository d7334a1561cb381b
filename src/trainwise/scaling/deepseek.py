"""DeepSeek LLM 2024, "Scaling Open-Source Language Models with Longtermism" (arXiv:2401.02954), §3.1, eq. 1.

Optimal batch size and learning rate as power laws of the compute budget ``C = M·D``::

    η_opt = 0.3118 · C^(−0.1250),      B_opt = 0.2920 · C^(0.3271)  tokens

with ``M`` the **non-embedding FLOPs per token** (``72 n_layer d_model² + 6 n_layer d_model l_seq``, which
counts attention but not the vocabulary projection) and ``D`` tokens. Worked example: ``C = 1e21`` gives
``B_opt ≈ 2.16 M`` tokens and ``η_opt ≈ 7.4e-4``. Fitted for AdamW with a multi-step schedule on
1e17–2e19 FLOPs; DeepSeek report the near-optimal region is wide.
"""

from __future__ import annotations

import math

__all__ = ["deepseek_lr", "deepseek_batch_tokens", "deepseek_flops_per_token", "CITATION"]

CITATION = "DeepSeek-AI 2024, DeepSeek LLM, arXiv:2401.02954, eq. 1"


def _check_compute(compute: float) -> float:
    compute = float(compute)
    if not math.isfinite(compute) or compute <= 0:
        raise ValueError(f"compute must be a positive number of FLOPs, got {compute!r}")
    return compute


def deepseek_lr(compute: float) -> float:
    """Optimal peak learning rate ``η_opt = 0.3118·C^−0.1250`` (``C`` in FLOPs).

    >>> round(deepseek_lr(1e21), 6)
    0.000739
    """
    return 0.3118 * _check_compute(compute) ** -0.1250


def deepseek_batch_tokens(compute: float) -> float:
    """Optimal batch size in tokens ``B_opt = 0.2920·C^0.3271`` (``C`` in FLOPs).

    >>> round(deepseek_batch_tokens(1e21) / 1e6, 2)
    2.16
    """
    return 0.2920 * _check_compute(compute) ** 0.3271


def deepseek_flops_per_token(n_layer: int, d_model: int, seq_len: int) -> float:
    """Non-embedding FLOPs per token ``M = 72 n_layer d_model² + 6 n_layer d_model l_seq`` (DeepSeek eq. 2)."""
    for name, value in (("n_layer", n_layer), ("d_model", d_model), ("seq_len", seq_len)):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    return 72.0 * n_layer * d_model**2 + 6.0 * n_layer * d_model * seq_len
