"""The DDP source under torchrun (2 processes, gloo) equals accumulation over the same two halves."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainwise.noise import NoiseScaleMonitor
from trainwise.tasks import get_task

pytestmark = pytest.mark.distributed


def _single_process_reference(steps=14, per_rank=6, world=2):
    task = get_task("digits-mlp")
    model = task.make_model(seed=0).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    monitor = NoiseScaleMonitor(model, source="accumulation", optimizer=optimizer, precondition=True, ema_steps=3)
    stream = task.batches(per_rank * world, seed=7)
    records = []
    for _ in range(steps):
        x, y = next(stream)
        optimizer.zero_grad()
        for rank in range(world):
            mine = slice(rank * per_rank, (rank + 1) * per_rank)
            (task.loss_fn(model, (x[mine].double(), y[mine])).mean() / world).backward()
            monitor.micro_step(per_rank)
        records.append(monitor.step())
        optimizer.step()
    return records


def test_ddp_source_under_torchrun_matches_accumulation(tmp_path):
    out = tmp_path / "ddp.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(Path(__file__).with_name("ddp_worker.py")), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ddp = json.loads(out.read_text())
    reference = _single_process_reference()
    assert len(ddp) == len(reference) == 14
    for got, want in zip(ddp, reference):
        for key in ("batch_size", "b_small", "grad_sq_norm", "trace_sigma", "b_simple"):
            assert got[key] == pytest.approx(want[key], rel=1e-9), key
        if "precond" in want:
            assert got["precond"]["b_simple"] == pytest.approx(want["precond"]["b_simple"], rel=1e-7)
    assert "precond" in ddp[-1]
