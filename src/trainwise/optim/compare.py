"""Deprecated: the optimizer comparison is a training driver, :mod:`trainwise.experiments.compare`."""

from trainwise._deprecated import moved

__all__ = ["OPTIMIZERS", "DEFAULT_LRS", "CurvePoint", "RunResult", "logits_fn_for", "train_with", "compare_optimizers"]

__getattr__ = moved(__name__, {name: "trainwise.experiments.compare" for name in
                               [*__all__, "OptimizerRun", "tokens_per_batch", "_FALLBACK_LRS"]})
