"""``trainwise measure``: train a built-in task briefly with the noise-scale monitor on."""

from __future__ import annotations

import argparse
import sys

COMMAND = "measure"
HELP = "train a built-in task briefly and measure the gradient noise scale (B_simple, B_noise, ε_max) over training"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="char-gpt", help="built-in task: char-gpt (default), digits-mlp, ...")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps to train (default 300)")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch in examples (task default)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (task default)")
    parser.add_argument("--optimizer", default=None, choices=["adamw", "sgd", "sgdm"], help="optimizer (task default)")
    parser.add_argument("--source", default="per_example", choices=["per_example", "accumulation"],
                        help="where B_small comes from: exact per-example norms, or accumulation micro-batches")
    parser.add_argument("--micro-batches", type=int, default=4, help="micro-batches per step with --source accumulation")
    parser.add_argument("--checkpoints", type=int, default=6, help="points in training with a full Hessian measurement")
    parser.add_argument("--rounds", type=int, default=16, help="batches averaged at each checkpoint")
    parser.add_argument("--measure-batch-size", type=int, default=None, help="batch size of checkpoint measurements")
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
    from trainwise.cli._common import fmt_pm, print_json, table
    from trainwise.noise.run import run_measurement
    from trainwise.tasks import get_task

    device = resolve_device(args.device)
    task = get_task(args.task, device=device)
    out = Path(args.out)
    result = run_measurement(
        task, steps=args.steps, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        source=args.source, micro_batches=args.micro_batches, checkpoints=args.checkpoints, rounds=args.rounds,
        measure_batch_size=args.measure_batch_size, hessian=not args.no_hessian, unit=args.unit, seed=args.seed,
        out_dir=out, show_progress=not args.quiet, precondition=False if args.no_precondition else None,
    )
    if not args.no_plot:
        try:
            from trainwise.report.noise_plot import plot_noise_scale

            result["files"]["plot"] = str(plot_noise_scale(result, out / "noise_scale.png"))
        except ImportError as exc:
            print(f"trainwise: no plot ({exc})", file=sys.stderr)
        (out / "measure.json").write_text(__import__("json").dumps(result, indent=1))
    if args.json:
        print_json(result)
        return 0
    meta, summary = result["meta"], result["summary"]
    unit = meta["unit"]
    print(f"trainwise measure — task {meta['task']} ({meta['model_parameters']:,} parameters) on {meta['device']}, "
          f"batch {meta['batch_size']}, lr {meta['lr']:g}, {meta['optimizer']}, {meta['steps']} steps, "
          f"{meta['seconds']:.0f} s")
    print(f"noise scale in {unit}" + (f" ({meta['tokens_per_example']} tokens per example)" if unit == "tokens" else "")
          + f"; each checkpoint averages {meta['rounds']} batches of {meta['measure_batch_size']}; ± is one standard error\n")
    has_precond = any(c.get("precond") for c in result["checkpoints"])
    rows = [
        [c["step"], c["examples"], c["loss"], f"{c['temperature']:.2g}", fmt_pm(c["b_simple"]), fmt_pm(c.get("b_noise")),
         fmt_pm(c.get("eps_max"))] + ([fmt_pm((c.get("precond") or {}).get("b_noise"))] if has_precond else [])
        for c in result["checkpoints"]
    ]
    print(table(["step", "examples", "loss", "lr/B", "B_simple", "B_noise", "ε_max"] + (["B_noise (Adam P⁻¹g)"] if has_precond else []), rows))
    w = summary["window"]
    print(f"\nwindow steps {w['first_step']}–{w['last_step']} ({w['checkpoints']} checkpoints, initialisation excluded):")
    print(f"  B_noise  = {fmt_pm(summary.get('b_noise'))} {unit}   ← predicts the critical batch (McCandlish et al.: B_crit ≈ B_noise)")
    print(f"  B_simple = {fmt_pm(summary.get('b_simple'))} {unit}   (Hessian-free; typically 2–5× above B_crit)")
    print(f"  B_simple from the monitor over steps {summary['b_simple_monitor']['steps'][0]}–{summary['b_simple_monitor']['steps'][1]}"
          f" = {fmt_pm(summary['b_simple_monitor'])} {unit}")
    print(f"  ε_max    = {fmt_pm(summary.get('eps_max'))} (optimal SGD step at infinite batch)")
    if summary.get("b_noise_precond"):
        print(f"  for the Adam-preconditioned update P⁻¹g: B_noise = {fmt_pm(summary['b_noise_precond'])} {unit}, "
              f"B_simple = {fmt_pm(summary.get('b_simple_precond'))} {unit}")
    if meta.get("skipped_steps"):
        print(f"  skipped steps: {meta['skipped_steps']}")
    print("\nfiles: " + ", ".join(f"{k}={v}" for k, v in result["files"].items()))
    return 0
