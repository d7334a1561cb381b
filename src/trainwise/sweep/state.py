"""The resumable state of a sweep: ``<out>/sweep_state.json``, rewritten (atomically, strict JSON) after every run.

Resuming with different settings (:func:`load_state`): every setting that changes a run's result must match the
saved one, except the caps. A larger ``max_steps``/``max_examples`` (or none) retrains the runs the old cap stopped,
so no saved run is capped below what ``config`` says; a smaller one is accepted only when no saved run went past
it (they would read differently). Anything else differing is refused, naming the option, the saved and the new
value. The Hessian probe's own settings (``--probe-rounds``) are checked by
:func:`trainwise.experiments.sweep.run_sweep`, which re-measures the probes when they differ.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

from trainwise._io import strict, write_json
from trainwise.sweep.config import SweepConfig

__all__ = ["STATE_FILE", "RESULT_FILE", "OPTION_OF", "load_state", "save_state"]

STATE_FILE = "sweep_state.json"
RESULT_FILE = "sweep.json"

#: the ``trainwise sweep`` option that sets each configuration field (for messages)
OPTION_OF = {"task": "--task", "batch_sizes": "--batch-sizes", "targets": "--targets", "lr_rule": "--lr-rule",
             "base_lr": "--base-lr", "base_batch": "--base-batch", "lr_factors": "--lr-factors", "lrs": "--lrs",
             "optimizer": "--optimizer", "max_steps": "--max-steps", "max_examples": "--max-examples",
             "seed": "--seed", "noise_checkpoints": "--probe-checkpoints", "noise_source": "--noise-source"}

_RUN_FIELDS = {"batch_size": int, "lr": (int, float), "steps_to_target": dict, "stopped": str, "final_step": int,
               "eval_steps": list, "eval_losses": list, "noise": dict, "checkpoint_steps": list}


def _name(key: str) -> str:
    return f"{OPTION_OF[key]} ({key})" if key in OPTION_OF else key


def _validate(path: Path, state: object) -> dict:
    """The state's shape, checked field by field, so a damaged file is refused naming the file and the field."""
    where = str(path)
    if not isinstance(state, dict):
        raise ValueError(f"sweep state {where!r} is not a JSON object; delete it to start over")
    for key in ("config", "runs"):
        if not isinstance(state.get(key), dict):
            raise ValueError(f"sweep state {where!r}: {key!r} is missing or not an object; delete the file to start over")
    probes = state.setdefault("noise_probes", {})
    if not isinstance(probes, dict) or not all(isinstance(v, list) and all(isinstance(r, dict) for r in v)
                                               for v in probes.values()):
        raise ValueError(f"sweep state {where!r}: 'noise_probes' must map run keys to lists of readings; "
                         "delete the file to start over")
    for run_key, run in state["runs"].items():
        if not isinstance(run, dict):
            raise ValueError(f"sweep state {where!r}: run {run_key!r} is not an object")
        for field, kind in _RUN_FIELDS.items():
            value = run.get(field)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"sweep state {where!r}: run {run_key!r} field {field!r} is missing or has the wrong "
                                 f"type ({value!r}); delete the file (or that run) to start over")
        if not (run["lr"] > 0 and run["batch_size"] >= 1 and run["final_step"] >= 0):
            raise ValueError(f"sweep state {where!r}: run {run_key!r} has batch_size {run['batch_size']!r}, "
                             f"lr {run['lr']!r}, final_step {run['final_step']!r}")
        for target, steps in run["steps_to_target"].items():
            if steps is not None and (not isinstance(steps, (int, float)) or isinstance(steps, bool)
                                      or not math.isfinite(steps) or steps < 0):
                raise ValueError(f"sweep state {where!r}: run {run_key!r} steps_to_target[{target!r}] = {steps!r} "
                                 "is not a step count")
        for field in ("final_loss", "wall_s"):
            value = run.get(field)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise ValueError(f"sweep state {where!r}: run {run_key!r} field {field!r} is not a number ({value!r})")
        run.setdefault("wall_s", 0.0)
        if run.get("wall_s") is None:
            run["wall_s"] = 0.0
        extra = sorted(set(run) - set(_RUN_FIELDS) - {"final_loss", "wall_s"})
        if extra:
            raise ValueError(f"sweep state {where!r}: run {run_key!r} has unknown field(s) {', '.join(extra)}")
    return state


def _last_allowed_step(run: dict, max_steps: int, max_examples: int | None) -> int:
    """The step at which the caps in ``config`` would stop this run."""
    step = max_steps
    if max_examples is not None:
        step = min(step, max(1, math.ceil(max_examples / run["batch_size"])))
    return step


def load_state(path: Path, config: SweepConfig, log: Callable[[str], None] | None = None) -> dict:
    """The saved state at ``path`` (validated), or a fresh one, reconciled with ``config`` (module docstring)."""
    mine = strict(config.to_dict())
    if not path.exists():
        return {"config": mine, "runs": {}, "noise_probes": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"sweep state {str(path)!r} is not valid JSON ({exc}); delete it to start over") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"sweep state {str(path)!r} is not UTF-8 text (byte {exc.start}); delete it to start over") from None
    state = _validate(path, state)
    saved = state["config"]
    caps = ("max_steps", "max_examples")
    differing = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k) and k not in caps)
    if differing:
        what = "; ".join(f"{_name(k)} was {saved.get(k)!r}, now {mine.get(k)!r}" for k in differing)
        raise ValueError(f"sweep state {str(path)!r} was written with other settings that change the results ({what}); "
                         "rerun with the saved values, or use another --out directory (or delete the state file)")
    old_steps, old_examples = saved.get("max_steps", config.max_steps), saved.get("max_examples")
    if not isinstance(old_steps, int) or (old_examples is not None and not isinstance(old_examples, int)):
        raise ValueError(f"sweep state {str(path)!r}: config max_steps/max_examples are not whole numbers "
                         f"({old_steps!r}, {old_examples!r})")
    # a smaller cap: refuse when a saved run trained past it (it would have stopped earlier)
    past = sorted(k for k, run in state["runs"].items()
                  if run["final_step"] > _last_allowed_step(run, config.max_steps, config.max_examples))
    if past:
        changed = [f"--max-steps was {old_steps}, now {config.max_steps}" if config.max_steps < old_steps else "",
                   f"--max-examples was {old_examples}, now {config.max_examples}"
                   if config.max_examples is not None and (old_examples is None or config.max_examples < old_examples) else ""]
        raise ValueError(f"sweep state {str(path)!r}: a smaller cap ({'; '.join(c for c in changed if c)}) would have "
                         f"stopped {len(past)} saved run(s) earlier ({', '.join(past[:3])}{', ...' if len(past) > 3 else ''}); "
                         "rerun with the saved cap or use another --out directory")
    # a larger cap: the runs the old cap stopped are retrained
    raised_steps = config.max_steps > old_steps
    raised_examples = old_examples is not None and (config.max_examples is None or config.max_examples > old_examples)
    capped = sorted(k for k, run in state["runs"].items()
                    if (raised_steps and run["stopped"] == "step_cap") or (raised_examples and run["stopped"] == "example_cap"))
    if capped:
        batch_sizes = {state["runs"][k]["batch_size"] for k in capped}
        for key in capped:
            del state["runs"][key]
        for key in [k for k in state["noise_probes"] if k.startswith(tuple(f"B{b}_" for b in batch_sizes))]:
            del state["noise_probes"][key]  # the tuned run of that batch size may change: probe it again
        if log:
            log(f"resuming with a larger cap (--max-steps {old_steps} -> {config.max_steps}, --max-examples "
                f"{old_examples} -> {config.max_examples}): retraining {len(capped)} run(s) the old cap stopped")
    state["config"] = mine
    return state


def save_state(path: Path, state: dict) -> None:
    write_json(path, state)
