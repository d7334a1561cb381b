"""Kaplan et al. 2020, "Scaling Laws for Neural Language Models" (arXiv:2001.08361), §5.1.

The critical batch size of a language model depends on the loss it has reached, not on its size::

    B_crit(L) = B* / L^(1/α_B),     B* ≈ 2·10⁸ tokens,  α_B ≈ 0.21,   L in nats per token

so ``B_crit`` doubles for every ~13% decrease of the loss (``2^{−α_B} ≈ 0.865``). Runs at batch
``B`` are converted to their minimum steps and compute by eq. 5.4–5.5::

    S_min = S / (1 + B_crit(L)/B),     C_min = C / (1 + B/B_crit(L)).

Units: ``B*`` and the result are **tokens** per batch; ``L`` is the WebText2 cross-entropy in nats
per token (other tokenizers and data give other constants: treat the result as an order of magnitude).
"""

from __future__ import annotations

import math

__all__ = ["B_STAR_TOKENS", "ALPHA_B", "kaplan_loss", "kaplan_b_crit", "kaplan_loss_at_b_crit", "kaplan_s_min", "kaplan_c_min", "CITATION"]

CITATION = "Kaplan et al. 2020, Scaling Laws for Neural Language Models, arXiv:2001.08361, eq. 5.3"
#: ``B*`` of eq. 5.3, tokens
B_STAR_TOKENS: float = 2.0e8
#: ``α_B`` of eq. 5.3
ALPHA_B: float = 0.21


def _check_loss(loss: float) -> float:
    loss = float(loss)
    if not math.isfinite(loss) or loss <= 0:
        raise ValueError(f"loss must be a positive number of nats per token, got {loss!r}")
    return loss


def kaplan_b_crit(loss: float, b_star: float = B_STAR_TOKENS, alpha_b: float = ALPHA_B) -> float:
    """Critical batch size in tokens at loss ``L`` (nats/token): ``B_crit = B*/L^(1/α_B)``.

    >>> round(kaplan_b_crit(3.0) / 1e6, 2)   # ≈ 1 M tokens at 3 nats/token
    1.07
    """
    loss = _check_loss(loss)
    return b_star / loss ** (1.0 / alpha_b)


def kaplan_loss_at_b_crit(b_crit_tokens: float, b_star: float = B_STAR_TOKENS, alpha_b: float = ALPHA_B) -> float:
    """Inverse of :func:`kaplan_b_crit`: the loss at which ``B_crit`` reaches ``b_crit_tokens``."""
    if not b_crit_tokens > 0:
        raise ValueError(f"b_crit_tokens must be positive, got {b_crit_tokens!r}")
    return (b_star / b_crit_tokens) ** alpha_b


def kaplan_s_min(steps: float, batch_tokens: float, loss: float) -> float:
    """Minimum steps to reach ``loss`` (eq. 5.4): ``S_min = S/(1 + B_crit(L)/B)``."""
    return steps / (1.0 + kaplan_b_crit(loss) / batch_tokens)


def kaplan_c_min(compute: float, batch_tokens: float, loss: float) -> float:
    """Minimum compute to reach ``loss`` (eq. 5.5): ``C_min = C/(1 + B/B_crit(L))``."""
    return compute / (1.0 + batch_tokens / kaplan_b_crit(loss))


#: constants of Kaplan et al. eq. 1.5 (non-embedding parameters, tokens, nats/token on WebText2)
N_C: float = 8.8e13
D_C: float = 5.4e13
ALPHA_N: float = 0.076
ALPHA_D: float = 0.095


def kaplan_loss(params: float, tokens: float) -> float:
    """Test loss a model of ``N`` non-embedding parameters reaches on ``D`` tokens (eq. 1.5)::

        L(N, D) = [ (N_c/N)^(α_N/α_D) + D_c/D ]^α_D

    Used to turn a model size and token budget into the loss that :func:`kaplan_b_crit` needs.

    >>> round(kaplan_loss(1.5e9, 300e9), 2)
    2.31
    """
    if not params > 0 or not tokens > 0:
        raise ValueError(f"params and tokens must be positive, got params={params!r}, tokens={tokens!r}")
    return ((N_C / params) ** (ALPHA_N / ALPHA_D) + D_C / tokens) ** ALPHA_D
