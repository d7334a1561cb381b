"""Measure the critical batch size empirically: train to target losses at a geometric range of batch sizes.

Procedure (McCandlish et al. 2018, §3; Shallue et al. 2018):

1. For each batch size ``B`` and each learning rate of a small grid (or the one a scaling rule gives), train
   from the same initialisation with a constant learning rate, evaluating the held-out loss on a geometric
   schedule of steps, until the hardest target is reached or a step cap.
2. Steps-to-target ``S_t(B)`` is the first (interpolated) step where the held-out loss falls to target ``t``,
   minimised over the learning-rate grid; ``E_t(B) = B·S_t(B)``.
3. Per target, fit ``S = S_min + E_min/B`` (:func:`trainwise.sweep.fit.fit_tradeoff`), so
   ``B_crit = E_min/S_min`` with its standard error.
4. During every run the gradient noise is read for free by :class:`trainwise.noise.NoiseScaleMonitor`: per-step
   unbiased ``|G|²`` and ``tr(Σ)`` from the two micro-batches of each step (source ``accumulation``,
   ``B_small = B/2``, ``B_big = B``) or from per-example norms (source ``per_example``). At a few checkpoints of
   each batch size's tuned run an optional Hessian hook gives ``tr(HΣ)`` and ``GᵀHG`` (and, for Adam, the same
   for the preconditioned update, from the optimizer state saved with the checkpoint).
5. The prediction per target (:func:`trainwise.sweep.summary.summarize`).

State is written to ``<out>/sweep_state.json`` after every finished run (atomically), so an interrupted
sweep resumes where it stopped: finished runs are not repeated.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from trainwise._io import strict
from trainwise.experiments.loop import StepInfo, train
from trainwise.noise.averaging import Span, noise_window_average, s_min_weighted_mean, step_blocks
from trainwise.noise.monitor import NoiseScaleMonitor
from trainwise.results import RunResult, SweepResult
from trainwise.sweep.checkpoints import pick_checkpoints, thin_checkpoints
from trainwise.sweep.config import SweepConfig, run_key, target_key
from trainwise.sweep.state import STATE_FILE, load_state, save_state
from trainwise.sweep.summary import last_reached_step, summarize, tuned_key
from trainwise.tasks.base import Task

__all__ = ["NoiseMeasure", "train_to_targets", "run_sweep"]

#: ``NoiseMeasure(model, task, step) -> {"b_noise": {"value", "stderr"}, "trace_h_sigma": ..., "ghg": ..., ...}``
NoiseMeasure = Callable[[torch.nn.Module, Task, int], dict]


def _snapshot(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict:
    """Copies of the model's and the optimizer's state (the optimizer's holds Adam's ``v̂``, the preconditioner)."""
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": copy.deepcopy(opt.state_dict())}


def train_to_targets(
    task: Task,
    batch_size: int,
    lr: float,
    targets: Sequence[float],
    *,
    max_steps: int,
    max_examples: int | None = None,
    eval_growth: float = 1.05,
    seed: int = 0,
    optimizer: str | None = None,
    prune_at: dict[str, float] | None = None,
    checkpoint_growth: float = 1.15,
    max_checkpoints: int = 24,
    plateau_min_steps: int = 100,
    noise_source: str = "halves",
) -> tuple[RunResult, dict[int, dict], dict]:
    """Train once at ``(batch_size, lr)`` until every target (held-out loss) is reached, or a cap.

    ``noise_source="halves"``: each step is two micro-batches of ``b = B//2`` and ``B − b`` examples whose
    gradients accumulate, read by :class:`~trainwise.noise.NoiseScaleMonitor` (source ``accumulation``): both
    micro-batch squared norms are averaged into ``|G_small|²`` at the harmonic-mean size ``B_small``, the
    accumulated gradient gives ``|G_big|²`` at ``B``, and the unbiased per-step estimates are
    :func:`~trainwise.noise.estimators.grad_sq_norm_estimate` and
    :func:`~trainwise.noise.estimators.trace_sigma_estimate`. ``noise_source="monitor"``: one backward pass over
    the whole batch, read with exact per-example gradient norms (``B_small = 1``: less noisy, a little slower).

    ``prune_at`` maps target keys to the best steps another learning rate already needed at this batch size;
    a run stops once it cannot beat any of them ("pruned"), and once the held-out loss has not improved over the
    last half of the run (after ``plateau_min_steps``; "plateau": overfitting or stuck).

    Returns the result, the checkpoints (``step -> {"model": state_dict, "optimizer": state_dict}``, on a
    geometric schedule) and the per-step noise trace.
    """
    if noise_source not in ("halves", "monitor"):
        raise ValueError(f"unknown noise_source {noise_source!r}; use 'halves' or 'monitor'")
    targets = sorted(targets, reverse=True)
    generator_seed = seed * 1_000_003 + batch_size
    model = task.make_model(seed=seed)
    opt = task.make_optimizer(model, lr=lr, name=optimizer)
    stream = task.batches(batch_size, seed=generator_seed)
    steps_to_target: dict[str, float | None] = {target_key(t): None for t in targets}
    eval_steps: list[int] = [0]
    eval_losses: list[float] = [task.eval_loss(model)]
    trace: dict[str, list] = {"step": [], "grad_sq_norm": [], "trace_sigma": [], "loss": []}
    checkpoints: dict[int, dict] = {0: _snapshot(model, opt)}
    if noise_source == "monitor":
        monitor = NoiseScaleMonitor(model, source="per_example", keep_history=False)
        micro_batch_sizes = None
    else:
        monitor = NoiseScaleMonitor(model, source="accumulation", keep_history=False)
        micro_batch_sizes = [batch_size // 2, batch_size - batch_size // 2]
    schedule = {"eval": 1, "checkpoint": 1}
    started = time.perf_counter()

    def after_backward(step: int, loss: float, record: dict | None) -> str | None:
        if record is None or not math.isfinite(loss):
            return "diverged"
        trace["step"].append(step)
        trace["grad_sq_norm"].append(record["grad_sq_norm"])
        trace["trace_sigma"].append(record["trace_sigma"])
        trace["loss"].append(loss)
        return None

    def after_step(info: StepInfo) -> str | None:
        step = info.step
        if step >= schedule["checkpoint"]:
            checkpoints[step] = _snapshot(model, opt)
            thin_checkpoints(checkpoints, max_checkpoints)
            schedule["checkpoint"] = max(step + 1, math.ceil(step * checkpoint_growth))
        if step >= schedule["eval"] or step == max_steps:
            schedule["eval"] = max(step + 1, math.ceil(step * eval_growth))
            loss = task.eval_loss(model)
            prev_step, prev_loss = eval_steps[-1], eval_losses[-1]
            eval_steps.append(step)
            eval_losses.append(loss)
            if not math.isfinite(loss):
                return "diverged"
            for target in targets:
                key = target_key(target)
                if steps_to_target[key] is None and loss <= target:
                    # linear interpolation between the two evaluations that bracket the crossing
                    frac = (prev_loss - target) / (prev_loss - loss) if prev_loss > loss else 1.0
                    steps_to_target[key] = prev_step + min(max(frac, 0.0), 1.0) * (step - prev_step)
            if all(v is not None for v in steps_to_target.values()):
                return "all_targets"
            best_at = eval_steps[eval_losses.index(min(eval_losses))]
            if step >= plateau_min_steps and best_at < step / 2:
                return "plateau"  # no new best held-out loss over the last half of the run
            if prune_at and all(
                steps_to_target[k] is not None or (prune_at.get(k) is not None and step >= prune_at[k])
                for k in steps_to_target
            ):
                return "pruned"
        if max_examples is not None and step * batch_size >= max_examples:
            return "example_cap"
        return None

    try:
        step, stopped = train(model, opt, stream, max_steps, task.loss_fn, micro_batch_sizes=micro_batch_sizes,
                              monitor=monitor, after_backward=after_backward, after_step=after_step)
    finally:
        monitor.close()
    checkpoints.setdefault(step, _snapshot(model, opt))
    result = RunResult(
        batch_size=batch_size,
        lr=lr,
        steps_to_target=steps_to_target,
        stopped=stopped or "step_cap",
        final_step=step,
        final_loss=eval_losses[-1],
        eval_steps=eval_steps,
        eval_losses=eval_losses,
        noise={},
        checkpoint_steps=sorted(checkpoints),
        wall_s=time.perf_counter() - started,
    )
    return result, checkpoints, trace


def _accepts_optimizer(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "optimizer" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _probe_tuned(task, config, runs, state, batch_size, out, noise_measure, state_path) -> None:
    key = tuned_key(runs, batch_size, config.targets)
    if key is None or key in state["noise_probes"]:
        return
    run = runs[key]
    readings = []
    model = task.make_model(seed=config.seed)
    pass_optimizer = _accepts_optimizer(noise_measure)
    for s in run.checkpoint_steps:
        path = out / "checkpoints" / key / f"step{s}.pt"
        if not path.exists():
            continue
        saved = torch.load(path, weights_only=True)
        if set(saved) == {"model", "optimizer"}:
            model.load_state_dict(saved["model"])
            optimizer = task.make_optimizer(model, lr=run.lr, name=config.optimizer)
            optimizer.load_state_dict(saved["optimizer"])
        else:  # a checkpoint written before optimizer states were kept
            model.load_state_dict(saved)
            optimizer = None
        reading = noise_measure(model, task, s, optimizer=optimizer) if pass_optimizer else noise_measure(model, task, s)
        reading = {k: v for k, v in reading.items() if isinstance(v, (dict, float, int))}
        reading["step"] = s
        readings.append(reading)
    state["noise_probes"][key] = readings
    save_state(state_path, state)


def run_sweep(
    task: Task,
    config: SweepConfig,
    out_dir: str | Path,
    *,
    noise_measure: NoiseMeasure | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] | None = None,
    train_run: Callable[..., tuple[RunResult, dict, dict]] | None = None,
) -> SweepResult:
    """Run (or resume) the sweep described by ``config`` on ``task``, writing state to ``out_dir``.

    ``noise_measure(model, task, step[, optimizer=...])`` is called on up to ``config.noise_checkpoints``
    checkpoints of each batch size's tuned run; it returns a dict with ``b_noise``, ``trace_h_sigma`` and ``ghg``
    entries (``{"value", "stderr"}``), as :func:`trainwise.noise.measure_noise_scale` gives, and optionally the
    same under ``precond_`` for the Adam-preconditioned update. If it takes an ``optimizer`` argument it gets the
    run's optimizer restored to the checkpoint (Adam's ``v̂`` is the preconditioner). ``train_run`` replaces
    :func:`train_to_targets` (same signature), e.g. to count or stub runs.
    """
    from trainwise._progress import progress

    train_run = train_run or train_to_targets
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    state = load_state(state_path, config, log=log)
    runs: dict[str, RunResult] = {k: RunResult.from_dict(v) for k, v in state["runs"].items()}
    if noise_measure is not None:  # B_noise probes measured with other settings (--probe-rounds) are measured again
        settings = strict(getattr(noise_measure, "settings", None))
        saved = state.get("noise_probe_settings")
        if saved is not None and settings is not None and saved != settings and state["noise_probes"]:
            if log:
                changed = ", ".join(f"{k} {saved.get(k)!r} -> {settings.get(k)!r}"
                                    for k in sorted(set(saved) | set(settings)) if saved.get(k) != settings.get(k))
                log(f"B_noise probe settings changed ({changed}): measuring the probes again")
            state["noise_probes"] = {}
        if settings is not None:
            state["noise_probe_settings"] = settings
    plan = [(b, lr) for b in config.batch_sizes for lr in config.lrs_for(b, task)]
    todo = [(b, lr) for b, lr in plan if run_key(b, lr) not in runs]
    if log and len(todo) < len(plan):
        log(f"resuming: {len(plan) - len(todo)} of {len(plan)} runs already done in {state_path}")
    lo, hi = config.noise_window
    for batch_size, lr in progress(todo, total=len(todo), desc="sweep runs", enabled=show_progress):
        prune_at: dict[str, float] = {}
        for run in runs.values():
            if run.batch_size != batch_size:
                continue
            for key, value in run.steps_to_target.items():
                if value is not None:
                    prune_at[key] = min(prune_at.get(key, math.inf), value)
        result, checkpoints, trace = train_run(
            task, batch_size, lr, config.targets,
            max_steps=config.max_steps, max_examples=config.max_examples, eval_growth=config.eval_growth,
            seed=config.seed, optimizer=config.optimizer, prune_at=prune_at, noise_source=config.noise_source,
        )
        last = last_reached_step(result) or result.final_step
        result.noise = noise_window_average(trace["step"], trace["grad_sq_norm"], trace["trace_sigma"], lo * last, hi * last)
        result.noise["source"] = ("NoiseScaleMonitor, per-example gradient norms (B_small = 1)" if config.noise_source == "monitor"
                                  else "NoiseScaleMonitor, two micro-batches per step (B_small = B/2)")
        # per-step estimates in short blocks, for the per-target S_min-weighted averages (noise/averaging.py)
        result.noise["blocks"] = [b.to_list() for b in step_blocks(trace["step"], trace["grad_sq_norm"], trace["trace_sigma"])]
        # keep a few checkpoints over the run for the Hessian measurement
        inside = pick_checkpoints(sorted(checkpoints), lo * last, hi * last, config.noise_checkpoints)
        ckpt_dir = out / "checkpoints" / run_key(batch_size, lr)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for s in inside:
            torch.save(checkpoints[s], ckpt_dir / f"step{s}.pt")
        result.checkpoint_steps = inside
        runs[run_key(batch_size, lr)] = result
        state["runs"][run_key(batch_size, lr)] = result.to_dict()
        save_state(state_path, state)
        if log:
            # the run's B_simple to the last target it reached, weighted as the predictions are
            weighted = s_min_weighted_mean([Span.from_list(row) for row in result.noise["blocks"]], batch_size,
                                           lo * last, hi * last)["value"]
            reached = ", ".join(f"{k}:{'-' if v is None else round(v)}" for k, v in result.steps_to_target.items())
            log(f"B={batch_size:<6d} lr={lr:<9.3g} {result.stopped:<11s} steps to target {reached}  "
                f"B_simple≈{weighted:.4g}  ({result.wall_s:.1f}s)")
        # once every LR of this batch size is done, measure B_noise on the tuned run
        if noise_measure is not None and all(run_key(batch_size, x) in runs for x in config.lrs_for(batch_size, task)):
            _probe_tuned(task, config, runs, state, batch_size, out, noise_measure, state_path)
    if noise_measure is not None:  # resumed sweeps: probe what is missing
        for batch_size in config.batch_sizes:
            _probe_tuned(task, config, runs, state, batch_size, out, noise_measure, state_path)
    return summarize(config, runs, state.get("noise_probes", {}), out)
