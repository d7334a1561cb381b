"""Adaptive batch size: a controller that grows the batch with the measured noise scale, LR rules.

>>> from trainwise.adapt import BatchSizeController, adascale_gain   # doctest: +SKIP
"""

from trainwise.adapt.controller import MODES, BatchPlan, BatchSizeController
from trainwise.adapt.rules import LR_RULES, adascale_gain, lr_multiplier, statistical_efficiency
from trainwise.adapt.throughput import StepTimeModel

__all__ = [
    "BatchPlan",
    "BatchSizeController",
    "LR_RULES",
    "MODES",
    "StepTimeModel",
    "adascale_gain",
    "lr_multiplier",
    "statistical_efficiency",
]
