"""The ddp source keeps a communication hook the user registered (fp16 compression on CPU/gloo; DDP takes the bf16
one only on CUDA/NCCL) and still equals the single-process accumulation reference, up to fp16 rounding of .grad."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainwise.noise import NoiseScaleMonitor
from trainwise.tasks import get_task

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def _reference(steps=4, per_rank=6, world=2):
    task = get_task("digits-mlp")
    model = task.make_model(seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = NoiseScaleMonitor(model, source="accumulation", optimizer=optimizer, ema_steps=3)
    stream = task.batches(per_rank * world, seed=7)
    records = []
    for _ in range(steps):
        x, y = next(stream)
        optimizer.zero_grad()
        for rank in range(world):
            mine = slice(rank * per_rank, (rank + 1) * per_rank)
            (task.loss_fn(model, (x[mine], y[mine])).mean() / world).backward()
            monitor.micro_step(per_rank)
        records.append(monitor.step())
        optimizer.step()
    return records


def test_ddp_source_wraps_the_users_compression_hook(tmp_path):
    out = tmp_path / "hook.json"
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(Path(__file__).with_name("ddp_hook_worker.py")), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["mode"] == "grad_hooks" and result["hooks"] == ["fp16_compress_hook"]
    assert all(result["compressed"])  # the user's hook still did the all-reduce: .grad holds fp16 values
    for got, want in zip(result["records"], _reference()):
        assert (got["b_small"], got["batch_size"]) == (want["b_small"], want["batch_size"]) == (6.0, 12.0)
        assert got["trace_sigma"] == pytest.approx(want["trace_sigma"], rel=1e-2)
        # |G|² estimate: a difference of two norms, compared on the scale of its noise tr(Σ)/B
        assert abs(got["grad_sq_norm"] - want["grad_sq_norm"]) < 1e-2 * want["trace_sigma"] / want["batch_size"]
