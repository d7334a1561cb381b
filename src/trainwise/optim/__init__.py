"""Optimizers for pre-training and fine-tuning: Sophia, Hessian estimators, schedules, LR scaling, presets."""

from trainwise.optim.hessian import GaussNewtonBartlett, HessianEstimate, Hutchinson, maybe_update_hessian, rademacher
from trainwise.optim.lr_scaling import (
    AdamHyperparameters,
    SurgeWarning,
    adam_sqrt_scaling,
    check_surge,
    linear_scaling,
    sqrt_scaling,
)
from trainwise.optim.presets import OptimizerSetup, make_preset, param_groups
from trainwise.optim.schedules import (
    Constant,
    CosineDecay,
    LinearDecay,
    Schedule,
    WarmupStableDecay,
    make_schedule,
    to_lambda_lr,
)
from trainwise.optim.sophia import SophiaDiagnostics, SophiaG, SophiaH

__all__ = [
    "SophiaG", "SophiaH", "SophiaDiagnostics",
    "GaussNewtonBartlett", "Hutchinson", "HessianEstimate", "maybe_update_hessian", "rademacher",
    "Schedule", "Constant", "LinearDecay", "CosineDecay", "WarmupStableDecay", "make_schedule", "to_lambda_lr",
    "linear_scaling", "sqrt_scaling", "adam_sqrt_scaling", "check_surge", "SurgeWarning", "AdamHyperparameters",
    "OptimizerSetup", "param_groups", "make_preset",
]
