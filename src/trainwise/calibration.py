"""How well each noise-scale reading predicted the measured critical batch: trainwise's calibration, as data.

A **ratio** is ``prediction / B_crit`` for one target loss of one benchmark setting:

* ``B_crit = E_min/S_min`` is measured by a sweep (:mod:`trainwise.sweep`): train to the target at 7–8 batch
  sizes, the learning rate tuned over a grid at each, and fit ``S = S_min + E_min/B``;
* the prediction is each tuned run's noise scale averaged over its steps to that target, step ``t`` weighted by
  ``1/(1 + B̂(t)/B)`` (:mod:`trainwise.noise.averaging`: ``B_crit`` is the mean noise scale over the steps of the
  infinite-batch path), then the geometric mean over the tuned runs that are noise-dominated (``B`` at most their
  own ``B_simple``).

Predictors (``sweep.runner.PREDICTORS``): ``b_simple = tr(Σ)/|G|²`` from per-example norms at every step;
``b_noise = tr(HΣ)/GᵀHG`` from Hessian-vector products at up to 8 checkpoints; and for Adam the same two of the
preconditioned update ``P⁻¹g`` (``P = sqrt(v̂) + eps``, the optimizer's state at the checkpoint),
``b_simple_precond`` and ``b_noise_precond``.

Where the numbers come from: ``benchmarks/critical_batch.py`` in full mode (all batch sizes and LR factors of its
``TASKS``), one CPU core per process. Settings: ``digits-mlp``, ``teacher-student`` and ``char-gpt`` (1 layer, 32
dims, 32-character windows) with AdamW, run 2026-11-28 and again on 2026-11-30 (every ratio reproduced, and
``b_simple_precond``, not reported before, added); ``char-gpt-sgdm`` (the same model, SGD +
momentum 0.9), 2026-11-28; ``char-gpt-deep`` (3 layers, 48 dims, 4 heads, 32-character windows) with AdamW,
2026-11-30. Targets the sweep flags (steps rising with the batch:
not an optimization limit, so its ``B_crit`` is no noise-scale quantity) are left out: digits at 0.15.
``docs/critical-batch.md`` (section Calibration) tabulates every ratio.

>>> name, calib = best_predictor("sgd", {"b_simple", "b_noise"})
>>> name
'b_simple'
>>> low, high = b_crit_range(100.0, calib)   # B_crit implied by a reading of 100 examples
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "CalibrationRow",
    "PredictorCalibration",
    "CALIBRATION",
    "LR_VALIDATION",
    "best_predictor",
    "b_crit_range",
    "lr_validation_for",
]


@dataclass(frozen=True)
class CalibrationRow:
    """One target of one benchmark setting: ``ratio = prediction / swept B_crit``."""

    setting: str
    target: float
    ratio: float


@dataclass(frozen=True)
class PredictorCalibration:
    """All rows of one predictor for one optimizer family, and the spread they imply."""

    predictor: str
    family: str
    rows: tuple[CalibrationRow, ...]

    def __post_init__(self) -> None:
        if not self.rows:
            raise ValueError(f"calibration of {self.predictor!r} ({self.family}) has no rows")
        bad = [r for r in self.rows if not (r.ratio > 0 and math.isfinite(r.ratio))]
        if bad:
            raise ValueError(f"calibration ratios must be positive and finite, got {bad!r}")

    @property
    def low(self) -> float:
        """The smallest ratio measured."""
        return min(r.ratio for r in self.rows)

    @property
    def high(self) -> float:
        """The largest ratio measured."""
        return max(r.ratio for r in self.rows)

    @property
    def geometric_mean(self) -> float:
        """``exp(mean(log ratio))``: the typical factor by which the predictor misses ``B_crit``."""
        return math.exp(sum(math.log(r.ratio) for r in self.rows) / len(self.rows))

    @property
    def max_abs_log(self) -> float:
        """``max |log ratio|``: how far from 1 the worst target was, in either direction."""
        return max(abs(math.log(r.ratio)) for r in self.rows)

    @property
    def settings(self) -> tuple[str, ...]:
        """The benchmark settings the rows come from, in order of first appearance."""
        return tuple(dict.fromkeys(r.setting for r in self.rows))


def _calib(family: str, predictor: str, rows: list[tuple[str, float, float]]) -> PredictorCalibration:
    return PredictorCalibration(predictor, family, tuple(CalibrationRow(s, t, q) for s, t, q in rows))


# (setting, target loss, prediction / swept B_crit); benchmarks/critical_batch.py, full mode (module docstring)
_ADAM = {
    "b_simple": [
        ("digits-mlp", 0.40, 1.15), ("digits-mlp", 0.25, 1.91),
        ("teacher-student", 1.40, 0.80), ("teacher-student", 1.30, 0.74), ("teacher-student", 1.25, 1.13),
        ("char-gpt", 2.60, 0.99), ("char-gpt", 2.50, 0.84), ("char-gpt", 2.40, 0.77),
        ("char-gpt-deep", 2.50, 0.89), ("char-gpt-deep", 2.35, 0.87), ("char-gpt-deep", 2.20, 0.83),
    ],
    "b_noise": [
        ("digits-mlp", 0.40, 1.90), ("digits-mlp", 0.25, 2.27),
        ("teacher-student", 1.40, 1.09), ("teacher-student", 1.30, 0.88), ("teacher-student", 1.25, 0.98),
        ("char-gpt", 2.60, 0.34), ("char-gpt", 2.50, 0.34), ("char-gpt", 2.40, 0.32),
        ("char-gpt-deep", 2.50, 0.40), ("char-gpt-deep", 2.35, 0.35), ("char-gpt-deep", 2.20, 0.42),
    ],
    "b_noise_precond": [
        ("digits-mlp", 0.40, 2.77), ("digits-mlp", 0.25, 3.79),
        ("teacher-student", 1.40, 0.86), ("teacher-student", 1.30, 0.84), ("teacher-student", 1.25, 0.89),
        ("char-gpt", 2.60, 0.42), ("char-gpt", 2.50, 0.38), ("char-gpt", 2.40, 0.38),
        ("char-gpt-deep", 2.50, 0.35), ("char-gpt-deep", 2.35, 0.36), ("char-gpt-deep", 2.20, 0.39),
    ],
    # from small-batch Adam runs (the noise-dominated ones) |P⁻¹G|² is tiny next to tr(P⁻¹ΣP⁻¹)
    "b_simple_precond": [
        ("digits-mlp", 0.40, 6.09), ("digits-mlp", 0.25, 9.28),
        ("teacher-student", 1.40, 4.03), ("teacher-student", 1.30, 1.51), ("teacher-student", 1.25, 2.09),
        ("char-gpt", 2.60, 2.68), ("char-gpt", 2.50, 2.43), ("char-gpt", 2.40, 2.65),
        ("char-gpt-deep", 2.50, 2.75), ("char-gpt-deep", 2.35, 9.20), ("char-gpt-deep", 2.20, 7.76),
    ],
}
_SGD = {
    "b_simple": [("char-gpt-sgdm", 2.60, 0.93), ("char-gpt-sgdm", 2.50, 0.89), ("char-gpt-sgdm", 2.40, 0.60)],
    "b_noise": [("char-gpt-sgdm", 2.60, 0.65), ("char-gpt-sgdm", 2.50, 0.67), ("char-gpt-sgdm", 2.40, 0.45)],
}

#: optimizer family (``"adam"``, ``"sgd"``: :func:`trainwise.optim.lr_scaling.optimizer_family`) -> predictor -> rows
CALIBRATION: dict[str, dict[str, PredictorCalibration]] = {
    family: {name: _calib(family, name, rows) for name, rows in table.items()}
    for family, table in (("adam", _ADAM), ("sgd", _SGD))
}


def best_predictor(family: str, available: set[str] | frozenset[str], min_settings: int = 2
                   ) -> tuple[str, PredictorCalibration]:
    """Among the ``available`` readings calibrated for ``family``, the one whose ratios stayed closest to 1.

    "Closest" is the smallest ``max |log ratio|`` over its rows: the predictor whose worst target was least far
    off, in either direction. Only predictors calibrated on at least ``min_settings`` settings compete when any
    is (one setting's ratios can agree with each other and still not carry over to another model: a user's second
    character transformer read ``B_noise`` 0.2× where ours read 0.34×); otherwise all calibrated ones do.

    Raises ``ValueError`` for an unknown family or when no available reading is calibrated.
    """
    if family not in CALIBRATION:
        raise ValueError(f"no calibration for optimizer family {family!r}; known: {', '.join(CALIBRATION)}")
    candidates = [name for name in CALIBRATION[family] if name in available]
    if not candidates:
        raise ValueError(f"none of the readings {sorted(available)!r} is calibrated for {family!r}; calibrated: "
                         f"{', '.join(CALIBRATION[family])}")
    broad = [name for name in candidates if len(CALIBRATION[family][name].settings) >= min_settings]
    name = min(broad or candidates, key=lambda n: CALIBRATION[family][n].max_abs_log)
    return name, CALIBRATION[family][name]


def b_crit_range(value: float, calibration: PredictorCalibration) -> tuple[float, float]:
    """The critical batch a reading ``value`` implies: ``(value / high, value / low)``, in ``value``'s unit.

    The point estimate is ``value / calibration.geometric_mean``.
    """
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"a noise-scale reading must be positive and finite, got {value!r}")
    return value / calibration.high, value / calibration.low


#: ``benchmarks/plan_lr.py`` (full mode, 2026-11-30, plan code of commit 977c56f: Adam's rule is the square root up
#: to the noise scale, flat past it): ``trainwise measure`` at the task's default batch and LR, then the plan; at the
#: plan's batch, steps to the setting's middle target at the plan's LR over the best steps of a ×2 LR grid around it
#: (two seeds each). family -> how the LR was found ("rescaled": a measured run's LR moved by the family's rule;
#: "sweep": a sweep's tuned LRs interpolated, not measured yet) -> rows ``(setting, steps ratio, lr_rec / lr_best)``.
#: char-gpt's best is over this grid and the one of a run an hour earlier around 0.002 (same batch, seeds and
#: target; the LRs both grids share gave the same steps): 0.0082, 73.8 steps; this grid's own best gives 1.36.
#: A rescaled LR is no better than the measured run's: char-gpt's default 2e-3 is about 3× below its best.
LR_VALIDATION: dict[str, dict[str, list[tuple[str, float, float]]]] = {
    "adam": {"rescaled": [("digits-mlp", 1.00, 1.00), ("teacher-student", 1.00, 1.00), ("char-gpt", 1.53, 0.30),
                          ("char-gpt-deep", 1.00, 1.00)]},
    "sgd": {"rescaled": [("char-gpt-sgdm", 1.01, 0.50)]},
}


def lr_validation_for(family: str, kind: str) -> str | None:
    """One line on how the plan's learning rate did on trainwise's benchmark for this ``family`` and ``kind``
    (``"rescaled"`` or ``"sweep"``), or ``None`` where it was not measured."""
    rows = LR_VALIDATION.get(family, {}).get(kind)
    if not rows:
        return None
    def span(values: list[float], fmt: str) -> str:
        low, high = format(min(values), fmt), format(max(values), fmt)
        return low if low == high else f"{low}–{high}"

    settings = ", ".join(dict.fromkeys(r[0] for r in rows))
    return (f"on trainwise's benchmark ({settings}) this rule's LR needed {span([r[1] for r in rows], '.2f')}× the "
            f"steps of the best LR of a ×2 grid, and was {span([r[2] for r in rows], '.2g')}× that LR "
            "(benchmarks/plan_lr.py)")
