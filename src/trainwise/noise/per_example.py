r"""Exact per-example squared gradient norms from forward and backward hooks.

For a layer applied to the ``T`` positions of an example, the example's weight gradient is a sum
of outer products, ``∇W_i = Σ_t g_{i,t} a_{i,t}ᵀ`` (``a`` the layer input, ``g`` the gradient at
its output). Its squared Frobenius norm is computed without forming ``∇W_i`` when that is cheaper,
by the Gram identity

.. math::  \|\textstyle\sum_t g_t a_t^\top\|_F^2 = \sum_{t,s} (g_t\cdot g_s)(a_t\cdot a_s),

and by materialising ``∇W_i`` (``einsum``) otherwise: ``O(T²(m+n))`` against ``O(m·n)`` per
example. Embeddings are outer-product sums with one-hot rows; their norms are taken by summing
rows that share a token id (``index_add``), ``O(T·d)`` per example. LayerNorm/RMSNorm weights are
``Σ_t g_t ⊙ x̂_t``. Any other module that owns parameters directly falls back to ``torch.func``
(``vmap`` of a ``vjp``), which needs its positional inputs and its output batched on dim 0.

A parameter used by several layers (tied input and output embeddings) is counted once: the
squared norm of the *sum* of its contributions, cross terms included,
``|Σ_c ∇_c|² = Σ_{c,c'} ⟨∇_c, ∇_{c'}⟩``.

The norms are those of the per-example gradients *of the scalar that was back-propagated*: for a
loss that is the mean over ``B`` examples multiply by ``B²`` (the monitor does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PerExampleGradNorms", "PerExampleUnsupported", "NORM_LAYER_TYPES"]

NORM_LAYER_TYPES: tuple[type, ...] = (nn.LayerNorm,) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())
_NATIVE_TYPES: tuple[type, ...] = (nn.Linear, nn.Embedding) + NORM_LAYER_TYPES


class PerExampleUnsupported(ValueError, RuntimeError):
    """The hooks cannot give exact per-example norms for this model.

    ``where`` names the module(s) (``"module(s) ['transformer.wpe'] (Embedding)"``), ``reason``
    says why in one line. A ``ValueError`` when raised at construction and a ``RuntimeError`` from
    :meth:`PerExampleGradNorms.norms`, as before; callers that can fall back (batch halves,
    accumulation) catch this class.
    """

    def __init__(self, where: str, reason: str, advice: str = ""):
        self.where, self.reason = where, reason
        super().__init__(f"per-example gradients: {where}: {reason}" + (f". {advice}" if advice else ""))


def _is_dtensor(t) -> bool:
    from trainwise.noise._sharding import is_dtensor

    return is_dtensor(t)


_EPS_NAMES = ("eps", "variance_epsilon", "epsilon", "layer_norm_eps")


def _recognise_norm(module: nn.Module) -> tuple | None:
    """``("layer" | "rms", normalized_shape, eps)`` if ``module`` computes ``w ⊙ x̂ (+ b)`` over its last dimension.

    ``nn.LayerNorm``/``nn.RMSNorm`` by class; any other leaf module with a 1-D ``weight`` (and optional ``bias``) and
    an epsilon attribute (``LlamaRMSNorm``, ``T5LayerNorm``, ...) by what it computes: it is called once, at
    construction, on a probe input with probe parameters and must match one of the two formulas (a module computing
    ``(1 + w) ⊙ x̂``, as Gemma's, does not, and goes through the exact ``torch.func`` path instead).
    """
    if isinstance(module, nn.LayerNorm):
        return ("layer", tuple(module.normalized_shape), module.eps)
    if hasattr(nn, "RMSNorm") and isinstance(module, nn.RMSNorm):
        return ("rms", tuple(module.normalized_shape), module.eps)
    if any(True for _ in module.children()):
        return None
    own = dict(module.named_parameters(recurse=False))
    weight = own.get("weight")
    if weight is None or set(own) - {"weight", "bias"} or weight.dim() != 1 or weight.shape[0] < 2:
        return None
    if "bias" in own and tuple(own["bias"].shape) != tuple(weight.shape):
        return None
    eps = next((float(getattr(module, n)) for n in _EPS_NAMES if isinstance(getattr(module, n, None), (int, float))
                and not isinstance(getattr(module, n), bool)), None)
    if eps is None:
        return None
    width = weight.shape[0]
    dtype = weight.dtype if weight.is_floating_point() else torch.float32
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 3, width, generator=gen) * 3 + 1).to(dtype=dtype, device=weight.device)
    probe = {"weight": (torch.rand(width, generator=gen) + 0.5).to(dtype=dtype, device=weight.device)}
    if "bias" in own:
        probe["bias"] = torch.randn(width, generator=gen).to(dtype=dtype, device=weight.device)
    try:
        from torch.func import functional_call

        with torch.no_grad():
            out = functional_call(module, probe, (x,))
    except Exception:  # not callable on one tensor (or sharded on its own): not recognised, the exact path stays
        return None
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        return None
    xf = x.double()
    candidates = {
        "rms": xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps),
        "layer": F.layer_norm(xf, (width,), eps=eps),
    }
    tolerance = 1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-4
    for kind, x_hat in candidates.items():
        expected = x_hat * probe["weight"].double() + (probe["bias"].double() if "bias" in probe else 0.0)
        if torch.allclose(out.double(), expected, rtol=tolerance, atol=tolerance):
            return (kind, (width,), eps)
    return None


# materialise an outer-product sum when it takes at most this many elements per batch
_MATERIALIZE_LIMIT = 2**26


@dataclass
class _Dense:
    value: torch.Tensor  # [B, *param.shape]


@dataclass
class _Outer:
    """``Σ_t u_t v_tᵀ`` per example; ``u`` dense [B,T,m] or given as row ``ids`` [B,T] (one-hot)."""

    v: torch.Tensor  # [B, T, n]
    u: torch.Tensor | None = None  # [B, T, m]
    ids: torch.Tensor | None = None  # [B, T] long
    rows: int = 0  # m when ids are used

    @property
    def batch(self) -> int:
        return self.v.shape[0]

    @property
    def m(self) -> int:
        return self.u.shape[2] if self.u is not None else self.rows

    def materialize(self) -> torch.Tensor:
        if self.u is not None:
            return torch.einsum("btm,btn->bmn", self.u, self.v)
        batch, time, n = self.v.shape
        out = self.v.new_zeros(batch * self.rows, n)
        index = (torch.arange(batch, device=self.v.device)[:, None] * self.rows + self.ids).reshape(-1)
        out.index_add_(0, index, self.v.reshape(-1, n))
        return out.view(batch, self.rows, n)


def _row_sq_norms(x: torch.Tensor) -> torch.Tensor:
    """``Σ x²`` over all but the first dimension, in one fused pass."""
    return torch.linalg.vector_norm(x.reshape(x.shape[0], -1), dim=1).pow(2)


def _sq_norm(c) -> torch.Tensor:
    if isinstance(c, _Dense):
        return _row_sq_norms(c.value)
    batch, time, n = c.v.shape
    if c.ids is not None:
        # rows hit by the same id in the same example add up before squaring
        key = (torch.arange(batch, device=c.v.device)[:, None] * c.rows + c.ids).reshape(-1)
        unique, inverse = torch.unique(key, return_inverse=True)
        summed = c.v.new_zeros(len(unique), n).index_add_(0, inverse, c.v.reshape(-1, n))
        return c.v.new_zeros(batch).index_add_(0, unique // c.rows, _row_sq_norms(summed))
    m = c.m
    if time == 1:
        return c.u[:, 0].pow(2).sum(1) * c.v[:, 0].pow(2).sum(1)
    if m * n <= time * (m + n) and batch * m * n <= _MATERIALIZE_LIMIT:
        return _row_sq_norms(c.materialize())
    return (torch.bmm(c.u, c.u.transpose(1, 2)) * torch.bmm(c.v, c.v.transpose(1, 2))).sum((1, 2))


def _row_overlap(a: _Outer, b: _Outer) -> torch.Tensor:
    """``[B, T_a, T_b]`` of ``u^a_t · u^b_s`` (one-hot rows become gathers / equality)."""
    if a.u is not None and b.u is not None:
        return torch.bmm(a.u, b.u.transpose(1, 2))
    if a.ids is not None and b.ids is not None:
        return (a.ids[:, :, None] == b.ids[:, None, :]).to(a.v.dtype)
    if a.ids is not None:  # u^b_s[id_t]
        t_b = b.u.shape[1]
        gathered = torch.gather(b.u, 2, a.ids[:, None, :].expand(-1, t_b, -1))  # [B, T_b, T_a]
        return gathered.transpose(1, 2)
    return _row_overlap(b, a).transpose(1, 2)


def _inner(a, b) -> torch.Tensor:
    """Per-example Frobenius inner product ``⟨∇_a, ∇_b⟩`` → [B]."""
    if isinstance(a, _Dense) and isinstance(b, _Dense):
        return (a.value * b.value).flatten(1).sum(1)
    if isinstance(a, _Outer) and isinstance(b, _Dense):
        a, b = b, a
    if isinstance(a, _Dense):
        dense = a.value  # [B, m, n]
        if b.u is not None:
            projected = torch.einsum("bmn,btn->btm", dense, b.v)
            return (projected * b.u).sum((1, 2))
        rows = torch.gather(dense, 1, b.ids[:, :, None].expand(-1, -1, dense.shape[2]))  # [B, T, n]
        return (rows * b.v).sum((1, 2))
    return (_row_overlap(a, b) * torch.bmm(a.v, b.v.transpose(1, 2))).sum((1, 2))


def _upcast(t: torch.Tensor) -> torch.Tensor:
    """Half-precision activations and gradients are squared in float32; float64 stays float64."""
    return t.float() if t.is_floating_point() and t.element_size() < 4 else t


def _flatten_positions(x: torch.Tensor, trailing: int) -> torch.Tensor:
    """[B, ..., *trailing dims] -> [B, T, prod(trailing)] (T = 1 for a plain [B, features] input)."""
    batch = x.shape[0]
    feature = 1
    for size in x.shape[x.dim() - trailing :]:
        feature *= size
    return x.reshape(batch, -1, feature)


class PerExampleGradNorms:
    """Hooks that make per-example squared gradient norms available after a backward pass.

    Args:
        model: the module whose parameters are measured.
        params: the parameters to cover (default: all trainable, each once).
        layers: ``"all"`` covers every parameter (raising if one is owned by a module the hooks
            cannot see); ``"norm"`` covers only the parameters of norm layers (``nn.LayerNorm``, ``nn.RMSNorm``
            and any leaf module that computes ``w ⊙ x̂ (+ b)``, e.g. ``LlamaRMSNorm``), the cheap proxy of
            Gray et al. (2024, "normalization layer per-example gradients are sufficient to
            predict gradient noise scale").
    """

    def __init__(self, model: nn.Module, params: list[nn.Parameter] | None = None, layers: str = "all"):
        if layers not in ("all", "norm"):
            raise ValueError(f"layers must be 'all' or 'norm', got {layers!r}")
        if params is None:
            params = list({id(p): p for p in model.parameters() if p.requires_grad}.values())
        wanted = {id(p) for p in params}
        self.layers = layers
        self._records: list[dict] = []
        self._capturing = False
        self._batch_seen = 0  # batch of the last layer output in this forward pass (for broadcast embeddings)
        self._handles = []
        self._names = {module: name for name, module in model.named_modules()}
        self._owned: dict[nn.Module, dict[str, nn.Parameter]] = {}
        self._norm_of: dict[nn.Module, tuple] = {}  # module -> ("layer" | "rms", normalized_shape, eps)
        covered: dict[int, nn.Parameter] = {}
        uncovered: list[str] = []
        for name, module in model.named_modules():
            own = [(n, p) for n, p in module.named_parameters(recurse=False) if id(p) in wanted]
            if not own:
                continue
            norm = _recognise_norm(module)
            if norm is not None:
                self._norm_of[module] = norm
            if layers == "norm" and norm is None:
                continue
            if norm is None and not isinstance(module, _NATIVE_TYPES) and any(True for _ in module.children()):
                uncovered += [f"{name}.{n}" if name else n for n, _ in own]
                continue
            for n, p in own:
                covered[id(p)] = p
            # by (module, name) now: FSDP2 swaps the module attributes between sharded and unsharded parameters
            self._owned[module] = dict(own)
            self._handles.append(module.register_forward_hook(self._forward_hook, with_kwargs=True))
        if uncovered and layers == "all":
            self.remove()
            raise PerExampleUnsupported(
                f"parameter(s) {uncovered}",
                "owned directly by a module that also has submodules, out of the layer hooks' reach",
                "Move them into a leaf module, or measure with source='accumulation' or 'ddp'",
            )
        if not covered:
            raise ValueError(f"no parameter to measure with layers={layers!r} (no trainable parameters found)")
        self.params: list[nn.Parameter] = list(covered.values())

    # -- capture -------------------------------------------------------------------------------
    def _forward_hook(self, module, args, kwargs, output):
        if not self._capturing or not torch.is_grad_enabled() or not isinstance(output, torch.Tensor):
            return None
        if not output.requires_grad:
            return None
        args = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)
        replaced = None
        batch = self._batch_seen
        if (isinstance(module, nn.Embedding) and output.shape[0] == 1 and batch > 1 and args
                and isinstance(args[0], torch.Tensor) and args[0].dim() >= 2 and args[0].shape[0] == 1):
            # ids broadcast over the batch (GPT-2's position ids [1, T]): the same values, expanded to the batch seen
            # earlier in this forward pass, so the output gradient arrives per example; expand's backward sums it
            # back, so the parameter's gradient is unchanged
            replaced = output.expand(batch, *output.shape[1:])
            args = (args[0].expand(batch, *args[0].shape[1:]),) + args[1:]
            output = replaced
        elif output.dim() and output.shape[0] > 1:
            self._batch_seen = output.shape[0]
        record = {"module": module, "args": args, "kwargs": kwargs, "grad": None}
        self._records.append(record)

        def keep_grad(grad, record=record):
            record["grad"] = grad.detach()

        output.register_hook(keep_grad)
        return replaced

    def start(self) -> None:
        """Capture the forward/backward passes from now until :meth:`norms` (or :meth:`reset`)."""
        self._records.clear()
        self._batch_seen = 0
        self._capturing = True

    def reset(self) -> None:
        self._records.clear()
        self._batch_seen = 0

    def stop(self) -> None:
        self._capturing = False
        self._records.clear()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._records.clear()

    @property
    def captured(self) -> int:
        """Number of layer calls whose output gradient arrived."""
        return sum(r["grad"] is not None for r in self._records)

    # -- compute -------------------------------------------------------------------------------
    def _check_batch_sizes(self) -> None:
        captured = [r for r in self._records if r["grad"] is not None]
        sizes = [r["grad"].shape[0] if r["grad"].dim() else 0 for r in captured]
        if not sizes:
            return
        batch = max(set(sizes), key=sizes.count)
        odd = [(r["module"], s) for r, s in zip(captured, sizes) if s != batch]
        if odd:
            names = sorted({self._names.get(m, "?") for m, _ in odd})
            kinds = "/".join(sorted({type(m).__name__ for m, _ in odd}))
            broadcast = all(s == 1 for _, s in odd)
            why = ("position ids broadcast over the batch" if broadcast and kinds == "Embedding"
                   else "an input broadcast over the batch, or a second forward pass of another batch before step()")
            raise PerExampleUnsupported(
                f"module(s) {names} ({kinds})",
                f"output batch dimension {sorted({s for _, s in odd})} where the batch has {batch} ({why})",
                "Feed such modules batched input (pos.expand(B, T)), measure with layers='norm', "
                "or use source='accumulation'",
            )

    def _contributions(self) -> dict[int, list]:
        self._check_batch_sizes()
        out: dict[int, list] = {}
        for record in self._records:
            grad = record["grad"]
            if grad is None:
                continue
            module = record["module"]
            try:
                pieces = self._record_contributions(module, record, _upcast(grad))
            except PerExampleUnsupported:
                raise
            except Exception as exc:  # any shape the hooks did not foresee: name the module, let callers fall back
                raise PerExampleUnsupported(
                    f"module(s) {[self._names.get(module, '?')]} ({type(module).__name__})",
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                ) from exc
            owned = self._owned.get(module, {})
            for name, piece in pieces.items():
                param = owned.get(name)
                if param is not None:
                    out.setdefault(id(param), []).append(piece)
        return out

    def _record_contributions(self, module: nn.Module, record: dict, grad: torch.Tensor) -> dict:
        """``{parameter name: _Dense | _Outer}`` per-example gradient pieces of one layer call."""
        x = record["args"][0]
        if isinstance(module, nn.Linear):
            g = _flatten_positions(grad, 1)
            a = _flatten_positions(_upcast(x), 1)
            pieces = {"weight": _Outer(u=g, v=a), "bias": _Dense(g.sum(1))}
        elif isinstance(module, nn.Embedding):
            ids = x.reshape(x.shape[0], -1)
            g = grad.reshape(ids.shape[0], ids.shape[1], -1)
            if module.padding_idx is not None:
                g = g * (ids != module.padding_idx)[..., None]
            pieces = {"weight": _Outer(v=g, ids=ids, rows=module.num_embeddings)}
        elif module in self._norm_of:
            kind, normalized_shape, eps = self._norm_of[module]
            dims = len(normalized_shape)
            xf = _upcast(x)
            reduce = tuple(range(xf.dim() - dims, xf.dim()))
            if kind == "layer":
                x_hat = F.layer_norm(xf, normalized_shape, eps=eps)  # no affine: x̂
            else:
                eps = eps if eps is not None else torch.finfo(x.dtype).eps
                x_hat = xf * torch.rsqrt(xf.pow(2).mean(reduce, keepdim=True) + eps)
            g = _flatten_positions(grad, dims)
            shape = (g.shape[0], *normalized_shape)
            pieces = {"weight": _Dense((g * _flatten_positions(x_hat, dims)).sum(1).view(shape))}
            if "bias" in self._owned.get(module, {}):
                pieces["bias"] = _Dense(g.sum(1).view(shape))
        else:
            pieces = {n: _Dense(v) for n, v in self._func_per_example(record).items()}
        return pieces

    def _func_per_example(self, record) -> dict[str, torch.Tensor]:
        module, args, kwargs, grad = record["module"], record["args"], record["kwargs"], record["grad"]
        if not all(isinstance(a, torch.Tensor) for a in args):
            raise PerExampleUnsupported(
                f"module(s) {[self._names.get(module, '?')]} ({type(module).__name__})",
                "needs tensor-only positional inputs for the torch.func fallback",
                "Use source='accumulation' for this model",
            )
        # FSDP2: the module holds its shard again after backward; gather the whole parameter (a collective that
        # every rank makes in the same order, as every rank runs the same model)
        params = {n: (p.full_tensor() if _is_dtensor(p) else p).detach()
                  for n, p in module.named_parameters(recurse=False) if p.requires_grad}
        from torch.func import functional_call, vjp, vmap

        def one_example(example_args, example_grad):
            def call(p):
                return functional_call(module, p, tuple(a.unsqueeze(0) for a in example_args), kwargs)

            _, pullback = vjp(call, params)
            return pullback(example_grad.unsqueeze(0).to(grad.dtype))[0]

        self._capturing, was = False, self._capturing
        try:
            return {n: _upcast(v) for n, v in vmap(one_example)(args, grad).items()}
        finally:
            self._capturing = was

    def norms(self, preconditioner: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """Per-example squared gradient norms ``[B]`` over :attr:`params` for the captured batch.

        ``preconditioner`` maps ``id(param)`` to a tensor ``P`` of the parameter's shape; the norm
        is then of ``∇_i / P`` (Adam-preconditioned). That forms each example's gradient (memory
        ``B × numel`` per parameter), so it costs more than the plain norms.
        """
        return self._norms(self._captured_contributions(), preconditioner)

    def norms_and_preconditioned(self, preconditioner: dict[int, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(norms(), norms(preconditioner))`` from one pass over the captured layers."""
        contributions = self._captured_contributions()
        return self._norms(contributions, None), self._norms(contributions, preconditioner)

    def _captured_contributions(self) -> dict[int, list]:
        contributions = self._contributions()
        if not contributions:
            raise RuntimeError(
                "no per-example gradients were captured: call start() before the forward pass and "
                "step the monitor after loss.backward()"
            )
        return contributions

    @staticmethod
    def _norms(contributions: dict[int, list], preconditioner: dict[int, torch.Tensor] | None) -> torch.Tensor:
        total = None
        for pid, pieces in contributions.items():
            if preconditioner is not None and pid in preconditioner:
                grad_i = sum(p.value if isinstance(p, _Dense) else p.materialize() for p in pieces)
                sq = _row_sq_norms(grad_i / preconditioner[pid].to(grad_i.dtype))
            else:
                sq = sum(_sq_norm(p) for p in pieces)
                for i in range(len(pieces)):
                    for j in range(i + 1, len(pieces)):
                        sq = sq + 2.0 * _inner(pieces[i], pieces[j])
            total = sq if total is None else total + sq
        return total
