r"""How a model's gradients are laid out over processes, and how to add up their squared norms.

The noise-scale sources need two kinds of sums over processes:

* **example sums** (per-example squared norms, example counts): every data-parallel rank saw different
  examples, so these add up over *all* data-parallel ranks;
* **gradient sums** (``|G|²`` of the reduced gradient): after FSDP2's reduce-scatter each rank holds one
  shard of the same averaged gradient, so the local squared norms add up over the *shard* dimension
  only; replicas of a shard (the replicate dimension of HSDP) hold copies and must not be added.

:func:`layout` reads this from the model (FSDP2 ``fully_shard`` with a 1-D mesh, or HSDP with a 2-D
``(replicate, shard)`` mesh) and refuses, with one line, what the sources cannot measure: FSDP1
(``FullyShardedDataParallel``), tensor parallelism (DTensor parameters that ``fully_shard`` does
not own, or an FSDP2 parameter also sharded on a tensor-parallel mesh dimension) and pipeline stages.
``docs/sharded.md`` has the design for tensor and pipeline parallelism.

The FSDP2 mesh is read from ``fully_shard``'s module state, a private attribute; when that changes
the DTensor placements (public) still give the shard dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["ShardingUnsupported", "Layout", "layout", "local", "is_dtensor"]


class ShardingUnsupported(ValueError):
    """The model is parallelised in a way the noise-scale sources cannot measure (raised at start-up)."""


def is_dtensor(t: Any) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch built without distributed
        return False
    return isinstance(t, DTensor)


def local(t: torch.Tensor) -> torch.Tensor:
    """The tensor this rank holds: the local shard of a DTensor, the tensor itself otherwise."""
    return t.to_local() if is_dtensor(t) else t


@dataclass
class Layout:
    """Where the examples and the gradient shards of a model live.

    ``kind``: ``"local"`` (one process, or DDP: every rank holds the whole gradient), ``"fsdp2"`` or
    ``"hsdp"``. ``mesh``: the FSDP2 device mesh; ``shard_dims``: its dimensions over which gradient shards
    are added; ``dp_dims``: its dimensions over which examples are added (all of them).
    """

    kind: str = "local"
    mesh: Any = None
    shard_dims: tuple[int, ...] = ()
    dp_dims: tuple[int, ...] = ()
    dp_size: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def sharded(self) -> bool:
        return self.kind in ("fsdp2", "hsdp")

    def reduce(self, grad_sums: torch.Tensor, example_sums: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """All-reduce (sum) a vector of local gradient-shard sums over the shard dimensions and a vector of
        local example sums over all data-parallel dimensions; one collective per mesh dimension, no host sync.
        """
        if not self.sharded:
            return grad_sums, example_sums
        import torch.distributed as dist

        n_grad = grad_sums.numel()
        both = grad_sums.clone() if example_sums is None else torch.cat([grad_sums, example_sums.to(grad_sums.dtype)])
        for dim in self.shard_dims:  # the shard dimension carries both kinds
            dist.all_reduce(both, group=self.mesh.get_group(dim))
        grads = both[:n_grad]
        if example_sums is None:
            return grads, None
        examples = both[n_grad:].clone()
        for dim in self.dp_dims:
            if dim not in self.shard_dims:  # the replicate dimension: examples only
                dist.all_reduce(examples, group=self.mesh.get_group(dim))
        return grads, examples


def _refuse(what: str, advice: str) -> ShardingUnsupported:
    return ShardingUnsupported(f"trainwise noise scale: {what} is not supported; {advice} (see docs/sharded.md)")


def layout(model: nn.Module, params: list[torch.Tensor] | None = None) -> Layout:
    """The :class:`Layout` of ``model``'s trainable parameters, or :class:`ShardingUnsupported` with one line."""
    module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    if not torch.distributed.is_available():
        return Layout()
    try:
        from torch.distributed.pipelining.stage import _PipelineStageBase
    except ImportError:  # pragma: no cover
        _PipelineStageBase = ()  # type: ignore[assignment]
    if isinstance(model, _PipelineStageBase):
        raise _refuse("pipeline parallelism (a PipelineStage)",
                      "measure on a data-parallel (DDP/FSDP2) run of the same model")
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP1
    except ImportError:  # pragma: no cover
        FSDP1 = ()  # type: ignore[assignment]
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch < 2.6
        FSDPModule = ()  # type: ignore[assignment]
    if any(isinstance(m, FSDP1) for m in module.modules()):
        raise _refuse("FSDP1 (FullyShardedDataParallel, flat parameters)",
                      "shard with torch.distributed.fsdp.fully_shard (FSDP2)")
    if params is None:
        params = [p for p in module.parameters() if p.requires_grad]
    names = {id(p): n for n, p in module.named_parameters()}
    sharded = [p for p in params if is_dtensor(p)]
    if not sharded:
        return Layout()
    fsdp_modules = [m for m in module.modules() if isinstance(m, FSDPModule)]
    if not fsdp_modules:
        raise _refuse(f"tensor parallelism (DTensor parameter {names.get(id(sharded[0]), '?')!r} without fully_shard)",
                      "measure on a data-parallel (DDP/FSDP2) run of the same model")
    plain = [p for p in params if not is_dtensor(p)]
    if plain:
        raise _refuse(f"a model partly sharded by fully_shard (parameter {names.get(id(plain[0]), '?')!r} is not)",
                      "apply fully_shard to the root module too")
    mesh_info = _fsdp_mesh_info(fsdp_modules)
    meshes = {id(p.device_mesh): p.device_mesh for p in sharded}
    if mesh_info is not None:
        mesh = mesh_info.mesh
        for p in sharded:
            if p.device_mesh != mesh:
                raise _refuse(f"tensor parallelism with FSDP2 (parameter {names.get(id(p), '?')!r} lives on mesh "
                              f"{tuple(p.device_mesh.shape)} {p.device_mesh.mesh_dim_names}, FSDP shards on "
                              f"{tuple(mesh.shape)})", "measure on a data-parallel (DDP/FSDP2) run of the same model")
        shard_dim = mesh_info.shard_mesh_dim
        replicate_dim = getattr(mesh_info, "replicate_mesh_dim", None)
    else:  # private state moved: read the placements
        if len(meshes) != 1:
            raise _refuse("parameters on several device meshes", "shard every parameter on one FSDP2 mesh")
        mesh = next(iter(meshes.values()))
        placements = {tuple(type(pl).__name__ for pl in p.placements) for p in sharded}
        if placements == {("Shard",)}:
            shard_dim, replicate_dim = 0, None
        elif placements == {("Replicate", "Shard")}:
            shard_dim, replicate_dim = 1, 0
        else:
            raise _refuse(f"parameter placements {sorted(placements)}", "use FSDP2 or HSDP on one mesh")
    if replicate_dim is None:
        return Layout("fsdp2", mesh, (shard_dim,), (shard_dim,), mesh.size())
    return Layout("hsdp", mesh, (shard_dim,), (replicate_dim, shard_dim), mesh.size())


def _fsdp_mesh_info(fsdp_modules: list[nn.Module]):
    for m in fsdp_modules:
        try:
            group = m._get_fsdp_state()._fsdp_param_group
        except AttributeError:  # pragma: no cover - private API changed
            return None
        if group is not None:
            return group.mesh_info
    return None
