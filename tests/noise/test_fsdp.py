"""FSDP2 (``fully_shard``) and HSDP under torchrun, 2 gloo processes: the sharded numbers equal the unsharded model's
on the same global batches (float64: to 1e-12 relative; bf16 mixed precision: within bf16 rounding), for the
monitor's per_example and accumulation sources and for measure_noise_scale. What cannot be measured is refused at
construction with one line.
"""

import json
from pathlib import Path

import pytest

from tests.distributed import run_torchrun
import torch
from torch import nn

from trainwise.noise import NoiseScaleMonitor, ShardingUnsupported, measure_noise_scale

pytestmark = pytest.mark.distributed
WORKER = Path(__file__).with_name("fsdp_worker.py")


def _run(tmp_path, mode):
    out = tmp_path / f"fsdp_{mode}.json"
    run_torchrun(WORKER, out, mode)
    return json.loads(out.read_text())


def _assert_equal(got, want, rel):
    got, want = (got, want) if isinstance(got, list) else ([got], [want])
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for key in w:
            assert g[key] == pytest.approx(w[key], rel=rel, abs=0), key


def test_fsdp2_per_example_monitor_equals_unsharded_smoke(tmp_path):
    """The fast one (about 6 s): two steps of the per_example source on a 2-rank FSDP2 model, float64."""
    case = _run(tmp_path, "smoke")["per_example"]
    _assert_equal(case["sharded"], case["reference"], rel=1e-12)


@pytest.mark.slow
def test_fsdp2_and_hsdp_all_sources_equal_unsharded(tmp_path):
    results = _run(tmp_path, "full")
    for name in ("per_example", "per_example_precond", "accumulation", "measure",
                 "hsdp_per_example", "hsdp_accumulation", "hsdp_measure"):
        _assert_equal(results[name]["sharded"], results[name]["reference"], rel=1e-12)
    # Adam's v̂ preconditions from step 10 on: the last records carry the preconditioned reading
    assert "precond_b_simple" in results["per_example_precond"]["sharded"][-1]
    assert "precond_b_simple" in results["accumulation"]["sharded"][-1]
    assert results["measure"]["sharded"]["per_example"] and results["measure"]["sharded"]["b_big"] == 8
    # bf16 compute, float32 reduce (MixedPrecisionPolicy) against the float32 unsharded model: bf16 rounding only
    for name in ("mixed_per_example", "mixed_accumulation"):
        for got, want in zip(results[name]["sharded"], results[name]["reference"]):
            assert got["trace_sigma"] == pytest.approx(want["trace_sigma"], rel=2e-2)
            assert got["b_simple"] == pytest.approx(want["b_simple"], rel=3e-2)
            # |G|² is a small difference of two large numbers: compare on the scale of its noise, tr(Σ)/B
            assert abs(got["grad_sq_norm"] - want["grad_sq_norm"]) < 2e-2 * want["trace_sigma"] / want["batch_size"]
    refusals = results["refusals"]
    assert "tensor parallelism" in refusals["tensor_parallel"] and "\n" not in refusals["tensor_parallel"]
    assert "tensor parallelism" in refusals["tensor_parallel_measure"]
    assert "source='per_example' or 'accumulation'" in refusals["ddp_source"]
    assert "hessian=False" in refusals["hessian"]


class _StandInFSDP1(nn.Module):
    """Stands for FullyShardedDataParallel, which will not build on a CPU-only machine."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(3, 2)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
def test_fsdp1_is_refused_in_one_line(monkeypatch):
    import torch.distributed.fsdp

    monkeypatch.setattr(torch.distributed.fsdp, "FullyShardedDataParallel", _StandInFSDP1)
    model = nn.Sequential(_StandInFSDP1())
    for make in (lambda: NoiseScaleMonitor(model, source="per_example"),
                 lambda: measure_noise_scale(model, lambda m, b: m(b).sum(1), [torch.zeros(2, 3)], rounds=1)):
        with pytest.raises(ShardingUnsupported, match=r"FSDP1 .*fully_shard \(FSDP2\)") as info:
            make()
        assert "\n" not in str(info.value)
