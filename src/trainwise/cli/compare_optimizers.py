"""``trainwise compare-optimizers``: loss curves of several optimizers at an equal budget."""

from __future__ import annotations

import argparse
import sys

from trainwise.cli._common import MAX_LR, whole

COMMAND = "compare-optimizers"
HELP = "train a built-in task with several optimizers at equal budgets; print and plot loss vs steps and wall-clock"

DEFAULT_OPTIMIZERS = "adamw,sgd-cosine,adamw-cosine,sophiag"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="char-gpt", help="built-in task (char-gpt, digits-mlp, teacher-student) or your own task file FILE.py; default char-gpt")
    parser.add_argument("--optimizers", default=DEFAULT_OPTIMIZERS,
                        help=f"comma-separated list from adamw, sgd-cosine, adamw-cosine, sophiag (default {DEFAULT_OPTIMIZERS})")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per run (default 300)")
    parser.add_argument("--batch-size", type=whole("--batch-size", 2), default=None, help="examples per step (default: the task's)")
    parser.add_argument("--eval-every", type=whole("--eval-every", 1), default=None, help="evaluate every N steps (default steps/10)")
    parser.add_argument("--lr", action="append", default=[], metavar="NAME=LR",
                        help="override one optimizer's learning rate, e.g. --lr sophiag=5e-4 (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (default: CUDA when available), cpu or cuda[:N]")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--out", default=None, help="directory for compare-optimizers.png and results.json")
    parser.add_argument("--no-plot", action="store_true", help="with --out: do not write compare-optimizers.png")
    parser.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true", help="no progress bar")


def _parse_lrs(items: list[str]) -> dict[str, float]:
    lrs = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            lr = float(value)
        except ValueError:
            lr = float("nan")
        if not sep or not name or not (0 < lr <= MAX_LR):
            raise ValueError(f"--lr expects NAME=LR with 0 < LR <= {MAX_LR:g}, got {item!r}")
        lrs[name.strip()] = lr
    return lrs


def _plot(results, path, task_name: str) -> None:
    from trainwise.report._mpl import pyplot

    plt = pyplot()
    fig, (ax_steps, ax_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    for result in results:
        steps = [p.step for p in result.curve]
        times = [p.time_s for p in result.curve]
        val = [p.val_loss for p in result.curve]
        label = f"{result.optimizer} (lr {result.lr:g})"
        (line,) = ax_steps.plot(steps, val, marker="o", ms=3, label=label)
        ax_time.plot(times, val, marker="o", ms=3, color=line.get_color(), label=label)
    ax_steps.set_xlabel("optimizer steps")
    ax_time.set_xlabel("wall-clock training time (s)")
    for ax in (ax_steps, ax_time):
        ax.set_ylabel("validation loss")
        ax.grid(alpha=0.3)
    ax_steps.legend(fontsize=8)
    fig.suptitle(f"{task_name}: equal budget (steps × batch)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from trainwise._device import resolve_device
    from trainwise._io import print_json, write_json
    from trainwise._progress import progress
    from trainwise.experiments.compare import OPTIMIZERS, compare_optimizers
    from trainwise.tasks import load_task

    optimizers = [name.strip() for name in args.optimizers.split(",") if name.strip()]
    if not optimizers:
        raise ValueError(f"--optimizers is empty: {args.optimizers!r}")
    unknown = [name for name in optimizers if name not in OPTIMIZERS]
    if unknown:
        raise ValueError(f"--optimizers: unknown optimizer(s) {', '.join(map(repr, unknown))}; choose from {', '.join(OPTIMIZERS)}")
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    lrs = _parse_lrs(args.lr)
    bad = [name for name in lrs if name not in optimizers]
    if bad:
        raise ValueError(f"--lr names optimizer(s) not being run: {', '.join(map(repr, bad))}")
    task = load_task(args.task, device=resolve_device(args.device))
    batch_size = args.batch_size or task.default_batch_size
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    eval_every = args.eval_every or max(1, args.steps // 10)
    torch.manual_seed(args.seed)

    bar = iter(progress(range(len(optimizers) * args.steps), total=len(optimizers) * args.steps,
                        desc="compare-optimizers", enabled=not args.quiet))
    results = compare_optimizers(task, optimizers, steps=args.steps, batch_size=batch_size, eval_every=eval_every,
                                 seed=args.seed, lrs=lrs, on_step=lambda _step: next(bar, None))
    for _ in bar:  # drain so the bar closes
        pass
    payload = {
        "task": task.name,
        "steps": args.steps,
        "batch_size": batch_size,
        "tokens_per_example": task.tokens_per_example,
        "seed": args.seed,
        "results": [r.as_dict() for r in results],
    }
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "results.json", payload)  # results first: a missing plot extra must not lose them
        if not args.no_plot:
            try:
                _plot(results, out / "compare-optimizers.png", task.name)
            except ImportError as exc:  # trainwise._optional.MissingExtra: the plot extra is not installed
                print(f"trainwise: no plot ({exc})", file=sys.stderr)
    if args.json:
        print_json(payload)
        return 0
    best = min(r.best_val_loss for r in results)
    print(f"task {task.name}: {args.steps} steps x batch {batch_size} per optimizer (seed {args.seed})")
    header = f"{'optimizer':<14}{'lr':>9}{'final val':>11}{'best val':>10}{'ms/step':>9}{'train s':>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        mark = " *" if r.best_val_loss == best else ""
        print(f"{r.optimizer:<14}{r.lr:>9.2g}{r.final_val_loss:>11.4f}{r.best_val_loss:>10.4f}"
              f"{r.time_per_step_ms:>9.1f}{r.curve[-1].time_s:>9.1f}{mark}")
    sophia = next((r for r in results if r.diagnostics), None)
    if sophia is not None:
        d = sophia.diagnostics
        print(f"sophiag: {d['hessian_updates']} Hessian estimates, win rate {d['win_rate']:.2f}, "
              f"clip fraction {d['clip_fraction']:.2f}")
    if args.out:
        print(f"wrote {Path(args.out) / 'results.json'}" + ("" if args.no_plot else " and compare-optimizers.png"))
    return 0
