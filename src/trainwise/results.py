"""Typed results of the drivers, as ``report/``, ``plan`` and the CLI read them: one schema per file kind.

* :class:`MeasureResult`: ``measure.json`` (:func:`trainwise.experiments.measure.run_measurement`);
* :class:`SweepResult` with its :class:`RunResult` per ``(batch size, lr)``: ``sweep.json``
  (:func:`trainwise.experiments.sweep.run_sweep`), and :func:`prediction_table` over a ``sweep.json`` dict;
* :class:`BranchedResult`: ``branched.json`` (:func:`trainwise.experiments.branched.run_branched`).

Every result has ``to_dict()`` (the file's JSON, written strictly by :func:`trainwise._io.write_json`) and
``from_dict()``. The results that used to be plain dicts (measure, branched) still read like one
(``result["summary"]``), so code written against the dicts keeps working. A plan is still a dict
(:func:`trainwise.plan.make_plan`).

This module imports no runner, task or plotting code: ``report/`` reads these, never the drivers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterator

from trainwise.sweep.config import BranchedConfig, SweepConfig
from trainwise.sweep.fit import TradeoffFit

__all__ = [
    "MeasureResult",
    "RunResult",
    "SweepResult",
    "BranchedResult",
    "PREDICTORS",
    "PREDICTOR_LABELS",
    "prediction_table",
]


class _DictLike(Mapping):
    """Read access by key to ``to_dict()``, for results that used to be plain dicts."""

    def to_dict(self) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        if key in {f.name for f in fields(self)}:  # type: ignore[arg-type]
            return getattr(self, key)
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


@dataclass(eq=False)
class MeasureResult(_DictLike):
    """``measure.json``: the run's ``meta``, the Hessian ``checkpoints``, their ``summary``, the monitor's
    per-step records (``steps``) and the ``files`` written (``docs/formats.md``)."""

    meta: dict[str, Any]
    checkpoints: list[dict[str, Any]]
    summary: dict[str, Any]
    steps: list[dict[str, Any]]
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"meta": self.meta, "checkpoints": self.checkpoints, "summary": self.summary, "steps": self.steps,
                "files": self.files}

    @classmethod
    def from_dict(cls, data: Mapping) -> "MeasureResult":
        return cls(dict(data["meta"]), list(data["checkpoints"]), dict(data["summary"]), list(data.get("steps", [])),
                   dict(data.get("files", {})))

    def __eq__(self, other: object) -> bool:
        return self.to_dict() == (other.to_dict() if isinstance(other, MeasureResult) else other)


@dataclass
class RunResult:
    """One sweep training run at ``(batch_size, lr)``."""

    batch_size: int
    lr: float
    steps_to_target: dict[str, float | None]
    stopped: str  #: "all_targets", "step_cap", "example_cap", "pruned", "plateau" or "diverged"
    final_step: int
    final_loss: float
    eval_steps: list[int]
    eval_losses: list[float]
    noise: dict[str, Any]
    checkpoint_steps: list[int]
    wall_s: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "RunResult":
        """From ``to_dict()`` or its strict JSON (a non-finite loss was written as ``null``; it reads back NaN)."""
        data = dict(data)
        data["final_loss"] = math.nan if data.get("final_loss") is None else data["final_loss"]
        data["eval_losses"] = [math.nan if x is None else x for x in data.get("eval_losses", [])]
        return cls(**data)


@dataclass
class SweepResult:
    """``sweep.json``: the configuration, every run, the tuned run per batch size, the trade-off fit per target,
    the steps-to-target table, the noise-scale predictions and notes."""

    config: SweepConfig
    runs: dict[str, RunResult]
    tuned: dict[int, str]  #: batch size -> key of its tuned run
    fits: dict[str, TradeoffFit]  #: target key -> fit
    steps_table: dict[str, dict[int, float | None]]  #: target -> B -> min steps over the LR grid
    noise: dict[str, Any]  #: per-batch-size noise of the tuned runs and the aggregate prediction
    notes: list[str]

    def to_dict(self) -> dict:
        return {
            "kind": "sweep",
            "config": self.config.to_dict(),
            "runs": {k: r.to_dict() for k, r in self.runs.items()},
            "tuned": {str(b): k for b, k in self.tuned.items()},
            "fits": {t: f.to_dict() for t, f in self.fits.items()},
            "steps_table": {t: {str(b): s for b, s in row.items()} for t, row in self.steps_table.items()},
            "noise": self.noise,
            "notes": self.notes,
        }


@dataclass(eq=False)
class BranchedResult(_DictLike):
    """``branched.json``: per checkpoint of the base run, its branches and the largest batch keeping up."""

    config: dict[str, Any]
    checkpoints: list[dict[str, Any]]
    method: str
    kind: str = "branched"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "config": self.config, "checkpoints": self.checkpoints, "method": self.method}

    @classmethod
    def from_dict(cls, data: Mapping) -> "BranchedResult":
        return cls(dict(data["config"]), list(data["checkpoints"]), str(data.get("method", "")))

    @property
    def branched_config(self) -> BranchedConfig:
        return BranchedConfig(**self.config)

    def __eq__(self, other: object) -> bool:
        return self.to_dict() == (other.to_dict() if isinstance(other, BranchedResult) else other)


#: the noise-scale readings a sweep predicts B_crit from: name -> what, where the spans come from
PREDICTORS = {
    "b_simple": "B_simple = tr(Σ)/|G|², per-step estimates during training",
    "b_noise": "B_noise = tr(HΣ)/GᵀHG, Hessian-vector products at checkpoints",
    "b_noise_precond": "B_noise of the Adam-preconditioned update P⁻¹g, at checkpoints",
    "b_simple_precond": "B_simple of the Adam-preconditioned update P⁻¹g, tr(P⁻¹ΣP⁻¹)/|P⁻¹G|², at checkpoints",
}

#: short column labels for the predictors
PREDICTOR_LABELS = {"b_simple": "B_simple", "b_noise": "B_noise", "b_noise_precond": "B_noise(Adam P)",
                    "b_simple_precond": "B_simple(Adam P)"}


def prediction_table(data: dict) -> list[dict[str, Any]]:
    """Rows per fitted target from a ``sweep.json`` dict: the measured ``B_crit`` (± stderr) and, for each
    predictor of :data:`PREDICTORS` that has readings, its value and its ratio to ``B_crit``.

    >>> data = {"fits": {"0.5": {"b_crit": 100.0, "b_crit_stderr": 10.0}},
    ...         "noise": {"targets": {"0.5": {"b_simple": {"value": 50.0, "runs": 3}}}}}
    >>> prediction_table(data)
    [{'target': '0.5', 'b_crit': 100.0, 'b_crit_stderr': 10.0, 'b_simple': 50.0, 'b_simple_ratio': 0.5}]
    """
    rows = []
    per_target = data.get("noise", {}).get("targets", {})
    for tkey, fit in data.get("fits", {}).items():
        row: dict[str, Any] = {"target": tkey, "b_crit": fit["b_crit"], "b_crit_stderr": fit["b_crit_stderr"]}
        for name in PREDICTORS:
            est = per_target.get(tkey, {}).get(name, {})
            value = est.get("value")
            if est.get("runs") and value is not None and math.isfinite(value):
                row[name] = value
                row[name + "_ratio"] = value / fit["b_crit"] if fit["b_crit"] > 0 else math.nan
        rows.append(row)
    return rows
