"""Train a task briefly with the monitor on, measuring the noise scale over training.

This is what ``trainwise measure`` runs: a plain training loop (optionally with gradient
accumulation) with :class:`~trainwise.noise.monitor.NoiseScaleMonitor` reading every step, and at a
few checkpoints a full :func:`~trainwise.noise.measure.measure_noise_scale` at the current parameters
(Hessian terms included) on fresh batches. The result follows ``docs/formats.md`` (``measure.json``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import trainwise
from trainwise._io import write_json
from trainwise._progress import progress
from trainwise.noise.averaging import (
    Span,
    checkpoint_spans,
    s_min_weighted_mean,
    span_weights,
    step_blocks,
    weighted_mean_with_stderr,
)
from trainwise.noise.measure import measure_noise_scale
from trainwise.noise.monitor import NoiseScaleMonitor
from trainwise.tasks.base import Task
from trainwise.units import BatchUnit

__all__ = ["run_measurement", "summarize_checkpoints"]


def _checkpoint_steps(steps: int, checkpoints: int) -> list[int]:
    """``checkpoints`` steps spread over ``[0, steps]`` (0 = initialisation, ``steps`` = the end)."""
    if checkpoints < 1:
        return []
    if checkpoints == 1:
        return [steps]
    return sorted({int(round(x)) for x in np.linspace(0, steps, checkpoints)})


#: summary quantities: name -> (numerator, denominator, is a batch size)
_RATIOS = {"b_simple": ("trace_sigma", "grad_sq_norm", True), "b_noise": ("trace_h_sigma", "ghg", True),
           "eps_max": ("grad_sq_norm", "ghg", False)}


def _value(entry) -> float | None:
    value = entry.get("value") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _pooled_average(rows: list[tuple[float, float, float, float | None]], batch_size: float | None, first: float,
                    last: float) -> dict[str, Any]:
    """Checkpoint readings ``(step, numerator, denominator, stderr of their ratio)`` (batch sizes in examples), each
    standing for the steps nearest to it, averaged as ``Σ w·ℓ·B̂ / Σ w·ℓ`` with ``w = 1/(1 + B̂/B)``
    (:mod:`trainwise.noise.averaging`). A checkpoint whose denominator is not positive is pooled with a
    neighbour (numerators and denominators averaged, never ratios). The error propagates each reading's standard
    error through the weights; ``value`` is ``None`` when the average is not positive and finite (not resolved)."""
    if not rows:
        return {"value": None, "stderr": None, "n": 0}
    spans = checkpoint_spans([(s, num, den) for s, num, den, _ in rows], first_step=first)
    batch = batch_size if batch_size and batch_size > 0 else math.inf
    if len(rows) == 1:  # a single reading stands for the whole window
        spans = [Span(first, max(last, first + 1.0), spans[0].numerator, spans[0].denominator)]
    average = s_min_weighted_mean(spans, batch, first, max(last, first + 1.0))
    value = average["value"]
    if not (math.isfinite(value) and value > 0):
        return {"value": None, "stderr": None, "n": len(rows), "resolved": False}
    stderr = None
    if all(den > 0 and err is not None and math.isfinite(err) for _, _, den, err in rows):
        weights = span_weights(spans, batch)
        total = sum(weights)
        if total > 0:
            stderr = math.sqrt(sum((w * err) ** 2 for w, (_, _, _, err) in zip(weights, rows))) / total
    return {"value": float(value), "stderr": stderr, "n": len(rows)}


def summarize_checkpoints(checkpoints: list[dict], history: list[dict], skip_initial: bool = True,
                          batch_size: float | None = None, unit: BatchUnit | None = None) -> dict:
    """Average the checkpoint readings over a window (all but the initialisation by default).

    The noise scale at initialisation is atypical (McCandlish et al. report start and average separately), so
    the window starts at the first checkpoint after step 0 when there is one. Each reading stands for the steps
    nearest to it and steps are weighted by ``1/(1 + B̂/B)`` with ``B`` the run's ``batch_size`` in examples
    (:mod:`trainwise.noise.averaging`: the average that predicts ``B_crit``). Numerators (``tr Σ``, ``tr(HΣ)``) and
    denominators (``|G|²``, ``GᵀHG``) are pooled, never ratios averaged. Values are in ``unit`` (records' unit);
    the arithmetic is in examples.
    """
    unit = unit or BatchUnit()
    window = [c for c in checkpoints if not (skip_initial and c["step"] == 0)] or checkpoints
    first = float(checkpoints[0]["step"]) if checkpoints else 0.0
    last = float(window[-1]["step"]) if window else 0.0
    summary: dict[str, Any] = {
        "window": {
            "first_step": window[0]["step"] if window else None,
            "last_step": window[-1]["step"] if window else None,
            "checkpoints": len(window),
            "how": "checkpoint readings, each standing for the steps nearest to it, steps weighted by 1/(1 + B̂/B); "
            "numerators and denominators pooled",
        }
    }
    for suffix, part in (("", lambda c: c), ("_precond", lambda c: c.get("precond") or {})):
        for name, (num, den, is_batch) in _RATIOS.items():
            rows = []
            for c in window:
                entry = part(c)
                numerator, denominator = _value(entry.get(num)), _value(entry.get(den))
                if suffix and name == "eps_max":  # ε_max of P⁻¹g is GᵀP⁻¹G/ĜᵀHĜ: its numerator is not |Ĝ|²
                    numerator, denominator = _value(entry.get(name)), 1.0
                if numerator is None or denominator is None:
                    continue
                ratio_err = _value({"value": (entry.get(name) or {}).get("stderr")})
                if is_batch:
                    numerator = unit.to_examples(numerator)
                    ratio_err = unit.to_examples(ratio_err) if ratio_err is not None else None
                rows.append((float(c["step"]), numerator, denominator, ratio_err))
            if not rows:
                continue
            average = _pooled_average(rows, batch_size if is_batch else None, first, last)
            if is_batch and average["value"] is not None:
                average["value"] = unit.from_examples(average["value"])
                average["stderr"] = unit.from_examples(average["stderr"]) if average["stderr"] is not None else None
            summary[name + suffix] = average
    steps = [r for r in history if first < r["step"] <= last] or history
    if steps:
        blocks = step_blocks([r["step"] for r in steps], [r["grad_sq_norm"] for r in steps],
                             [unit.to_examples(r["trace_sigma"]) for r in steps])
        monitor = weighted_mean_with_stderr(blocks, batch_size, steps[0]["step"] - 1, steps[-1]["step"])
        resolved = math.isfinite(monitor["value"]) and monitor["value"] > 0
        summary["b_simple_monitor"] = {
            "value": unit.from_examples(monitor["value"]) if resolved else None,
            "stderr": unit.from_examples(monitor["stderr"]) if resolved and math.isfinite(monitor["stderr"]) else None,
            "unweighted": unit.from_examples(monitor["unweighted"]) if math.isfinite(monitor["unweighted"]) else None,
            "steps": [steps[0]["step"], steps[-1]["step"]],
        }
    return summary


def run_measurement(
    task: Task,
    *,
    steps: int = 300,
    batch_size: int | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    source: str = "per_example",
    micro_batches: int = 4,
    checkpoints: int = 6,
    rounds: int | None = 16,
    rel_err: float = 0.1,
    max_rounds: int = 256,
    measure_batch_size: int | None = None,
    hessian: bool = True,
    unit: str = "auto",
    seed: int = 0,
    out_dir: str | Path | None = None,
    show_progress: bool = True,
    ema_steps: float = 50.0,
    precondition: bool | None = None,
) -> dict:
    """Train ``task`` for ``steps`` optimizer steps and measure the noise scale along the way.

    With an Adam/AdamW optimizer (or ``precondition=True``) each checkpoint after the first step is
    measured a second time for the preconditioned update ``P⁻¹g`` (``checkpoint["precond"]``).

    Returns the ``measure.json`` dictionary; with ``out_dir`` also writes ``noise.jsonl`` (the
    monitor's log, with ``hessian`` records at the checkpoints) and ``measure.json`` there.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if source not in ("per_example", "accumulation"):
        raise ValueError(f"measure runs in one process: source must be per_example or accumulation, got {source!r}")
    batch_size = task.default_batch_size if batch_size is None else batch_size
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (the noise estimate needs two examples per step), got {batch_size!r}")
    if source == "accumulation" and (micro_batches < 2 or batch_size % micro_batches):
        raise ValueError(f"--micro-batches must be >= 2 and divide --batch-size ({batch_size}), got {micro_batches}")
    lr = task.default_lr if lr is None else lr
    measure_batch_size = max(64, batch_size) if measure_batch_size is None else measure_batch_size
    if unit not in ("auto", "tokens", "examples"):
        raise ValueError(f"unit must be auto, tokens or examples, got {unit!r}")
    tokens_per_example = task.tokens_per_example if unit in ("auto", "tokens") else None
    if unit == "tokens" and not tokens_per_example:
        raise ValueError(f"task {task.name!r} has no tokens per example; use --unit examples")

    out = Path(out_dir) if out_dir else None
    log_path = None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        log_path = out / "noise.jsonl"
        if log_path.exists():
            log_path.unlink()  # a fresh run: never interleave two runs in one log
    model = task.make_model(seed=seed)
    opt = task.make_optimizer(model, lr=lr, name=optimizer)
    n_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    meta = {
        "trainwise_version": trainwise.__version__,
        "task": task.name,
        "device": str(task.device),
        "model_parameters": n_params,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": optimizer or task.default_optimizer,
        "steps": steps,
        "seed": seed,
        "source": source,
        "micro_batches": micro_batches if source == "accumulation" else 1,
        "unit": "tokens" if tokens_per_example else "examples",
        "tokens_per_example": tokens_per_example,
        "measure_batch_size": measure_batch_size,
        "rounds": rounds,
        "rel_err": None if rounds is not None else rel_err,
        "train_examples": task.num_train_examples(),
    }
    is_adam = isinstance(opt, torch.optim.Adam | torch.optim.AdamW)
    if precondition is None:
        precondition = is_adam
    if precondition and not is_adam:
        raise ValueError("precondition=True needs an Adam/AdamW optimizer (its second moments are the preconditioner)")
    monitor = NoiseScaleMonitor(
        model, source=source, tokens_per_example=tokens_per_example, optimizer=opt,
        precondition=precondition, ema_steps=ema_steps,
        log_path=log_path, meta={k: v for k, v in meta.items() if k not in ("source", "unit", "tokens_per_example")},
    )
    stream = task.batches(batch_size, seed=seed)
    probe_stream = task.batches(measure_batch_size, seed=seed + 10_000)  # independent of training data order
    # a fixed number of rounds per checkpoint, or (rounds=None) as many as reach the relative error rel_err
    precision = {} if rounds is not None else {"rel_err": rel_err, "max_rounds": max_rounds}
    at = set(_checkpoint_steps(steps, checkpoints))
    checkpoint_rows: list[dict] = []
    started = time.perf_counter()

    def take_checkpoint(step: int) -> None:
        loss = task.eval_loss(model)
        monitor.pause()  # the probe's passes are not training steps
        result = measure_noise_scale(model, task.loss_fn, probe_stream, rounds=rounds, hessian=hessian,
                                     tokens_per_example=tokens_per_example, **precision)
        precond_row = None
        if precondition and step > 0:
            pre = measure_noise_scale(model, task.loss_fn, probe_stream, rounds=rounds, hessian=hessian,
                                      tokens_per_example=tokens_per_example, preconditioner=opt, **precision)
            precond_row = {k: v for k, v in pre.to_dict().items()
                           if k in ("b_simple", "b_noise", "eps_max", "delta_l_max", "ghg", "trace_h_sigma",
                                   "grad_sq_norm", "trace_sigma")}
        monitor.resume()
        current_lr = float(opt.param_groups[0]["lr"])
        measured = result.to_dict()
        info = measured.pop("info", None) or {}
        measured["stopped"] = info.get("stopped")
        measured["measure_examples"] = measured.pop("examples")
        row = {**measured, "step": step, "examples": step * batch_size, "loss": loss, "lr": current_lr,
               "temperature": current_lr / batch_size}
        if precond_row:
            row["precond"] = precond_row
        checkpoint_rows.append(row)
        monitor.log({"kind": "hessian", **row})

    model.train()
    if 0 in at:
        take_checkpoint(0)
    for step in progress(range(1, steps + 1), total=steps, desc=f"measure {task.name}", enabled=show_progress):
        opt.zero_grad(set_to_none=True)
        batch = next(stream)
        if source == "accumulation":
            micro = batch_size // micro_batches
            total = 0.0
            for j in range(micro_batches):
                part = tuple(t[j * micro : (j + 1) * micro] for t in batch)
                loss = task.loss_fn(model, part).mean() / micro_batches
                loss.backward()
                monitor.micro_step(micro)
                total += float(loss.detach())
            monitor.step(loss=total)
        else:
            loss = task.loss_fn(model, batch).mean()
            loss.backward()
            monitor.step(batch_size=batch_size, loss=float(loss.detach()))
        opt.step()
        if step in at:
            take_checkpoint(step)
    monitor.close()
    elapsed = time.perf_counter() - started
    result = {
        "meta": {**meta, "seconds": elapsed, "final_loss": checkpoint_rows[-1]["loss"] if checkpoint_rows else task.eval_loss(model),
                 "skipped_steps": monitor.skipped},
        "checkpoints": checkpoint_rows,
        "summary": summarize_checkpoints(checkpoint_rows, monitor.history, batch_size=batch_size,
                                         unit=BatchUnit(meta["unit"], tokens_per_example)),
        "steps": [{k: r.get(k) for k in ("step", "examples", "loss", "lr", "temperature", "b_simple", "grad_sq_norm", "trace_sigma")}
                  | ({"b_simple_precond": r["precond"]["b_simple"]} if "precond" in r else {})
                  for r in monitor.history],
        "files": {},
    }
    if out:
        result["files"]["noise_jsonl"] = str(log_path)
        write_json(out / "measure.json", result)
        result["files"]["measure_json"] = str(out / "measure.json")
    return result
