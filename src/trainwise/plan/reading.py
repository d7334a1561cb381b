r"""Read a measurement for the plan: ``noise.jsonl`` (the monitor's log), ``measure.json`` or ``sweep.json``.

Every reader does its arithmetic in examples (:mod:`trainwise.units`): the noise scale is compared with the
run's batch size in the weight ``1/(1 + B̂/B)`` (:mod:`trainwise.noise.averaging`), and the batch size of a
record is always in examples. The reading it returns is in the file's own unit, for display.

What each file gives:

* ``noise.jsonl``: per-step ``|G|²`` and ``tr(Σ)`` gathered into short blocks, averaged over a window of steps with
  the weight ``1/(1 + B̂/B)``; Hessian records (``kind: hessian``) likewise for ``B_noise``; the Adam-preconditioned
  forms where the log has them. The error is a jackknife over ten stretches of the window.
* ``measure.json``: the summary ``trainwise measure`` computed the same way (:func:`trainwise.noise.summary.summarize_checkpoints`).
* ``sweep.json``: the critical batch measured directly (the fit of ``S = S_min(1 + B_crit/B)`` at the hardest
  target) and the tuned learning rate at each batch size.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trainwise.noise.averaging import checkpoint_spans, step_blocks, weighted_mean_with_stderr
from trainwise.noise.estimators import mean_of
from trainwise.units import BatchUnit

__all__ = ["NoiseReading", "PREDICTOR_NAMES", "read_noise_jsonl", "read_measure_json", "read_sweep_json",
           "read_measurement"]

#: noise-scale readings that can predict the critical batch (``trainwise.calibration`` says how well)
PREDICTOR_NAMES = ("b_simple", "b_noise", "b_simple_precond", "b_noise_precond")


@dataclass
class NoiseReading:
    """A measurement averaged over a window; batch-size–like values in ``unit`` (``examples`` or ``tokens``).

    ``predictors`` maps each noise-scale reading present (:data:`PREDICTOR_NAMES`) to ``{"value", "stderr"}``;
    ``b_crit_measured`` is set when the file is a sweep (the critical batch measured, not predicted).
    ``batch_size`` is the measured run's batch in examples, ``lr`` its learning rate.
    """

    source_file: str
    kind: str  #: "noise.jsonl", "measure.json" or "sweep.json"
    unit: str
    tokens_per_example: float | None
    predictors: dict[str, dict[str, float]]
    window: dict[str, Any]
    lr: float | None
    batch_size: float | None
    optimizer: str | None
    loss_first: float | None = None
    loss_last: float | None = None
    eps_max: dict[str, float] | None = None
    eps_max_precond: dict[str, float] | None = None
    b_crit_measured: dict[str, Any] | None = None
    tuned_lr: dict[str, float] | None = None  #: sweep: batch size (examples) -> best learning rate
    meta: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def batch_unit(self) -> BatchUnit:
        return BatchUnit(self.unit, self.tokens_per_example)

    @property
    def b_simple(self) -> dict[str, float] | None:
        return self.predictors.get("b_simple")

    @property
    def b_noise(self) -> dict[str, float] | None:
        return self.predictors.get("b_noise")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["b_simple"], out["b_noise"] = self.b_simple, self.b_noise
        return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive(entry: Any) -> bool:
    return isinstance(entry, dict) and _finite(entry.get("value")) and entry["value"] > 0


def _parse_window(window: str | Sequence[int] | None, steps: Sequence[int]) -> tuple[int, int, str]:
    """Window in steps: ``None`` takes every measured step; ``"100:500"`` or ``(100, 500)``."""
    first_all, last_all = min(steps), max(steps)
    if window is None:
        return first_all, last_all, "every measured step, each weighted by 1/(1 + B̂/B)"
    if isinstance(window, str):
        match = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", window)
        if not match:
            raise ValueError(f"--window {window!r}: write FIRST:LAST in steps, e.g. 100:500 or 100:")
        first = int(match.group(1)) if match.group(1) else first_all
        last = int(match.group(2)) if match.group(2) else last_all
    else:
        first, last = int(window[0]), int(window[1])
    if first > last:
        raise ValueError(f"--window {window!r} is empty (its first step is after its last)")
    return first, last, "chosen by the user, each step weighted by 1/(1 + B̂/B)"


def _load_jsonl(path: Path) -> list[tuple[int, dict]]:
    records = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not UTF-8 text (byte {exc.start}); is it a noise.jsonl log?") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{str(path)!r} line {number} is not JSON ({exc.msg}): {line[:80]!r}") from None
        if not isinstance(record, dict) or "kind" not in record:
            raise ValueError(f"{str(path)!r} line {number} has no \"kind\" field: {line[:80]!r}")
        records.append((number, record))
    return records


def _dedupe_steps(steps: list[tuple[int, dict]], path: Path, notes: list[str]) -> list[tuple[int, dict]]:
    """A resumed run may log a step twice: keep each step's last record, and say so."""
    last: dict[Any, tuple[int, dict]] = {}
    for number, record in steps:
        last[record.get("step")] = (number, record)
    if len(last) < len(steps):
        notes.append(f"{str(path)!r} logs {len(steps) - len(last)} step(s) more than once (a resumed run?); "
                     "each step's last record is used")
    return sorted(last.values(), key=lambda item: item[1]["step"])


def _step_average(inside: list[dict], unit: BatchUnit, run_batch: float | None, first: int, last: int,
                  key: str | None = None) -> dict[str, float] | None:
    """``B_simple`` (or its preconditioned form, ``key="precond"``) of step records, in ``unit``."""
    rows = [(r["step"], (r.get(key) if key else r)) for r in inside]
    rows = [(s, x) for s, x in rows if isinstance(x, dict) and _finite(x.get("grad_sq_norm")) and _finite(x.get("trace_sigma"))]
    if len(rows) < 2:
        return None
    blocks = step_blocks([s for s, _ in rows], [x["grad_sq_norm"] for _, x in rows],
                         [unit.to_examples(x["trace_sigma"]) for _, x in rows])
    average = weighted_mean_with_stderr(blocks, run_batch, first - 1, last)
    if not math.isfinite(average["value"]) or average["value"] <= 0:
        return None
    return {"value": unit.from_examples(average["value"]), "stderr": unit.from_examples(average["stderr"]),
            "unweighted": unit.from_examples(average["unweighted"])}


def _hessian_average(hessian: list[tuple[int, dict]], path: Path, run_batch: float | None, first: int, last: int,
                     unit: BatchUnit, key: str | None = None, numerator: str = "trace_h_sigma",
                     denominator: str = "ghg") -> dict[str, float] | None:
    """A Hessian-record quantity (``B_noise``; ``B_simple`` of ``P⁻¹g`` with ``key="precond"`` and ``tr Σ``/``|G|²``)
    averaged over the steps each reading stands for. Each record carries its own unit."""
    rows = []
    for number, record in hessian:
        part = record.get(key) if key else record
        if not isinstance(part, dict):
            continue
        num, den = part.get(numerator), part.get(denominator)
        if not (isinstance(num, dict) and isinstance(den, dict) and _finite(num.get("value")) and _finite(den.get("value"))):
            continue
        record_unit = BatchUnit.from_meta(record if "unit" in record else {"unit": unit.name,
                                          "tokens_per_example": unit.tokens_per_example},
                                          where=f"{str(path)!r} line {number}")
        rows.append((float(record["step"]), record_unit.to_examples(float(num["value"])), float(den["value"])))
    if not rows:
        return None
    spans = checkpoint_spans(rows, first_step=first - 1)
    average = weighted_mean_with_stderr(spans, run_batch, first - 1, last)
    if not math.isfinite(average["value"]) or average["value"] <= 0:
        return None
    return {"value": unit.from_examples(average["value"]), "stderr": unit.from_examples(average["stderr"]),
            "readings": len(rows)}


def _mean_entry(values: list[float]) -> dict[str, float] | None:
    """Mean and standard error (:func:`trainwise.noise.estimators.mean_of`), or ``None`` without values."""
    values = [v for v in values if _finite(v)]
    if not values:
        return None
    mean = mean_of(values)
    return {"value": mean.value, "stderr": mean.stderr}


def read_noise_jsonl(path: str | Path, window: str | Sequence[int] | None = None) -> NoiseReading:
    """Read a monitor log (docs/formats.md, ``noise.jsonl``) and average it over a window of steps."""
    path = Path(path)
    records = _load_jsonl(path)
    meta_line, meta = next(((n, r) for n, r in records if r["kind"] == "meta"), (0, {}))
    unit = BatchUnit.from_meta(meta, where=f"{str(path)!r} line {meta_line} (meta)") if meta else BatchUnit()
    notes: list[str] = []
    if not meta:
        notes.append("the log has no meta line: its values are read as examples")
    steps = []
    for number, r in records:
        if r["kind"] != "step":
            continue
        if not all(_finite(r.get(k)) for k in ("step", "grad_sq_norm", "trace_sigma")):
            notes.append(f"line {number}: step record {r.get('step')!r} has a missing or non-finite "
                         "step/grad_sq_norm/trace_sigma; skipped")
            continue
        steps.append((number, r))
    good = [r for _, r in _dedupe_steps(steps, path, notes)]
    skipped = [r for _, r in records if r["kind"] == "skip"]
    if skipped:
        notes.append(f"{len(skipped)} steps were not measured by the monitor (e.g. step {skipped[0].get('step')}: "
                     f"{skipped[0].get('reason')!r})")
    if len(good) < 2:
        raise ValueError(f"{str(path)!r} has {len(good)} usable step records; need at least 2 to average a noise scale")
    first, last, how = _parse_window(window, [r["step"] for r in good])
    inside = [r for r in good if first <= r["step"] <= last]
    if len(inside) < 2:
        raise ValueError(f"--window {first}:{last} of {str(path)!r} holds {len(inside)} step records; need at least 2")
    batch = [r["batch_size"] for r in inside if _finite(r.get("batch_size")) and r["batch_size"] > 0]
    run_batch = float(np.median(batch)) if batch else None
    if run_batch is None:
        notes.append("the log has no batch_size: steps are averaged without the 1/(1 + B̂/B) weight")
    predictors: dict[str, dict[str, float]] = {}
    b_simple = _step_average(inside, unit, run_batch, first, last)
    if b_simple is None:
        raise ValueError(f"the average |G|² or tr(Σ) over steps {first}:{last} of {str(path)!r} is not positive: the "
                         "noise scale is not resolved there; measure more steps or widen --window")
    predictors["b_simple"] = b_simple
    precond = _step_average(inside, unit, run_batch, first, last, key="precond")
    if precond is not None:
        predictors["b_simple_precond"] = precond
    hessian = [(n, r) for n, r in records if r["kind"] == "hessian" and _finite(r.get("step")) and first <= r["step"] <= last]
    eps_max = eps_max_precond = None
    if hessian:
        for name, key, num, den in (("b_noise", None, "trace_h_sigma", "ghg"),
                                    ("b_noise_precond", "precond", "trace_h_sigma", "ghg")):
            entry = _hessian_average(hessian, path, run_batch, first, last, unit, key, num, den)
            if entry is not None:
                predictors[name] = entry
        if "b_simple_precond" not in predictors:
            entry = _hessian_average(hessian, path, run_batch, first, last, unit, "precond", "trace_sigma", "grad_sq_norm")
            if entry is not None:
                predictors["b_simple_precond"] = entry
        eps_max = _mean_entry([r["eps_max"]["value"] for _, r in hessian if isinstance(r.get("eps_max"), dict)
                               and _finite(r["eps_max"].get("value")) and r["eps_max"]["value"] > 0])
        eps_max_precond = _mean_entry([r["precond"]["eps_max"]["value"] for _, r in hessian
                                       if isinstance(r.get("precond"), dict) and isinstance(r["precond"].get("eps_max"), dict)
                                       and _finite(r["precond"]["eps_max"].get("value")) and r["precond"]["eps_max"]["value"] > 0])
    lrs = [r["lr"] for r in inside if _finite(r.get("lr"))]
    losses = [r["loss"] for r in inside if _finite(r.get("loss"))]
    reading = NoiseReading(
        source_file=str(path), kind="noise.jsonl", unit=unit.name, tokens_per_example=unit.tokens_per_example,
        predictors=predictors, window={"first_step": first, "last_step": last, "steps": len(inside), "how": how},
        lr=float(np.median(lrs)) if lrs else None, batch_size=run_batch,
        optimizer=meta.get("optimizer"), loss_first=losses[0] if losses else None, loss_last=losses[-1] if losses else None,
        eps_max=eps_max, eps_max_precond=eps_max_precond, meta=meta, warnings=notes,
    )
    reading.warnings.extend(_probe_warnings(reading, lrs))
    return reading


def read_measure_json(path: str | Path) -> NoiseReading:
    """Read ``trainwise measure`` output (docs/formats.md, ``measure.json``)."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("summary"), dict):
        raise ValueError(f"{str(path)!r} has no \"summary\" object: is it the measure.json of `trainwise measure`?")
    meta = _object(data, "meta", path, required=False)
    unit = BatchUnit.from_meta(meta, where=f"{str(path)!r} field meta")
    summary = data["summary"]
    predictors = {}
    for name in PREDICTOR_NAMES:
        entry = summary.get(name)
        if _positive(entry):
            stderr = entry.get("stderr")
            predictors[name] = {"value": float(entry["value"]), "stderr": float(stderr) if _finite(stderr) else math.nan}
    if "b_simple" not in predictors:
        raise ValueError(f"{str(path)!r}: summary.b_simple is {summary.get('b_simple')!r}: the noise scale is not "
                         "resolved (missing, negative or not finite); measure more steps or more rounds")
    checkpoints = data.get("checkpoints")
    if not isinstance(checkpoints, list):
        checkpoints = []
    checkpoints = [c for c in checkpoints if isinstance(c, dict)]
    lrs = [c["lr"] for c in checkpoints if _finite(c.get("lr"))]
    losses = [c["loss"] for c in checkpoints if _finite(c.get("loss"))]
    window = dict(_object(summary, "window", path, required=False, where="summary.window"))
    window.setdefault("how", "as chosen by trainwise measure")

    def _entry(name: str) -> dict[str, float] | None:
        e = summary.get(name)
        return {"value": float(e["value"]), "stderr": float(e["stderr"]) if _finite(e.get("stderr")) else math.nan} \
            if _positive(e) else None

    batch = meta.get("batch_size")
    reading = NoiseReading(
        source_file=str(path), kind="measure.json", unit=unit.name, tokens_per_example=unit.tokens_per_example,
        predictors=predictors, window=window,
        lr=float(meta["lr"]) if _finite(meta.get("lr")) else (lrs[0] if lrs else None),
        batch_size=float(batch) if _finite(batch) and batch > 0 else None, optimizer=meta.get("optimizer"),
        loss_first=losses[0] if losses else None, loss_last=losses[-1] if losses else None,
        eps_max=_entry("eps_max"), eps_max_precond=_entry("eps_max_precond"), meta=meta,
    )
    reading.warnings.extend(_probe_warnings(reading, lrs))
    return reading


def read_sweep_json(path: str | Path) -> NoiseReading:
    """Read ``trainwise sweep`` output (``sweep.json``): the measured ``B_crit`` of the hardest fitted target and
    the tuned learning rate per batch size. Sweeps count examples."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict) or data.get("kind") != "sweep" or not isinstance(data.get("fits"), dict):
        raise ValueError(f"{str(path)!r} is not a sweep.json (no \"kind\": \"sweep\" with \"fits\")")
    fits = {t: f for t, f in data["fits"].items() if isinstance(f, dict) and _finite(f.get("b_crit")) and f["b_crit"] > 0}
    if not fits:
        raise ValueError(f"{str(path)!r} has no fitted target with a positive B_crit; run the sweep to more targets")
    notes = []
    usable = {t: f for t, f in fits.items() if not f.get("warnings")} or fits
    target = min(usable, key=float)  # the hardest (lowest-loss) fitted target
    fit = usable[target]
    if len(usable) < len(fits):
        notes.append(f"targets {', '.join(sorted(set(fits) - set(usable)))} were left out: their fits carry warnings")
    config = _object(data, "config", path, required=False)
    noise = _object(data, "noise", path, required=False)
    per_batch = _object(noise, "per_batch_size", path, required=False, where="noise.per_batch_size")
    tuned = {}
    for b, e in per_batch.items():
        try:
            batch = float(b)
        except ValueError:
            raise ValueError(f"{str(path)!r}: noise.per_batch_size has the key {b!r}; keys are batch sizes") from None
        if isinstance(e, dict) and _finite(e.get("lr")) and e["lr"] > 0 and math.isfinite(batch) and batch > 0:
            tuned[b] = float(e["lr"])
    targets = _object(noise, "targets", path, required=False, where="noise.targets")
    per_target = targets.get(target) if isinstance(targets.get(target), dict) else {}
    predictors: dict[str, dict[str, float]] = {}
    for name in PREDICTOR_NAMES:
        est = per_target.get(name)
        if _positive(est):
            predictors[name] = {"value": float(est["value"]), "stderr": math.nan}
    stderr = fit.get("b_crit_stderr")
    return NoiseReading(
        source_file=str(path), kind="sweep.json", unit="examples", tokens_per_example=None, predictors=predictors,
        window={"target": float(target), "batch_sizes": fit.get("batch_sizes"),
                "how": f"B_crit fitted at target loss {target} over batch sizes {fit.get('batch_sizes')}"},
        lr=None, batch_size=None, optimizer=config.get("optimizer"),
        b_crit_measured={"value": float(fit["b_crit"]), "stderr": float(stderr) if _finite(stderr) else math.nan,
                         "target": float(target)},
        tuned_lr=tuned or None, meta={"task": config.get("task")}, warnings=notes,
    )


def _object(data: dict, key: str, path: Path, required: bool = True, where: str | None = None) -> dict:
    """``data[key]`` as a JSON object; a missing optional one is empty; anything else is refused, naming the field."""
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{str(path)!r}: field {where or key!r} is {type(value).__name__} {str(value)[:40]!r}; "
                         "expected a JSON object")
    return value


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not UTF-8 text (byte {exc.start})") from None


def read_measurement(path: str | Path, window: str | Sequence[int] | None = None) -> NoiseReading:
    """Read any of the three files, by content (a JSON object with ``summary`` or ``"kind": "sweep"``, or JSON lines
    with ``kind``); a directory is searched for ``measure.json``, ``noise.jsonl``, ``sweep.json`` in that order."""
    path = Path(path)
    if path.is_dir():
        for name in ("measure.json", "noise.jsonl", "sweep.json"):
            if (path / name).exists():
                return read_measurement(path / name, window)
        raise FileNotFoundError(f"{str(path)!r} holds none of measure.json, noise.jsonl, sweep.json")
    if not path.exists():
        raise FileNotFoundError(f"no such measurement file: {str(path)!r}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and ("summary" in data or data.get("kind") == "sweep"):
        if window is not None:
            warnings.warn(f"--window applies to noise.jsonl only; {path.name} carries its own window", stacklevel=2)
        return read_sweep_json(path) if data.get("kind") == "sweep" else read_measure_json(path)
    return read_noise_jsonl(path, window)


def _probe_warnings(reading: NoiseReading, lrs: Sequence[float]) -> list[str]:
    """Signs that the measured run is a low-noise probe, whose noise scale reads 10–100× above B_crit."""
    notes = []
    if lrs and max(lrs) > 3 * min(lrs) > 0:
        notes.append(f"the learning rate changed {max(lrs) / min(lrs):.1f}× over the window (B_noise ∝ 1/T, T = lr/B): "
                     "the average mixes temperatures; read a window with a steady LR, before the decay")
    b_simple_examples = reading.batch_unit.to_examples(reading.predictors["b_simple"]["value"])
    if reading.batch_size and reading.batch_size > 4 * b_simple_examples:
        notes.append(f"the run's batch ({reading.batch_size:g} examples) is {reading.batch_size / b_simple_examples:.0f}× "
                     "its own B_simple: a large-batch, low-noise path reads the noise scale high")
    if reading.loss_first is not None and reading.loss_last is not None and reading.loss_first > 0:
        drop = (reading.loss_first - reading.loss_last) / reading.loss_first
        if abs(drop) < 0.005 and reading.window.get("steps", 0) >= 20:
            notes.append(f"the loss hardly moved over the window ({reading.loss_first:.4g} → {reading.loss_last:.4g}): "
                         "a tiny learning rate is a low-noise probe and reads the noise scale 10–100× high")
    if reading.lr is None:
        notes.append("the log has no learning rate: cannot check that the run was well tuned (the prediction assumes "
                     "it), and the plan cannot rescale it")
    return notes
