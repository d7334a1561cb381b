"""Train a task briefly with the monitor on, measuring the noise scale over training (``trainwise measure``).

The shared training loop (:func:`trainwise.experiments.loop.train`, optionally with gradient accumulation) with
:class:`~trainwise.noise.monitor.NoiseScaleMonitor` reading every step, and at a few checkpoints a full
:func:`~trainwise.noise.measure.measure_noise_scale` at the current parameters (Hessian terms included) on fresh
batches. The result follows ``docs/formats.md`` (``measure.json``); its summary is
:func:`trainwise.noise.summary.summarize_checkpoints`.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import torch

import trainwise
from trainwise._io import write_json
from trainwise._progress import progress
from trainwise.experiments.loop import train
from trainwise.noise._params import PRECONDITIONER_MIN_STEPS
from trainwise.noise.measure import measure_noise_scale
from trainwise.noise.monitor import NoiseScaleMonitor
from trainwise.noise.summary import checkpoint_steps, summarize_checkpoints
from trainwise.results import MeasureResult
from trainwise.tasks.base import Task
from trainwise.units import BatchUnit

#: batches a checkpoint draws before a relative-error target is first checked (measure_noise_scale's default)
MIN_ROUNDS: int = inspect.signature(measure_noise_scale).parameters["min_rounds"].default

__all__ = ["run_measurement"]


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
) -> MeasureResult:
    """Train ``task`` for ``steps`` optimizer steps and measure the noise scale along the way.

    With an Adam/AdamW optimizer (or ``precondition=True``) each checkpoint after the first step is
    measured a second time for the preconditioned update ``P⁻¹g`` (``checkpoint["precond"]``).

    Returns the ``measure.json`` result (:class:`trainwise.results.MeasureResult`, readable as a dict); with ``out_dir`` also writes ``noise.jsonl`` (the
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
    at = set(checkpoint_steps(steps, checkpoints))
    checkpoint_rows: list[dict] = []
    started = time.perf_counter()

    def diverged(step: int, exc: FloatingPointError) -> ValueError | None:
        """A user error when training itself diverged (non-finite parameters): the learning rate is too large."""
        if all(torch.isfinite(p).all() for p in model.parameters()):
            return None
        return ValueError(f"training diverged by step {step} at learning rate {lr:g} (the parameters are no longer "
                          f"finite, so the measurement met {exc}); use a smaller learning rate")

    def take_checkpoint(step: int) -> None:
        loss = task.eval_loss(model)
        monitor.pause()  # the probe's passes are not training steps
        try:
            result = measure_noise_scale(model, task.loss_fn, probe_stream, rounds=rounds, hessian=hessian,
                                         tokens_per_example=tokens_per_example, **precision)
        except FloatingPointError as exc:
            error = diverged(step, exc)
            if error is None:
                raise
            raise error from None
        precond_row = None
        if precondition and step >= PRECONDITIONER_MIN_STEPS:  # Adam's v̂ of a step or two is no preconditioner
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
    micro = batch_size // micro_batches
    batches = progress(stream, total=steps, desc=f"measure {task.name}", enabled=show_progress)
    try:
        train(model, opt, batches, steps, task.loss_fn, monitor=monitor,
              micro_batch_sizes=[micro] * micro_batches if source == "accumulation" else None,
              after_step=lambda info: take_checkpoint(info.step) if info.step in at else None)
    finally:
        batches.close()
    monitor.close()
    elapsed = time.perf_counter() - started
    result = MeasureResult(
        meta={**meta, "seconds": elapsed, "final_loss": checkpoint_rows[-1]["loss"] if checkpoint_rows else task.eval_loss(model),
              "skipped_steps": monitor.skipped},
        checkpoints=checkpoint_rows,
        summary=summarize_checkpoints(checkpoint_rows, monitor.history, batch_size=batch_size,
                                      unit=BatchUnit(meta["unit"], tokens_per_example)),
        steps=[{k: r.get(k) for k in ("step", "examples", "loss", "lr", "temperature", "b_simple", "grad_sq_norm", "trace_sigma")}
               | ({"b_simple_precond": r["precond"]["b_simple"]} if "precond" in r else {})
               for r in monitor.history],
        files={},
    )
    if out:
        result.files["noise_jsonl"] = str(log_path)
        write_json(out / "measure.json", result)
        result.files["measure_json"] = str(out / "measure.json")
    return result
