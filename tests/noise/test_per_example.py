import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tests.noise.helpers import brute_force_per_example_grads, unique_trainable
from trainwise.noise import PerExampleGradNorms
from trainwise.tasks import get_task


def _engine_norms(model, loss_fn, batch, **kwargs):
    engine = PerExampleGradNorms(model, **kwargs)
    engine.start()
    loss_fn(model, batch).mean().backward()
    batch_size = (batch[0] if isinstance(batch, tuple) else batch).shape[0]
    norms = engine.norms() * batch_size**2
    engine.remove()
    return norms.detach().numpy()


def _reference_norms(model, loss_fn, batch):
    return (brute_force_per_example_grads(model, loss_fn, batch) ** 2).sum(1)


def test_gpt_with_tied_embeddings_matches_brute_force():
    task = get_task("char-gpt", n_layer=1, n_embd=32, block_size=16)
    model = task.make_model(seed=1).double()
    assert model.lm_head.weight is model.wte.weight  # the cross term between the two uses matters
    batch = next(task.batches(5, seed=2))
    ours = _engine_norms(model, task.loss_fn, batch)
    np.testing.assert_allclose(ours, _reference_norms(model, task.loss_fn, batch), rtol=1e-10)


def test_digits_mlp_matches_brute_force():
    task = get_task("digits-mlp")
    model = task.make_model().double()
    x, y = next(task.batches(7, seed=0))
    batch = (x.double(), y)
    np.testing.assert_allclose(_engine_norms(model, task.loss_fn, batch), _reference_norms(model, task.loss_fn, batch), rtol=1e-10)


class Scale(nn.Module):
    """A leaf module with its own parameter: covered by the torch.func fallback."""

    def __init__(self, n):
        super().__init__()
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, n, dtype=torch.float64))

    def forward(self, x):
        return torch.tanh(x * self.gain)


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 6, padding_idx=0).double()
        self.shared = nn.Linear(6, 6).double()  # applied twice: two contributions, one parameter
        self.conv = nn.Conv1d(6, 6, kernel_size=3, padding=1).double()
        self.scale = Scale(6)
        self.norm = nn.LayerNorm(6).double()
        self.frozen = nn.Linear(6, 6).double().requires_grad_(False)
        self.head = nn.Linear(6, 3).double()
        if hasattr(nn, "RMSNorm"):
            self.rms = nn.RMSNorm(6, dtype=torch.float64)

    def forward(self, ids):
        h = self.emb(ids)  # [B, T, 6]
        h = self.shared(torch.relu(self.shared(h)))
        h = self.conv(h.transpose(1, 2)).transpose(1, 2)
        h = self.norm(self.scale(h))
        if hasattr(self, "rms"):
            h = self.rms(h)
        return self.head(self.frozen(h)).mean(1)


def mixed_loss(model, batch):
    ids, y = batch
    return F.cross_entropy(model(ids), y, reduction="none")


def test_mixed_layers_padding_shared_fallback_and_frozen_match_brute_force():
    torch.manual_seed(0)
    model = Mixed()
    ids = torch.randint(0, 11, (6, 5))
    ids[0, :2] = 0  # padding rows get no gradient
    batch = (ids, torch.randint(0, 3, (6,)))
    ours = _engine_norms(model, mixed_loss, batch)
    np.testing.assert_allclose(ours, _reference_norms(model, mixed_loss, batch), rtol=1e-9)
    engine = PerExampleGradNorms(model)
    assert all(p.requires_grad for p in engine.params)
    assert len(engine.params) == len(unique_trainable(model))


def test_norm_layers_only_covers_norm_parameters():
    model = Mixed()
    engine = PerExampleGradNorms(model, layers="norm")
    names = {name for name, p in model.named_parameters() if any(p is q for q in engine.params)}
    assert names and all(n.startswith(("norm.", "rms.")) for n in names)


def test_preconditioned_norms_match_brute_force():
    task = get_task("digits-mlp")
    model = task.make_model().double()
    x, y = next(task.batches(5, seed=4))
    batch = (x.double(), y)
    params = unique_trainable(model)
    torch.manual_seed(3)
    precond = [torch.rand_like(p) + 0.1 for p in params]
    engine = PerExampleGradNorms(model)
    engine.start()
    task.loss_fn(model, batch).mean().backward()
    ours = engine.norms(preconditioner={id(p): P for p, P in zip(params, precond)}).detach().numpy() * 25
    flat_precond = torch.cat([P.reshape(-1) for P in precond]).double().numpy()
    reference = ((brute_force_per_example_grads(model, task.loss_fn, batch) / flat_precond) ** 2).sum(1)
    np.testing.assert_allclose(ours, reference, rtol=1e-10)


def test_broadcast_position_embedding_is_named_in_the_error():
    class BroadcastPos(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(10, 4)
            self.pos = nn.Embedding(8, 4)
            self.out = nn.Linear(4, 2)

        def forward(self, ids):
            return self.out(self.tok(ids) + self.pos(torch.arange(ids.shape[1]))).mean(1)

    model = BroadcastPos()
    engine = PerExampleGradNorms(model)
    engine.start()
    F.cross_entropy(model(torch.randint(0, 10, (3, 5))), torch.tensor([0, 1, 0])).backward()
    with pytest.raises(RuntimeError, match=r"\['pos'\]"):
        engine.norms()


def test_parameter_on_a_non_leaf_module_is_refused_by_name():
    class Owner(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(3))
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(x) + self.bias

    with pytest.raises(ValueError, match="'bias'"):
        PerExampleGradNorms(Owner())


@settings(deadline=None, max_examples=15)
@given(cuts=st.lists(st.integers(1, 7), min_size=0, max_size=3, unique=True))
def test_per_example_norms_do_not_depend_on_how_the_batch_is_split(cuts):
    task = get_task("digits-mlp")
    model = task.make_model().double()
    x, y = next(task.batches(8, seed=5))
    x = x.double()
    whole = _engine_norms(model, task.loss_fn, (x, y))
    bounds = [0, *sorted(cuts), 8]
    parts = [
        _engine_norms(model, task.loss_fn, (x[a:b], y[a:b]))
        for a, b in zip(bounds[:-1], bounds[1:])
    ]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-10)
