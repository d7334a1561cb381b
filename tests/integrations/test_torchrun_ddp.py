"""2 processes under torchrun (gloo): the controller changes the batch mid-run and both ranks agree."""

import json
from pathlib import Path

import pytest

from tests.distributed import run_torchrun

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parents[2]


def test_batch_grows_mid_run_and_ranks_agree(tmp_path):
    plans_path = tmp_path / "plans.json"
    run_torchrun(ROOT / "examples" / "torchrun_ddp.py", "--steps", "24", "--base-batch", "8", "--micro", "8",
                 "--noise-fraction", "50", "--update-interval", "4", "--out", tmp_path / "run", "--plans", plans_path)
    rank0, rank1 = json.loads(plans_path.read_text())
    assert rank0["plans"] == rank1["plans"], "ranks used different batches"
    assert rank0["decisions"] == rank1["decisions"]
    assert [r["b_simple"] for r in rank0["records"]] == [r["b_simple"] for r in rank1["records"]]
    sizes = [batch for batch, _, _ in rank0["plans"]]
    assert sizes[0] == 8 and sizes[-1] > sizes[0], sizes  # changed mid-run
    assert any(k > 1 for _, _, k in rank0["plans"]), "accumulation (no_sync micro-batches) never exercised"
    for (batch, micro, accumulation), record in zip(rank0["plans"], rank0["records"]):
        assert batch == 2 * micro * accumulation
        assert record["batch_size"] == batch and record["b_small"] == batch / 2  # B_small = per-replica batch
    # every change is logged with its reason, by rank 0 only
    log = [json.loads(line) for line in (tmp_path / "run" / "adapt.jsonl").read_text().splitlines()]
    grows = [d for d in log if d["action"] == "grow"]
    assert grows and all("B_simple" in d["reason"] for d in grows)
    assert len(log) == len(rank0["decisions"])
