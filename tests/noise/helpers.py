"""Independent references for the noise-scale tests: brute-force per-example gradients, closed forms."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def unique_trainable(model: nn.Module) -> list[torch.Tensor]:
    return list({id(p): p for p in model.parameters() if p.requires_grad}.values())


def brute_force_per_example_grads(model: nn.Module, loss_fn, batch) -> np.ndarray:
    """[B, P] matrix of per-example gradients of ``loss_fn(model, batch)[i]``, one backward per example."""
    params = unique_trainable(model)
    n = (batch[0] if isinstance(batch, (tuple, list)) else batch).shape[0]
    rows = []
    for i in range(n):
        single = tuple(t[i : i + 1] for t in batch) if isinstance(batch, (tuple, list)) else batch[i : i + 1]
        loss = loss_fn(model, single).sum()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)]))
    return torch.stack(rows).double().numpy()


def textbook_estimates(per_example_grads: np.ndarray) -> tuple[float, float]:
    """Unbiased |G|² and tr(Σ) from per-example gradients: |ḡ|² − tr(Σ̂)/B and the trace of the sample covariance."""
    g = np.asarray(per_example_grads, dtype=np.float64)
    batch = g.shape[0]
    mean = g.mean(0)
    trace_sigma = float(((g - mean) ** 2).sum() / (batch - 1))  # trace of the sample covariance, ddof=1
    return float(mean @ mean - trace_sigma / batch), float(trace_sigma)


class LinearRegressionProblem:
    r"""``y = w*ᵀx + σ ξ``, ``x ~ N(0, S)``, per-example loss ``½(wᵀx − y)²`` at ``w = w* + d``.

    Closed forms (Gaussian fourth moments ``E[(xᵀd)² xxᵀ] = (dᵀSd) S + 2 S d dᵀ S``):
    ``G = S d``, ``H = S``, ``Σ = (dᵀSd + σ²) S + S d dᵀ S``; hence
    ``|G|² = |Sd|²``, ``tr Σ = (dᵀSd + σ²) tr S + |Sd|²``, ``GᵀHG = dᵀS³d``,
    ``tr(HΣ) = (dᵀSd + σ²) tr S² + dᵀS³d``.
    """

    def __init__(self, eigenvalues, sigma: float = 0.5, seed: int = 0, along_smallest: bool = False):
        rng = np.random.default_rng(seed)
        self.dim = len(eigenvalues)
        q, _ = np.linalg.qr(rng.standard_normal((self.dim, self.dim)))
        self.cov = q @ np.diag(eigenvalues) @ q.T
        self.chol = np.linalg.cholesky(self.cov)
        self.w_star = rng.standard_normal(self.dim)
        self.d = rng.standard_normal(self.dim) * 0.5
        if along_smallest:  # parameter error mostly along the flattest direction: B_noise >> B_simple
            self.d = q[:, int(np.argmin(eigenvalues))] * 2.0 + 0.05 * self.d
        self.sigma = sigma
        self.gen = torch.Generator().manual_seed(seed + 1)

    def model(self) -> nn.Module:
        model = nn.Linear(self.dim, 1, bias=False).double()
        with torch.no_grad():
            model.weight.copy_(torch.tensor(self.w_star + self.d)[None])
        return model

    @staticmethod
    def loss_fn(model, batch):
        x, y = batch
        return 0.5 * (model(x)[:, 0] - y) ** 2

    def batch(self, size: int):
        z = torch.randn(size, self.dim, generator=self.gen, dtype=torch.float64)
        x = z @ torch.tensor(self.chol.T)
        y = x @ torch.tensor(self.w_star) + self.sigma * torch.randn(size, generator=self.gen, dtype=torch.float64)
        return x, y

    def batches(self, size: int):
        while True:
            yield self.batch(size)

    @property
    def truth(self) -> dict[str, float]:
        return preconditioned_truth(self, np.ones(self.dim))  # P = I: the plain update


def preconditioned_truth(problem: LinearRegressionProblem, precond_diag: np.ndarray) -> dict[str, float]:
    """Closed forms for the update ``−ε P⁻¹G_B`` with ``P = diag(precond_diag)`` (``A = P⁻¹``).

    With ``A = I`` these are the class docstring's plain forms: ``|G|² = |Sd|²``,
    ``tr Σ = (dᵀSd + σ²) tr S + |Sd|²``, ``GᵀHG = dᵀS³d``, ``tr(HΣ) = (dᵀSd + σ²) tr S² + dᵀS³d``.
    """
    S, d, s2 = problem.cov, problem.d, problem.sigma**2
    A = np.diag(1.0 / precond_diag)
    Sd = S @ d
    sigma = (d @ Sd + s2) * S + np.outer(Sd, Sd)
    g_hat = A @ Sd
    grad_sq_norm = g_hat @ g_hat
    trace_sigma = np.trace(A @ sigma @ A)
    ghg = g_hat @ S @ g_hat
    trace_h_sigma = np.trace(S @ A @ sigma @ A)
    g_precond_g = Sd @ A @ Sd
    return {
        "grad_sq_norm": grad_sq_norm,
        "trace_sigma": trace_sigma,
        "ghg": ghg,
        "trace_h_sigma": trace_h_sigma,
        "b_simple": trace_sigma / grad_sq_norm,
        "b_noise": trace_h_sigma / ghg,
        "eps_max": g_precond_g / ghg,
        "delta_l_max": g_precond_g**2 / (2 * ghg),
    }
