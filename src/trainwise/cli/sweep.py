"""``trainwise sweep``: measure the critical batch size by training to target losses across batch sizes."""

from __future__ import annotations

import argparse
import math
import sys

from trainwise.cli._common import MAX_LR, learning_rate, number, whole

COMMAND = "sweep"
HELP = "measure the critical batch size empirically (steps to target losses across batch sizes, resumable)"

#: target held-out losses that the built-in tasks reach on CPU in minutes
DEFAULT_TARGETS = {"digits-mlp": [0.4, 0.25, 0.15], "teacher-student": [1.6, 1.35, 1.25], "char-gpt": [2.6, 2.45, 2.35]}


def parse_batch_sizes(text: str) -> list[int]:
    """``"16..4096"`` (powers of two from 16 to 4096), ``"16..4096x4"`` (factor 4) or ``"4,8,32"``."""
    text = text.strip()
    if ".." in text:
        lo_text, _, hi_text = text.partition("..")
        factor_text = "2"
        if "x" in hi_text:
            hi_text, _, factor_text = hi_text.partition("x")
        try:
            lo, hi, factor = int(lo_text), int(hi_text), int(factor_text)
        except ValueError:
            raise ValueError(f"--batch-sizes: cannot read {text!r}; write e.g. 16..4096 or 4,8,32") from None
        if lo < 1 or hi < lo or factor < 2:
            raise ValueError(f"--batch-sizes range {text!r} must have 1 <= low <= high and factor >= 2")
        sizes, b = [], lo
        while b <= hi:
            sizes.append(b)
            b *= factor
        return sizes
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--batch-sizes: cannot read {text!r}; write e.g. 16..4096 or 4,8,32") from None


def _floats(text: str, what: str, positive: bool = False) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"cannot read {what} {text!r}; write comma-separated numbers") from None
    if not values or any(not math.isfinite(v) for v in values):
        raise ValueError(f"{what} must be finite numbers, got {text!r}")
    if positive and min(values) <= 0:
        raise ValueError(f"{what} must be positive numbers, got {text!r}")
    return values


def _check_lrs(lrs_by_batch: dict[int, list[float]], options: str) -> None:
    """Every learning rate a run would use is one (``0 < lr <= MAX_LR``): the rule scales the base rate with the batch
    and the factors multiply it, so a valid --base-lr can still give an overflowing rate at the largest batch."""
    for batch_size, lrs in lrs_by_batch.items():
        for lr in lrs:
            if not (math.isfinite(lr) and 0 < lr <= MAX_LR):
                raise ValueError(f"{options} give a learning rate of {lr:g} at batch {batch_size}; "
                                 f"a learning rate must be in (0, {MAX_LR:g}]")


def _whole_list(text: str, what: str, low: int) -> list[int]:
    """Comma-separated whole numbers ``>= low`` (``--base-steps``, ``--multipliers``): never truncated silently."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"cannot read {what} {text!r}; write comma-separated whole numbers") from None
    if not values or min(values) < low:
        raise ValueError(f"{what} must be whole numbers >= {low}, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="built-in task (digits-mlp, char-gpt, teacher-student) or a .py file")
    parser.add_argument("--batch-sizes", default="4..1024", help="e.g. 16..4096 (×2 steps), 16..4096x4, or 4,8,32")
    parser.add_argument("--targets", help="held-out losses to reach, e.g. 3.2,3.0,2.9 (defaults exist for built-ins)")
    parser.add_argument("--lrs", help="one learning-rate grid for every batch size, e.g. 1e-3,3e-3,1e-2")
    parser.add_argument("--lr-rule", default="sqrt", choices=["sqrt", "linear", "constant"],
                        help="centre of each batch size's LR grid: base-lr scaled from base-batch (default sqrt, for Adam)")
    parser.add_argument("--base-lr", type=learning_rate("--base-lr"), help="reference LR (default: the task's)")
    parser.add_argument("--base-batch", type=whole("--base-batch", 1), help="reference batch of --base-lr (default: the task's)")
    parser.add_argument("--lr-factors", default="0.25,1,4", help="grid multipliers around the rule (1 = the rule alone)")
    parser.add_argument("--optimizer", help="adamw, sgd or sgdm (default: the task's)")
    parser.add_argument("--max-steps", type=whole("--max-steps", 1), default=5000, help="step cap per run (rerun with a larger cap to retrain only the runs it stopped)")
    parser.add_argument("--max-examples", type=whole("--max-examples", 1), help="example cap per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-hessian", action="store_true", help="skip the B_noise measurement at checkpoints")
    parser.add_argument("--probe-rounds", type=whole("--probe-rounds", 2), default=16,
                        help="B_noise: batches of 64 examples per checkpoint reading (more: less noise, proportionally slower; "
                        "a rerun with another value measures the probes again)")
    parser.add_argument("--probe-checkpoints", type=whole("--probe-checkpoints", 1), default=8,
                        help="B_noise: checkpoints read per batch size's tuned run")
    parser.add_argument("--noise-source", choices=["auto", "monitor", "halves"], default="auto",
                        help="per-step noise: NoiseScaleMonitor per-example norms (monitor) or two half-batches (halves); "
                        "auto = monitor when trainwise.noise is installed")
    parser.add_argument("--branched", action="store_true",
                        help="Merrill et al. 2025: branch short runs at larger batches from checkpoints of one run")
    parser.add_argument("--base-steps", default="0,50,200,800", help="--branched: checkpoint steps of the base run")
    parser.add_argument("--multipliers", default="1,2,4,8,16,32", help="--branched: branch batch = k × base batch")
    parser.add_argument("--branch-examples", type=whole("--branch-examples", 1), default=8192, help="--branched: examples per branch")
    parser.add_argument("--tolerance", type=number("--tolerance", "a finite number >= 0", low=0.0), default=0.01, help="--branched: allowed excess loss (nats)")
    parser.add_argument("--device", default="auto", help="auto (default: CUDA when available), cpu or cuda[:N]")
    parser.add_argument("--out", help="output and state directory (default runs/sweep-<task>); rerun to resume")
    parser.add_argument("--no-plot", "--no-plots", dest="no_plot", action="store_true", help="do not write the PNG plots")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainwise._device import resolve_device
    from trainwise._io import print_json, write_json
    from trainwise._optional import MissingExtra
    from trainwise.experiments.branched import run_branched
    from trainwise.experiments.noise_probe import default_noise_measure
    from trainwise.experiments.sweep import run_sweep
    from trainwise.sweep.config import BranchedConfig, SweepConfig
    from trainwise.tasks import load_task

    task = load_task(args.task, device=resolve_device(args.device))
    name = Path(args.task).stem if args.task.endswith(".py") else args.task
    out = Path(args.out or f"runs/sweep-{name}")
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    if args.branched:
        config = BranchedConfig(
            task=args.task, base_batch=args.base_batch or task.default_batch_size, base_lr=args.base_lr or task.default_lr,
            checkpoint_steps=_whole_list(args.base_steps, "--base-steps", 0),
            multipliers=_whole_list(args.multipliers, "--multipliers", 1),
            branch_examples=args.branch_examples, tolerance=args.tolerance, lr_rule=args.lr_rule,
            lr_factors=_floats(args.lr_factors, "--lr-factors", positive=True), optimizer=args.optimizer, seed=args.seed)
        from trainwise.sweep.config import lr_for_rule

        _check_lrs({config.base_batch * k: [lr_for_rule(config.lr_rule, config.base_batch * k, config.base_lr,
                                                        config.base_batch) * f for f in config.lr_factors]
                    for k in config.multipliers}, "--base-lr/--lr-factors")
        result = run_branched(task, config, out, log=log)
        if not args.no_plot:  # branched.json is already written: a missing plot extra loses nothing
            try:
                from trainwise.report.plots import plot_branched

                result["files"] = {"plot": plot_branched(result, out / "branched.png")}
                write_json(out / "branched.json", result)
            except MissingExtra as exc:
                print(f"trainwise: plot skipped ({exc})", file=sys.stderr)
        if args.json:
            print_json(result)
        else:
            print(f"\n{result['method']}")
            print(f"{'step':>8s} {'examples':>10s} {'loss':>8s} {'largest batch keeping up':>26s}")
            for c in result["checkpoints"]:
                print(f"{c['step']:>8d} {c['examples']:>10d} {c['loss']:>8.4f} {c['b_crit']:>26d}" + ("  (≥, largest tried)" if c["capped"] else ""))
            print(f"\nwrote {out / 'branched.json'}")
        return 0
    targets = _floats(args.targets, "--targets") if args.targets else DEFAULT_TARGETS.get(args.task)
    if targets is None:
        raise ValueError(f"--targets is required for task {args.task!r} (held-out losses to reach, e.g. 3.2,3.0,2.9)")
    batch_sizes = parse_batch_sizes(args.batch_sizes)
    if not batch_sizes or min(batch_sizes) < 2:
        raise ValueError(f"--batch-sizes must be whole numbers >= 2 (a noise estimate needs two examples per step), "
                         f"got {args.batch_sizes!r}")
    config = SweepConfig(
        task=args.task, batch_sizes=batch_sizes, targets=targets,
        lr_rule=args.lr_rule, base_lr=args.base_lr, base_batch=args.base_batch,
        lr_factors=_floats(args.lr_factors, "--lr-factors", positive=True), lrs=_floats(args.lrs, "--lrs", positive=True) if args.lrs else None,
        optimizer=args.optimizer, max_steps=args.max_steps, max_examples=args.max_examples, seed=args.seed,
        noise_source=_noise_source(args.noise_source), noise_checkpoints=args.probe_checkpoints)
    _check_lrs({b: config.lrs_for(b, task) for b in config.batch_sizes}, "--lrs" if args.lrs else "--base-lr/--lr-factors")
    measure = None if args.no_hessian else default_noise_measure(rounds=args.probe_rounds)
    result = run_sweep(task, config, out, noise_measure=measure, log=log, show_progress=not args.quiet)
    data = result.to_dict()
    plotted = False
    if not args.no_plot:  # sweep.json is already written: a missing plot extra loses nothing
        try:
            from trainwise.report.plots import plot_sweep_steps, plot_sweep_tradeoff

            data["files"] = {"steps_plot": plot_sweep_steps(data, out / "steps_vs_batch.png"),
                             "tradeoff_plot": plot_sweep_tradeoff(data, out / "steps_vs_examples.png")}
            write_json(out / "sweep.json", data)
            plotted = True
        except MissingExtra as exc:
            print(f"trainwise: plot skipped ({exc})", file=sys.stderr)
    if args.json:
        print_json(data)
    else:
        print(format_sweep(data))
        print(f"\nwrote {out / 'sweep.json'}" + (f" and plots in {out}" if plotted else ""))
    return 0


def _noise_source(choice: str) -> str:
    """``auto``: the monitor's exact per-example norms (``B_small = 1``)."""
    return "monitor" if choice == "auto" else choice


def format_sweep(data: dict) -> str:
    from trainwise.results import PREDICTOR_LABELS, PREDICTORS, prediction_table

    lines = ["steps to target (min over the LR grid):"]
    batch_sizes = data["config"]["batch_sizes"]
    lines.append(f"{'B':>8s} " + " ".join(f"{'L≤' + t:>10s}" for t in data["steps_table"]))
    for b in batch_sizes:
        cells = [data["steps_table"][t].get(str(b)) for t in data["steps_table"]]
        lines.append(f"{b:>8d} " + " ".join(f"{'-' if c is None else format(c, '.0f'):>10s}" for c in cells))
    lines.append("")
    noise = data["noise"]
    names = [n for n in PREDICTORS if any(n in r for r in prediction_table(data))]
    lines.append(f"{'target':>8s} {'S_min':>9s} {'E_min':>10s} {'B_crit':>16s} {'rms resid':>9s}"
                 + "".join(f" {PREDICTOR_LABELS[n]:>16s} {'ratio':>6s}" for n in names))
    by_target = {r["target"]: r for r in prediction_table(data)}
    for t, fit in data["fits"].items():
        row = by_target.get(t, {})
        lines.append(f"{t:>8s} {fit['s_min']:>9.4g} {fit['e_min']:>10.4g} {fit['b_crit']:>8.4g} ± {fit['b_crit_stderr']:<5.2g} "
                     f"{fit['rms_relative_residual']:>9.2f}"
                     + "".join(f" {row.get(n, math.nan):>16.4g} {row.get(n + '_ratio', math.nan):>6.2f}" for n in names))
    lines.append(f"(predictions: {noise['how']})")
    def _per_target(v: dict) -> str:
        return ", ".join(f"{PREDICTOR_LABELS[n]} {v[n]:.3g}" for n in PREDICTORS if n in v)

    lines.append("tuned run per batch size (lr; per target): " + "; ".join(
        f"B={b}: lr {e['lr']:.3g}; " + "; ".join(f"to {t}: {_per_target(v)}" for t, v in e.get("targets", {}).items())
        for b, e in noise.get("per_batch_size", {}).items()))
    lines.extend(f"note: {n}" for n in data["notes"])
    return "\n".join(lines)
