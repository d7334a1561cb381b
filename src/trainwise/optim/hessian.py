"""Diagonal Hessian estimators for Sophia and the k-step schedule that runs them.

Both estimators return ``ĥ`` in *paper units*: an estimate of the diagonal of the (Gauss-Newton)
Hessian of the **mean** loss per token/example, ready for ``optimizer.update_hessian(ĥ)``.

* :class:`GaussNewtonBartlett` (SophiaG; Liu et al. 2023, Alg. 2): draw ``ŷ ~ softmax(f(θ, x))``
  for each real (unmasked) token of the estimator batch, take the gradient ``ĝ`` of the mean
  loss ``L̂ = (1/B) Σ ℓ(f(θ, x_t), ŷ_t)`` over the ``B`` real tokens, and return ``ĥ = B · ĝ ⊙ ĝ``.
  Since ``E_ŷ[∇ℓ_t] = 0`` and tokens are sampled independently, ``E[B ĝ⊙ĝ] = (1/B) Σ_t
  diag(J_tᵀ (diag(p_t) − p_t p_tᵀ) J_t)``, the Gauss-Newton diagonal of the mean loss.
  ``B`` counts real tokens across all micro-batches (gradient accumulation) and, with
  ``distributed=True``, across ranks (the gradient sums and counts are all-reduced), so the
  estimate is the same however the batch is split. ``clip_norm`` clips ``‖ĝ‖₂`` before
  squaring, as the official training loop does (``grad_clip=1.0``).
* :class:`Hutchinson` (SophiaH): ``ĥ = u ⊙ (H u)`` with ``u`` Rademacher (±1 with probability
  ½ each, drawn as ``randint(0, 2)·2 − 1``), unbiased since ``E[u_i u_j] = δ_ij``. ``H u`` is a
  Hessian-vector product by double back-propagation; ``n_samples`` averages several ``u``.

:func:`maybe_update_hessian` runs an estimator every ``k`` optimizer steps using the optimizer's
schedule counters and random generators (all in its ``state_dict``).

Estimators never touch ``p.grad`` (they use ``torch.autograd.grad``), so they can run anywhere
in a loop. Under DDP pass the *unwrapped* module in ``logits_fn`` / ``loss_fn``
(``ddp_model.module``) and ``distributed=True``: the estimator all-reduces itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["HessianEstimate", "GaussNewtonBartlett", "Hutchinson", "rademacher", "maybe_update_hessian"]

GeneratorFor = Callable[[torch.device], torch.Generator]


@dataclass
class HessianEstimate:
    """``diag``: parameter → ``ĥ`` (paper units); ``count``: tokens/examples ``B`` it averaged over;
    ``grad_norm``: ``‖ĝ‖₂`` of the sampled-label gradient before clipping (GNB only);
    ``clipped``: whether ``clip_norm`` scaled it down."""

    diag: dict[Tensor, Tensor] = field(repr=False)
    count: int
    grad_norm: float | None = None
    clipped: bool = False


def rademacher(shape: torch.Size | tuple[int, ...], *, generator: torch.Generator, device: torch.device | str,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """±1 with probability ½ each: ``randint(0, 2)·2 − 1`` (``randint(0, 1)`` would give all −1)."""
    return torch.randint(0, 2, tuple(shape), generator=generator, device=device).to(dtype).mul_(2).sub_(1)


def _as_list(micro_batches: Sequence[Any] | Callable[[], Sequence[Any]]) -> list[Any]:
    batches = micro_batches() if callable(micro_batches) else micro_batches
    batches = list(batches)
    if not batches:
        raise ValueError("no micro-batches given to the Hessian estimator; pass a list such as [batch]")
    return batches


def _all_reduce_(tensors: list[Tensor], process_group: Any) -> None:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("distributed=True but torch.distributed is not initialised")
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=process_group)


def _sample_labels(probs: Tensor, generator: torch.Generator) -> Tensor:
    """Inverse-CDF draw of one label per row of ``probs`` [N, V]; consumes N uniforms in order."""
    uniform = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=probs.dtype)
    cdf = probs.cumsum(dim=-1)
    labels = torch.searchsorted(cdf, uniform * cdf[:, -1:], right=True).squeeze(1)
    return labels.clamp_(max=probs.shape[1] - 1)


class GaussNewtonBartlett:
    """The GNB estimator ``ĥ = B ĝ⊙ĝ`` of SophiaG (see the module docstring).

    Args:
        logits_fn: ``batch → logits [..., V]`` (e.g. ``lambda b: model(b[0][:, :-1])`` for char-gpt).
        mask_fn: ``batch → bool [...]`` marking real tokens (``True``) vs padding/ignored ones; the
            default counts every position. E.g. ``lambda b: b["labels"] != -100``.
        clip_norm: clip ``‖ĝ‖₂`` to this value before squaring (official loop: 1.0); None = off.
        distributed: all-reduce gradient sums and token counts over ``process_group``.
    """

    def __init__(
        self,
        logits_fn: Callable[[Any], Tensor],
        *,
        mask_fn: Callable[[Any], Tensor] | None = None,
        clip_norm: float | None = None,
        distributed: bool = False,
        process_group: Any = None,
    ) -> None:
        if clip_norm is not None and not (math.isfinite(clip_norm) and clip_norm > 0):
            raise ValueError(f"clip_norm must be a positive finite number or None, got {clip_norm!r}")
        self.logits_fn = logits_fn
        self.mask_fn = mask_fn
        self.clip_norm = clip_norm
        self.distributed = distributed
        self.process_group = process_group

    def sampled_gradient(self, params: Sequence[Tensor], micro_batches: Sequence[Any] | Callable[[], Sequence[Any]],
                         generator_for: GeneratorFor) -> tuple[list[Tensor | None], int]:
        """``ĝ`` (mean over all real tokens of all micro-batches and ranks) and the count ``B``."""
        params = list(params)
        grad_sums: list[Tensor | None] = [None] * len(params)
        count = 0
        for batch in _as_list(micro_batches):
            logits = self.logits_fn(batch)
            vocab = logits.shape[-1]
            flat_logits = logits.reshape(-1, vocab)  # [N, V]
            if self.mask_fn is not None:
                mask = self.mask_fn(batch)
                if mask.shape != logits.shape[:-1]:
                    raise ValueError(f"mask_fn returned shape {tuple(mask.shape)}, logits have {tuple(logits.shape[:-1])}")
                flat_logits = flat_logits[mask.reshape(-1).to(torch.bool)]
            n_real = flat_logits.shape[0]
            if n_real == 0:
                continue
            if flat_logits.dtype in (torch.float16, torch.bfloat16):
                flat_logits = flat_logits.float()  # sample and differentiate the loss in fp32
            with torch.no_grad():
                probs = torch.softmax(flat_logits.detach(), dim=-1)
                if not bool(torch.isfinite(probs).all()):
                    raise FloatingPointError("GaussNewtonBartlett: non-finite logits at real (unmasked) tokens")
                labels = _sample_labels(probs, generator_for(probs.device))
            loss_sum = F.cross_entropy(flat_logits, labels, reduction="sum")
            grads = torch.autograd.grad(loss_sum, params, allow_unused=True)
            for i, grad in enumerate(grads):
                if grad is not None:
                    grad_sums[i] = grad if grad_sums[i] is None else grad_sums[i].add_(grad)
            count += n_real
        if self.distributed:
            device = next((g.device for g in grad_sums if g is not None), params[0].device)
            count_tensor = torch.tensor([float(count)], device=device, dtype=torch.float64)
            for i, p in enumerate(params):  # every rank must reduce the same list of tensors
                if grad_sums[i] is None:
                    grad_sums[i] = torch.zeros_like(p)
            _all_reduce_([count_tensor] + [g for g in grad_sums if g is not None], self.process_group)
            count = int(round(float(count_tensor)))
        if count == 0:
            raise ValueError("GaussNewtonBartlett: the estimator batch has no real tokens (mask is all False)")
        mean_grads = [None if g is None else g.div_(count) for g in grad_sums]
        return mean_grads, count

    def __call__(self, params: Sequence[Tensor], micro_batches: Sequence[Any] | Callable[[], Sequence[Any]],
                 generator_for: GeneratorFor) -> HessianEstimate:
        params = list(params)
        mean_grads, count = self.sampled_gradient(params, micro_batches, generator_for)
        present = [g for g in mean_grads if g is not None]
        grad_norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in present])))
        clipped = False
        if self.clip_norm is not None:
            clip_coef = self.clip_norm / (grad_norm + 1e-6)  # as torch.nn.utils.clip_grad_norm_
            if clip_coef < 1.0:
                clipped = True
                for g in present:
                    g.mul_(clip_coef)
        diag = {p: g.mul(g).mul_(count).to(p.dtype) for p, g in zip(params, mean_grads) if g is not None}
        return HessianEstimate(diag=diag, count=count, grad_norm=grad_norm, clipped=clipped)


class Hutchinson:
    """Hutchinson's estimator ``ĥ = (1/S) Σ_s u_s ⊙ (H u_s)`` of the Hessian diagonal of the mean loss.

    Args:
        loss_fn: ``batch → per-example (or per-token) losses`` of any shape (the trainwise task
            contract); the estimator's loss is their mean over all micro-batches (and ranks).
        n_samples: Rademacher vectors ``S`` per estimate.
        distributed: all-reduce ``Σ H u`` and the example count over ``process_group``
            (each rank draws its own ``u`` from its generator: seed the optimizer with ``seed + rank``
            **only** if you do not use ``distributed``; with it, every rank must draw the same ``u``).
    """

    def __init__(self, loss_fn: Callable[[Any], Tensor], *, n_samples: int = 1, distributed: bool = False,
                 process_group: Any = None) -> None:
        if not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
        self.loss_fn = loss_fn
        self.n_samples = n_samples
        self.distributed = distributed
        self.process_group = process_group

    def __call__(self, params: Sequence[Tensor], micro_batches: Sequence[Any] | Callable[[], Sequence[Any]],
                 generator_for: GeneratorFor) -> HessianEstimate:
        params = list(params)
        probes = [
            [rademacher(p.shape, generator=generator_for(p.device), device=p.device, dtype=p.dtype) for p in params]
            for _ in range(self.n_samples)
        ]
        hvp_sums: list[list[Tensor | None]] = [[None] * len(params) for _ in range(self.n_samples)]
        count = 0
        for batch in _as_list(micro_batches):
            losses = self.loss_fn(batch)
            count += losses.numel()
            grads = torch.autograd.grad(losses.sum(), params, create_graph=True, allow_unused=True)
            used = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
            if not used:
                continue
            for s, probe in enumerate(probes):
                hvps = torch.autograd.grad(
                    [grads[i] for i in used], [params[i] for i in used], grad_outputs=[probe[i] for i in used],
                    retain_graph=s < self.n_samples - 1, allow_unused=True,
                )
                for i, hvp in zip(used, hvps):
                    if hvp is not None:
                        hvp_sums[s][i] = hvp if hvp_sums[s][i] is None else hvp_sums[s][i].add_(hvp)
        if self.distributed:
            count_tensor = torch.tensor([float(count)], device=params[0].device, dtype=torch.float64)
            flat = []
            for s in range(self.n_samples):
                for i, p in enumerate(params):
                    if hvp_sums[s][i] is None:
                        hvp_sums[s][i] = torch.zeros_like(p)
                    flat.append(hvp_sums[s][i])
            _all_reduce_([count_tensor] + flat, self.process_group)
            count = int(round(float(count_tensor)))
        if count == 0:
            raise ValueError("Hutchinson: the loss_fn returned no losses")
        diag: dict[Tensor, Tensor] = {}
        for i, p in enumerate(params):
            terms = [probes[s][i] * hvp_sums[s][i] for s in range(self.n_samples) if hvp_sums[s][i] is not None]
            if terms:
                diag[p] = torch.stack(terms).sum(0).div_(count * self.n_samples).detach()
        return HessianEstimate(diag=diag, count=count)


def maybe_update_hessian(optimizer: Any, estimator: Callable[..., HessianEstimate],
                         micro_batches: Sequence[Any] | Callable[[], Sequence[Any]]) -> HessianEstimate | None:
    """Run ``estimator`` and fold its estimate into ``optimizer`` if the k-step schedule says so.

    Call it once per iteration, before ``optimizer.step()``; it estimates before steps
    ``0 (with estimate_at_start), k, 2k, …`` (``k = hessian_interval``) and is a no-op otherwise,
    so repeated calls within one step are harmless. ``micro_batches`` may be a callable so
    that the batch is fetched only when an estimate is due. Returns the estimate or None.
    """
    if not optimizer.hessian_due():
        return None
    estimate = estimator(optimizer.hessian_params(), micro_batches, optimizer.hessian_generator)
    optimizer.update_hessian(estimate.diag)
    return estimate
