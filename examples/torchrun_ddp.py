"""Plain training loop under torchrun (DDP, gloo or nccl) with a growing batch.

    torchrun --standalone --nproc_per_node=2 examples/torchrun_ddp.py --out runs/ddp --steps 40

Each rank draws its own micro-batches; the controller (identical on every rank, since it reads the
all-reduced noise scale; rank 0's plan is broadcast as a check) grows the per-replica batch up to
``--micro`` and then the accumulation steps. Rank 0 writes ``noise.jsonl`` and ``adapt.jsonl``; with
``--plans PATH`` every rank's plan per step is gathered and written there (used by the tests).
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from trainwise.adapt import BatchSizeController
from trainwise.integrations.torchrun import AdaptiveBatchLoop
from trainwise.tasks import get_task


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--base-batch", type=int, default=8)
    parser.add_argument("--micro", type=int, default=8, help="largest per-replica micro-batch")
    parser.add_argument("--max-batch", type=int, default=128)
    parser.add_argument("--noise-fraction", type=float, default=1.0)
    parser.add_argument("--update-interval", type=int, default=4)
    parser.add_argument("--plans", default=None)
    parser.add_argument("--checkpoint", default=None, help="save the loop state at the end (rank 0)")
    parser.add_argument("--resume", default=None, help="load the loop state before training")
    args = parser.parse_args(argv)

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    task = get_task("digits-mlp")
    model = DistributedDataParallel(task.make_model(seed=0))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    controller = BatchSizeController(args.base_batch, max_micro_batch_size=args.micro, max_batch_size=args.max_batch,
                                     world_size=world, lr_rule="adam", noise_fraction=args.noise_fraction,
                                     update_interval=args.update_interval)
    loop = AdaptiveBatchLoop(model, optimizer, controller, log_dir=args.out, ema_steps=5)
    if args.resume:
        loop.load_state_dict(torch.load(args.resume, weights_only=False))
    generator = torch.Generator().manual_seed(1000 + rank)  # each replica its own data
    plans, records = [], []
    for _ in range(args.steps):
        out = loop.step(lambda b: task.sample_batch(b, generator), task.loss_fn)
        plans.append([out["plan"].batch_size, out["plan"].micro_batch_size, out["plan"].accumulation_steps])
        records.append(out["record"])
    gathered = [None] * world
    dist.all_gather_object(gathered, {"plans": plans, "records": records, "decisions": controller.decisions})
    if rank == 0:
        print(f"world {world}: batch {plans[0][0]} -> {plans[-1][0]}, B_simple {loop.monitor.b_simple:.1f}")
        if args.plans:
            with open(args.plans, "w") as fh:
                json.dump(gathered, fh)
        if args.checkpoint:
            torch.save(loop.state_dict(), args.checkpoint)
    loop.close()
    dist.barrier()  # no rank tears gloo down while another still talks to it
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
