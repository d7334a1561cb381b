import math

import pytest
import torch
import torch.nn.functional as F

from trainwise.optim import GaussNewtonBartlett, Hutchinson, SophiaH, maybe_update_hessian, rademacher


def _gen_for(seed):
    gens = {}

    def generator_for(device):
        key = str(device)
        if key not in gens:
            gens[key] = torch.Generator(device=device).manual_seed(seed)
        return gens[key]

    return generator_for


def test_rademacher_is_plus_minus_one_with_equal_probability():
    u = rademacher((20000,), generator=torch.Generator().manual_seed(0), device="cpu")
    assert set(u.unique().tolist()) == {-1.0, 1.0}
    assert abs(float(u.mean())) < 0.03  # 4 standard errors of 1/sqrt(20000)


def test_hutchinson_unbiased_on_quadratic_with_known_diagonal():
    torch.manual_seed(0)
    n = 6
    root = torch.randn(n, n, dtype=torch.float64)
    hessian = root @ root.T + torch.diag(torch.linspace(-3.0, 3.0, n, dtype=torch.float64))  # indefinite allowed
    theta = torch.randn(n, dtype=torch.float64, requires_grad=True)

    def loss_fn(batch):  # one "example" whose loss is ½ θᵀ A θ + bᵀθ
        (offset,) = batch
        return (0.5 * theta @ hessian @ theta + offset @ theta).reshape(1)

    estimator = Hutchinson(loss_fn, n_samples=8)
    generator_for = _gen_for(1)
    samples = torch.stack([estimator([theta], [(torch.ones(n, dtype=torch.float64),)], generator_for).diag[theta] for _ in range(500)])
    mean = samples.mean(0)
    std_err = samples.std(0) / math.sqrt(len(samples))
    assert torch.all((mean - torch.diag(hessian)).abs() < 5 * std_err + 1e-9)
    # the all-minus-one probe would return the row sums of A instead, far away:
    assert not torch.allclose(hessian.sum(1), torch.diag(hessian), atol=1.0)


def test_hutchinson_mean_over_micro_batches_matches_one_batch():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    loss_fn = lambda b: F.cross_entropy(model(b[0]), b[1], reduction="none")  # noqa: E731
    est = Hutchinson(loss_fn, n_samples=2)
    params = list(model.parameters())
    whole = est(params, [(x, y)], _gen_for(3)).diag
    split = est(params, [(x[:3], y[:3]), (x[3:], y[3:])], _gen_for(3)).diag
    for p in params:
        torch.testing.assert_close(split[p], whole[p], rtol=1e-5, atol=1e-7)


def _softmax_regression(seed=0, n=12, d=3, classes=4):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(classes, d, generator=gen, dtype=torch.float64).requires_grad_()
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return weight, x


def _gauss_newton_diagonal(weight, x):
    """Closed form: diag GN of the mean CE over examples for logits = W x: (1/N) Σ_i (p_ic − p_ic²) x_ij²."""
    probs = torch.softmax(x @ weight.detach().T, dim=-1)  # [N, C]
    return ((probs - probs**2).T @ (x**2)) / x.shape[0]  # [C, d]


def test_gnb_expectation_is_the_gauss_newton_diagonal():
    weight, x = _softmax_regression()
    estimator = GaussNewtonBartlett(lambda b: b[0] @ weight.T)
    generator_for = _gen_for(0)
    samples = torch.stack([estimator([weight], [(x,)], generator_for).diag[weight] for _ in range(4000)])
    mean, std_err = samples.mean(0), samples.std(0) / math.sqrt(len(samples))
    target = _gauss_newton_diagonal(weight, x)
    assert torch.all((mean - target).abs() < 5 * std_err)
    assert float(((mean - target).abs() / target).max()) < 0.1


def test_gnb_counts_real_tokens_only_and_is_split_invariant():
    weight, x = _softmax_regression(n=10)
    tokens = x.reshape(2, 5, 3)  # [B, T, d]
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool)
    padded = tokens.clone()
    padded[~mask] = float("nan")  # padding must never be read
    logits_fn = lambda b: torch.where(b[1][..., None], b[0].nan_to_num(0.0) @ weight.T, torch.full((), float("nan"), dtype=torch.float64))  # noqa: E731
    estimator = GaussNewtonBartlett(logits_fn, mask_fn=lambda b: b[1])
    whole = estimator([weight], [(padded, mask)], _gen_for(4))
    assert whole.count == 7
    split = estimator([weight], [(padded[:1], mask[:1]), (padded[1:], mask[1:])], _gen_for(4))
    assert split.count == 7
    torch.testing.assert_close(split.diag[weight], whole.diag[weight])
    # reference: the same labels drawn on the 7 real rows alone, no mask
    real = tokens[mask]
    ref = GaussNewtonBartlett(lambda b: b[0] @ weight.T)([weight], [(real,)], _gen_for(4))
    torch.testing.assert_close(whole.diag[weight], ref.diag[weight])


def test_gnb_clip_before_squaring():
    weight, x = _softmax_regression()
    plain = GaussNewtonBartlett(lambda b: b[0] @ weight.T)([weight], [(x,)], _gen_for(2))
    clipped = GaussNewtonBartlett(lambda b: b[0] @ weight.T, clip_norm=plain.grad_norm / 4)([weight], [(x,)], _gen_for(2))
    assert clipped.clipped and not plain.clipped
    coef = (plain.grad_norm / 4) / (plain.grad_norm + 1e-6)
    torch.testing.assert_close(clipped.diag[weight], plain.diag[weight] * coef**2)
    with pytest.raises(ValueError, match="clip_norm"):
        GaussNewtonBartlett(lambda b: b, clip_norm=-1.0)


def test_gnb_rejects_empty_mask_and_bad_mask_shape():
    weight, x = _softmax_regression()
    est = GaussNewtonBartlett(lambda b: b[0] @ weight.T, mask_fn=lambda b: torch.zeros(len(b[0]), dtype=torch.bool))
    with pytest.raises(ValueError, match="no real tokens"):
        est([weight], [(x,)], _gen_for(0))
    est = GaussNewtonBartlett(lambda b: b[0] @ weight.T, mask_fn=lambda b: torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask_fn returned shape"):
        est([weight], [(x,)], _gen_for(0))


def test_sophiah_with_hutchinson_schedule_descends_quadratic():
    torch.manual_seed(0)
    scales = torch.tensor([100.0, 1.0, 0.01])  # badly conditioned: Sophia's point
    theta = torch.nn.Parameter(torch.ones(3))
    loss_fn = lambda b: (0.5 * scales * theta**2).sum().reshape(1)  # noqa: E731
    opt = SophiaH([theta], lr=0.05, rho=1.0, weight_decay=0.0, hessian_interval=2, betas=(0.9, 0.9))
    estimator = Hutchinson(loss_fn)
    updates = 0
    for _ in range(200):
        updates += maybe_update_hessian(opt, estimator, [None]) is not None
        opt.zero_grad()
        loss_fn(None).sum().backward()
        opt.step()
    assert updates == 100
    assert float(loss_fn(None).detach()) < 1e-3 * float((0.5 * scales).sum())


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=9), max_size=3, unique=True))
def test_gnb_estimate_does_not_depend_on_the_micro_batch_split(cuts):
    weight, x = _softmax_regression(n=10)
    estimator = GaussNewtonBartlett(lambda b: b[0] @ weight.T)
    whole = estimator([weight], [(x,)], _gen_for(9))
    bounds = [0, *sorted(cuts), 10]
    parts = [(x[a:b],) for a, b in zip(bounds, bounds[1:])]
    split = estimator([weight], parts, _gen_for(9))
    assert split.count == whole.count == 10
    torch.testing.assert_close(split.diag[weight], whole.diag[weight])
