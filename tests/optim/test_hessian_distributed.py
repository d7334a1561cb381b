"""The GNB and Hutchinson estimators under torch.distributed (gloo, 2 processes on CPU)."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from trainwise.optim import GaussNewtonBartlett, Hutchinson

pytestmark = [pytest.mark.distributed, pytest.mark.slow]  # spawning 2 processes takes 15-60 s on a shared CPU


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shards():
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    x = torch.randn(2, 4, 6, 3, generator=gen, dtype=torch.float64)  # [rank, B, T, d]
    mask = torch.ones(2, 4, 6, dtype=torch.bool)
    mask[0, :, 4:] = False  # rank 0 has 16 real tokens, rank 1 has 24: unequal weights
    return weight, x, mask


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        weight0, x, mask = _shards()
        weight = weight0.clone().requires_grad_()
        gen = torch.Generator().manual_seed(100 + rank)
        gnb = GaussNewtonBartlett(lambda b: b[0] @ weight.T, mask_fn=lambda b: b[1], distributed=True)
        grads, count = gnb.sampled_gradient([weight], [(x[rank], mask[rank])], lambda device: gen)
        hutch_gen = torch.Generator().manual_seed(7)  # the same u on every rank
        hutch = Hutchinson(lambda b: torch.logsumexp(b[0] @ weight.T, -1)[b[1]], distributed=True)
        estimate = hutch([weight], [(x[rank], mask[rank])], lambda device: hutch_gen)
        torch.save({"grad": grads[0], "count": count, "hutch": estimate.diag[weight], "hutch_count": estimate.count},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_distributed_estimators_weight_ranks_by_real_tokens(tmp_path):
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    weight0, x, mask = _shards()
    # single-process reference: the same per-rank label draws, combined by token count
    total, grad_sum = 0, torch.zeros_like(weight0)
    for rank in range(2):
        weight = weight0.clone().requires_grad_()
        gen = torch.Generator().manual_seed(100 + rank)
        gnb = GaussNewtonBartlett(lambda b: b[0] @ weight.T, mask_fn=lambda b: b[1])
        grads, count = gnb.sampled_gradient([weight], [(x[rank], mask[rank])], lambda device: gen)
        grad_sum += grads[0] * count
        total += count
    assert total == 40
    for result in results:
        assert result["count"] == 40
        torch.testing.assert_close(result["grad"], grad_sum / total)
    weight = weight0.clone().requires_grad_()
    hutch_gen = torch.Generator().manual_seed(7)
    hutch = Hutchinson(lambda b: torch.logsumexp(b[0] @ weight.T, -1)[b[1]])
    reference = hutch([weight], [(x[0], mask[0]), (x[1], mask[1])], lambda device: hutch_gen)
    for result in results:
        assert result["hutch_count"] == 40
        torch.testing.assert_close(result["hutch"], reference.diag[weight])
