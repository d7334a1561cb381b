"""Run under torchrun (2 processes, gloo): the DDP source of NoiseScaleMonitor on the digits MLP.

Each rank takes its half of a common batch; rank 0 writes the monitor's records to argv[1].
"""

import json
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from trainwise.noise import NoiseScaleMonitor
from trainwise.tasks import get_task


def main(out_path: str, steps: int = 14, per_rank: int = 6) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    task = get_task("digits-mlp")
    model = DistributedDataParallel(task.make_model(seed=0).double())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    monitor = NoiseScaleMonitor(model, optimizer=optimizer, precondition=True, ema_steps=3)
    stream = task.batches(per_rank * world, seed=7)  # the same stream on every rank
    records = []
    for _ in range(steps):
        x, y = next(stream)
        mine = slice(rank * per_rank, (rank + 1) * per_rank)
        optimizer.zero_grad()
        monitor.prepare_ddp_step()
        task.loss_fn(model, (x[mine].double(), y[mine])).mean().backward()
        records.append(monitor.step(batch_size=per_rank))  # a PendingRecord: no host sync here
        optimizer.step()
    records = [dict(r) for r in records]  # read back (one copy for all steps)
    gathered = [None] * world
    dist.all_gather_object(gathered, records)
    if rank == 0:
        assert gathered[0] == gathered[1], "ranks disagree on the noise-scale records"
        with open(out_path, "w") as fh:
            json.dump(records, fh)
    dist.barrier()  # no rank tears gloo down while another still talks to it
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
