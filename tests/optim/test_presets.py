import pytest
import torch

from trainwise.optim import make_preset, param_groups
from trainwise.optim.sophia import SophiaG
from trainwise.tasks import get_task


def test_no_decay_groups_on_gpt():
    model = get_task("char-gpt").make_model()
    groups, names = param_groups(model, 0.1)
    decay_ids = {id(p) for p in groups[0]["params"]}
    named = dict(model.named_parameters())
    assert "wte.weight" in names and "wpe.weight" in names  # embeddings (and the tied head)
    assert all(n in names for n in named if n.endswith("bias") or ".ln_" in n or n.startswith("ln_f"))
    assert id(named["blocks.0.fc.weight"]) in decay_ids and id(named["blocks.0.attn.qkv.weight"]) in decay_ids
    total = sum(len(g["params"]) for g in groups)
    assert total == len(named)  # every parameter once, tied weight included once
    assert groups[1]["weight_decay"] == 0.0


@pytest.mark.parametrize("name", ["adamw", "sgd-cosine", "adamw-cosine", "sophiag"])
def test_presets_build_and_step(name):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))
    setup = make_preset(name, model, lr=1e-2, total_steps=10, bs=8)
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    setup.optimizer.step()
    if setup.scheduler is not None:
        setup.scheduler.step()
    assert "1.weight" in setup.no_decay_names and "0.bias" in setup.no_decay_names
    if name == "sophiag":
        assert isinstance(setup.optimizer, SophiaG)


def test_unknown_preset():
    with pytest.raises(ValueError, match="'lion'"):
        make_preset("lion", torch.nn.Linear(2, 2))
