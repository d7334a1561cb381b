"""The HF Trainer under torchrun (2 gloo processes, DDP) with its default clipping: the callback picks the ddp
source, the ranks agree, B_simple lands in log_history."""

import json
from pathlib import Path

import pytest

from tests.distributed import run_torchrun

pytest.importorskip("transformers")
pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def test_hf_trainer_under_torchrun_ddp(tmp_path):
    out = tmp_path / "hf_ddp.json"
    run_torchrun(Path(__file__).with_name("hf_ddp_worker.py"), out)
    result = json.loads(out.read_text())
    assert result["source"] == "ddp" and result["world"] == 2
    # per device: 2 micro-batches of 2; global: × 2 ranks
    assert [(r["b_small"], r["batch_size"]) for r in result["records"]] == [(4.0, 8.0)] * 4
    logged = [e for e in result["log_history"] if "loss" in e]
    assert len(logged) == 2 and all("b_simple" in e and "grad_norm" in e for e in logged)
    assert logged[-1]["b_simple"] == pytest.approx(result["records"][-1]["b_simple"])
