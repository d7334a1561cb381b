"""Batch-size warm-up vs fixed batches: optimizer steps, examples and wall-clock to a target loss.

On the built-in character LM (``char-gpt``, AdamW) three runs train to the same held-out loss:

(a) a fixed small batch ``B0`` at the task's LR,
(b) a fixed large batch ``B_large`` with the square-root LR rule (``lr·√(B_large/B0)``),
(c) :class:`trainwise.adapt.BatchSizeController` starting at ``B0``, growing the batch with the
    measured ``B_simple`` (accumulation source), LR × √(AdaScale gain) on top.

Targets from the issue: (c) needs >= 25% fewer steps than (a) with <= 10% more examples than (a),
and fewer examples than (b). Wall-clock excludes evaluation. Run ``--quick`` for a short check.

    PYTHONPATH=src python benchmarks/adaptive_batch.py --quick
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from trainwise.adapt import BatchSizeController
from trainwise.integrations.torchrun import AdaptiveBatchLoop
from trainwise.tasks import get_task


def run_fixed(task, batch_size, micro, lr, target, max_examples, eval_every_examples, seed):
    model = task.make_model(seed)
    optimizer = task.make_optimizer(model, lr=lr)
    stream = task.batches(micro, seed=seed + 1)
    accumulation = max(1, batch_size // micro)
    steps = examples = 0
    seconds = 0.0
    next_eval = eval_every_examples
    loss = math.inf
    while examples < max_examples:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        for _ in range(accumulation):
            (task.loss_fn(model, next(stream)).mean() / accumulation).backward()
        optimizer.step()
        seconds += time.perf_counter() - start
        steps += 1
        examples += micro * accumulation
        if examples >= next_eval:
            next_eval += eval_every_examples
            loss = task.eval_loss(model)
            if loss <= target:
                break
    return {"steps": steps, "examples": examples, "seconds": seconds, "loss": loss, "reached": loss <= target}


def run_controller(task, base, micro, max_batch, lr, target, max_examples, eval_every_examples, seed,
                   noise_fraction, update_interval, min_efficiency):
    model = task.make_model(seed)
    optimizer = task.make_optimizer(model, lr=lr)
    stream = task.batches(1, seed=seed + 1)
    generator = torch.Generator().manual_seed(seed + 1)
    controller = BatchSizeController(base, max_micro_batch_size=micro, max_batch_size=max_batch, lr_rule="adam",
                                     noise_fraction=noise_fraction, update_interval=update_interval,
                                     min_efficiency=min_efficiency)
    loop = AdaptiveBatchLoop(model, optimizer, controller, ema_steps=20)
    del stream
    steps = examples = 0
    seconds = 0.0
    next_eval = eval_every_examples
    loss = math.inf
    sizes = []
    while examples < max_examples:
        out = loop.step(lambda b: task.sample_batch(b, generator), task.loss_fn)
        seconds += out["seconds"]
        steps += 1
        examples += out["plan"].batch_size
        sizes.append(out["plan"].batch_size)
        if examples >= next_eval:
            next_eval += eval_every_examples
            loss = task.eval_loss(model)
            if loss <= target:
                break
    decisions = [(d["step"], d["batch_size"], round(d["b_simple"] or 0, 1)) for d in controller.decisions if d["action"] != "hold"]
    return {"steps": steps, "examples": examples, "seconds": seconds, "loss": loss, "reached": loss <= target,
            "final_batch": controller.batch_size, "b_simple": controller.b_simple, "changes": decisions}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a higher target loss (about a minute per run)")
    parser.add_argument("--target", type=float, default=None, help="held-out loss to reach (nats/char)")
    parser.add_argument("--base-batch", type=int, default=4)
    parser.add_argument("--large-batch", type=int, default=64)
    parser.add_argument("--micro", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None,
                        help="LR at the base batch (default: the task's 2e-3 at batch 32 by the square-root rule)")
    parser.add_argument("--noise-fraction", type=float, default=0.25,
                        help="target B = this × B_simple (B_simple overestimates B_crit 2-5x)")
    parser.add_argument("--min-efficiency", type=float, default=None)
    parser.add_argument("--update-interval", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    target = args.target if args.target is not None else (2.1 if args.quick else 1.9)
    task = get_task("char-gpt")
    if args.lr is None:
        args.lr = task.default_lr * math.sqrt(args.base_batch / task.default_batch_size)
    max_examples = 400_000
    eval_every = 4 * args.base_batch
    common = dict(target=target, max_examples=max_examples, eval_every_examples=eval_every, seed=args.seed)
    results = {
        "a_fixed_small": run_fixed(task, args.base_batch, min(args.micro, args.base_batch), args.lr, **common),
        "b_fixed_large": run_fixed(task, args.large_batch, min(args.micro, args.large_batch),
                                   args.lr * math.sqrt(args.large_batch / args.base_batch), **common),
        "c_controller": run_controller(task, args.base_batch, args.micro, args.large_batch, args.lr,
                                       noise_fraction=args.noise_fraction, update_interval=args.update_interval,
                                       min_efficiency=args.min_efficiency, **common),
    }
    a, b, c = results["a_fixed_small"], results["b_fixed_large"], results["c_controller"]
    summary = {
        "target_loss": target,
        "steps_saved_vs_a": 1 - c["steps"] / a["steps"],
        "extra_examples_vs_a": c["examples"] / a["examples"] - 1,
        "examples_ratio_vs_b": c["examples"] / b["examples"],
        "wallclock_ratio_vs_a": c["seconds"] / a["seconds"],
    }
    summary["meets_targets"] = bool(all(r["reached"] for r in results.values()) and summary["steps_saved_vs_a"] >= 0.25
                                    and summary["extra_examples_vs_a"] <= 0.10 and summary["examples_ratio_vs_b"] < 1)
    if args.json:
        print(json.dumps({"runs": results, "summary": summary}, indent=2))
        return
    print(f"char-gpt, AdamW (lr {args.lr:.2e} at B0={args.base_batch}, square-root rule above), "
          f"target held-out loss {target} nats/char")
    print(f"{'run':<28}{'steps':>8}{'examples':>10}{'seconds':>9}{'loss':>8}")
    names = {"a_fixed_small": f"(a) fixed B={args.base_batch}", "b_fixed_large": f"(b) fixed B={args.large_batch}",
             "c_controller": "(c) controller"}
    for key, r in results.items():
        print(f"{names[key]:<28}{r['steps']:>8}{r['examples']:>10}{r['seconds']:>9.1f}{r['loss']:>8.3f}"
              + ("" if r["reached"] else "  (target not reached)"))
    print(f"controller: final B={c['final_batch']}, B_simple={c['b_simple']:.1f}, changes (step, B, B_simple): {c['changes']}")
    print(f"steps saved vs (a): {summary['steps_saved_vs_a']:.1%} (target >= 25%); "
          f"extra examples vs (a): {summary['extra_examples_vs_a']:+.1%} (target <= +10%); "
          f"examples vs (b): {summary['examples_ratio_vs_b']:.2f}x (target < 1); "
          f"wall-clock vs (a): {summary['wallclock_ratio_vs_a']:.2f}x")
    print("meets targets:", summary["meets_targets"])


if __name__ == "__main__":
    main()
