"""Run under torchrun (2 processes, gloo): the ddp source on a DDP model whose user already registered the fp16
compression hook (DDP accepts the bf16 one only on CUDA with NCCL). Rank 0 writes the records, the hook DDP ends up with and whether .grad was compressed."""

import json
import sys

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import fp16_compress_hook
from torch.nn.parallel import DistributedDataParallel

from trainwise.noise import NoiseScaleMonitor
from trainwise.tasks import get_task


def main(out_path: str, steps: int = 4, per_rank: int = 6, micro: int = 2) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    task = get_task("digits-mlp")
    model = DistributedDataParallel(task.make_model(seed=0))
    model.register_comm_hook(state=None, hook=fp16_compress_hook)  # the user's, before trainwise
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = NoiseScaleMonitor(model, optimizer=optimizer, ema_steps=3)
    stream = task.batches(per_rank * world, seed=7)
    records, compressed = [], []
    for _ in range(steps):
        x, y = next(stream)
        mine = slice(rank * per_rank, (rank + 1) * per_rank)
        xs, ys = x[mine], y[mine]
        optimizer.zero_grad()
        size = per_rank // micro
        for j in range(micro):  # accumulation: all but the last micro-batch under no_sync
            part = slice(j * size, (j + 1) * size)
            context = model.no_sync() if j < micro - 1 else torch.enable_grad()
            with context:
                (task.loss_fn(model, (xs[part], ys[part])).mean() / micro).backward()
        grads = [p.grad for p in model.parameters()]
        compressed.append(all(torch.equal(g, g.half().float()) for g in grads))
        records.append(monitor.step(batch_size=per_rank))  # a PendingRecord: no host sync here
        optimizer.step()
    records = [dict(r) for r in records]  # read back (one copy for all steps)
    gathered = [None] * world
    dist.all_gather_object(gathered, records)
    if rank == 0:
        assert gathered[0] == gathered[1], "ranks disagree on the noise-scale records"
        with open(out_path, "w") as fh:
            json.dump({"records": records, "mode": monitor._source.mode, "compressed": compressed,
                       "hooks": [h.__name__ for h, _ in model._comm_hooks]}, fh)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
