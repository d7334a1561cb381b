"""Lightning on several CPU processes: strategy="ddp" measures the same numbers as one process over the same global
batches and logs B_simple through pl_module.log; strategy="fsdp" (FSDP1) is refused with a message."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

WORKER = Path(__file__).with_name("lightning_ddp_worker.py")


@pytest.mark.slow  # ~16 s on 2 cores: Lightning relaunches the script per rank
@pytest.mark.distributed
def test_lightning_ddp_equals_one_process_over_the_same_global_batches(tmp_path):
    from trainwise.noise import NoiseScaleMonitor
    from trainwise.tasks import get_task

    out = tmp_path / "ddp.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.run([sys.executable, str(WORKER), str(out)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["source"] == "ddp"
    # reference: one process, the two ranks' shares as two micro-batches of each global batch (accumulation)
    task = get_task("digits-mlp")
    model = task.make_model(seed=0).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = NoiseScaleMonitor(model, source="accumulation", optimizer=opt, ema_steps=3)
    stream = task.batches(12, seed=7)
    for _ in range(6):
        x, y = next(stream)
        opt.zero_grad()
        for part in (slice(0, 6), slice(6, 12)):
            (task.loss_fn(model, (x[part].double(), y[part])).mean() / 2).backward()
            monitor.micro_step(6)
        monitor.step()
        opt.step()
    reference = monitor.history
    assert len(result["records"]) == len(reference) == 6
    for got, want in zip(result["records"], reference):
        assert (got["batch_size"], got["b_small"]) == (want["batch_size"], want["b_small"]) == (12, 6)
        for key in ("grad_sq_norm", "trace_sigma", "grad_sq_norm_ema", "trace_sigma_ema", "b_simple"):
            assert got[key] == pytest.approx(want[key], rel=1e-10, abs=1e-14), key
    # what pl_module.log gave Lightning's loggers (log_every_n_steps=1): the monitor's B_simple after each step
    assert result["logged"] == pytest.approx([r["b_simple"] for r in reference], rel=1e-6)


def test_lightning_fsdp_strategy_is_refused_with_a_reason():
    """Lightning's strategy="fsdp" is FSDP1 and needs CUDA; off CUDA Lightning refuses it, on CUDA the callback
    does (FSDP1's flat parameters hide the per-parameter gradients), naming ModelParallelStrategy (FSDP2)."""
    import lightning.pytorch as pl
    from torch import nn

    from trainwise.integrations.lightning import AdaptiveBatchCallback
    from trainwise.noise import ShardingUnsupported

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="requires a GPU accelerator"):
            pl.Trainer(accelerator="cpu", devices=2, strategy="fsdp")

    class FullyShardedDataParallel(nn.Module):  # stands for what strategy="fsdp" puts in trainer.strategy.model
        pass

    trainer = type("T", (), {"accumulate_grad_batches": 1, "world_size": 2, "is_global_zero": True,
                             "strategy": type("S", (), {"model": FullyShardedDataParallel()})()})()
    with pytest.raises(ShardingUnsupported, match="strategy='fsdp'.*FSDP1.*ModelParallelStrategy"):
        AdaptiveBatchCallback().on_fit_start(trainer, nn.Linear(2, 2))
