"""The ddp source keeps a communication hook the user registered (fp16 compression on CPU/gloo; DDP takes the bf16
one only on CUDA/NCCL) and still equals the single-process accumulation reference, up to fp16 rounding of .grad."""

import json
from pathlib import Path

import pytest
import torch

from tests.distributed import accumulation_reference, run_torchrun
from trainwise.tasks import get_task

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def _reference(steps=4):
    task = get_task("digits-mlp")
    model = task.make_model(seed=0)
    return accumulation_reference(task, model, torch.optim.SGD(model.parameters(), lr=0.1), steps=steps, ema_steps=3)


def test_ddp_source_wraps_the_users_compression_hook(tmp_path):
    out = tmp_path / "hook.json"
    run_torchrun(Path(__file__).with_name("ddp_hook_worker.py"), out)
    result = json.loads(out.read_text())
    assert result["mode"] == "grad_hooks" and result["hooks"] == ["fp16_compress_hook"]
    assert all(result["compressed"])  # the user's hook still did the all-reduce: .grad holds fp16 values
    for got, want in zip(result["records"], _reference()):
        assert (got["b_small"], got["batch_size"]) == (want["b_small"], want["batch_size"]) == (6.0, 12.0)
        assert got["trace_sigma"] == pytest.approx(want["trace_sigma"], rel=1e-2)
        # |G|² estimate: a difference of two norms, compared on the scale of its noise tr(Σ)/B
        assert abs(got["grad_sq_norm"] - want["grad_sq_norm"]) < 1e-2 * want["trace_sigma"] / want["batch_size"]
