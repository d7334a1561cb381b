"""Run under torchrun (2 processes, gloo): the noise-scale sources on an FSDP2-sharded model.

``python -m torch.distributed.run --standalone --nproc_per_node=2 fsdp_worker.py OUT.json [smoke|full]``.
Rank 0 writes ``{case: {"sharded": ..., "reference": ...}}`` with the unsharded model's numbers on the same
global batches; tests/noise/test_fsdp.py compares them.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fsdp_common as common  # noqa: E402


def sharded(mesh=None, mp_policy=None, dtype=torch.float64):
    model = common.make_model(dtype)
    kwargs = {"mesh": mesh} if mesh is not None else {}
    if mp_policy is not None:
        kwargs["mp_policy"] = mp_policy
    fully_shard(model.block, **kwargs)
    fully_shard(model, **kwargs)
    return model


def refusals(rank, world):
    """One line each, at construction, for what the sources cannot measure."""
    from torch import nn
    from torch.distributed.tensor.parallel import ColwiseParallel, parallelize_module

    from trainwise.noise import NoiseScaleMonitor, measure_noise_scale

    out = {}
    mesh = init_device_mesh("cpu", (world,))
    tp = parallelize_module(nn.Sequential(nn.Linear(4, 4)), mesh, {"0": ColwiseParallel()})
    try:
        NoiseScaleMonitor(tp, source="per_example")
    except ValueError as exc:
        out["tensor_parallel"] = str(exc)
    try:
        measure_noise_scale(tp, lambda m, b: m(b).sum(1), [torch.zeros(4, 4)], rounds=1, hessian=False)
    except ValueError as exc:
        out["tensor_parallel_measure"] = str(exc)
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel

        fsdp1 = FullyShardedDataParallel(nn.Linear(4, 4), use_orig_params=False)
        NoiseScaleMonitor(fsdp1, source="per_example")
    except ValueError as exc:
        out["fsdp1"] = str(exc)
    except Exception as exc:  # FSDP1 may not build on this machine
        out["fsdp1"] = f"not built: {type(exc).__name__}: {exc}"
    try:
        NoiseScaleMonitor(sharded(), source="ddp")
    except ValueError as exc:
        out["ddp_source"] = str(exc)
    try:
        measure_noise_scale(sharded(), common.per_example_loss, [], hessian=True)
    except ValueError as exc:
        out["hessian"] = str(exc)
    return out


def main(out_path: str, mode: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    per_rank = 4
    batches = common.global_batches(12, per_rank * world)  # Adam's v̂ preconditions from step 10 on
    few = batches[:3]
    mine = [common.share(b, rank, world) for b in batches]
    results = {}

    def case(name, got, reference):
        results[name] = {"sharded": got, "reference": reference() if rank == 0 else None}

    case("per_example", common.run_monitor(sharded(), mine, source="per_example", steps=2),
         lambda: common.reference_monitor(batches[:2], source="per_example", world=world))
    if mode == "full":
        case("per_example_precond", common.run_monitor(sharded(), mine, source="per_example", precondition=True),
             lambda: common.reference_monitor(batches, source="per_example", world=world, precondition=True))
        case("accumulation", common.run_monitor(sharded(), mine, source="accumulation", micro=2, precondition=True),
             lambda: common.reference_monitor(batches, source="accumulation", world=world, micro=2, precondition=True))
        case("measure", common.run_measure(sharded(), mine[:3]), lambda: common.run_measure(common.make_model(), few))
        hsdp = init_device_mesh("cpu", (world, 1), mesh_dim_names=("replicate", "shard"))
        case("hsdp_per_example", common.run_monitor(sharded(hsdp), mine, source="per_example", steps=3),
             lambda: common.reference_monitor(few, source="per_example", world=world))
        case("hsdp_accumulation", common.run_monitor(sharded(hsdp), mine, source="accumulation", micro=2, steps=3),
             lambda: common.reference_monitor(few, source="accumulation", world=world, micro=2))
        case("hsdp_measure", common.run_measure(sharded(hsdp), mine[:3]),
             lambda: common.run_measure(common.make_model(), few))
        bf16 = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        case("mixed_per_example", common.run_monitor(sharded(mp_policy=bf16, dtype=torch.float32), mine,
                                                     source="per_example", steps=3),
             lambda: common.reference_monitor(few, source="per_example", world=world, dtype=torch.float32))
        case("mixed_accumulation", common.run_monitor(sharded(mp_policy=bf16, dtype=torch.float32), mine,
                                                      source="accumulation", micro=2, steps=3),
             lambda: common.reference_monitor(few, source="accumulation", world=world, micro=2,
                                              dtype=torch.float32))
        results["refusals"] = refusals(rank, world)
    gathered = [None] * world
    dist.all_gather_object(gathered, {k: v["sharded"] for k, v in results.items() if k != "refusals"})
    if rank == 0:
        assert gathered[0] == gathered[1], "ranks disagree on the sharded numbers"
        Path(out_path).write_text(json.dumps(results))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "smoke")
