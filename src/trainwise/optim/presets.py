"""Fine-tuning presets: AdamW, SGD + cosine, AdamW + cosine, SophiaG, with no-decay groups.

Weight decay applies to the weight matrices of linear/conv layers only; **biases, normalisation
weights (LayerNorm, RMSNorm, BatchNorm, GroupNorm, …) and embeddings** go to a group with
``weight_decay=0`` (the usual practice since BERT; decaying a norm's scale or an embedding
shrinks it towards a degenerate value). A parameter shared by several modules (a tied LM
head) is assigned once, by the first module that owns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainwise.optim.schedules import Constant, CosineDecay, Schedule, to_lambda_lr
from trainwise.optim.sophia import SophiaG

__all__ = ["OptimizerSetup", "param_groups", "adamw", "sgd_cosine", "adamw_cosine", "sophiag", "PRESETS", "make_preset"]

_NORM_TYPES: tuple[type, ...] = (
    nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())
_EMBEDDING_TYPES: tuple[type, ...] = (nn.Embedding, nn.EmbeddingBag)


def _is_norm(module: nn.Module) -> bool:
    # also catches custom RMSNorm/LayerNorm classes from other libraries by name
    return isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower()


@dataclass
class OptimizerSetup:
    """An optimizer, its LR scheduler (or None) and the schedule function it wraps."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    schedule: Schedule | None = None
    no_decay_names: tuple[str, ...] = ()


def param_groups(model: nn.Module, weight_decay: float) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """Two groups: ``{"params": decayed, "weight_decay": weight_decay}`` and ``{"params": rest, 0}``.

    Returns the groups and the names of the parameters without decay.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    seen: set[int] = set()
    decay, no_decay, no_decay_names = [], [], []
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                seen.add(id(param))
                continue
            seen.add(id(param))
            full = f"{module_name}.{param_name}" if module_name else param_name
            if param_name.endswith("bias") or param.ndim < 2 or _is_norm(module) or isinstance(module, _EMBEDDING_TYPES):
                no_decay.append(param)
                no_decay_names.append(full)
            else:
                decay.append(param)
    groups = [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return groups, tuple(no_decay_names)


def adamw(model: nn.Module, lr: float = 2e-5, *, weight_decay: float = 0.01, betas: tuple[float, float] = (0.9, 0.999),
          eps: float = 1e-8, warmup_steps: int = 0, foreach: bool | None = None) -> OptimizerSetup:
    """AdamW with no-decay groups and a constant LR after an optional warm-up."""
    groups, names = param_groups(model, weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=foreach)
    schedule = Constant(warmup_steps)
    return OptimizerSetup(optimizer, to_lambda_lr(optimizer, schedule) if warmup_steps else None, schedule, names)


def sgd_cosine(model: nn.Module, lr: float = 1e-2, *, total_steps: int, warmup_steps: int = 0, momentum: float = 0.9,
               weight_decay: float = 0.0, min_ratio: float = 0.0, nesterov: bool = False) -> OptimizerSetup:
    """SGD with momentum and a cosine decay (with warm-up) to ``min_ratio · lr``."""
    groups, names = param_groups(model, weight_decay)
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    schedule = CosineDecay(total_steps, warmup_steps, min_ratio)
    return OptimizerSetup(optimizer, to_lambda_lr(optimizer, schedule), schedule, names)


def adamw_cosine(model: nn.Module, lr: float = 2e-5, *, total_steps: int, warmup_steps: int | None = None,
                 weight_decay: float = 0.01, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 min_ratio: float = 0.1, foreach: bool | None = None) -> OptimizerSetup:
    """AdamW + cosine; warm-up defaults to 6% of ``total_steps``, floor to 10% of the peak LR."""
    if warmup_steps is None:
        warmup_steps = max(1, int(round(0.06 * total_steps)))
    groups, names = param_groups(model, weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=foreach)
    schedule = CosineDecay(total_steps, warmup_steps, min_ratio)
    return OptimizerSetup(optimizer, to_lambda_lr(optimizer, schedule), schedule, names)


def sophiag(model: nn.Module, lr: float = 3e-4, *, total_steps: int, bs: int, warmup_steps: int | None = None,
            rho: float = 0.04, weight_decay: float = 0.2, min_ratio: float = 0.1,
            hessian_interval: int = 10, **kwargs: Any) -> OptimizerSetup:
    """SophiaG + cosine (as in the official GPT-2 runs), weight decay 2× a typical AdamW's."""
    if warmup_steps is None:
        warmup_steps = max(1, int(round(0.02 * total_steps)))
    groups, names = param_groups(model, weight_decay)
    optimizer = SophiaG(groups, lr=lr, rho=rho, bs=bs, hessian_interval=hessian_interval, **kwargs)
    schedule = CosineDecay(total_steps, warmup_steps, min_ratio)
    return OptimizerSetup(optimizer, to_lambda_lr(optimizer, schedule), schedule, names)


PRESETS = {"adamw": adamw, "sgd-cosine": sgd_cosine, "adamw-cosine": adamw_cosine, "sophiag": sophiag}


def make_preset(name: str, model: nn.Module, **kwargs: Any) -> OptimizerSetup:
    """Build a preset by name (``adamw``, ``sgd-cosine``, ``adamw-cosine``, ``sophiag``)."""
    try:
        factory = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer preset {name!r}; choose from {', '.join(PRESETS)}") from None
    if name == "adamw":
        kwargs.pop("total_steps", None)
    if name != "sophiag":
        kwargs.pop("bs", None)
    return factory(model, **kwargs)
