"""Learning-rate scaling rules for a batch-size change ``B → κB``.

* SGD, linear rule (Goyal et al. 2017, arXiv:1706.02677): ``η → κ η`` (use a warm-up).
* Adam, square-root rule (Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive
  Gradient Algorithms", arXiv:2205.10287): ``η → √κ η``, ``1 − β1 → κ (1 − β1)``,
  ``1 − β2 → κ (1 − β2)``, ``ε → ε / √κ``. Valid while ``κ(1 − β) < 1``.
* Surge (Li et al. 2024, arXiv:2405.14578): for Adam-style optimizers the best learning rate
  first rises with the batch size and then *falls* once the batch size passes the gradient noise
  scale ``B_noise``; scaling the LR up past it overshoots. :func:`check_surge` warns.

The two *saturating* rules follow from a noise scale ``B_n`` measured in the same unit as the batch sizes, and
reduce to the linear and square-root rules for ``B ≪ B_n``:

* SGD (McCandlish et al. 2018, eq. 2.6): ``ε_opt(B) = ε_max/(1 + B_n/B)``, so a learning rate tuned at ``B0``
  moves to ``B`` by ``(1 + B_n/B0)/(1 + B_n/B)`` (:func:`noise_scale_lr_ratio`): linear while ``B ≪ B_n``, flat
  past it. Plain linear scaling to ``B = B_n`` overshoots by ``2×``.
* Adam (Li et al. 2024, the surge): ``ε_opt(B) = ε_max / (½(√(B_n/B) + √(B/B_n)))``, largest at ``B = B_n``;
  the ratio ``(√(B_n/B0) + √(B0/B_n))/(√(B_n/B) + √(B/B_n))`` (:func:`surge_lr_ratio`) is the square-root rule
  for ``B ≪ B_n`` and falls again past ``B_n``.

:func:`stability_limit` bounds any of them by what the curvature along the gradient allows
(``1/ε_max = GᵀHG/|G|²``, measured), with the heavy-ball and Adam momentum thresholds.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass

__all__ = ["SurgeWarning", "AdamHyperparameters", "linear_scaling", "sqrt_scaling", "adam_sqrt_scaling", "check_surge",
           "OPTIMIZER_FAMILIES", "optimizer_family", "noise_scale_lr_ratio", "surge_lr_ratio", "adam_noise_lr_ratio", "stability_limit",
           "LR_RULES", "LR_RULE_ALIASES", "lr_rule", "lr_rule_exponent", "scale_lr", "scaled_lr",
           "scale_lr_for_next_step"]

#: The one vocabulary of learning-rate rules for a batch change ``B0 → B``: name → exponent ``p`` of the batch
#: ratio, ``η(B) = η(B0)·(B/B0)^p`` (or of the AdaScale gain ``r``, :func:`trainwise.adapt.lr_multiplier`).
LR_RULES = {"constant": 0.0, "linear": 1.0, "sqrt": 0.5}
#: other names for the same rules: the optimizer family each suits, and ``none``
LR_RULE_ALIASES = {"none": "constant", "sgd": "linear", "adam": "sqrt"}

#: optimizer names trainwise knows how to rescale -> (family, default momentum / β1)
OPTIMIZER_FAMILIES = {"sgd": ("sgd", 0.0), "sgdm": ("sgd", 0.9), "adam": ("adam", 0.9), "adamw": ("adam", 0.9)}


class SurgeWarning(UserWarning):
    """A batch size passed the measured noise scale: the Adam LR scaling rule no longer holds."""


def _positive(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def linear_scaling(lr: float, base_batch_size: float, new_batch_size: float) -> float:
    """SGD: ``η_new = η · (B_new / B_base)``."""
    lr = _positive("lr", lr)
    return lr * _positive("new_batch_size", new_batch_size) / _positive("base_batch_size", base_batch_size)


def sqrt_scaling(lr: float, base_batch_size: float, new_batch_size: float) -> float:
    """Adam-style: ``η_new = η · sqrt(B_new / B_base)``."""
    lr = _positive("lr", lr)
    return lr * math.sqrt(_positive("new_batch_size", new_batch_size) / _positive("base_batch_size", base_batch_size))


@dataclass(frozen=True)
class AdamHyperparameters:
    lr: float
    betas: tuple[float, float]
    eps: float


def adam_sqrt_scaling(
    lr: float,
    base_batch_size: float,
    new_batch_size: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    *,
    noise_scale: float | None = None,
) -> AdamHyperparameters:
    """Malladi et al.'s square-root rule for Adam with ``κ = B_new / B_base``.

    ``η → √κ η``, ``β_i → 1 − κ(1 − β_i)``, ``ε → ε/√κ``. Raises ``ValueError`` when
    ``κ(1 − β_i) ≥ 1`` (the rule leaves its range). With ``noise_scale`` (a measured ``B_noise``
    or ``B_simple`` in the same units as the batch sizes) it also calls :func:`check_surge`.

    >>> adam_sqrt_scaling(1e-3, 256, 1024, betas=(0.9, 0.999), eps=1e-8).lr
    0.002
    """
    kappa = _positive("new_batch_size", new_batch_size) / _positive("base_batch_size", base_batch_size)
    lr = _positive("lr", lr)
    eps = _positive("eps", eps)
    new_betas = []
    for i, beta in enumerate(betas):
        if not (0.0 <= beta < 1.0):
            raise ValueError(f"betas[{i}] must be in [0, 1), got {beta!r}")
        one_minus = kappa * (1.0 - beta)
        if one_minus >= 1.0:
            raise ValueError(
                f"square-root rule out of range: κ(1 − β{i + 1}) = {kappa:g} × {1 - beta:g} = {one_minus:g} ≥ 1 "
                f"(batch {base_batch_size:g} → {new_batch_size:g}); use a smaller batch-size change"
            )
        new_betas.append(1.0 - one_minus)
    if noise_scale is not None:
        check_surge(new_batch_size, noise_scale, base_batch_size=base_batch_size, stacklevel=3)
    return AdamHyperparameters(lr=lr * math.sqrt(kappa), betas=(new_betas[0], new_betas[1]), eps=eps / math.sqrt(kappa))


def check_surge(new_batch_size: float, noise_scale: float, *, base_batch_size: float | None = None,
                stacklevel: int = 2) -> bool:
    """Warn (:class:`SurgeWarning`) when ``new_batch_size`` exceeds the measured noise scale.

    Past ``B_noise`` the Adam-optimal LR decreases with the batch size (the surge
    phenomenon), so a square-root (or linear) scale-up overshoots; keep the LR near its value
    at ``B ≈ B_noise`` or re-tune. ``noise_scale`` is a float in the same units as the batch
    sizes (e.g. ``b_simple`` from a trainwise noise monitor; on trainwise's benchmark ``B_simple`` and
    ``B_noise`` differed by up to 3× either way, :mod:`trainwise.calibration`). Returns True when it warned.
    """
    new_batch_size = _positive("new_batch_size", new_batch_size)
    try:
        noise = float(noise_scale)
    except (TypeError, ValueError):
        raise ValueError(f"noise_scale must be a number, got {noise_scale!r}") from None
    if math.isnan(noise):
        raise ValueError(f"noise_scale is NaN ({noise_scale!r}); measure it over more steps")
    if noise <= 0:
        warnings.warn(
            f"noise_scale={noise:g} is not positive (a noisy estimate); cannot check the surge condition",
            RuntimeWarning, stacklevel=stacklevel,
        )
        return False
    if new_batch_size <= noise:
        return False
    crossed = ""
    if base_batch_size is not None and _positive("base_batch_size", base_batch_size) <= noise:
        crossed = f" (it crosses it: the base batch {base_batch_size:g} is below)"
    warnings.warn(
        f"batch size {new_batch_size:g} exceeds the measured noise scale {noise:g}{crossed}: past it the "
        "best Adam learning rate falls with batch size (surge, Li et al. 2024); do not scale the LR up further, re-tune",
        SurgeWarning, stacklevel=stacklevel,
    )
    return True


def lr_rule(name: str) -> str:
    """The canonical name of a learning-rate rule (:data:`LR_RULES`), aliases (:data:`LR_RULE_ALIASES`) resolved.

    >>> lr_rule("adam"), lr_rule("linear")
    ('sqrt', 'linear')
    """
    key = str(name).strip().lower()
    key = LR_RULE_ALIASES.get(key, key)
    if key not in LR_RULES:
        names = ", ".join([*LR_RULES, *LR_RULE_ALIASES])
        raise ValueError(f"unknown learning-rate rule {name!r}; use one of {names}")
    return key


def lr_rule_exponent(name: str) -> float:
    """The exponent ``p`` of rule ``name``: 1 (``linear``/``sgd``), ½ (``sqrt``/``adam``), 0 (``constant``/``none``)."""
    return LR_RULES[lr_rule(name)]


def scale_lr(rule: str, lr: float, base_batch_size: float, new_batch_size: float) -> float:
    """The learning rate at ``new_batch_size`` by ``rule`` from ``lr`` tuned at ``base_batch_size``.

    ``constant``: ``η``; ``linear``: ``η·B/B0`` (:func:`linear_scaling`); ``sqrt``: ``η·√(B/B0)``
    (:func:`sqrt_scaling`).

    >>> scale_lr("linear", 0.1, 16, 64), scale_lr("sqrt", 0.1, 16, 64), scale_lr("constant", 0.1, 16, 64)
    (0.4, 0.2, 0.1)
    """
    name = lr_rule(rule)
    if name == "linear":
        return linear_scaling(lr, base_batch_size, new_batch_size)
    if name == "sqrt":
        return sqrt_scaling(lr, base_batch_size, new_batch_size)
    _positive("base_batch_size", base_batch_size)
    _positive("new_batch_size", new_batch_size)
    return float(lr)


@contextlib.contextmanager
def scaled_lr(optimizer, factor: float):
    """Multiply every group's ``lr`` of a torch optimizer by ``factor`` inside the block, restore it afterwards."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"LR factor must be finite and > 0, got {factor!r}")
    saved = [group["lr"] for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * factor
    try:
        yield
    finally:
        for group, lr in zip(optimizer.param_groups, saved):
            group["lr"] = lr


def scale_lr_for_next_step(optimizer, factor: float):
    """Multiply every group's ``lr`` by ``factor`` until the next ``optimizer.step()`` has run.

    For frameworks that call ``optimizer.step()`` themselves (Trainer, Lightning): a one-shot
    step post-hook restores the scheduled values right after the step, before any scheduler runs.
    Returns the hook handle.
    """
    import torch

    # unwrap accelerate's AcceleratedOptimizer / Lightning's LightningOptimizer: hook the torch optimizer
    for attribute in ("optimizer", "_optimizer"):
        inner = getattr(optimizer, attribute, None)
        if isinstance(inner, torch.optim.Optimizer):
            optimizer = inner
    context = scaled_lr(optimizer, factor)
    context.__enter__()
    handle = None

    def restore(*_):
        context.__exit__(None, None, None)
        handle.remove()

    handle = optimizer.register_step_post_hook(restore)
    return handle


def optimizer_family(name: str) -> tuple[str, float]:
    """``(family, momentum)`` of an optimizer name: ``sgd`` (momentum 0), ``sgdm`` (SGD, momentum 0.9),
    ``adam``/``adamw`` (β1 = 0.9). Other names are refused: their learning rate does not follow these rules.

    >>> optimizer_family("AdamW")
    ('adam', 0.9)
    """
    key = str(name).strip().lower()
    if key not in OPTIMIZER_FAMILIES:
        raise ValueError(f"optimizer {name!r} has no learning-rate rule here; allowed: {', '.join(OPTIMIZER_FAMILIES)}")
    return OPTIMIZER_FAMILIES[key]


def noise_scale_lr_ratio(batch_size: float, base_batch_size: float, noise_scale: float) -> float:
    """SGD: ``ε_opt(B)/ε_opt(B0) = (1 + B_n/B0)/(1 + B_n/B)`` (McCandlish et al. 2018).

    >>> noise_scale_lr_ratio(100, 10, 100)   # (1 + 10)/(1 + 1): not 10× as the linear rule says
    5.5
    """
    b, b0, bn = (_positive(n, v) for n, v in (("batch_size", batch_size), ("base_batch_size", base_batch_size),
                                               ("noise_scale", noise_scale)))
    return (1.0 + bn / b0) / (1.0 + bn / b)


def surge_lr_ratio(batch_size: float, base_batch_size: float, noise_scale: float) -> float:
    """Adam: ``ε_opt(B)/ε_opt(B0)`` with ``ε_opt(B) ∝ 1/(√(B_n/B) + √(B/B_n))`` (Li et al. 2024).

    >>> round(surge_lr_ratio(100, 1, 100), 3)   # √100 = 10 by the square-root rule; 5.05 with the surge
    5.05
    """
    b, b0, bn = (_positive(n, v) for n, v in (("batch_size", batch_size), ("base_batch_size", base_batch_size),
                                               ("noise_scale", noise_scale)))
    return (math.sqrt(bn / b0) + math.sqrt(b0 / bn)) / (math.sqrt(bn / b) + math.sqrt(b / bn))


def adam_noise_lr_ratio(batch_size: float, base_batch_size: float, noise_scale: float) -> float:
    """Adam: the square-root rule up to the noise scale ``B_n``, flat beyond it:
    ``√(min(B, B_n)/min(B0, B_n))``.

    Past ``B_n`` the Adam-optimal learning rate stops rising and eventually falls (Li et al. 2024, the surge), so
    the rule never scales the rate up beyond ``B_n``. Below it, the plain square root is what trainwise's benchmark
    measured (``benchmarks/plan_lr.py``): at ``B = B_crit`` it needed 1.00–1.05× the steps of the best learning
    rate of a ×2 grid when the measured run's rate was tuned, where the surge formula
    (:func:`surge_lr_ratio`, half the square root at ``B = B_n``) needed 1.04–1.48×; on teacher–student the tuned
    rates kept the square-root slope up to 3× ``B_crit``.

    >>> adam_noise_lr_ratio(400, 100, 200), adam_noise_lr_ratio(100, 25, 1000)
    (1.4142135623730951, 2.0)
    """
    b, b0, bn = (_positive(n, v) for n, v in (("batch_size", batch_size), ("base_batch_size", base_batch_size),
                                               ("noise_scale", noise_scale)))
    return math.sqrt(min(b, bn) / min(b0, bn))


def stability_limit(eps_max: float, family: str, momentum: float = 0.0) -> float:
    r"""The largest learning rate the curvature along the gradient allows, from a measured ``ε_max = |G|²/GᵀHG``.

    On a quadratic with curvature ``λ = 1/ε_max`` along the step, gradient descent diverges past ``ε = 2/λ``;
    heavy-ball momentum ``μ`` (torch's ``SGD(momentum=μ)``) past ``2(1 + μ)/λ``; Adam with ``β1`` (an averaged
    momentum, curvature of the preconditioned problem, ``ε_max`` of ``P⁻¹g``) past ``2(1 + β1)/((1 − β1) λ)``
    (Cohen et al. 2022, "adaptive edge of stability"). The largest curvature ``λ_max`` is at least ``λ``, so the
    true limit is at most this: a recommendation above it is certainly too large.

    >>> stability_limit(0.1, "sgd"), round(stability_limit(0.1, "adam", 0.9), 6)
    (0.2, 3.8)
    """
    eps_max = _positive("eps_max", eps_max)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if family == "sgd":
        return 2.0 * (1.0 + momentum) * eps_max
    if family == "adam":
        return 2.0 * (1.0 + momentum) / (1.0 - momentum) * eps_max
    raise ValueError(f"family must be 'sgd' or 'adam', got {family!r}")
