"""How close is the norm-layer proxy (``layers="norm"``) to the all-parameter noise scale?

Trains each setting with AdamW and two per-example monitors on the same model and the same batches, one over all
parameters and one over the norm layers' parameters only (Gray et al. 2024's proxy), and prints the ratio
``B_simple(norm) / B_simple(all)`` of their moving averages at five points of training:

- the built-in tasks (``digits-mlp`` and ``teacher-student`` are plain MLPs without a norm layer: nothing to
  measure, and ``layers="norm"`` refuses them; ``char-gpt`` has pre-norm LayerNorms);
- stock Hugging Face ``GPT2LMHeadModel`` and ``LlamaForCausalLM`` built from small configs (no download), trained
  on the character data of ``char-gpt`` (LayerNorm with bias, and LlamaRMSNorm).

    python benchmarks/norm_proxy.py            # ~4 minutes on 2 CPU cores
    python benchmarks/norm_proxy.py --quick    # fewer steps
    python benchmarks/norm_proxy.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

from trainwise.noise import NoiseScaleMonitor
from trainwise.tasks import get_task


def _hf_lm(kind: str, vocab: int, block: int, seed: int = 0):
    import transformers

    torch.manual_seed(seed)
    if kind == "gpt2":
        config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=vocab, n_positions=block,
                                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                         bos_token_id=0, eos_token_id=0)
        return transformers.GPT2LMHeadModel(config)
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=vocab,
                                      max_position_embeddings=block)
    return transformers.LlamaForCausalLM(config)


def settings(names: list[str]):
    """name -> (model, batches iterator, per-example loss fn, lr, batch size)."""
    for name in names:
        if name in ("digits-mlp", "teacher-student", "char-gpt"):
            task = get_task(name)
            model = task.make_model(seed=0)
            yield name, model, task.batches(task.default_batch_size, seed=0), task.loss_fn, task.default_lr
        else:
            task = get_task("char-gpt")
            vocab, block = len(task.chars), task.config.block_size
            model = _hf_lm(name, vocab, block)

            def loss_fn(model, batch, vocab=vocab):
                (windows,) = batch
                logits = model(windows[:, :-1]).logits
                token_loss = F.cross_entropy(logits.reshape(-1, vocab), windows[:, 1:].reshape(-1), reduction="none")
                return token_loss.view(windows.shape[0], -1).mean(1)

            yield name, model, task.batches(32, seed=0), loss_fn, 1e-3


def run(name, model, batches, loss_fn, lr, steps: int, points: int = 5) -> dict:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    full = NoiseScaleMonitor(model, source="per_example", ema_steps=20)
    norm = NoiseScaleMonitor(model, source="per_example", layers="norm", ema_steps=20)
    marks = {round(steps * (i + 1) / points) for i in range(points)}
    rows, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        batch = next(batches)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch).mean()
        loss.backward()
        full.step()
        norm.step()
        opt.step()
        if step in marks:
            rows.append({"step": step, "loss": float(loss.detach()), "b_simple_all": full.b_simple,
                         "b_simple_norm": norm.b_simple, "ratio": norm.b_simple / full.b_simple})
    full.close()
    norm.close()
    n_norm = sum(p.numel() for p in norm.params)
    n_all = sum(p.numel() for p in full.params)
    return {"setting": name, "norm_params": n_norm, "all_params": n_all, "rows": rows,
            "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="100 steps per setting")
    parser.add_argument("--settings", default="digits-mlp,teacher-student,char-gpt,gpt2,llama")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    steps = 100 if args.quick else args.steps
    torch.set_num_threads(1)
    results = []
    for name, model, batches, loss_fn, lr in settings(args.settings.split(",")):
        try:
            result = run(name, model, batches, loss_fn, lr, steps)
        except ValueError as exc:  # layers='norm' on a model without norm layers
            if "no parameter to measure" not in str(exc):
                raise
            print(f"{name:16s} no norm layer: layers='norm' refuses the model (nothing to measure)", flush=True)
            results.append({"setting": name, "rows": [], "note": "no norm layers"})
            continue
        results.append(result)
        ratios = [r["ratio"] for r in result["rows"]]
        cells = "  ".join(f"{r['step']:>4d}: {r['ratio']:.3f}" for r in result["rows"])
        spread = max(ratios) / min(ratios) if all(math.isfinite(x) and x > 0 for x in ratios) else math.nan
        print(f"{name:16s} norm {result['norm_params']:>6d} of {result['all_params']:>7d} params | ratio at step  "
              f"{cells} | max/min {spread:.2f} | B_all at end {result['rows'][-1]['b_simple_all']:.1f} "
              f"({result['seconds']:.0f} s)", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
