"""The same seeded run gives the same noise-scale numbers through the plain loop, HF Trainer and Lightning.

Tiny GPT-2 built from a config, in-memory character windows, 2 micro-batches of 4 per step, AdamW
at a constant LR, sequential data order: all three must produce the same monitor records.
"""

import copy
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

STEPS, MICRO, ACCUM, LENGTH = 4, 4, 2, 16
KEYS = ("batch_size", "b_small", "grad_sq_norm", "trace_sigma", "grad_sq_norm_ema", "trace_sigma_ema", "b_simple")


@pytest.fixture(scope="module")
def setup():
    pytest.importorskip("transformers")
    from tiny_data import char_windows, tiny_gpt2

    windows, vocab = char_windows(256, LENGTH, seed=0)
    return windows, tiny_gpt2(vocab, LENGTH, seed=0)


def plain_loop_records(windows, model):
    from trainwise.integrations.torchrun import AdaptiveBatchLoop

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    loop = AdaptiveBatchLoop(model, optimizer, micro_batch_size=MICRO, accumulation_steps=ACCUM)
    position = [0]

    def next_batch(size):
        batch = windows[position[0]: position[0] + size]
        position[0] += size
        return batch

    def loss_fn(m, batch):
        return m(input_ids=batch, labels=batch).loss

    return [loop.step(next_batch, loss_fn)["record"] for _ in range(STEPS)]


def hf_records(windows, model, tmp_path):
    from hf_trainer import build_trainer

    trainer, callback = build_trainer(str(tmp_path / "hf"), steps=STEPS, micro=MICRO, accumulation=ACCUM,
                                      lr_rule="none", model=model, length=LENGTH)
    trainer.args.max_grad_norm = 0.0  # the other two loops do not clip; the example keeps the Trainer's default
    trainer.train()
    return callback.records


def lightning_records(windows, model, tmp_path):
    pytest.importorskip("lightning")
    from lightning_callback import build

    trainer, module, loader, callback = build(str(tmp_path / "pl"), steps=STEPS, micro=MICRO, accumulation=ACCUM,
                                              model=model, length=LENGTH, measure_only=True)
    trainer.callbacks.append(callback)
    trainer.fit(module, loader)
    return callback.records


def test_plain_hf_lightning_agree(setup, tmp_path):
    windows, model = setup
    plain = plain_loop_records(windows, copy.deepcopy(model))
    hf = hf_records(windows, copy.deepcopy(model), tmp_path)
    lightning = lightning_records(windows, copy.deepcopy(model), tmp_path)
    assert len(plain) == len(hf) == len(lightning) == STEPS
    for step, (p, h, l) in enumerate(zip(plain, hf, lightning)):
        for key in KEYS:
            assert h[key] == pytest.approx(p[key], rel=1e-4), (step, key, "hf")
            assert l[key] == pytest.approx(p[key], rel=1e-4), (step, key, "lightning")
    assert plain[-1]["b_simple"] > 0
