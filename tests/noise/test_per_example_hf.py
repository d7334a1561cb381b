"""Per-example norms on stock Hugging Face GPT-2 and Llama (tiny, built from configs: no download), against brute-force
per-example gradients in float64; per_example="auto" falls back to halves on a model the hooks cannot split."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

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


class _PositionsFirst(nn.Module):
    """A position embedding broadcast over the batch *before* any batched layer ran: the hooks cannot tell the batch."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.pos = nn.Embedding(T, 8)
        self.tok = nn.Embedding(VOCAB, 8)
        self.head = nn.Linear(8, VOCAB)

    def forward(self, ids, position_ids=None):
        positions = self.pos(torch.arange(ids.shape[1])[None] if position_ids is None else position_ids)
        return type("Out", (), {"logits": self.head(self.tok(ids) + positions)})


def _positions_first():
    return _PositionsFirst().double()


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


def test_hooks_are_exact_on_unmodified_gpt2_with_its_broadcast_position_embedding():
    # GPT-2 embeds position ids [1, T]: the hooks expand that output to the batch seen earlier in the pass (wte's),
    # which leaves the values and the parameter gradient as they were and makes its output gradient per example
    model = _tiny_gpt2()
    ids = next(_batches(5, seed=1))
    engine = PerExampleGradNorms(model)
    engine.start()
    _loss(model, ids).mean().backward()
    ours = engine.norms().detach().numpy() * 5**2
    engine.remove()
    reference = (brute_force_per_example_grads(model, _loss, ids) ** 2).sum(1)
    np.testing.assert_allclose(ours, reference, rtol=1e-12)
    result = measure_noise_scale(model, _loss, _batches(8, seed=2), rounds=2, hessian=False, per_example=True)
    assert result.info["per_example"] and result.b_small == 1


def _tiny_llama(seed=0):
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=T)
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(config).double()


def test_llama_rmsnorm_is_recognised_by_what_it_computes_and_exact():
    model = _tiny_llama()
    ids = next(_batches(4, seed=5))
    grads = brute_force_per_example_grads(model, _loss, ids)
    params = [p for p in model.parameters() if p.requires_grad]
    offsets = np.cumsum([0] + [p.numel() for p in params])
    for layers in ("all", "norm"):
        engine = PerExampleGradNorms(model, layers=layers)
        assert sum(type(m).__name__ == "LlamaRMSNorm" for m in engine._norm_of) == 3  # two per layer and the final
        model.zero_grad()
        engine.start()
        _loss(model, ids).mean().backward()
        ours = engine.norms().detach().numpy() * 4**2
        covered = {id(p) for p in engine.params}
        engine.remove()
        columns = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i, p in enumerate(params) if id(p) in covered])
        reference = (grads[:, columns] ** 2).sum(1)
        # LlamaRMSNorm normalises in float32 even in a float64 model: its own rounding bounds the agreement
        np.testing.assert_allclose(ours, reference, rtol=1e-10 if layers == "all" else 1e-6)
    assert len(PerExampleGradNorms(model, layers="norm").params) == 3


def test_a_norm_that_computes_something_else_is_not_taken_for_one():
    class OnePlusWeight(nn.Module):  # Gemma-style (1 + w) ⊙ x̂: not w ⊙ x̂, so the exact torch.func path is used
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(6))
            self.eps = 1e-6

        def forward(self, x):
            return (1 + self.weight) * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    from trainwise.noise.per_example import _recognise_norm

    assert _recognise_norm(OnePlusWeight()) is None
    assert _recognise_norm(nn.LayerNorm(6)) == ("layer", (6,), 1e-5)


def test_auto_falls_back_to_halves_with_one_warning_naming_the_module():
    model = _positions_first()
    with pytest.warns(RuntimeWarning) as record:
        auto = measure_noise_scale(model, _loss, _batches(8, seed=2), rounds=3, hessian=False)
    fallback = [w for w in record if "per-example norms unavailable" in str(w.message)]
    assert len(fallback) == 1, [str(w.message) for w in record]
    message = str(fallback[0].message)
    assert "pos" in message and "(Embedding)" in message and "broadcast over the batch" in message
    assert "\n" not in message
    assert not auto.info["per_example"] and "pos" in auto.info["per_example_fallback"]
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
    model = _positions_first()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.warns(RuntimeWarning, match=r"pos"):
        result = measure_noise_scale(model, _loss, _batches(4, seed=3), rounds=2)
    assert result.b_noise is not None and result.b_small == 2
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) and p.grad is None, name


def test_per_example_true_raises_naming_the_module():
    model = _positions_first()
    with pytest.raises(PerExampleUnsupported, match=r"\['pos'\] \(Embedding\).*broadcast over the batch"):
        measure_noise_scale(model, _loss, _batches(8, seed=2), rounds=2, hessian=False, per_example=True)
    assert all(p.grad is None for p in model.parameters())
