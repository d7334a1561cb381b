"""The DDP source under torchrun (2 processes, gloo) equals accumulation over the same two halves."""

import json
from pathlib import Path

import pytest
import torch

from tests.distributed import accumulation_reference, run_torchrun
from trainwise.tasks import get_task

pytestmark = pytest.mark.distributed


def _single_process_reference(steps=14):
    task = get_task("digits-mlp")
    model = task.make_model(seed=0).double()
    return accumulation_reference(task, model, torch.optim.Adam(model.parameters(), lr=1e-3), steps=steps,
                                  dtype=torch.float64, precondition=True, ema_steps=3)


def test_ddp_source_under_torchrun_matches_accumulation(tmp_path):
    out = tmp_path / "ddp.json"
    run_torchrun(Path(__file__).with_name("ddp_worker.py"), out)
    ddp = json.loads(out.read_text())
    reference = _single_process_reference()
    assert len(ddp) == len(reference) == 14
    for got, want in zip(ddp, reference):
        for key in ("batch_size", "b_small", "grad_sq_norm", "trace_sigma", "b_simple"):
            assert got[key] == pytest.approx(want[key], rel=1e-9), key
        if "precond" in want:
            assert got["precond"]["b_simple"] == pytest.approx(want["precond"]["b_simple"], rel=1e-7)
    assert "precond" in ddp[-1]
