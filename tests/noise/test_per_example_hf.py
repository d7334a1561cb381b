"""per_example="auto" on a stock Hugging Face GPT-2 (tiny, built from a config: no download)."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.noise.helpers import brute_force_per_example_grads
from trainwise.noise import PerExampleGradNorms, measure_noise_scale
from trainwise.noise.per_example import PerExampleUnsupported

transformers = pytest.importorskip("transformers")

VOCAB, T = 50, 16


def _tiny_gpt2(seed=0):
    config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=VOCAB, n_positions=T,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     bos_token_id=0, eos_token_id=0)
    torch.manual_seed(seed)
    return transformers.GPT2LMHeadModel(config).double().eval()


def _loss(model, ids, position_ids=None):
    logits = model(ids, position_ids=position_ids).logits[:, :-1]
    per_token = F.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1), reduction="none")
    return per_token.view(ids.shape[0], -1).mean(1)


def _loss_batched_positions(model, ids):
    # position ids with the batch dimension spelled out: every layer's output has batch B
    return _loss(model, ids, torch.arange(ids.shape[1]).expand(ids.shape[0], -1))


def _batches(size, seed):
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield torch.randint(0, VOCAB, (size, T), generator=gen)


def test_hooks_are_exact_on_gpt2_once_positions_are_batched():
    # Conv1D goes through the torch.func path, wte is tied to lm_head: all exact against brute force
    model = _tiny_gpt2()
    ids = next(_batches(5, seed=1))
    engine = PerExampleGradNorms(model)
    engine.start()
    _loss_batched_positions(model, ids).mean().backward()
    ours = engine.norms().detach().numpy() * 5**2
    engine.remove()
    reference = (brute_force_per_example_grads(model, _loss_batched_positions, ids) ** 2).sum(1)
    np.testing.assert_allclose(ours, reference, rtol=1e-9)


def test_auto_falls_back_to_halves_with_one_warning_naming_the_module():
    model = _tiny_gpt2()
    with pytest.warns(RuntimeWarning) as record:
        auto = measure_noise_scale(model, _loss, _batches(8, seed=2), rounds=3, hessian=False)
    fallback = [w for w in record if "per-example norms unavailable" in str(w.message)]
    assert len(fallback) == 1, [str(w.message) for w in record]
    message = str(fallback[0].message)
    assert "transformer.wpe" in message and "(Embedding)" in message and "broadcast over the batch" in message
    assert "\n" not in message
    assert not auto.info["per_example"] and "transformer.wpe" in auto.info["per_example_fallback"]
    assert auto.b_small == 4 and auto.b_big == 8 and auto.rounds == 3
    # the first round, where the hooks failed, was completed from its halves: same as halves throughout
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        halves = measure_noise_scale(model, _loss, _batches(8, seed=2), rounds=3, hessian=False, per_example=False)
    for name in ("grad_sq_norm", "trace_sigma", "b_simple"):
        assert getattr(auto, name).value == pytest.approx(getattr(halves, name).value, rel=1e-12), name
    assert math.isfinite(auto.b_simple.value)


@pytest.mark.filterwarnings("ignore:measure_noise_scale. GᵀHG averaged:RuntimeWarning")
def test_auto_fallback_with_hessian_and_parameters_left_alone():
    model = _tiny_gpt2()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.warns(RuntimeWarning, match=r"transformer\.wpe"):
        result = measure_noise_scale(model, _loss, _batches(4, seed=3), rounds=2)
    assert result.b_noise is not None and result.b_small == 2
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) and p.grad is None, name


def test_per_example_true_raises_naming_the_module():
    model = _tiny_gpt2()
    with pytest.raises(PerExampleUnsupported, match=r"\['transformer\.wpe'\] \(Embedding\).*broadcast over the batch"):
        measure_noise_scale(model, _loss, _batches(8, seed=2), rounds=2, hessian=False, per_example=True)
    assert all(p.grad is None for p in model.parameters())
