"""Step-time overhead of the noise-scale monitor, per source, measured side by side in one run.

Trains the built-in character GPT with and without the monitor, alternating blocks of steps
(baseline, monitored, baseline, ...) so that both see the same machine load, and prints the
median step-time ratio for each source:

- accumulation   (K micro-batches; baseline: the same accumulation loop without the monitor)
- per_example    (exact per-example norms of every parameter, every step)
- per_example, every=4   (the same, measured on every 4th step)
- per_example, layers=norm   (LayerNorm parameters only; Gray et al. 2024's proxy)
- ddp            (2 processes, gloo, under torchrun: comm-hook norms + one scalar all-reduce)

Targets from the issue: <= 1.02 for accumulation and DDP, <= 1.15 for per-example norms.

    python benchmarks/gns_overhead.py            # ~3-5 minutes on 2 CPU cores
    python benchmarks/gns_overhead.py --quick    # smaller model, fewer blocks
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from trainwise.noise import NoiseScaleMonitor
from trainwise.tasks import get_task


def model_config(quick: bool) -> dict:
    return dict(n_layer=2, n_embd=64, block_size=64) if quick else dict(n_layer=4, n_embd=128, block_size=128)


def make_step(task, model, opt, stream, batch_size, micro_batches, monitor=None):
    micro = batch_size // micro_batches

    def step():
        opt.zero_grad(set_to_none=True)
        batch = next(stream)
        for j in range(micro_batches):
            part = tuple(t[j * micro : (j + 1) * micro] for t in batch)
            (task.loss_fn(model, part).mean() / micro_batches).backward()
            if monitor is not None and micro_batches > 1:
                monitor.micro_step(micro)
        if monitor is not None:
            monitor.step(batch_size=None if micro_batches > 1 else batch_size)
        opt.step()

    return step


def time_blocks(steps: dict, blocks: int, steps_per_block: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per step of each named step function, blocks interleaved."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in steps}
    for _ in range(blocks):
        for name, fn in steps.items():
            start = time.perf_counter()
            for _ in range(steps_per_block):
                fn()
            times[name].append((time.perf_counter() - start) / steps_per_block)
    return {name: statistics.median(v) for name, v in times.items()}


def single_process(args) -> list[dict]:
    task = get_task("char-gpt", **model_config(args.quick))
    rows = []
    cases = [
        ("accumulation", dict(source="accumulation"), args.micro_batches),
        ("per_example", dict(source="per_example"), 1),
        ("per_example every=4", dict(source="per_example", every=4), 1),
        ("per_example layers=norm", dict(source="per_example", layers="norm"), 1),
    ]
    for label, options, micro_batches in cases:
        base_model, mon_model = task.make_model(seed=0), task.make_model(seed=0)
        base_opt, mon_opt = task.make_optimizer(base_model), task.make_optimizer(mon_model)
        monitor = NoiseScaleMonitor(mon_model, optimizer=mon_opt, tokens_per_example=task.tokens_per_example, **options)
        steps = {
            "baseline": make_step(task, base_model, base_opt, task.batches(args.batch_size, seed=1), args.batch_size, micro_batches),
            "monitored": make_step(task, mon_model, mon_opt, task.batches(args.batch_size, seed=1), args.batch_size, micro_batches, monitor),
        }
        t = time_blocks(steps, args.blocks, args.steps_per_block)
        monitor.close()
        rows.append({"source": label, "baseline_ms": 1e3 * t["baseline"], "monitored_ms": 1e3 * t["monitored"],
                     "ratio": t["monitored"] / t["baseline"], "target": 1.02 if label == "accumulation" else 1.15,
                     "b_simple_tokens": monitor.b_simple})
        print(f"  {label}: ratio {rows[-1]['ratio']:.3f}", file=sys.stderr)
    return rows


def ddp_worker(args) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.set_num_threads(1)
    task = get_task("char-gpt", **model_config(args.quick))
    per_rank = args.batch_size // dist.get_world_size()
    base_model = DistributedDataParallel(task.make_model(seed=0))
    mon_model = DistributedDataParallel(task.make_model(seed=0))
    base_opt, mon_opt = task.make_optimizer(base_model.module), task.make_optimizer(mon_model.module)
    monitor = NoiseScaleMonitor(mon_model, source="ddp", tokens_per_example=task.tokens_per_example)
    steps = {
        "baseline": make_step(task, base_model, base_opt, task.batches(per_rank, seed=1 + rank), per_rank, 1),
        "monitored": make_step(task, mon_model, mon_opt, task.batches(per_rank, seed=1 + rank), per_rank, 1, monitor),
    }
    t = time_blocks(steps, args.blocks, args.steps_per_block)
    if rank == 0:
        row = {"source": "ddp (2 proc, gloo)", "baseline_ms": 1e3 * t["baseline"], "monitored_ms": 1e3 * t["monitored"],
               "ratio": t["monitored"] / t["baseline"], "target": 1.02, "b_simple_tokens": monitor.b_simple}
        Path(args.ddp_out).write_text(json.dumps(row))
    dist.barrier()  # no rank tears gloo down while another still talks to it
    dist.destroy_process_group()


def ddp(args) -> dict | None:
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"gns_overhead_ddp_{os.getpid()}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
           "--ddp-worker", "--ddp-out", str(out), "--batch-size", str(args.batch_size), "--blocks", str(args.blocks),
           "--steps-per-block", str(args.steps_per_block)] + (["--quick"] if args.quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    row = json.loads(out.read_text())
    out.unlink()
    print(f"  ddp: ratio {row['ratio']:.3f}", file=sys.stderr)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--micro-batches", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=None)
    parser.add_argument("--steps-per-block", type=int, default=None)
    parser.add_argument("--no-ddp", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ddp-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.blocks = args.blocks or (3 if args.quick else 7)
    args.steps_per_block = args.steps_per_block or (4 if args.quick else 6)
    if args.ddp_worker:
        ddp_worker(args)
        return
    cfg = model_config(args.quick)
    print(f"char-gpt {cfg}, batch {args.batch_size}, {args.blocks} interleaved blocks of {args.steps_per_block} steps, "
          f"torch threads {torch.get_num_threads()}", file=sys.stderr)
    rows = single_process(args)
    if not args.no_ddp:
        row = ddp(args)
        if row:
            rows.append(row)
    if args.json:
        print(json.dumps({"config": cfg, "batch_size": args.batch_size, "rows": rows}, indent=1))
        return
    print(f"\n{'source':<26}{'baseline ms':>12}{'monitored ms':>14}{'ratio':>8}{'target':>8}")
    for r in rows:
        flag = "ok" if r["ratio"] <= r["target"] else "MISSED"
        print(f"{r['source']:<26}{r['baseline_ms']:>12.1f}{r['monitored_ms']:>14.1f}{r['ratio']:>8.3f}{r['target']:>8.2f}  {flag}")


if __name__ == "__main__":
    main()
