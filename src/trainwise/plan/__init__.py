"""Plan a training run: a batch size and a learning rate from a measurement, scaling laws and hardware.

``reading`` turns a file (``noise.jsonl``, ``measure.json``, ``sweep.json``) into a :class:`NoiseReading`;
``recommend`` makes the plan (:func:`make_plan`); ``format`` prints it. Units: :mod:`trainwise.units`.

>>> from trainwise.plan import make_plan
>>> plan = make_plan(params=350e6, tokens=20e9)
>>> plan["unit"], plan["recommendation"]["batch_size"] > 0
('tokens', True)
"""

from trainwise.plan.format import format_plan
from trainwise.plan.reading import (
    PREDICTOR_NAMES,
    NoiseReading,
    read_measure_json,
    read_measurement,
    read_noise_jsonl,
    read_sweep_json,
)
from trainwise.plan.recommend import choose_b_crit, make_plan, recommend_lr
from trainwise.units import parse_quantity, parse_throughput

__all__ = [
    "NoiseReading",
    "PREDICTOR_NAMES",
    "choose_b_crit",
    "format_plan",
    "make_plan",
    "parse_quantity",
    "parse_throughput",
    "read_measure_json",
    "read_measurement",
    "read_noise_jsonl",
    "read_sweep_json",
    "recommend_lr",
]
