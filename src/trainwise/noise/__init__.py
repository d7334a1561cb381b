"""Gradient noise scale (McCandlish et al. 2018): estimators, sources, monitor, one-call measurement.

>>> from trainwise.noise import measure_noise_scale, NoiseScaleMonitor   # doctest: +SKIP
"""

from trainwise.noise.estimators import (
    effective_small_batch,
    grad_sq_norm_estimate,
    mean_of,
    ratio_of_means,
    trace_sigma_estimate,
)
from trainwise.noise._sharding import ShardingUnsupported
from trainwise.noise.ema import ExampleEMA
from trainwise.noise.measure import measure_noise_scale
from trainwise.noise.monitor import SOURCES, NoiseScaleMonitor
from trainwise.noise.per_example import PerExampleGradNorms
from trainwise.noise.result import Measured, NoiseScaleResult

__all__ = [
    "ExampleEMA",
    "Measured",
    "NoiseScaleMonitor",
    "NoiseScaleResult",
    "PerExampleGradNorms",
    "SOURCES",
    "ShardingUnsupported",
    "effective_small_batch",
    "grad_sq_norm_estimate",
    "mean_of",
    "measure_noise_scale",
    "ratio_of_means",
    "trace_sigma_estimate",
]
