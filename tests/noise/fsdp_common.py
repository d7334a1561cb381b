"""A tiny language model, its data and the unsharded references for the FSDP2 tests (tests/noise/fsdp_worker.py).

Every rank takes its share ``[rank·b, (rank+1)·b)`` of each global batch; the reference runs the unsharded
model on the whole global batch (per-example and accumulation sources), so the sharded numbers must equal it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainwise.noise import NoiseScaleMonitor, measure_noise_scale

VOCAB, WIDTH, HIDDEN, SEQ = 11, 6, 9, 5  # odd sizes: uneven shards over 2 ranks


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, WIDTH)
        self.pos = nn.Embedding(SEQ, WIDTH)
        self.block = nn.Sequential(nn.LayerNorm(WIDTH), nn.Linear(WIDTH, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, WIDTH))
        self.norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, ids):  # [B, T] -> [B, T, V]
        positions = torch.arange(ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
        h = self.tok(ids) + self.pos(positions)
        h = h + self.block(h)
        return self.head(self.norm(h))


def make_model(dtype=torch.float64) -> TinyLM:
    torch.manual_seed(0)
    return TinyLM().to(dtype)


def per_example_loss(model, batch):
    ids, targets = batch
    logits = model(ids)
    if logits.element_size() < 4:  # bf16 compute under a MixedPrecisionPolicy: the loss in float32
        logits = logits.float()
    return F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(1)


def global_batches(n: int, size: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, VOCAB, (size, SEQ), generator=gen)
        out.append((ids, torch.roll(ids, -1, dims=1)))
    return out


def share(batch, rank: int, world: int):
    size = batch[0].shape[0] // world
    return tuple(t[rank * size : (rank + 1) * size] for t in batch)


KEYS = ("batch_size", "b_small", "grad_sq_norm", "trace_sigma", "b_simple")


def summary(record: dict) -> dict:
    out = {k: record[k] for k in KEYS}
    if "precond" in record:
        out["precond_b_simple"] = record["precond"]["b_simple"]
    return out


def run_monitor(model, batches, *, source, micro: int = 1, precondition=False, steps=None):
    """Train a few AdamW steps, the monitor measuring before each; batches are this process's shares."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    monitor = NoiseScaleMonitor(model, source=source, optimizer=optimizer, precondition=precondition, ema_steps=3)
    records = []
    for batch in batches[:steps]:
        optimizer.zero_grad()
        size = batch[0].shape[0] // micro
        for j in range(micro):
            part = tuple(t[j * size : (j + 1) * size] for t in batch)
            (per_example_loss(model, part).mean() / micro).backward()
            if source == "accumulation":
                monitor.micro_step(size)
        records.append(summary(monitor.step()))
        optimizer.step()
    monitor.close()
    return records


def reference_monitor(batches, *, source, world, micro=1, precondition=False, dtype=torch.float64):
    """The unsharded model on the global batches; accumulation micro-batch j = the ranks' micro-batches j."""
    if source == "accumulation":
        reordered = []
        for batch in batches:
            parts = [share(batch, r, world) for r in range(world)]
            size = parts[0][0].shape[0] // micro
            reordered.append(tuple(torch.cat([p[i][j * size : (j + 1) * size] for j in range(micro) for p in parts])
                                   for i in range(2)))
        batches = reordered
    return run_monitor(make_model(dtype), batches, source=source, micro=micro, precondition=precondition)


def measure_summary(result) -> dict:
    return {"b_simple": result.b_simple.value, "grad_sq_norm": result.grad_sq_norm.value,
            "trace_sigma": result.trace_sigma.value, "b_small": result.b_small, "b_big": result.b_big,
            "examples": result.examples, "per_example": result.info["per_example"]}


def run_measure(model, batches):
    return measure_summary(measure_noise_scale(model, per_example_loss, batches, rounds=len(batches),
                                               hessian=False, per_example=True))
