"""``trainwise measure``: train a built-in task briefly with the noise-scale monitor on."""

from __future__ import annotations

import argparse
import sys

from trainwise.cli._common import fraction, learning_rate, whole

COMMAND = "measure"
HELP = "train a built-in task briefly and measure the gradient noise scale (B_simple, B_noise, ε_max) over training"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="char-gpt",
                        help="built-in task (char-gpt (default), digits-mlp, teacher-student) or your own task file FILE.py")
    parser.add_argument("--steps", type=whole("--steps", 1), default=300, help="optimizer steps to train (default 300)")
    parser.add_argument("--batch-size", type=whole("--batch-size", 2), default=None, help="training batch in examples (task default)")
    parser.add_argument("--lr", type=learning_rate("--lr"), default=None, help="learning rate (task default)")
    parser.add_argument("--optimizer", default=None, choices=["adamw", "sgd", "sgdm"], help="optimizer (task default)")
    parser.add_argument("--source", default="per_example", choices=["per_example", "accumulation"],
                        help="where B_small comes from: exact per-example norms, or accumulation micro-batches")
    parser.add_argument("--micro-batches", type=whole("--micro-batches", 2), default=4, help="micro-batches per step with --source accumulation")
    parser.add_argument("--checkpoints", type=whole("--checkpoints", 1), default=6, help="points in training with a full Hessian measurement")
    parser.add_argument("--rounds", type=whole("--rounds", 2), default=16, help="batches averaged at each checkpoint (default 16)")
    parser.add_argument("--rel-err", type=fraction("--rel-err"), default=None, metavar="X",
                        help="instead of a fixed --rounds, measure each checkpoint until the relative standard error of "
                        "B_simple (and B_noise) is at most X, e.g. 0.1 (at most --max-rounds batches)")
    parser.add_argument("--max-rounds", type=whole("--max-rounds", 2), default=256, help="cap on batches per checkpoint with --rel-err")
    parser.add_argument("--measure-batch-size", type=whole("--measure-batch-size", 2), default=None, help="batch size of checkpoint measurements")
    parser.add_argument("--no-hessian", action="store_true", help="skip Hessian-vector products (no B_noise, ε_max)")
    parser.add_argument("--no-precondition", action="store_true",
                        help="with Adam/AdamW, skip the second, preconditioned (P⁻¹g) measurement at checkpoints")
    parser.add_argument("--unit", default="auto", choices=["auto", "tokens", "examples"], help="batch-size unit")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/measure", help="folder for noise.jsonl, measure.json and the plot")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG plot")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainwise._device import resolve_device
    from trainwise._io import print_json, write_json
    from trainwise.cli._common import fmt_pm, table
    from trainwise.experiments.measure import MIN_ROUNDS, run_measurement
    from trainwise.tasks import load_task

    if args.rel_err is not None and args.max_rounds < MIN_ROUNDS:
        raise ValueError(f"--max-rounds must be >= {MIN_ROUNDS} with --rel-err (each checkpoint draws {MIN_ROUNDS} "
                         f"batches before it checks the error), got {args.max_rounds}")
    device = resolve_device(args.device)
    task = load_task(args.task, device=device)
    out = Path(args.out)
    result = run_measurement(
        task, steps=args.steps, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        source=args.source, micro_batches=args.micro_batches, checkpoints=args.checkpoints,
        rounds=None if args.rel_err is not None else args.rounds, rel_err=args.rel_err or 0.1, max_rounds=args.max_rounds,
        measure_batch_size=args.measure_batch_size, hessian=not args.no_hessian, unit=args.unit, seed=args.seed,
        out_dir=out, show_progress=not args.quiet, precondition=False if args.no_precondition else None,
    )
    if not args.no_plot:  # measure.json is already written: a missing plot extra loses nothing
        try:
            from trainwise.report.noise_plot import plot_noise_scale

            result["files"]["plot"] = str(plot_noise_scale(result, out / "noise_scale.png"))
            write_json(out / "measure.json", result)
        except ImportError as exc:
            print(f"trainwise: no plot ({exc})", file=sys.stderr)
    if args.json:
        print_json(result)
        return 0
    meta, summary = result["meta"], result["summary"]
    unit = meta["unit"]
    print(f"trainwise measure — task {meta['task']} ({meta['model_parameters']:,} parameters) on {meta['device']}, "
          f"batch {meta['batch_size']} examples, lr {meta['lr']:g}, {meta['optimizer']}, {meta['steps']} steps, "
          f"{meta['seconds']:.0f} s")
    print(f"noise scale in {unit}" + (f" ({meta['tokens_per_example']:g} tokens per example)" if unit == "tokens" else "")
          + "; each checkpoint averages " + (f"{meta['rounds']} batches" if meta.get("rounds") else
                                              f"batches until ±{meta['rel_err']:.0%} (rounds column)")
          + f" of {meta['measure_batch_size']}; ± is one standard error\n")
    has_precond = any(c.get("precond") for c in result["checkpoints"])
    rows = [
        [c["step"], c["rounds"], c["examples"], c["loss"], f"{c['temperature']:.2g}", fmt_pm(c["b_simple"]), fmt_pm(c.get("b_noise")),
         fmt_pm(c.get("eps_max"))] + ([fmt_pm((c.get("precond") or {}).get("b_simple"))] if has_precond else [])
        for c in result["checkpoints"]
    ]
    print(table(["step", "rounds", "examples", "loss", "lr/B", f"B_simple ({unit})", f"B_noise ({unit})", "ε_max"]
                + ([f"B_simple Adam P⁻¹g ({unit})"] if has_precond else []), rows))
    print("(not resolved: the reading's denominator, |G|² or GᵀHG, was not measurably positive there)")
    w = summary["window"]
    print(f"\nwindow steps {w['first_step']}–{w['last_step']} ({w['checkpoints']} checkpoints, initialisation excluded; "
          "steps weighted by 1/(1 + B̂/B)):")
    names = [("b_simple", "B_simple", "tr(Σ)/|G|², the Hessian-free noise scale"),
             ("b_noise", "B_noise", "tr(HΣ)/GᵀHG, the paper's predictor of B_crit"),
             ("b_simple_precond", "B_simple(P)", "of the Adam-preconditioned update P⁻¹g"),
             ("b_noise_precond", "B_noise(P)", "of the Adam-preconditioned update P⁻¹g")]
    for key, label, what in names:
        if key in summary:
            print(f"  {label:<12s} = {fmt_pm(summary[key])} {unit}   ({what})")
    monitor = summary.get("b_simple_monitor")
    if monitor:
        print(f"  {'B_simple':<12s} = {fmt_pm(monitor)} {unit}   (every training step, from the monitor, steps "
              f"{monitor['steps'][0]}–{monitor['steps'][1]}; the checkpoints above read fresh batches at a few points)")
    if summary.get("eps_max"):
        print(f"  {'ε_max':<12s} = {fmt_pm(summary['eps_max'])}   (best SGD step at infinite batch, |G|²/GᵀHG)")
    _print_b_crit(out / "measure.json", meta, unit)
    if meta.get("skipped_steps"):
        print(f"  skipped steps: {meta['skipped_steps']}")
    print("\nfiles: " + ", ".join(f"{k}={v}" for k, v in result["files"].items()))
    return 0


def _print_b_crit(path, meta: dict, unit: str) -> None:
    """The critical batch as ``trainwise plan`` will read it: the same reader, predictor and calibrated range."""
    from trainwise.optim.lr_scaling import optimizer_family
    from trainwise.plan import choose_b_crit, read_measure_json
    from trainwise.plan.format import fmt_quantity

    try:
        reading = read_measure_json(path)
    except ValueError as exc:
        print(f"\ncritical batch: not resolved ({exc})")
        return
    family, _ = optimizer_family(meta["optimizer"])
    b_crit = choose_b_crit(reading, family)
    print(f"\ncritical batch B_crit ≈ {fmt_quantity(b_crit['value'])} {unit} (likely {fmt_quantity(b_crit['low'])}–"
          f"{fmt_quantity(b_crit['high'])}) from {b_crit['source'].split(' averaged')[0]}")
    print(f"  why: {b_crit['why']}")
    print(f"  next: trainwise plan --from {path.parent} (batch, learning rate, steps and time to your budget)")
