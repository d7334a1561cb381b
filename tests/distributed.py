"""Shared by the distributed tests: start a worker under torchrun (2 processes, gloo) and the one-process reference
that a data-parallel run must equal (the same global batches as accumulated micro-batches, one per rank)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from trainwise.noise import NoiseScaleMonitor

SRC = Path(__file__).resolve().parents[1] / "src"


def run_torchrun(script: str | Path, *args: str, nproc: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone`` on ``script`` with this checkout's ``src`` on the path, one
    thread per process; fails the test with the end of both outputs when a rank fails."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(script),
           *map(str, args)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def accumulation_reference(task, model, optimizer, *, steps: int, per_rank: int = 6, world: int = 2,
                           dtype: torch.dtype | None = None, **monitor_kwargs) -> list[dict]:
    """Records of the accumulation source over the global batches a ``world``-rank run sees (seed 7), rank ``r``'s
    share as micro-batch ``r``: what the ddp source must give back."""
    monitor = NoiseScaleMonitor(model, source="accumulation", optimizer=optimizer, **monitor_kwargs)
    stream = task.batches(per_rank * world, seed=7)
    records = []
    for _ in range(steps):
        x, y = next(stream)
        if dtype is not None:
            x = x.to(dtype)
        optimizer.zero_grad()
        for rank in range(world):
            mine = slice(rank * per_rank, (rank + 1) * per_rank)
            (task.loss_fn(model, (x[mine], y[mine])).mean() / world).backward()
            monitor.micro_step(per_rank)
        records.append(monitor.step())
        optimizer.step()
    return [dict(r) for r in records]
