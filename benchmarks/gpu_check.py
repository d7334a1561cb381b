"""One-command GPU check of issue 13: what the CPU could not measure.

    python benchmarks/gpu_check.py                 # GPT-2-small-sized model on the GPU (about 2 minutes on one H100)
    python benchmarks/gpu_check.py --quick --device cpu     # a tiny model, to see that the script itself runs

HONEST STATUS: this script has never run on a GPU. It was written and run only with ``--quick --device cpu``;
its GPU numbers do not exist yet. Run it the day a GPU is lent and put the output in docs/sharded.md.

It prints, each a ratio to a plain training step of the same model and batch (median of timed steps after warm-up):

1. the overhead of each noise source: ``per_example`` (all parameters, and ``layers="norm"``), ``accumulation`` (two
   micro-batches against two micro-batches without the monitor), and ``per_example`` with ``every=10``;
2. FSDP2 on one device (a process group of one, NCCL on CUDA): the per-example monitor on the ``fully_shard``-ed model
   against the same model unsharded, on the same batches (relative difference of B_simple, and the step time ratio);
3. SophiaG on the device: the default step (sync-free non-finite check) against the host-checked one
   (``sync_free=False``), bit-identity of the two after the timed steps, and against the official ``sophia-opt``
   SophiaG if it is installed.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch
import torch.nn.functional as F

NOT_RUN = "gpu_check: this script has never run on a GPU before this run (see its docstring)."


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _gpt2(args, device):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=args.layers, n_embd=args.width, n_head=args.heads, vocab_size=args.vocab,
                        n_positions=args.seq, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return GPT2LMHeadModel(config).to(device)


def _batch(args, device, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, args.vocab, (args.batch, args.seq), generator=gen).to(device)


def _loss(model, ids):
    logits = model(ids).logits[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))


def _timed(fn, steps, warmup, device) -> float:
    for i in range(warmup):
        fn(i)
    times = []
    for i in range(steps):
        _sync(device)
        start = time.perf_counter()
        fn(warmup + i)
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def source_overheads(args, device) -> None:
    from trainwise.noise import NoiseScaleMonitor

    base_model = _gpt2(args, device)
    batches = [_batch(args, device, s) for s in range(4)]

    def run(monitor_kwargs, micro):
        model = copy.deepcopy(base_model)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
        monitor = NoiseScaleMonitor(model, optimizer=opt, **monitor_kwargs) if monitor_kwargs is not None else None

        def step(i):
            ids = batches[i % len(batches)]
            size = ids.shape[0] // micro
            for j in range(micro):
                _loss(model, ids[j * size:(j + 1) * size]).div(micro).backward()
                if monitor is not None and monitor.source == "accumulation":
                    monitor.micro_step(size)
            if monitor is not None:
                monitor.step(batch_size=ids.shape[0])
            opt.step()
            opt.zero_grad(set_to_none=True)

        seconds = _timed(step, args.steps, args.warmup, device)
        b_simple = monitor.b_simple if monitor is not None else float("nan")
        if monitor is not None:
            monitor.close()
        return seconds, b_simple

    run(None, 1)  # warm-up of the allocator and kernels, untimed, so the first configuration is not inflated
    plain, _ = run(None, 1)
    plain2, _ = run(None, 2)
    print(f"plain step: {plain * 1e3:.1f} ms (one batch), {plain2 * 1e3:.1f} ms (two micro-batches)")
    for label, kwargs, micro, base in (
        ("per_example, all parameters", {"source": "per_example"}, 1, plain),
        ("per_example, layers='norm'", {"source": "per_example", "layers": "norm"}, 1, plain),
        ("per_example, every=10", {"source": "per_example", "every": 10}, 1, plain),
        ("accumulation, 2 micro-batches", {"source": "accumulation"}, 2, plain2),
    ):
        seconds, b_simple = run(kwargs, micro)
        print(f"  {label:34s} {seconds / base:5.2f}x   (B_simple {b_simple:.3g})")


def fsdp2_one_device(args, device) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from trainwise.noise import NoiseScaleMonitor

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=0, world_size=1)
    try:
        reference = _gpt2(args, device)
        sharded = copy.deepcopy(reference)
        mesh = init_device_mesh(device.type, (1,))
        for block in sharded.transformer.h:
            fully_shard(block, mesh=mesh)
        fully_shard(sharded, mesh=mesh)
        batches = [_batch(args, device, 100 + s) for s in range(4)]
        results = {}
        for name, model in (("unsharded", reference), ("fsdp2", sharded)):
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
            monitor = NoiseScaleMonitor(model, source="per_example", optimizer=opt)

            def step(i, model=model, opt=opt, monitor=monitor):
                _loss(model, batches[i % len(batches)]).backward()
                monitor.step()
                opt.step()
                opt.zero_grad(set_to_none=True)

            seconds = _timed(step, args.steps, args.warmup, device)
            results[name] = (seconds, monitor.b_simple)
            monitor.close()
        (t0, b0), (t1, b1) = results["unsharded"], results["fsdp2"]
        print(f"FSDP2 on one device: B_simple {b1:.6g} vs unsharded {b0:.6g} (relative difference "
              f"{abs(b1 - b0) / abs(b0):.2e}); step time {t1 / t0:.2f}x the unsharded model's")
    finally:
        dist.destroy_process_group()


def sophia_path(args, device) -> None:
    from trainwise.optim import SophiaG

    torch.manual_seed(0)
    base = _gpt2(args, device)
    grads_by_step = []
    for s in range(4):
        base.zero_grad()
        _loss(base, _batch(args, device, 200 + s)).backward()
        grads_by_step.append([p.grad.clone() for p in base.parameters()])

    def run(make):
        model = copy.deepcopy(base)
        opt = make(model.parameters())
        params = list(model.parameters())

        def step(i):
            for p, g in zip(params, grads_by_step[i % len(grads_by_step)]):
                p.grad = g
            opt.step()

        return _timed(step, args.steps, args.warmup, device), params

    def ours(sync_free):
        def make(params):
            opt = SophiaG(params, lr=6e-4, rho=0.05, weight_decay=0.2)
            opt.sync_free = sync_free
            return opt
        return make

    host_checked, params_checked = run(ours(False))
    default, params_default = run(ours(None))
    identical = all(torch.equal(a, b) for a, b in zip(params_checked, params_default))
    path = "sync-free check" if device.type != "cpu" else "host check, the same path on the CPU"
    print(f"SophiaG on {device.type}: default ({path}) {default * 1e3:.2f} ms, host-checked "
          f"{host_checked * 1e3:.2f} ms ({default / host_checked:.2f}x); parameters bit-identical: {identical}")
    try:
        from sophia_opt import SophiaG as OfficialSophiaG
    except ImportError:
        print("  official SophiaG (sophia-opt) not installed: no ratio to it")
        return
    official, _ = run(lambda params: OfficialSophiaG(params, lr=6e-4, rho=0.05, weight_decay=0.2))
    print(f"  default / official SophiaG step: {default / official:.2f}x (issue 13 asks <= 1.05x)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="a tiny model (to check that the script runs)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    if args.quick:
        args.layers, args.width, args.heads, args.vocab, args.seq, args.batch = 2, 64, 2, 256, 32, 4
        args.steps, args.warmup = min(args.steps, 3), min(args.warmup, 1)
    else:  # GPT-2 small: 124M parameters, 1024 positions
        args.layers, args.width, args.heads, args.vocab, args.seq, args.batch = 12, 768, 12, 50257, 1024, 8
    device = _device(args.device)
    print(NOT_RUN)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, model: {args.layers} layers x {args.width}, batch {args.batch} x {args.seq}")
    source_overheads(args, device)
    fsdp2_one_device(args, device)
    sophia_path(args, device)


if __name__ == "__main__":
    main()
