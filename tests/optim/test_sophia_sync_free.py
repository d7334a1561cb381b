"""SophiaG's sync-free non-finite check (the accelerator path, forced on the CPU): bit-identical to the checked
step on finite gradients, a no-op on a NaN step, and no host read during step()."""

import warnings

import pytest
import torch
from torch import nn

from trainwise.optim import SophiaG


def _pair(foreach):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    twin = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    twin.load_state_dict(model.state_dict())
    checked = SophiaG(model.parameters(), lr=1e-2, weight_decay=0.1, foreach=foreach)
    sync_free = SophiaG(twin.parameters(), lr=1e-2, weight_decay=0.1, foreach=foreach)
    sync_free.sync_free = True
    return (model, checked), (twin, sync_free)


def _grads(model, seed, poison=False):
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(8, 5, generator=gen), torch.randn(8, 3, generator=gen)
    model.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    if poison:
        model[2].weight.grad[0, 0] = float("nan")


def _moments(opt):
    return [opt.state[p]["exp_avg"].clone() for g in opt.param_groups for p in g["params"] if p in opt.state]


@pytest.mark.parametrize("foreach", [False, True])
def test_sync_free_step_is_bit_identical_and_skips_a_nan_step(foreach, monkeypatch):
    (model, checked), (twin, sync_free) = _pair(foreach)
    for step in range(6):
        poison = step == 3
        for m, opt in ((model, checked), (twin, sync_free)):
            _grads(m, step, poison)
            if m is twin:
                before = [p.detach().clone() for p in twin.parameters()], _moments(sync_free)
                with monkeypatch.context() as patch:  # any host read of a tensor during step() fails
                    for name in ("__bool__", "item", "tolist", "__int__", "__float__"):
                        patch.setattr(torch.Tensor, name, lambda *a, **k: pytest.fail("host sync in step()"))
                    opt.step()
                if poison:  # a no-op: parameters and first moments exactly as before
                    assert all(torch.equal(a, b) for a, b in zip(before[0], twin.parameters()))
                    assert all(torch.equal(a, b) for a, b in zip(before[1], _moments(sync_free)))
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    opt.step()
            if step % 2 == 0:
                opt.update_hessian()
        for a, b in zip(model.parameters(), twin.parameters()):
            assert torch.equal(a, b), step
        assert all(torch.equal(a, b) for a, b in zip(_moments(checked), _moments(sync_free)))
    with pytest.warns(RuntimeWarning, match=r"1 step\(s\) with a non-finite gradient were skipped on the device"):
        assert sync_free.skipped_steps == 1
    assert checked.skipped_steps == 1 and sync_free.diagnostics().skipped_steps == 1
