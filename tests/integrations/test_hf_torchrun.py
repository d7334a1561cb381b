"""The HF Trainer under torchrun (2 gloo processes, DDP) with its default clipping: the callback picks the ddp
source, the ranks agree, B_simple lands in log_history."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def test_hf_trainer_under_torchrun_ddp(tmp_path):
    out = tmp_path / "hf_ddp.json"
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(Path(__file__).with_name("hf_ddp_worker.py")), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["source"] == "ddp" and result["world"] == 2
    # per device: 2 micro-batches of 2; global: × 2 ranks
    assert [(r["b_small"], r["batch_size"]) for r in result["records"]] == [(4.0, 8.0)] * 4
    logged = [e for e in result["log_history"] if "loss" in e]
    assert len(logged) == 2 and all("b_simple" in e and "grad_norm" in e for e in logged)
    assert logged[-1]["b_simple"] == pytest.approx(result["records"][-1]["b_simple"])
