"""Measure the critical batch size empirically: train to target losses at a geometric range of batch sizes.

Procedure (McCandlish et al. 2018, §3; Shallue et al. 2018):

1. For each batch size ``B`` and each learning rate of a small grid (or the one a scaling rule gives), train
   from the same initialisation with a constant learning rate, evaluating the held-out loss on a geometric
   schedule of steps, until the hardest target is reached or a step cap.
2. Steps-to-target ``S_t(B)`` is the first (interpolated) step where the held-out loss falls to target ``t``,
   minimised over the learning-rate grid; ``E_t(B) = B·S_t(B)``.
3. Per target, fit ``S = S_min + E_min/B`` (:func:`trainwise.sweep.fit.fit_tradeoff`), so
   ``B_crit = E_min/S_min`` with its standard error.
4. During every run the gradient noise is read for free: per-step unbiased ``|G|²`` and ``tr(Σ)`` from two
   micro-batches of each step (``B_small = B/2``, ``B_big = B``; SCIENCE.md §1) or from per-example norms. At a
   few checkpoints of each batch size's tuned run an optional Hessian hook gives ``tr(HΣ)`` and ``GᵀHG`` (and,
   for Adam, the same for the preconditioned update, from the optimizer state saved with the checkpoint).
5. The prediction per target: each tuned run's ``B_simple`` and ``B_noise`` averaged over its steps to that
   target, each step weighted by ``1/(1 + B̂/B)`` (:mod:`trainwise.noise.averaging`: ``B_crit = E_min/S_min`` is
   the mean noise scale over the steps of the infinite-batch path), then the geometric mean over the
   noise-dominated tuned runs.

State is written to ``<out>/sweep_state.json`` after every finished run (atomically), so an interrupted
sweep resumes where it stopped: finished runs are not repeated.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from trainwise.noise.averaging import Span, checkpoint_spans, s_min_weighted_mean, step_blocks
from trainwise.sweep.fit import TradeoffFit, fit_tradeoff
from trainwise.tasks.base import Task

__all__ = [
    "SweepConfig",
    "RunResult",
    "SweepResult",
    "run_sweep",
    "train_to_targets",
    "lr_for_rule",
    "noise_window_average",
    "prediction_table",
    "steps_rise_with_batch",
    "PREDICTORS",
    "NoiseMeasure",
]

STATE_FILE = "sweep_state.json"
RESULT_FILE = "sweep.json"
LR_RULES = ("grid", "constant", "linear", "sqrt")

#: ``NoiseMeasure(model, task, step) -> {"b_noise": {"value", "stderr"}, "trace_h_sigma": ..., "ghg": ..., ...}``
NoiseMeasure = Callable[[torch.nn.Module, Task, int], dict]


def lr_for_rule(rule: str, batch_size: float, base_lr: float, base_batch: float) -> float:
    """Learning rate at batch ``B`` from a reference ``(base_lr, base_batch)``.

    ``constant``: ``η``; ``linear``: ``η·B/B₀`` (SGD, Goyal et al. 2017); ``sqrt``: ``η·sqrt(B/B₀)`` (Adam,
    Malladi et al. 2022).
    """
    if rule == "constant" or rule == "grid":
        return base_lr
    if rule == "linear":
        return base_lr * batch_size / base_batch
    if rule == "sqrt":
        return base_lr * math.sqrt(batch_size / base_batch)
    raise ValueError(f"unknown learning-rate rule {rule!r}; use one of {', '.join(LR_RULES)}")


@dataclass
class SweepConfig:
    """What to sweep. ``lrs`` (an explicit grid shared by all batch sizes) selects rule ``grid``; otherwise
    each batch size gets ``lr_for_rule(lr_rule, B, base_lr, base_batch) × f`` for ``f`` in ``lr_factors``."""

    task: str
    batch_sizes: list[int]
    targets: list[float]
    lr_rule: str = "sqrt"
    base_lr: float | None = None
    base_batch: int | None = None
    lr_factors: list[float] = field(default_factory=lambda: [0.25, 1.0, 4.0])
    lrs: list[float] | None = None
    optimizer: str | None = None
    max_steps: int = 5000
    max_examples: int | None = None
    eval_growth: float = 1.05
    seed: int = 0
    noise_window: tuple[float, float] = (0.0, 1.0)
    noise_checkpoints: int = 8
    noise_source: str = "halves"
    task_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.batch_sizes = sorted(int(b) for b in self.batch_sizes)
        self.targets = sorted((float(t) for t in self.targets), reverse=True)
        if not self.batch_sizes or self.batch_sizes[0] < 2:
            raise ValueError(f"batch sizes must be >= 2 (a noise estimate needs two examples per step), got {self.batch_sizes!r}")
        if not self.targets or any(not math.isfinite(t) for t in self.targets):
            raise ValueError(f"targets must be finite losses, got {self.targets!r}")
        if self.lrs is not None:
            self.lr_rule = "grid"
            if not self.lrs or any(not (lr > 0) for lr in self.lrs):
                raise ValueError(f"learning rates must be positive, got {self.lrs!r}")
        if self.lr_rule not in LR_RULES:
            raise ValueError(f"unknown learning-rate rule {self.lr_rule!r}; use one of {', '.join(LR_RULES)}")
        if self.lr_rule == "grid" and self.lrs is None:
            raise ValueError("lr_rule 'grid' needs an explicit list of learning rates (lrs)")
        if any(not (f > 0) for f in self.lr_factors):
            raise ValueError(f"lr_factors must be positive, got {self.lr_factors!r}")
        if self.noise_checkpoints < 1:
            raise ValueError(f"noise_checkpoints must be >= 1, got {self.noise_checkpoints!r}")
        if self.noise_source not in ("halves", "monitor"):
            raise ValueError(f"noise_source must be 'halves' or 'monitor', got {self.noise_source!r}")
        if self.max_steps < 1 or self.eval_growth <= 1.0:
            raise ValueError(f"need max_steps >= 1 and eval_growth > 1, got {self.max_steps!r}, {self.eval_growth!r}")
        lo, hi = self.noise_window
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"noise_window must be fractions 0 <= lo < hi <= 1 of the run, got {self.noise_window!r}")
        self.noise_window = (float(lo), float(hi))

    def lrs_for(self, batch_size: int, task: Task) -> list[float]:
        if self.lr_rule == "grid":
            return sorted(float(lr) for lr in self.lrs)  # type: ignore[union-attr]
        base_lr = self.base_lr if self.base_lr is not None else task.default_lr
        base_batch = self.base_batch if self.base_batch is not None else task.default_batch_size
        center = lr_for_rule(self.lr_rule, batch_size, base_lr, base_batch)
        return sorted(center * f for f in self.lr_factors)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["noise_window"] = list(self.noise_window)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "SweepConfig":
        data = dict(data)
        data["noise_window"] = tuple(data.get("noise_window", (0.0, 1.0)))
        return cls(**data)


@dataclass
class RunResult:
    """One training run at ``(batch_size, lr)``."""

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


def _key(batch_size: int, lr: float) -> str:
    return f"B{batch_size}_lr{lr:.6g}"


def _target_key(target: float) -> str:
    return f"{target:.6g}"


def noise_window_average(
    steps: Sequence[int], grad_sq_norm: Sequence[float], trace_sigma: Sequence[float], first_step: float, last_step: float
) -> dict[str, Any]:
    """``B_simple`` over a window: mean of the unbiased ``tr(Σ)`` estimates over mean of the ``|G|²`` ones.

    The ratio of averages (not the average of per-step ratios, which is biased and heavy-tailed; SCIENCE.md §1).
    The standard error comes from the per-step scatter of both estimates, by the delta method, treating steps
    as independent (they are not quite, so it is a lower bound).
    """
    import numpy as np

    step_arr = np.asarray(steps, dtype=float)
    in_window = (step_arr >= first_step) & (step_arr <= last_step)
    g = np.asarray(grad_sq_norm, dtype=float)[in_window]
    s = np.asarray(trace_sigma, dtype=float)[in_window]
    n = int(in_window.sum())
    out: dict[str, Any] = {"window": {"first_step": int(first_step), "last_step": int(last_step), "steps": n}}
    if n < 2 or g.mean() <= 0:
        out.update(b_simple={"value": math.nan, "stderr": math.nan}, grad_sq_norm=float(g.mean()) if n else math.nan,
                   trace_sigma=float(s.mean()) if n else math.nan)
        return out
    g_mean, s_mean = float(g.mean()), float(s.mean())
    value = s_mean / g_mean
    cov = np.cov(np.stack([s, g])) / n
    rel_var = cov[0, 0] / s_mean**2 + cov[1, 1] / g_mean**2 - 2 * cov[0, 1] / (s_mean * g_mean)
    out.update(
        b_simple={"value": value, "stderr": abs(value) * math.sqrt(max(float(rel_var), 0.0))},
        grad_sq_norm=g_mean,
        trace_sigma=s_mean,
    )
    return out


def _snapshot(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict:
    """Copies of the model's and the optimizer's state (the optimizer's holds Adam's ``v̂``, the preconditioner)."""
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": copy.deepcopy(opt.state_dict())}


def _thin_checkpoints(checkpoints: dict[int, dict], max_checkpoints: int) -> None:
    """Keep at most ``max_checkpoints`` snapshots in memory, roughly geometric in step: while over, drop the
    interior one whose neighbours are closest in ratio (the first and the newest are always kept)."""
    while len(checkpoints) > max(max_checkpoints, 3):
        keys = sorted(checkpoints)
        drop = min(range(1, len(keys) - 1), key=lambda i: (keys[i + 1] + 1) / (keys[i - 1] + 1))
        del checkpoints[keys[drop]]


def _grad_sq_norm(params: list[torch.Tensor]) -> float:
    return float(sum(float((p.grad.detach().double() ** 2).sum()) for p in params if p.grad is not None))


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

    Each step splits the batch in two micro-batches of ``b = B//2`` and ``B − b`` examples and accumulates their
    gradients; the squared norm after the first micro-batch gives ``|G_small|²`` (scaled to that micro-batch's
    mean), after both ``|G_big|²``. The unbiased per-step estimates (SCIENCE.md §1, Appendix A of McCandlish
    et al.) are::

        |G|²  ≈ (B |G_big|² − b |G_small|²)/(B − b),   tr(Σ) ≈ (|G_small|² − |G_big|²)/(1/b − 1/B).

    ``prune_at`` maps target keys to the best steps another learning rate already needed at this batch size;
    a run stops once it cannot beat any of them ("pruned"), and once the held-out loss has not improved over the
    last half of the run (after ``plateau_min_steps``; "plateau": overfitting or stuck).

    ``noise_source="monitor"`` reads the per-step estimates from :class:`trainwise.noise.NoiseScaleMonitor`
    with exact per-example gradient norms instead (``B_small = 1``: less noisy, a little slower); the step is
    then one backward pass over the whole batch.

    Returns the result, the checkpoints (``step -> {"model": state_dict, "optimizer": state_dict}``, on a
    geometric schedule) and the per-step noise trace.
    """
    targets = sorted(targets, reverse=True)
    generator_seed = seed * 1_000_003 + batch_size
    model = task.make_model(seed=seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = task.make_optimizer(model, lr=lr, name=optimizer)
    stream = task.batches(batch_size, seed=generator_seed)
    b_small = batch_size // 2
    steps_to_target: dict[str, float | None] = {_target_key(t): None for t in targets}
    eval_steps: list[int] = [0]
    eval_losses: list[float] = [task.eval_loss(model)]
    trace = {"step": [], "grad_sq_norm": [], "trace_sigma": [], "loss": []}
    checkpoints: dict[int, dict] = {0: _snapshot(model, opt)}
    monitor = None
    if noise_source == "monitor":
        from trainwise.noise import NoiseScaleMonitor

        monitor = NoiseScaleMonitor(model, source="per_example", keep_history=False)
    elif noise_source != "halves":
        raise ValueError(f"unknown noise_source {noise_source!r}; use 'halves' or 'monitor'")
    next_eval, next_ckpt = 1, 1
    stopped = "step_cap"
    started = time.perf_counter()
    step = 0
    for step in range(1, max_steps + 1):
        batch = next(stream)
        opt.zero_grad(set_to_none=True)
        if monitor is not None:
            loss_all = task.loss_fn(model, batch).mean()
            loss_all.backward()
            train_loss = float(loss_all.detach())
            record = monitor.step(batch_size=batch_size, lr=lr, loss=train_loss)
            if record is None or not math.isfinite(train_loss):
                stopped = "diverged"
                break
            grad_sq_norm_step, trace_sigma_step = record["grad_sq_norm"], record["trace_sigma"]
        else:
            first = tuple(t[:b_small] for t in batch)
            second = tuple(t[b_small:] for t in batch)
            loss_first = task.loss_fn(model, first).sum() / batch_size
            loss_first.backward()
            g_small_sq = _grad_sq_norm(params) * (batch_size / b_small) ** 2
            loss_second = task.loss_fn(model, second).sum() / batch_size
            loss_second.backward()
            g_big_sq = _grad_sq_norm(params)
            train_loss = float(loss_first.detach() + loss_second.detach())
            if not math.isfinite(train_loss) or not math.isfinite(g_big_sq):
                stopped = "diverged"
                break
            grad_sq_norm_step = (batch_size * g_big_sq - b_small * g_small_sq) / (batch_size - b_small)
            trace_sigma_step = (g_small_sq - g_big_sq) / (1.0 / b_small - 1.0 / batch_size)
        trace["step"].append(step)
        trace["grad_sq_norm"].append(grad_sq_norm_step)
        trace["trace_sigma"].append(trace_sigma_step)
        trace["loss"].append(train_loss)
        opt.step()
        if step >= next_ckpt:
            checkpoints[step] = _snapshot(model, opt)
            _thin_checkpoints(checkpoints, max_checkpoints)
            next_ckpt = max(step + 1, math.ceil(step * checkpoint_growth))
        if step >= next_eval or step == max_steps:
            next_eval = max(step + 1, math.ceil(step * eval_growth))
            loss = task.eval_loss(model)
            prev_step, prev_loss = eval_steps[-1], eval_losses[-1]
            eval_steps.append(step)
            eval_losses.append(loss)
            if not math.isfinite(loss):
                stopped = "diverged"
                break
            for target in targets:
                key = _target_key(target)
                if steps_to_target[key] is None and loss <= target:
                    # linear interpolation between the two evaluations that bracket the crossing
                    frac = (prev_loss - target) / (prev_loss - loss) if prev_loss > loss else 1.0
                    steps_to_target[key] = prev_step + min(max(frac, 0.0), 1.0) * (step - prev_step)
            if all(v is not None for v in steps_to_target.values()):
                stopped = "all_targets"
                break
            best_at = eval_steps[eval_losses.index(min(eval_losses))]
            if step >= plateau_min_steps and best_at < step / 2:
                stopped = "plateau"  # no new best held-out loss over the last half of the run
                break
            if prune_at and all(
                steps_to_target[k] is not None or (prune_at.get(k) is not None and step >= prune_at[k])
                for k in steps_to_target
            ):
                stopped = "pruned"
                break
        if max_examples is not None and step * batch_size >= max_examples:
            stopped = "example_cap"
            break
    if monitor is not None:
        monitor.close()
    checkpoints.setdefault(step, _snapshot(model, opt))
    result = RunResult(
        batch_size=batch_size,
        lr=lr,
        steps_to_target=steps_to_target,
        stopped=stopped,
        final_step=step,
        final_loss=eval_losses[-1],
        eval_steps=eval_steps,
        eval_losses=eval_losses,
        noise={},
        checkpoint_steps=sorted(checkpoints),
        wall_s=time.perf_counter() - started,
    )
    return result, checkpoints, trace


def _last_reached_step(run: RunResult) -> float | None:
    reached = [v for v in run.steps_to_target.values() if v is not None]
    return max(reached) if reached else None


def _tuned_key(runs: dict[str, RunResult], batch_size: int, targets: Sequence[float]) -> str | None:
    """The run at ``batch_size`` that reached the most targets, ties broken by fewest steps to the hardest."""
    best, best_score = None, None
    for key, run in runs.items():
        if run.batch_size != batch_size:
            continue
        reached = [_target_key(t) for t in targets if run.steps_to_target.get(_target_key(t)) is not None]
        if not reached:
            continue
        score = (-len(reached), run.steps_to_target[reached[-1]])
        if best_score is None or score < best_score:
            best, best_score = key, score
    return best


@dataclass
class SweepResult:
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


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default))
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _load_state(path: Path, config: SweepConfig) -> dict:
    if not path.exists():
        return {"config": config.to_dict(), "runs": {}, "noise_probes": {}}
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"sweep state {str(path)!r} is not valid JSON ({exc}); delete it to start over") from None
    saved = state.get("config", {})
    mine = json.loads(json.dumps(config.to_dict()))
    differing = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k) and k not in ("max_steps",))
    if differing:
        raise ValueError(
            f"sweep state {str(path)!r} was written by a different configuration (differs in {', '.join(differing)}); "
            "use another --out directory or delete the state file"
        )
    state["config"] = mine
    return state


def run_sweep(
    task: Task,
    config: SweepConfig,
    out_dir: str | Path,
    *,
    noise_measure: NoiseMeasure | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run (or resume) the sweep described by ``config`` on ``task``, writing state to ``out_dir``.

    ``noise_measure(model, task, step[, optimizer=...])`` is called on up to ``config.noise_checkpoints``
    checkpoints of each batch size's tuned run; it returns a dict with ``b_noise``, ``trace_h_sigma`` and ``ghg``
    entries (``{"value", "stderr"}``), as :func:`trainwise.noise.measure_noise_scale` gives, and optionally the
    same under ``precond_`` for the Adam-preconditioned update. If it takes an ``optimizer`` argument it gets the
    run's optimizer restored to the checkpoint (Adam's ``v̂`` is the preconditioner).
    """
    from trainwise._progress import progress

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    state = _load_state(state_path, config)
    runs: dict[str, RunResult] = {k: RunResult(**v) for k, v in state["runs"].items()}
    plan = [(b, lr) for b in config.batch_sizes for lr in config.lrs_for(b, task)]
    todo = [(b, lr) for b, lr in plan if _key(b, lr) not in runs]
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
        result, checkpoints, trace = train_to_targets(
            task, batch_size, lr, config.targets,
            max_steps=config.max_steps, max_examples=config.max_examples, eval_growth=config.eval_growth,
            seed=config.seed, optimizer=config.optimizer, prune_at=prune_at, noise_source=config.noise_source,
        )
        last = _last_reached_step(result) or result.final_step
        result.noise = noise_window_average(trace["step"], trace["grad_sq_norm"], trace["trace_sigma"], lo * last, hi * last)
        result.noise["source"] = ("NoiseScaleMonitor, per-example gradient norms (B_small = 1)" if config.noise_source == "monitor"
                                  else "two micro-batches per step (B_small = B/2)")
        # per-step estimates in short blocks, for the per-target S_min-weighted averages (sweep/averaging.py)
        result.noise["blocks"] = [b.to_list() for b in step_blocks(trace["step"], trace["grad_sq_norm"], trace["trace_sigma"])]
        # keep a few checkpoints over the run for the Hessian measurement
        inside = _pick_checkpoints(sorted(checkpoints), lo * last, hi * last, config.noise_checkpoints)
        ckpt_dir = out / "checkpoints" / _key(batch_size, lr)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for s in inside:
            torch.save(checkpoints[s], ckpt_dir / f"step{s}.pt")
        result.checkpoint_steps = inside
        runs[_key(batch_size, lr)] = result
        state["runs"][_key(batch_size, lr)] = result.to_dict()
        _write_json_atomic(state_path, state)
        if log:
            # the run's B_simple to the last target it reached, weighted as the predictions are
            weighted = s_min_weighted_mean([Span.from_list(row) for row in result.noise["blocks"]], batch_size,
                                           lo * last, hi * last)["value"]
            reached = ", ".join(f"{k}:{'-' if v is None else round(v)}" for k, v in result.steps_to_target.items())
            log(f"B={batch_size:<6d} lr={lr:<9.3g} {result.stopped:<11s} steps to target {reached}  "
                f"B_simple≈{weighted:.4g}  ({result.wall_s:.1f}s)")
        # once every LR of this batch size is done, measure B_noise on the tuned run
        if noise_measure is not None and all(_key(batch_size, x) in runs for x in config.lrs_for(batch_size, task)):
            _probe_tuned(task, config, runs, state, batch_size, out, noise_measure, state_path)
    if noise_measure is not None:  # resumed sweeps: probe what is missing
        for batch_size in config.batch_sizes:
            _probe_tuned(task, config, runs, state, batch_size, out, noise_measure, state_path)
    return summarize(config, runs, state.get("noise_probes", {}), out)


def _pick_checkpoints(available: list[int], first: float, last: float, count: int) -> list[int]:
    """Up to ``count`` of the available checkpoint steps in ``[first, last]``, nearest to the quadratically spaced
    steps ``first + (last − first)·(i/count)²``: denser early, where the noise scale changes fastest, while each
    still stands for a fair share of the steps."""
    inside = [s for s in available if first <= s <= last and s > 0]
    if len(inside) <= count:
        return inside
    chosen: list[int] = []
    for i in range(1, count + 1):
        want = first + (last - first) * (i / count) ** 2
        best = min((s for s in inside if s not in chosen), key=lambda s: abs(s - want), default=None)
        if best is not None:
            chosen.append(best)
    return sorted(chosen)


def _accepts_optimizer(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "optimizer" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _probe_tuned(task, config, runs, state, batch_size, out, noise_measure, state_path) -> None:
    key = _tuned_key(runs, batch_size, config.targets)
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
    _write_json_atomic(state_path, state)


def _mean_stderr(values: list[float]) -> dict[str, float]:
    import numpy as np

    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return {"value": math.nan, "stderr": math.nan, "n": 0}
    stderr = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else math.nan
    return {"value": float(arr.mean()), "stderr": stderr, "n": int(arr.size)}


def _b_noise_from_probes(readings: list[dict]) -> dict[str, Any]:
    """``B_noise`` over checkpoints, pooled: mean ``tr(HΣ)`` over mean ``GᵀHG`` (ratio of averages)."""
    ths = [r["trace_h_sigma"]["value"] for r in readings if isinstance(r.get("trace_h_sigma"), dict)]
    ghg = [r["ghg"]["value"] for r in readings if isinstance(r.get("ghg"), dict)]
    single = [r["b_noise"]["value"] for r in readings if isinstance(r.get("b_noise"), dict)]
    spread = _mean_stderr(single)
    if ths and ghg and len(ths) == len(ghg) and sum(ghg) > 0:
        return {"value": sum(ths) / sum(ghg), "stderr": spread["stderr"], "checkpoints": len(ths),
                "steps": [r["step"] for r in readings]}
    return {"value": spread["value"], "stderr": spread["stderr"], "checkpoints": spread["n"],
            "steps": [r["step"] for r in readings]}


def _probe_spans(readings: list[dict], prefix: str = "", numerator: str = "trace_h_sigma",
                 denominator: str = "ghg") -> list[Span]:
    num, den = prefix + numerator, prefix + denominator
    rows = [(float(r["step"]), r[num]["value"], r[den]["value"]) for r in readings
            if isinstance(r.get(num), dict) and isinstance(r.get(den), dict)]
    return checkpoint_spans(rows)


#: the noise-scale readings a sweep predicts B_crit from: name -> (what, where the spans come from)
PREDICTORS = {
    "b_simple": "B_simple = tr(Σ)/|G|², per-step estimates during training",
    "b_noise": "B_noise = tr(HΣ)/GᵀHG, Hessian-vector products at checkpoints",
    "b_noise_precond": "B_noise of the Adam-preconditioned update P⁻¹g, at checkpoints",
    "b_simple_precond": "B_simple of the Adam-preconditioned update P⁻¹g, tr(P⁻¹ΣP⁻¹)/|P⁻¹G|², at checkpoints",
}


#: short column labels for the predictors
PREDICTOR_LABELS = {"b_simple": "B_simple", "b_noise": "B_noise", "b_noise_precond": "B_noise(Adam P)",
                    "b_simple_precond": "B_simple(Adam P)"}


def _run_spans(run: RunResult, probes: list[dict] | None) -> dict[str, list[Span]]:
    spans = {"b_simple": [Span.from_list(row) for row in run.noise.get("blocks", [])]}
    if probes:
        spans["b_noise"] = _probe_spans(probes)
        spans["b_noise_precond"] = _probe_spans(probes, "precond_")
        # the probe reads tr(Σ) and |G|² of P⁻¹g on the same batches: the preconditioned B_simple comes free
        spans["b_simple_precond"] = _probe_spans(probes, "precond_", "trace_sigma", "grad_sq_norm")
    return spans


def summarize(config: SweepConfig, runs: dict[str, RunResult], noise_probes: dict[str, list[dict]],
              out_dir: str | Path | None = None) -> SweepResult:
    """Fit the trade-off per target and gather the noise of the tuned runs; writes ``sweep.json`` to ``out_dir``."""
    import numpy as np

    notes: list[str] = []
    steps_table: dict[str, dict[int, float | None]] = {}
    fits: dict[str, TradeoffFit] = {}
    for target in config.targets:
        tkey = _target_key(target)
        row: dict[int, float | None] = {}
        for b in config.batch_sizes:
            values = [r.steps_to_target.get(tkey) for r in runs.values() if r.batch_size == b]
            values = [v for v in values if v is not None]
            row[b] = min(values) if values else None
        steps_table[tkey] = row
        batch = [b for b, s in row.items() if s is not None]
        missing = [b for b, s in row.items() if s is None and any(r.batch_size == b for r in runs.values())]
        if missing:
            notes.append(f"target {tkey}: not reached at B={missing} within the caps (left out of the fit)")
        if len(batch) >= 2:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                fits[tkey] = fit_tradeoff(batch, [row[b] for b in batch], target=target)
            rising = steps_rise_with_batch(batch, [row[b] for b in batch])
            if rising:
                fits[tkey].warnings.append(
                    f"steps to this target rise with the batch size ({rising}); the trade-off S = S_min + E_min/B "
                    "cannot do that, so reaching it is limited by something else (overfitting, a plateau, an "
                    "under-tuned learning rate) and its B_crit is not a noise-scale quantity")
            notes.extend(f"target {tkey}: {w}" for w in fits[tkey].warnings)
        else:
            notes.append(f"target {tkey}: reached at fewer than two batch sizes, no fit")
    tuned: dict[int, str] = {}
    per_batch: dict[str, dict] = {}
    lo, hi = config.noise_window
    for b in config.batch_sizes:
        key = _tuned_key(runs, b, config.targets)
        if key is None:
            continue
        tuned[b] = key
        run = runs[key]
        grid = sorted(r.lr for r in runs.values() if r.batch_size == b)
        if len(grid) > 1 and run.lr in (grid[0], grid[-1]):
            edge = "smallest" if run.lr == grid[0] else "largest"
            notes.append(f"B={b}: the best learning rate {run.lr:.3g} is the {edge} of the grid; "
                         "widen the grid (--lr-factors) to be sure it is tuned")
        entry: dict[str, Any] = {"run": key, "lr": run.lr, "b_simple_pooled": run.noise.get("b_simple"),
                                 "window": run.noise.get("window"), "targets": {}}
        probes = noise_probes.get(key) or None
        if probes:
            entry["b_noise_pooled"] = _b_noise_from_probes(probes)
        spans = _run_spans(run, probes)
        for target in config.targets:
            tkey = _target_key(target)
            reached = run.steps_to_target.get(tkey)
            if reached is None:
                continue
            row: dict[str, Any] = {"steps": reached}
            for name, name_spans in spans.items():
                if name_spans:
                    avg = s_min_weighted_mean(name_spans, b, lo * reached, hi * reached)
                    if math.isfinite(avg["value"]):
                        row[name] = avg["value"]
                        row[name + "_unweighted"] = avg["unweighted"]
            entry["targets"][tkey] = row
        per_batch[str(b)] = entry

    # The prediction per target: geometric mean over the tuned runs that reached it and are noise-dominated
    # (B <= their own B_simple for that target). A run at a batch far above its noise scale is a low-noise path
    # (low temperature ε/B), whose noise scale reads high (SCIENCE.md §1); the plan warns about the same.
    def geo(tkey: str, name: str, batches: list[str]) -> dict[str, Any]:
        pairs = [(int(b), per_batch[b]["targets"][tkey][name]) for b in batches
                 if name in per_batch[b]["targets"].get(tkey, {}) and per_batch[b]["targets"][tkey][name] > 0]
        if not pairs:
            return {"value": math.nan, "spread": math.nan, "runs": 0, "batch_sizes": []}
        logs = np.log([v for _, v in pairs])
        return {"value": float(np.exp(logs.mean())), "spread": float(np.exp(logs.std())) if len(pairs) > 1 else math.nan,
                "runs": len(pairs), "batch_sizes": [b for b, _ in pairs]}

    per_target: dict[str, dict] = {}
    for target in config.targets:
        tkey = _target_key(target)
        everything = [b for b in per_batch if tkey in per_batch[b]["targets"]]
        noise_dominated = [b for b in everything if int(b) <= per_batch[b]["targets"][tkey].get("b_simple", 0.0)]
        chosen = noise_dominated or everything
        per_target[tkey] = {name: geo(tkey, name, chosen) for name in PREDICTORS}
        per_target[tkey].update({name + "_all_runs": geo(tkey, name, everything) for name in PREDICTORS})
        per_target[tkey]["batch_sizes"] = [int(b) for b in chosen]
        per_target[tkey]["noise_dominated"] = bool(noise_dominated)
    hardest = next((t for t in reversed(list(per_target)) if per_target[t]["b_simple"]["runs"]), None)
    empty = {"value": math.nan, "spread": math.nan, "runs": 0, "batch_sizes": []}
    noise = {
        "per_batch_size": per_batch,
        "targets": per_target,
        "hardest_target": hardest,
        **{name: (per_target[hardest][name] if hardest else dict(empty)) for name in PREDICTORS},
        "how": "per target, each tuned run (best LR per batch size) is averaged over its steps "
        f"{lo:.0%}-{hi:.0%} of the way to that target, each step weighted by 1/(1 + B̂/B) (the steps of the "
        "infinite-batch path: B_crit = E_min/S_min is the mean noise scale over them); geometric mean over the "
        "tuned runs with B <= their own B_simple (noise-dominated), or all runs if none qualifies",
        "predictors": PREDICTORS,
    }
    result = SweepResult(config, runs, tuned, fits, steps_table, noise, notes)
    if out_dir is not None:
        _write_json_atomic(Path(out_dir) / RESULT_FILE, result.to_dict())
    return result


def steps_rise_with_batch(batch_sizes: Sequence[float], steps: Sequence[float], tolerance: float = 0.2) -> str:
    """Where steps-to-target grow with the batch size, or ``""``.

    A batch "rises" when it needs more than ``1 + tolerance`` times the fewest steps of any smaller batch. One bump
    is within the scatter of a coarse learning-rate grid at a few dozen steps (10–25% on our benchmarks), so the
    rise counts when it is sustained (two or more batch sizes, the largest among them) or large (over 1.5×).
    """
    pairs = sorted(zip(batch_sizes, steps))
    best_b, best_s = pairs[0]
    rising = []
    for b, s in pairs[1:]:
        if s > (1.0 + tolerance) * best_s:
            rising.append((b, s, best_b, best_s))
        if s < best_s:
            best_b, best_s = b, s
    sustained = len(rising) >= 2 and rising[-1][0] == pairs[-1][0]
    large = any(s > 1.5 * ref for _, s, _, ref in rising)
    if not (sustained or large):
        return ""
    return "; ".join(f"B={b:g}: {s:.3g} steps vs {ref:.3g} at B={rb:g}" for b, s, rb, ref in rising)


def prediction_table(data: dict) -> list[dict[str, Any]]:
    """Rows per fitted target from a ``sweep.json`` dict: the measured ``B_crit`` (± stderr) and, for each
    predictor of :data:`PREDICTORS` that has readings, its value and its ratio to ``B_crit``."""
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
