"""SophiaG's optimizer step, side by side with the official implementation (``sophia-opt``) and AdamW.

Interleaved rounds on the same gradients (a 0.8M-parameter character GPT, one CPU thread), median per round;
prints each ``step()`` time and its ratio to the official SophiaG. Target (issue: no host syncs on the hot path):
trainwise's default step, non-finite check included, within 1.05× the official one, which checks nothing.

    PYTHONPATH=src python benchmarks/sophia_step.py            # about 20 s
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from trainwise.optim.sophia import SophiaG
from trainwise.tasks import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per round and candidate")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import sophia_opt
    except ImportError:
        raise SystemExit("needs the reference implementation: pip install sophia-opt --no-deps")
    task = get_task("char-gpt", n_layer=4, n_embd=128)
    model = task.make_model(seed=0)
    task.loss_fn(model, next(task.batches(8))).mean().backward()
    params = [p for p in model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    grads = [p.grad.clone() for p in params]

    def fresh(make):
        copies = [p.detach().clone().requires_grad_(True) for p in params]
        for c, g in zip(copies, grads):
            c.grad = g.clone()
        return make(copies)

    candidates = {
        "official SophiaG (sophia-opt)": fresh(lambda ps: sophia_opt.SophiaG(ps, lr=3e-4, rho=0.04, weight_decay=0.2)),
        "trainwise SophiaG, default (checks non-finite)": fresh(lambda ps: SophiaG(ps, lr=3e-4, rho=0.04, weight_decay=0.2)),
        "trainwise SophiaG, nonfinite='ignore'": fresh(lambda ps: SophiaG(ps, lr=3e-4, rho=0.04, weight_decay=0.2,
                                                                          nonfinite="ignore")),
        "AdamW(foreach=True)": fresh(lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.1, foreach=True)),
    }
    times: dict[str, list[float]] = {k: [] for k in candidates}
    for round_index in range(args.rounds + 1):  # round 0 warms up
        for name, opt in candidates.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                opt.step(bs=512) if "Sophia" in name else opt.step()
            if round_index:
                times[name].append((time.perf_counter() - start) / args.steps * 1e3)
    base = statistics.median(times["official SophiaG (sophia-opt)"])
    print(f"optimizer step, {n:,} parameters, {args.threads} thread(s), median of {args.rounds} rounds × {args.steps} steps")
    print(f"{'':<48}{'ms':>8}{'× official':>12}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<48}{median:>8.3f}{median / base:>12.3f}")


if __name__ == "__main__":
    main()
