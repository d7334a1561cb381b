import copy
import warnings

import pytest
import torch

from trainwise.optim import GaussNewtonBartlett, SophiaG, SophiaH, maybe_update_hessian

sophia_opt = pytest.importorskip("sophia_opt")

SHAPES = [(5, 3), (7,), (2, 4, 3)]


def _params(seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]


def _drive(optimizers, param_sets, steps=300, seed=1, bs=480, hessian_every=10, grad_scale=1.0):
    """Feed identical gradients and Hessian inputs to every optimizer."""
    gen = torch.Generator().manual_seed(seed)
    for t in range(steps):
        grads = [torch.randn(s, generator=gen) * grad_scale for s in SHAPES]
        if t % hessian_every == hessian_every - 1:
            sampled = [torch.randn(s, generator=gen) * 0.3 for s in SHAPES]
            for params, opt in zip(param_sets, optimizers):
                for p, g in zip(params, sampled):
                    p.grad = g.clone()
                opt.update_hessian()
        for params in param_sets:
            for p, g in zip(params, grads):
                p.grad = g.clone()
        for opt in optimizers:
            opt.step(bs=bs)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("weight_decay,rho", [(0.1, 0.04), (0.0, 0.05), (0.3, 0.01)])
def test_matches_official_sophiag_over_many_steps(foreach, weight_decay, rho):
    ref_params, our_params = _params(), _params()
    ref = sophia_opt.SophiaG(ref_params, lr=3e-3, rho=rho, weight_decay=weight_decay)
    ours = SophiaG(our_params, lr=3e-3, rho=rho, weight_decay=weight_decay, foreach=foreach)
    _drive([ref, ours], [ref_params, our_params])
    for a, b in zip(ref_params, our_params):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
    for p_ref, p_our in zip(ref_params, our_params):
        torch.testing.assert_close(ours.state[p_our]["exp_avg"], ref.state[p_ref]["exp_avg"], rtol=1e-6, atol=1e-8)
        torch.testing.assert_close(ours.state[p_our]["hessian"], ref.state[p_ref]["hessian"], rtol=1e-6, atol=1e-10)
        assert float(ours.state[p_our]["step"]) == float(ref.state[p_ref]["step"]) == 300


def test_official_state_dict_loads():
    ref_params, our_params = _params(), _params()
    ref = sophia_opt.SophiaG(ref_params, lr=1e-3)
    _drive([ref], [ref_params], steps=20)
    ours = SophiaG(our_params, lr=1e-3)
    for p, q in zip(our_params, ref_params):
        p.data.copy_(q)
    ours.load_state_dict(copy.deepcopy(ref.state_dict()))
    _drive([ref, ours], [ref_params, our_params], steps=20, seed=5)
    for a, b in zip(ref_params, our_params):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", [SophiaG, SophiaH])
@pytest.mark.parametrize("cold_start", ["sign", "skip"])
def test_foreach_matches_for_loop_bitwise(cls, cold_start):
    sets = [_params(), _params()]
    kwargs = dict(lr=1e-2, weight_decay=0.1, cold_start=cold_start, hessian_bias_correction=True, maximize=False)
    opts = [cls(sets[0], foreach=False, **kwargs), cls(sets[1], foreach=True, **kwargs)]
    gen = torch.Generator().manual_seed(3)
    for t in range(60):
        grads = [torch.randn(s, generator=gen) for s in SHAPES]
        if t % 7 == 6:
            est = [torch.randn(s, generator=gen) for s in SHAPES]  # may be negative (Hutchinson-like)
            for params, opt in zip(sets, opts):
                opt.update_hessian({p: e.clone() for p, e in zip(params, est)})
        for params, opt in zip(sets, opts):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
    for a, b in zip(*sets):
        assert torch.equal(a, b)


def test_sophiah_update_rule_closed_form():
    p = torch.tensor([1.0, 1.0, 1.0, 1.0])
    opt = SophiaH([p], lr=0.1, betas=(0.5, 0.0), rho=2.0, weight_decay=0.0, eps=1e-3)
    opt.update_hessian({p: torch.tensor([1.0, 0.01, -5.0, 10.0])})  # β2 = 0: h = ĥ
    p.grad = torch.tensor([2.0, 2.0, 2.0, -2.0])
    opt.step()
    m = 0.5 * p.grad  # (1 − β1) g
    denom = torch.clamp(2.0 * torch.tensor([1.0, 0.01, -5.0, 10.0]), min=1e-3)
    expected = 1.0 - 0.1 * torch.clamp(m / denom, -1, 1)
    torch.testing.assert_close(p.detach(), expected)


def test_zero_gradient_is_a_noop_and_none_grad_untouched():
    params = _params()
    before = [p.clone() for p in params]
    opt = SophiaG(params, lr=1e-2, weight_decay=0.0)
    for p in params[:2]:
        p.grad = torch.zeros_like(p)
    for _ in range(5):
        opt.update_hessian()
        opt.step()
    for p, b in zip(params, before):
        assert torch.equal(p, b)
    assert params[2] not in opt.state  # no gradient: no state, no update
    assert all(torch.isfinite(opt.state[p]["exp_avg"]).all() for p in params[:2])


def test_nonfinite_gradients_skip_or_raise():
    params = _params()
    opt = SophiaG(params, lr=1e-2)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    snapshot = copy.deepcopy(opt.state_dict())
    before = [p.clone() for p in params]
    params[1].grad[3] = float("nan")
    with pytest.warns(RuntimeWarning, match="param_groups\\[0\\] parameter 1"):
        opt.step()
    for p, b in zip(params, before):
        assert torch.equal(p, b)
    assert opt.diagnostics().skipped_steps == 1
    state = opt.state_dict()
    for key in ("exp_avg", "hessian"):
        assert torch.equal(state["state"][1][key], snapshot["state"][1][key])
    raising = SophiaG(params, lr=1e-2, nonfinite="raise")
    params[0].grad[0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match="parameter 0"):
        raising.step()
    with pytest.warns(RuntimeWarning, match="update_hessian"):
        opt.update_hessian()  # NaN sampled gradient: the Hessian EMA is left alone
    assert torch.equal(opt.state[params[1]]["hessian"], snapshot["state"][1]["hessian"])


def _toy_model_and_data():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(11, 8), torch.nn.Linear(8, 11))
    gen = torch.Generator().manual_seed(0)
    data = [torch.randint(0, 11, (4, 6), generator=gen) for _ in range(40)]
    return model, data


def _train(model, opt, data, start, stop, estimator):
    for t in range(start, stop):
        x = data[t]
        maybe_update_hessian(opt, estimator, lambda: [(x,)])
        logits = model(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 11), x[:, 1:].reshape(-1))
        loss.backward()
        opt.step(bs=20)
        opt.zero_grad()


@pytest.mark.parametrize("foreach", [False, True])
def test_state_dict_resume_is_bit_identical_including_hessian_schedule(foreach):
    model, data = _toy_model_and_data()
    estimator = GaussNewtonBartlett(lambda b: model(b[0][:, :-1]), clip_norm=1.0)
    opt = SophiaG(model.parameters(), lr=1e-2, rho=0.05, bs=20, hessian_interval=3, foreach=foreach, seed=7)
    _train(model, opt, data, 0, 10, estimator)
    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(opt.state_dict())
    _train(model, opt, data, 10, 25, estimator)
    reference = [p.detach().clone() for p in model.parameters()]

    model2, _ = _toy_model_and_data()
    model2.load_state_dict(model_state)
    estimator2 = GaussNewtonBartlett(lambda b: model2(b[0][:, :-1]), clip_norm=1.0)
    opt2 = SophiaG(model2.parameters(), lr=1e-2, rho=0.05, bs=20, hessian_interval=3, foreach=foreach, seed=999)
    opt2.load_state_dict(opt_state)
    _train(model2, opt2, data, 10, 25, estimator2)
    for a, b in zip(reference, model2.parameters()):
        assert torch.equal(a, b)
    assert opt2.schedule == opt.schedule
    assert opt.schedule["hessian_updates"] == 9  # before steps 0, 3, ..., 24


def test_schedule_official_timing_and_idempotence():
    p = torch.zeros(3, requires_grad=True)
    opt = SophiaG([p], hessian_interval=4, estimate_at_start=False)
    due = []
    for _ in range(10):
        due.append(opt.hessian_due())
        if due[-1]:
            opt.update_hessian({p: torch.ones(3)})
            assert not opt.hessian_due()  # at most once per step
        p.grad = torch.ones(3)
        opt.step()
    assert due == [False, False, False, False, True, False, False, False, True, False]


def test_cold_start_documented_behaviour():
    # sign: h = 0 before any estimate gives η·sign(m)
    p = torch.zeros(4)
    opt = SophiaG([p], lr=0.1, weight_decay=0.0)
    p.grad = torch.tensor([1e-6, -3.0, 0.0, 2.0])
    opt.step()
    torch.testing.assert_close(p, torch.tensor([-0.1, 0.1, 0.0, -0.1]))
    # skip: no movement until the first estimate, momentum still accumulates
    q = torch.ones(4)
    opt = SophiaG([q], lr=0.1, weight_decay=0.5, cold_start="skip")
    q.grad = torch.ones(4)
    opt.step()
    assert torch.equal(q, torch.ones(4))
    torch.testing.assert_close(opt.state[q]["exp_avg"], torch.full((4,), 0.035))


def test_diagnostics_win_rate():
    p = torch.zeros(4)
    opt = SophiaG([p], lr=0.1, betas=(0.0, 0.0), rho=1.0, weight_decay=0.0, bs=1)
    p.grad = torch.tensor([1.0, 1.0, 1.0, 1.0])
    opt.update_hessian()  # h = 1
    p.grad = torch.tensor([0.5, 2.0, -0.1, 3.0])
    opt.step()
    diag = opt.diagnostics()
    assert diag.win_rate == 0.5 and diag.clip_fraction == 0.5
    assert diag.hessian_norm == pytest.approx(2.0)
    assert diag.steps == 1 and diag.hessian_updates == 1


@pytest.mark.parametrize(
    "kwargs,match",
    [({"lr": -1.0}, "lr"), ({"betas": (1.0, 0.9)}, "betas\\[0\\]"), ({"rho": float("nan")}, "rho"),
     ({"nonfinite": "zap"}, "nonfinite"), ({"hessian_interval": 0}, "hessian_interval"), ({"eps": 0.0}, "eps")],
)
def test_argument_validation_quotes_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SophiaG([torch.zeros(2)], **kwargs)


def test_param_groups_and_paper_unit_estimates():
    a, b = torch.ones(3), torch.ones(3)
    opt = SophiaG([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.0}], betas=(0.0, 0.0), rho=1.0, weight_decay=0.0, bs=4)
    opt.update_hessian({a: torch.full((3,), 8.0), b: torch.full((3,), 8.0)})  # paper units: stored as ĥ/b = 2
    assert torch.equal(opt.state[a]["hessian"], torch.full((3,), 2.0))
    a.grad = torch.full((3,), 4.0)
    b.grad = torch.full((3,), 4.0)
    opt.step()
    torch.testing.assert_close(a, torch.full((3,), 1.0 - 0.1 * 0.5))  # clip(4/(1·4·2), 1) = 0.5
    assert torch.equal(b, torch.ones(3))
    with pytest.raises(ValueError, match="none of the 1 estimates"):
        opt.update_hessian({torch.zeros(3): torch.zeros(3)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step(bs=4)


@pytest.mark.parametrize("foreach", [False, True])
def test_maximize_equals_minimizing_the_negated_gradient(foreach):
    a, b = _params(), _params()
    opt_a = SophiaG(a, lr=1e-2, maximize=True, foreach=foreach)
    opt_b = SophiaG(b, lr=1e-2, foreach=foreach)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        grads = [torch.randn(s, generator=gen) for s in SHAPES]
        for p, q, g in zip(a, b, grads):
            p.grad, q.grad = g.clone(), -g
        opt_a.update_hessian()
        opt_b.update_hessian()
        opt_a.step()
        opt_b.step()
    for p, q in zip(a, b):
        assert torch.equal(p, q)


def test_sophiah_needs_estimates_and_bs_mismatch_warns():
    p = torch.zeros(3)
    with pytest.raises(ValueError, match="needs estimates"):
        SophiaH([p]).update_hessian(None)
    opt = SophiaG([p], bs=100)
    opt.update_hessian({p: torch.ones(3)})
    p.grad = torch.ones(3)
    with pytest.warns(UserWarning, match="step\\(bs=200\\) differs from bs=100"):
        opt.step(bs=200)
    assert opt.param_groups[0]["bs"] == 200
