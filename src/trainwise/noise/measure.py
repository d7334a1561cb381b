r"""One-call measurement of the noise scale at fixed parameters, Hessian terms included.

Each *round* takes a gradient batch ``A`` of ``B`` examples and, for the Hessian terms, an
independent batch ``C``. ``A`` is split into two halves ``A_1, A_2`` of ``b = B/2`` examples whose
mean gradients ``G_1, G_2`` come from two backward passes (together the cost of one); layer hooks
give the exact per-example squared norms ``|g_i|²`` on the way. Per round:

.. math::
    \widehat{|G|^2} = \frac{B|G_A|^2 - \overline{|g_i|^2}}{B-1}, \qquad
    \widehat{\operatorname{tr}\Sigma} = \frac{B}{B-1}\left(\overline{|g_i|^2} - |G_A|^2\right),

(the two-batch estimators with ``B_small = 1``, ``B_big = B``) and, with ``H_C`` the Hessian of
the mean loss on ``C`` applied by two Hessian-vector products,

.. math::
    \widehat{G^\top H G} = G_1^\top H_C G_2, \qquad
    \widehat{\operatorname{tr}(H\Sigma)} = b\left(\tfrac12(G_1^\top H_C G_1 + G_2^\top H_C G_2) - G_1^\top H_C G_2\right),

unbiased because ``G_1``, ``G_2`` and ``H_C`` are independent:
``E[G_1ᵀH_CG_2] = GᵀHG`` and ``E[G_jᵀH_CG_j] = GᵀHG + tr(HΣ)/b``.
Rounds are averaged, ratios are taken of the averages (:func:`~trainwise.noise.estimators.ratio_of_means`),
and standard errors come from the spread over rounds; each ratio ``R = x̄/ȳ`` carries Fieller's 95%
interval, the ``R`` with ``(x̄ − Rȳ)² ≤ t²_{n−1}·Var(x̄ − Rȳ)``, which stays honest when the
denominator mean is noisy (unbounded, "not resolved", when ``ȳ`` is not significantly non-zero).
Rounds are drawn until the ratios reach a relative error ``rel_err``, or a fixed number of them.

**Preconditioned (Adam) form.** For an update ``−ε P⁻¹G_B`` with a fixed diagonal preconditioner
``P`` (Adam's ``sqrt(v̂) + eps``) the second-order model becomes
``E[ΔL] ≈ −ε GᵀP⁻¹G + ½ε²(ĜᵀHĜ + tr(HP⁻¹ΣP⁻¹)/B)`` with ``Ĝ = P⁻¹G``, so

.. math::
    B_{noise}^P = \frac{\operatorname{tr}(H P^{-1}\Sigma P^{-1})}{\hat G^\top H \hat G}, \quad
    \varepsilon_{max}^P = \frac{G^\top P^{-1} G}{\hat G^\top H \hat G}, \quad
    B_{simple}^P = \frac{\operatorname{tr}(P^{-1}\Sigma P^{-1})}{|\hat G|^2}.

They come from the same estimators applied to ``ĝ = P⁻¹g`` (``GᵀP⁻¹G`` from the cross term
``G_1ᵀP⁻¹G_2`` of the two independent halves). ``grad_sq_norm``, ``trace_sigma``, ``ghg`` and
``trace_h_sigma`` then refer to ``ĝ``.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Callable, Iterable

import torch
from torch import nn

from trainwise._progress import progress as _progress
from trainwise.noise._params import adam_preconditioner, trainable_params
from trainwise.noise._sharding import ShardingUnsupported, is_dtensor, layout, local
from trainwise.noise.estimators import (
    PairedMeans,
    delta_l_max_of_means,
    grad_sq_norm_estimate,
    mean_of,
    ratio_of_means,
    trace_sigma_estimate,
)
from trainwise.noise.per_example import PerExampleGradNorms, PerExampleUnsupported
from trainwise.noise.result import NoiseScaleResult

__all__ = ["measure_noise_scale"]

LossFn = Callable[[nn.Module, object], torch.Tensor]


def _split(batch, start: int, stop: int):
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    if isinstance(batch, (tuple, list)):
        return type(batch)(_split(item, start, stop) for item in batch)
    if isinstance(batch, dict):
        return {key: _split(value, start, stop) for key, value in batch.items()}
    raise TypeError(f"a batch must be a tensor, a tuple/list of tensors or a dict of tensors, got {type(batch).__name__}")


def _batch_len(batch) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, (tuple, list)) and batch:
        return _batch_len(batch[0])
    if isinstance(batch, dict) and batch:
        return _batch_len(next(iter(batch.values())))
    raise TypeError(f"cannot tell the batch size of a {type(batch).__name__}")


def _per_example_losses(loss_fn: LossFn, model: nn.Module, batch) -> torch.Tensor:
    losses = loss_fn(model, batch)
    n = _batch_len(batch)
    if losses.dim() != 1 or losses.shape[0] != n:
        raise ValueError(
            f"loss_fn must return per-example losses of shape [{n}], got shape {tuple(losses.shape)}"
        )
    return losses


def _math_attention():
    """Double backward needs the math SDPA kernel (flash/efficient kernels have no second derivative)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel([SDPBackend.MATH])
    except ImportError:  # pragma: no cover - torch < 2.3
        return contextlib.nullcontext()


def _dot_tensor(xs, ys) -> torch.Tensor:
    return sum((x.double() * y.double()).sum() for x, y in zip(xs, ys))


def _dot(xs, ys) -> float:
    return float(_dot_tensor(xs, ys))


@torch.no_grad()
def _restore(params, saved_grads) -> None:
    for p, g in zip(params, saved_grads):
        p.grad = g


def _check_count(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


_STOP_REASONS = {
    "batches_ran_out": "the batches ran out",
    "max_rounds": "max_rounds reached",
}


def measure_noise_scale(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterable,
    *,
    rounds: int | None = None,
    rel_err: float = 0.1,
    min_rounds: int = 8,
    max_rounds: int = 1024,
    hessian: bool = True,
    per_example: bool | str = "auto",
    tokens_per_example: float | None = None,
    preconditioner: torch.optim.Optimizer | list[torch.Tensor] | None = None,
    show_progress: bool = False,
) -> NoiseScaleResult:
    r"""Measure ``B_simple``, ``B_noise``, ``ε_max``, ``ΔL_max`` and their parts at the current parameters.

    **How many rounds.** With ``rounds=None`` (default) rounds are drawn until the relative
    standard error of ``B_simple`` — and of ``B_noise`` with ``hessian`` — is at most ``rel_err``,
    checked after every round from ``min_rounds`` on (O(1) per check: running sums), or until the
    batches run out, or ``max_rounds`` is reached; the last two warn. The relative error is
    :attr:`Measured.relative_error` of the ratio: the half-width of its 95% Fieller interval over
    the ``t_{n−1}`` critical value, divided by the value, so a ratio whose denominator is not yet
    significantly non-zero never counts as precise. ``rounds=N`` fixes the count instead.
    ``info["stopped"]`` says why the measurement ended: ``"rounds"`` (fixed count reached),
    ``"precision"``, ``"batches_ran_out"`` or ``"max_rounds"``; ``info["relative_error"]`` gives the
    achieved ``{"b_simple": …, "b_noise": …}`` (``None`` where unbounded or not measured) and
    ``info["rel_err"]`` the target (``None`` with a fixed ``rounds``).

    Args:
        model: the model; its parameters, ``.grad`` and training mode are left exactly as they were.
        loss_fn: ``loss_fn(model, batch)`` → per-example losses, shape ``[B]``.
        batches: an iterable of batches (a tensor, a tuple/list or dict of tensors, examples on dim 0),
            i.i.d. draws from the data; one per round, two with ``hessian``.
        rounds: a fixed number of gradient batches to average over; ``None`` to stop at ``rel_err``.
        rel_err: target relative standard error of ``B_simple`` (and ``B_noise``), in ``(0, 1)``;
            ignored when ``rounds`` is given.
        min_rounds: rounds drawn before the precision is first checked (a spread from fewer is
            itself too noisy to trust); ignored when ``rounds`` is given.
        max_rounds: the most rounds drawn when ``rounds`` is ``None`` (1024: a relative error of
            0.1 on ``B_noise`` that needs more is better spent on bigger batches).
        hessian: also measure ``GᵀHG`` and ``tr(HΣ)`` by Hessian-vector products on independent
            batches (about 2–3× the cost of the gradients; turn off for large models).
        per_example: exact per-example norms from layer hooks (``B_small = 1``); ``False`` uses the two
            halves of each batch instead (``B_small = B/2``, noisier); ``"auto"`` falls back to halves,
            with one warning naming the module, when the hooks cannot handle some module (at
            construction or in any round: that round is completed from its halves). ``True`` raises
            :class:`~trainwise.noise.per_example.PerExampleUnsupported` instead.
        tokens_per_example: report batch sizes in tokens (``×`` this) instead of examples.
        preconditioner: measure for the preconditioned update ``P⁻¹g`` (module docstring): an
            Adam/AdamW optimizer that has taken a step (``P = sqrt(v̂) + eps``), or a list of tensors
            ``P`` shaped like the trainable parameters.
        show_progress: a progress bar on stderr.

    Returns:
        :class:`~trainwise.noise.result.NoiseScaleResult`; the ratios ``b_simple``, ``b_noise`` and
        ``eps_max`` carry a 95% Fieller interval (``low``, ``high``; see
        :func:`~trainwise.noise.estimators.ratio_of_means`) and ``resolved``.

    Example:
        >>> res = measure_noise_scale(model, lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none"),
        ...                           loader, rel_err=0.1)                               # doctest: +SKIP
        >>> print(f"B_simple = {res.b_simple}, B_noise = {res.b_noise}", res.info["stopped"])  # doctest: +SKIP
    """
    if rounds is not None:
        _check_count("rounds", rounds)
    if isinstance(rel_err, bool) or not isinstance(rel_err, (int, float)) or not 0.0 < rel_err < 1.0:
        raise ValueError(f"rel_err must be a number in (0, 1), got {rel_err!r}")
    _check_count("min_rounds", min_rounds)
    _check_count("max_rounds", max_rounds)
    if min_rounds > max_rounds:
        raise ValueError(f"min_rounds must be <= max_rounds, got min_rounds={min_rounds}, max_rounds={max_rounds}")
    if per_example not in (True, False, "auto"):
        raise ValueError(f"per_example must be True, False or 'auto', got {per_example!r}")
    if tokens_per_example is not None and not (isinstance(tokens_per_example, (int, float)) and tokens_per_example > 0):
        raise ValueError(f"tokens_per_example must be a positive number or None, got {tokens_per_example!r}")
    # FSDP2/HSDP: each rank passes its share of every batch, the sums are added over ranks (refuses TP/PP/FSDP1)
    shards = layout(model)
    params = trainable_params(model)
    if shards.sharded and hessian:
        raise ShardingUnsupported(f"measure_noise_scale: hessian=True needs double backward, which a model sharded by "
                                  f"fully_shard ({shards.kind}) does not support; pass hessian=False (see docs/sharded.md)")
    inv_precond = None
    if preconditioner is not None:
        if isinstance(preconditioner, torch.optim.Optimizer):
            precond = adam_preconditioner(preconditioner, params)
            if precond is None:
                raise ValueError("preconditioner: the optimizer has no Adam second-moment state (exp_avg_sq) "
                                 "for every trainable parameter yet; take a step first")
        else:
            precond = list(preconditioner)
            if len(precond) != len(params) or any(P.shape != p.shape for P, p in zip(precond, params)):
                raise ValueError("preconditioner: need one tensor per trainable parameter, of the same shapes")
        inv_precond = [1.0 / local(P).to(p.dtype) for P, p in zip(precond, params)]
        # the per-example norms need the whole P (an all-gather of each shard under FSDP2)
        precond_by_id = {id(p): (P.full_tensor() if is_dtensor(P) else P).to(p.dtype) for P, p in zip(precond, params)}
    engine = None
    fallback: str | None = None

    def fall_back(exc: PerExampleUnsupported) -> None:
        nonlocal engine, fallback
        if engine is not None:
            engine.remove()
            engine = None
        fallback = f"{exc.where}: {exc.reason}"
        warnings.warn(f"measure_noise_scale: per-example norms unavailable for {fallback}; using batch halves "
                      "(B_small = B/2)", RuntimeWarning, stacklevel=3)

    if per_example:
        try:
            engine = PerExampleGradNorms(model, params, layers="all")
        except PerExampleUnsupported as exc:
            if per_example is True:
                raise
            fall_back(exc)
    saved_grads = [p.grad for p in params]
    for p in params:
        p.grad = None
    samples: dict[str, list[float]] = {k: [] for k in ("grad_sq_norm", "trace_sigma", "ghg", "trace_h_sigma", "g_precond_g")}
    # running (co)variances of the ratios' parts, so the stopping rule costs O(1) per round
    b_simple_parts, b_noise_parts = PairedMeans(), PairedMeans()

    def precise() -> bool:
        ratios = [b_simple_parts.ratio(positive=True)] + ([b_noise_parts.ratio(positive=True)] if hessian else [])
        return all(r.resolved and r.relative_error <= rel_err for r in ratios)

    examples = 0
    b_small = b_big = 0.0
    limit = rounds if rounds is not None else max_rounds
    stopped = "rounds" if rounds is not None else "max_rounds"
    stream = iter(batches)
    try:
        for _ in _progress(range(limit), total=limit, desc="noise scale", enabled=show_progress):
            try:
                batch = next(stream)
                hessian_batch = next(stream) if hessian else None
            except StopIteration:
                stopped = "batches_ran_out"
                break
            size = _batch_len(batch)
            half = size // 2
            if half < 1:
                raise ValueError(f"each batch needs at least 2 examples, got {size}")
            halves_grads, halves_sq, per_example_sq, raw_grads = [], [], [], []
            for start, stop in ((0, half), (half, 2 * half)):
                if engine is not None:
                    engine.start()
                losses = _per_example_losses(loss_fn, model, _split(batch, start, stop))
                if shards.sharded:  # FSDP2 reduce-scatters into .grad on backward(); autograd.grad would bypass it
                    for p in params:
                        p.grad = None
                    losses.mean().backward()
                    grads = [torch.zeros_like(local(p)) if p.grad is None else local(p.grad).detach() for p in params]
                else:
                    grads = torch.autograd.grad(losses.mean(), params, allow_unused=True)
                    grads = [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads)]
                if inv_precond is not None:
                    raw_grads.append(grads)
                    grads = [g * a for g, a in zip(grads, inv_precond)]  # ĝ = P⁻¹g
                halves_grads.append(grads)
                halves_sq.append(_dot_tensor(grads, grads))
                if engine is not None:
                    pre = None if inv_precond is None else precond_by_id
                    try:
                        per_example_sq.append(engine.norms(preconditioner=pre).double() * float(half) ** 2)
                    except PerExampleUnsupported as exc:
                        if per_example is True:
                            raise
                        fall_back(exc)  # this round (and the rest) from the halves, which are already here
                    else:
                        engine.stop()
            mean_grad = [(a + b) / 2 for a, b in zip(*halves_grads)]
            grad_sums = torch.stack([halves_sq[0], halves_sq[1], _dot_tensor(mean_grad, mean_grad)])
            example_sum = torch.cat(per_example_sq).sum() if engine is not None else torch.zeros((), dtype=torch.float64)
            example_sums = torch.stack([example_sum.to(grad_sums.device), torch.tensor(2.0 * half, dtype=torch.float64,
                                                                                       device=grad_sums.device)])
            grad_sums, example_sums = shards.reduce(grad_sums, example_sums)  # over ranks under FSDP2, else as is
            (sq_half_1, sq_half_2, big_sq), (example_sum, count) = grad_sums.tolist(), example_sums.tolist()
            if count != 2 * half * shards.dp_size:
                raise ValueError(f"measure_noise_scale: the data-parallel ranks passed batches of different sizes "
                                 f"({count:g} examples in all, {2 * half} here); pass equal shares")
            if engine is not None:
                b_small, b_big = 1.0, count
                small_sq = example_sum / count
            else:
                b_small, b_big = count / 2, count
                small_sq = (sq_half_1 + sq_half_2) / 2
            if not all(math.isfinite(x) for x in (small_sq, big_sq)):
                raise FloatingPointError("measure_noise_scale: non-finite gradient (NaN/inf loss or gradient) in a batch")
            grad_sq_norm = grad_sq_norm_estimate(b_small, small_sq, b_big, big_sq)
            trace_sigma = trace_sigma_estimate(b_small, small_sq, b_big, big_sq)
            samples["grad_sq_norm"].append(grad_sq_norm)
            samples["trace_sigma"].append(trace_sigma)
            b_simple_parts.add(trace_sigma, grad_sq_norm)
            examples += int(count)
            if hessian:
                with _math_attention():
                    h_losses = _per_example_losses(loss_fn, model, hessian_batch)
                    h_grads = torch.autograd.grad(h_losses.mean(), params, create_graph=True, allow_unused=True)
                    pairs = [(g, v) for g, v in zip(h_grads, zip(*halves_grads)) if g is not None]
                    hv = []
                    for j in range(2):
                        inner = sum((g * v[j]).sum() for g, v in pairs)
                        out = torch.autograd.grad(inner, params, retain_graph=(j == 0), allow_unused=True)
                        hv.append([torch.zeros_like(p) if o is None else o.detach() for p, o in zip(params, out)])
                q11 = _dot(halves_grads[0], hv[0])
                q22 = _dot(halves_grads[1], hv[1])
                q12 = 0.5 * (_dot(halves_grads[0], hv[1]) + _dot(halves_grads[1], hv[0]))
                trace_h_sigma = half * (0.5 * (q11 + q22) - q12)
                samples["ghg"].append(q12)
                samples["trace_h_sigma"].append(trace_h_sigma)
                b_noise_parts.add(trace_h_sigma, q12)
                if inv_precond is not None:  # GᵀP⁻¹G from the independent halves: E[G_1ᵀ P⁻¹ G_2]
                    samples["g_precond_g"].append(0.5 * (_dot(raw_grads[0], halves_grads[1]) + _dot(raw_grads[1], halves_grads[0])))
                examples += _batch_len(hessian_batch)
            if rounds is None and b_simple_parts.n >= min_rounds and precise():
                stopped = "precision"
                break
    finally:
        if engine is not None:
            engine.remove()
        _restore(params, saved_grads)
    n = len(samples["grad_sq_norm"])
    if n == 0:
        raise ValueError("measure_noise_scale: the batches iterable yielded no batch")
    if rounds is not None and n < rounds:
        warnings.warn(f"measure_noise_scale: only {n} of {rounds} rounds had batches", RuntimeWarning, stacklevel=2)
    unit_factor = float(tokens_per_example) if tokens_per_example else 1.0
    result = dict(
        b_simple=ratio_of_means(samples["trace_sigma"], samples["grad_sq_norm"], scale=unit_factor, positive=True),
        grad_sq_norm=mean_of(samples["grad_sq_norm"]),
        trace_sigma=mean_of(samples["trace_sigma"]).scaled(unit_factor),
    )
    # the first-order gain per unit step: |G|², or GᵀP⁻¹G for the preconditioned update
    gain_samples = samples["g_precond_g"] if inv_precond is not None else samples["grad_sq_norm"]
    if hessian:
        result.update(
            b_noise=ratio_of_means(samples["trace_h_sigma"], samples["ghg"], scale=unit_factor, positive=True),
            ghg=mean_of(samples["ghg"]),
            trace_h_sigma=mean_of(samples["trace_h_sigma"]).scaled(unit_factor),
            eps_max=ratio_of_means(gain_samples, samples["ghg"], positive=True),
            delta_l_max=delta_l_max_of_means(gain_samples, samples["ghg"]),
        )
        if result["ghg"].value <= 0:
            warnings.warn(
                f"measure_noise_scale: GᵀHG averaged to {result['ghg'].value:.3g} <= 0 (negative curvature along "
                "the gradient, or too few rounds): B_noise and ε_max are not meaningful here",
                RuntimeWarning,
                stacklevel=2,
            )
    achieved = {"b_simple": result["b_simple"].relative_error,
                "b_noise": result["b_noise"].relative_error if hessian else None}
    if rounds is None and stopped != "precision":
        errors = ", ".join(f"{name} {err:.1%}" for name, err in achieved.items() if err is not None)
        warnings.warn(f"measure_noise_scale: stopped after {n} rounds ({_STOP_REASONS[stopped]}) short of "
                      f"rel_err={rel_err:g}: relative errors {errors}", RuntimeWarning, stacklevel=2)
    return NoiseScaleResult(
        **result,
        examples=examples,
        rounds=n,
        unit="tokens" if tokens_per_example else "examples",
        tokens_per_example=float(tokens_per_example) if tokens_per_example else None,
        b_small=b_small,
        b_big=b_big,
        info={
            "per_example": engine is not None,
            "per_example_fallback": fallback,
            "hessian": hessian,
            "preconditioned": inv_precond is not None,
            "stopped": stopped,
            "rel_err": float(rel_err) if rounds is None else None,
            "relative_error": {k: (v if v is not None and math.isfinite(v) else None) for k, v in achieved.items()},
        },
    )
