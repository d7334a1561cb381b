"""Parameter bookkeeping shared by the noise-scale sources."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from trainwise.noise._sharding import local

__all__ = ["trainable_params", "grad_sq_norm", "adam_preconditioner", "PRECONDITIONER_MIN_STEPS"]


def trainable_params(model_or_params: nn.Module | Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Trainable parameters, each once (tied weights share one object), frozen ones left out."""
    params = model_or_params.parameters() if isinstance(model_or_params, nn.Module) else model_or_params
    unique: dict[int, torch.Tensor] = {}
    for p in params:
        if p.requires_grad:
            unique.setdefault(id(p), p)
    if not unique:
        raise ValueError("no trainable parameters: every parameter has requires_grad=False")
    return list(unique.values())


def grad_sq_norm(tensors: list[torch.Tensor], preconditioners: list[torch.Tensor] | None = None) -> torch.Tensor:
    """``Σ |t|²`` (or ``Σ |t/P|²``) over a list of tensors as one float64 scalar tensor, fused with foreach.

    DTensors (FSDP2 shards) count with their local shard only: add the result over the shard group
    (:meth:`trainwise.noise._sharding.Layout.reduce`) for the whole tensor's norm.
    """
    tensors = [local(t) for t in tensors]
    if preconditioners is not None:
        preconditioners = [local(P) for P in preconditioners]
    if not tensors:
        return torch.zeros((), dtype=torch.float64)
    if preconditioners is not None:
        tensors = torch._foreach_div([t.float() if t.element_size() < 4 else t for t in tensors], preconditioners)
    norms = torch._foreach_norm(tensors, 2)
    return torch.stack([n.double() for n in norms]).pow(2).sum()


#: optimizer steps before Adam's ``v̂`` is used as a preconditioner for the noise scale. After ``t`` steps ``v̂``
#: averages ``min(t, ~1/(1 − β₂))`` squared gradients; after one step it is a single ``g₁²``, near zero wherever
#: ``g₁`` happened to be, so ``P⁻¹ ≈ 1/eps`` there: on the character GPT, ``|P⁻¹G|²`` read 3.5·10⁹ at step 2 and
#: 2·10⁴–4·10⁴ from step 10 on, and one such step dominated the monitor's moving average for hundreds of steps.
PRECONDITIONER_MIN_STEPS = 10


def adam_preconditioner(optimizer: torch.optim.Optimizer, params: list[torch.Tensor],
                        min_steps: int = 1) -> list[torch.Tensor] | None:
    r"""``P = sqrt(v̂) + eps`` per parameter from an Adam/AdamW state, or None before its ``min_steps``-th step.

    ``v̂ = v / (1 − β₂^t)`` is the bias-corrected second moment as it stands *before* the coming
    step (a snapshot), which is what the noise of the update that step takes is divided by.
    The noise-scale readers use ``min_steps = PRECONDITIONER_MIN_STEPS`` (above: a ``v̂`` of one or two squared
    gradients makes ``P⁻¹g`` explode).
    """
    groups = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    out = []
    for p in params:
        state = optimizer.state.get(p, {})
        if "exp_avg_sq" not in state or id(p) not in groups:
            return None
        group = groups[id(p)]
        beta2 = group["betas"][1]
        step = float(state["step"])
        if step < max(1, min_steps):
            return None
        v_hat = state["exp_avg_sq"] / (1.0 - beta2**step)
        if v_hat.element_size() < 4:
            v_hat = v_hat.float()
        out.append(v_hat.sqrt().add_(group["eps"]))
    return out
