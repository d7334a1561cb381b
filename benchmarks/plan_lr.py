"""Is the learning rate the plan recommends a good one? Steps to a target loss at the plan's batch and LR vs the best LR.

For each setting of ``benchmarks/critical_batch.py`` (same task, model, optimizer and target losses) this does
what a user would:

1. ``trainwise measure``: :func:`trainwise.experiments.run_measurement` at the task's default batch size and LR
   (the SGD + momentum setting measures at the LR its sweep is centred on);
2. ``trainwise plan``: ``make_plan(read_measurement(dir), optimizer=...)``, which gives a batch size (converted
   from tokens to examples where the plan is in tokens), a learning rate, and the learning rates of the
   rules it weighed (``lr_options``);
3. at that batch, trains to the middle target loss of the setting (held-out loss, constant LR,
   :func:`trainwise.experiments.train_to_targets`; steps averaged over two seeds, the same seeds at every LR) at
   the recommended LR and at a grid ``lr_rec × 2^k``, ``k = −3..3``, widened while the best LR sits at an edge.

It reports ``steps(lr_rec) / min over the grid of steps`` (goal: at most 1.3 on every setting), the same ratio
for each of the plan's ``lr_options``, and ``lr_rec / lr_best``. The grid's best is a minimum over noisy
runs, so it is biased a little low; ratios of 1.1 or so are within the scatter between neighbouring LRs.

Results persist per setting in ``runs/bench-plan-lr/<quick|full>/<setting>/`` (an interrupted run resumes; delete
the directory after changing the plan code or the settings) and together in ``runs/bench-plan-lr/results.json``.

    PYTHONPATH=src python benchmarks/plan_lr.py --quick --tasks digits-mlp      # about a minute on one core
    PYTHONPATH=src python benchmarks/plan_lr.py                                 # every setting, ~6 min
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from critical_batch import TASKS  # noqa: E402  (one definition of the settings and their targets)

from trainwise.experiments import run_measurement, train_to_targets  # noqa: E402
from trainwise.tasks import get_task  # noqa: E402

#: steps of the ``measure`` run per setting (the CLI default is 300)
MEASURE_STEPS = {"quick": 150, "full": 300}
#: the LR grid around the recommendation, as powers of two
GRID = {"quick": range(-2, 3), "full": range(-3, 4)}
#: how far the grid may be widened past its edges (powers of two on each side)
MAX_WIDEN = {"quick": 1, "full": 3}
#: seeds per learning rate (each sets the initialisation and the data order); steps are averaged over them
SEEDS = {"quick": (0,), "full": (0, 1)}
#: a grid LR's run stops past this many times the best mean steps so far (it cannot be the best)
GRID_CAP = 1.5
#: an option's run stops once it has taken this many times the best steps (its ratio is then reported as ">N")
OPTION_CAP = 5.0


def _git_head() -> str:
    """The commit the plan code comes from, and whether the working tree's plan/optim code differs from it."""
    try:
        head = subprocess.run(["git", "log", "-1", "--format=%h %s"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "src/trainwise/plan", "src/trainwise/optim"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (+ uncommitted plan/optim changes)" if dirty else "")


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=lambda v: None))
    os.replace(tmp, path)


def _plan(measure_dir: Path, optimizer: str) -> dict:
    from trainwise.plan import make_plan, read_measurement

    plan = make_plan(read_measurement(measure_dir), optimizer=optimizer)
    rec = plan["recommendation"]
    tokens_per_example = plan.get("tokens_per_example") or 1.0
    batch_examples = rec["batch_size"] / tokens_per_example if plan["unit"] == "tokens" else rec["batch_size"]
    return {"unit": plan["unit"], "tokens_per_example": plan.get("tokens_per_example"),
            "batch_size_plan_unit": rec["batch_size"], "batch_examples": batch_examples,
            "batch": max(2, int(round(batch_examples))), "lr": rec["lr"], "lr_source": rec.get("lr_source"),
            "lr_options": dict(rec.get("lr_options") or {}), "b_crit": plan.get("b_crit", {}).get("value")}


def run_setting(name: str, mode: str, out: Path, log, measure_lr: float | None = None) -> dict:
    spec = TASKS[name]
    task_name = spec.get("task", name)
    optimizer = spec.get("optimizer") or "adamw"
    task = get_task(task_name, **spec["kwargs"])
    target = sorted(spec["targets"], reverse=True)[len(spec["targets"]) // 2]
    tkey = f"{target:.6g}"
    directory = out / name
    directory.mkdir(parents=True, exist_ok=True)
    state_path = directory / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"runs": {}}

    measure_dir = directory / "measure"
    if not (measure_dir / "measure.json").exists():
        t0 = time.perf_counter()
        run_measurement(task, steps=MEASURE_STEPS[mode], lr=measure_lr or spec.get("base_lr"), optimizer=optimizer,
                        out_dir=measure_dir, show_progress=False)
        state["measure_wall_s"] = time.perf_counter() - t0
    if "plan" not in state:
        state["plan"] = _plan(measure_dir, optimizer)
        state["code"] = _git_head()
        _write_json(state_path, state)
    plan = state["plan"]
    batch, lr_rec = plan["batch"], plan["lr"]
    log(f"{name}: plan B = {plan['batch_size_plan_unit']:.4g} {plan['unit']} -> {batch} examples, lr {lr_rec:.3g} "
        f"({plan['lr_source']}); target {tkey}")

    def steps_at(lr: float, cap: float | None = None) -> float | None:
        """Mean steps to the target over the seeds (same seeds, so same initialisations and data orders, at every
        LR), or ``None`` if a seed did not reach it (within ``max_steps``, or ``cap`` steps: then it cannot be
        the best)."""
        key = f"{lr:.6g}"
        if key not in state["runs"]:
            prune = {tkey: cap} if cap is not None else None
            per_seed, stopped, wall = [], [], 0.0
            for seed in SEEDS[mode]:
                result, _, _ = train_to_targets(task, batch, lr, [target], max_steps=spec["max_steps"], seed=seed,
                                                optimizer=optimizer, prune_at=prune)
                per_seed.append(result.steps_to_target[tkey])
                stopped.append(result.stopped)
                wall += result.wall_s
                if per_seed[-1] is None:
                    break
            reached = all(v is not None for v in per_seed)
            state["runs"][key] = {"lr": lr, "steps": sum(per_seed) / len(per_seed) if reached else None,
                                  "per_seed": per_seed, "stopped": stopped, "wall_s": wall}
            _write_json(state_path, state)
            log(f"  B={batch} lr={lr:<10.4g} {','.join(stopped):<24s} steps "
                + ", ".join("-" if v is None else f"{v:.0f}" for v in per_seed) + f"  ({wall:.1f}s)")
        return state["runs"][key]["steps"]

    def best_so_far() -> float | None:
        done = [r["steps"] for r in state["runs"].values() if r["steps"] is not None]
        return min(done) if done else None

    def grid_cap() -> float | None:
        # a seed past 1.5x the best mean would need the other seed under half of it for its LR to be the best
        best = best_so_far()
        return None if best is None else GRID_CAP * best

    steps_at(lr_rec)  # never pruned: its own steps are the numerator
    lo, hi = min(GRID[mode]), max(GRID[mode])
    for k in GRID[mode]:
        steps_at(lr_rec * 2.0**k, grid_cap())
    for _ in range(MAX_WIDEN[mode]):  # widen while the best LR is at an edge of the grid
        grid = {k: state["runs"][f"{lr_rec * 2.0**k:.6g}"]["steps"] for k in range(lo, hi + 1)}
        reached = {k: s for k, s in grid.items() if s is not None}
        if not reached:
            break
        best_k = min(reached, key=reached.get)
        if best_k == lo:
            lo -= 1
            steps_at(lr_rec * 2.0**lo, grid_cap())
        elif best_k == hi:
            hi += 1
            steps_at(lr_rec * 2.0**hi, grid_cap())
        else:
            break
    grid_lrs = [lr_rec * 2.0**k for k in range(lo, hi + 1)]
    grid_best = min((lr for lr in grid_lrs if state["runs"][f"{lr:.6g}"]["steps"] is not None),
                    key=lambda lr: state["runs"][f"{lr:.6g}"]["steps"], default=None)
    options = {}
    for option, lr in plan["lr_options"].items():
        if lr is None or not lr > 0:
            continue
        best = best_so_far()
        options[option] = {"lr": float(lr), "steps": steps_at(float(lr), OPTION_CAP * best if best else None)}
    # the best over everything run (an option between grid points may beat the grid)
    reached = [r for r in state["runs"].values() if r["steps"] is not None]
    best_run = min(reached, key=lambda r: r["steps"]) if reached else None
    best_lr = best_run["lr"] if best_run else None
    best_steps = best_run["steps"] if best_run else None
    rec_steps = state["runs"][f"{lr_rec:.6g}"]["steps"]
    for entry in options.values():
        entry["ratio"] = entry["steps"] / best_steps if entry["steps"] is not None and best_steps else None
    summary = {
        "setting": name, "task": task_name, "optimizer": optimizer, "kwargs": spec["kwargs"], "target": target,
        "code": state.get("code"), "plan": plan, "batch": batch, "lr_rec": lr_rec, "rec_steps": rec_steps,
        "best_lr": best_lr, "best_steps": best_steps,
        "steps_ratio": rec_steps / best_steps if rec_steps is not None and best_steps else None,
        "lr_rec_over_best": lr_rec / best_lr if best_lr else None,
        "runs": {k: {"lr": v["lr"], "steps": v["steps"], "per_seed": v["per_seed"], "stopped": v["stopped"]}
                 for k, v in sorted(state["runs"].items(), key=lambda kv: kv[1]["lr"])},
        "best_at_grid_edge": grid_best is not None and grid_best in (grid_lrs[0], grid_lrs[-1]),
        "options": options, "max_steps": spec["max_steps"], "option_cap": OPTION_CAP,
        "measure_wall_s": state.get("measure_wall_s"),
        "wall_s": (state.get("measure_wall_s") or 0.0) + sum(r["wall_s"] for r in state["runs"].values()),
    }
    state["summary"] = summary
    _write_json(state_path, state)
    return summary


def _fmt_ratio(value, cap: float | None) -> str:
    if value is None:
        return "never" if cap is None else f">{cap:g}"
    return f"{value:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter measurement, narrower LR grid")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ", ".join(TASKS))
    parser.add_argument("--out", default="runs/bench-plan-lr")
    parser.add_argument("--measure-lr", action="append", default=[], metavar="SETTING=LR",
                        help="measure a setting at this LR instead of its default (e.g. the LR its critical-batch sweep "
                        "found best at the measured batch), to separate the rule from a mistuned starting rate")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    mode = "quick" if args.quick else "full"
    out = Path(args.out) / mode
    out.mkdir(parents=True, exist_ok=True)
    results_path = Path(args.out) / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.setdefault(mode, {})
    names = [n for n in args.tasks.split(",") if n]
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        parser.error(f"unknown setting(s) {unknown}; choose from {', '.join(TASKS)}")
    measure_lrs = {k: float(v) for k, v in (item.split("=", 1) for item in args.measure_lr)}
    for name in names:
        summary = run_setting(name, mode, out, lambda m: print(m, flush=True), measure_lrs.get(name))
        summary["measure_lr"] = measure_lrs.get(name)
        results[mode][name] = summary
        _write_json(results_path, results)
        print(f"  ({summary['wall_s']:.0f}s)", flush=True)

    print(f"\nPlan's learning rate vs the best of a ×2 grid around it, steps to the middle target at the plan's batch "
          f"({mode}; goal: steps ratio <= 1.3):")
    print(f"{'setting':<16s} {'optimizer':<9s} {'target':>6s} {'B_rec':>6s} {'lr_rec':>9s} {'best lr':>9s} "
          f"{'rec/best':>8s} {'steps':>7s} {'ratio':>6s}  options (lr: ratio)")
    for name in names:
        r = results[mode][name]
        opts = "; ".join(f"{o}: {v['lr']:.3g} -> {_fmt_ratio(v['ratio'], r['option_cap'])}" for o, v in r["options"].items())
        edge = " (edge)" if r["best_at_grid_edge"] else ""
        print(f"{name:<16s} {r['optimizer']:<9s} {r['target']:>6g} {r['batch']:>6d} {r['lr_rec']:>9.3g} "
              f"{(r['best_lr'] or math.nan):>9.3g} {(r['lr_rec_over_best'] or math.nan):>8.2f} "
              f"{(r['rec_steps'] or math.nan):>7.0f} {_fmt_ratio(r['steps_ratio'], None):>6s}{edge}  {opts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
