"""A sweep's summary: the trade-off fit per target, the tuned run per batch size, and the noise-scale predictions.

Pure functions of the finished runs (:class:`trainwise.results.RunResult`) and the checkpoint probes; no training.
The prediction per target: each tuned run's ``B_simple`` and ``B_noise`` averaged over its steps to that target,
each step weighted by ``1/(1 + B̂/B)`` (:mod:`trainwise.noise.averaging`), then the geometric mean over the
noise-dominated tuned runs.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Sequence

from trainwise._io import write_json
from trainwise.noise.averaging import Span, checkpoint_spans, s_min_weighted_mean
from trainwise.noise.estimators import mean_of
from trainwise.results import PREDICTORS, RunResult, SweepResult
from trainwise.sweep.config import SweepConfig, target_key
from trainwise.sweep.fit import TradeoffFit, fit_tradeoff
from trainwise.sweep.state import RESULT_FILE

__all__ = ["summarize", "steps_rise_with_batch", "tuned_key", "last_reached_step", "b_noise_from_probes"]

_target_key = target_key


def last_reached_step(run: RunResult) -> float | None:
    reached = [v for v in run.steps_to_target.values() if v is not None]
    return max(reached) if reached else None


def tuned_key(runs: dict[str, RunResult], batch_size: int, targets: Sequence[float]) -> str | None:
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


def _mean_stderr(values: list[float]) -> dict[str, float]:
    """:func:`~trainwise.noise.estimators.mean_of` over the finite values (one value: ``stderr = inf``)."""
    mean = mean_of([v for v in values if v is not None and math.isfinite(v)])
    return {"value": mean.value, "stderr": mean.stderr, "n": mean.n}


def b_noise_from_probes(readings: list[dict]) -> dict[str, Any]:
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
        key = tuned_key(runs, b, config.targets)
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
            entry["b_noise_pooled"] = b_noise_from_probes(probes)
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
    # (low temperature ε/B), whose noise scale reads high (docs/science.md §3); the plan warns about the same.
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
        write_json(Path(out_dir) / RESULT_FILE, result)
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




# old private names (the sweep runner used them)
_last_reached_step = last_reached_step
_tuned_key = tuned_key
_b_noise_from_probes = b_noise_from_probes
