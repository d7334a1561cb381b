"""Task-mixture sampler: empirical task proportions vs the T5 formula, exact resume, and speed vs torch's sampler.

Tasks with the sizes of a realistic fine-tuning mix (GSM8K train, Dolly sample, three small
tasks). For each rule (examples-proportional with cap, temperature 2, mT5's T = 1/0.3) it draws
``N`` indices, prints the formula's rate, the empirical rate, the difference in binomial
standard errors, the realised effective epochs, and checks that a run resumed from
``state_dict()`` halfway continues identically. Speed is compared with
``torch.utils.data.WeightedRandomSampler`` over the same per-example weights (which samples with
replacement inside a task and cannot resume).

    python benchmarks/sft_mixing.py            # N = 1,000,000
    python benchmarks/sft_mixing.py --quick    # N = 100,000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from trainwise.data.sft.mixing import TaskMixtureSampler, mixing_rates  # noqa: E402

SIZES = {"gsm8k": 7473, "dolly": 1000, "code": 300, "summaries": 120, "tiny": 25}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    rules = [("proportional, K=2000", dict(mode="proportional", cap=2000)),
             ("temperature T=2", dict(mode="temperature", temperature=2.0)),
             ("temperature T=1/0.3 (mT5)", dict(mode="temperature", temperature=1 / 0.3))]
    for label, kwargs in rules:
        rates = mixing_rates(SIZES, **kwargs)
        sampler = TaskMixtureSampler(SIZES, seed=0, **kwargs)
        start = time.perf_counter()
        indices = sampler.take(n)
        ours_s = time.perf_counter() - start
        counts = np.histogram(indices, bins=np.cumsum([0, *SIZES.values()]))[0]
        print(f"\n{label}: {n:,} draws in {ours_s:.2f}s")
        print(f"{'task':<10} {'size':>6} {'formula':>8} {'empirical':>10} {'z':>6} {'epochs':>8}")
        for m, (name, size) in enumerate(SIZES.items()):
            z = (counts[m] / n - rates[m]) / np.sqrt(rates[m] * (1 - rates[m]) / n)
            print(f"{name:<10} {size:>6} {rates[m]:>8.4f} {counts[m] / n:>10.4f} {z:>6.2f} {counts[m] / size:>8.1f}")
        chi2 = float(np.sum((counts - n * rates) ** 2 / (n * rates)))
        print(f"chi-square {chi2:.2f} on {len(SIZES) - 1} degrees of freedom (99.9% quantile 18.47)")
        half = TaskMixtureSampler(SIZES, seed=0, **kwargs)
        head = half.take(n // 2)
        resumed = TaskMixtureSampler(SIZES, seed=0, **kwargs)
        resumed.load_state_dict(half.state_dict())
        identical = np.array_equal(np.concatenate([head, resumed.take(n - n // 2)]), indices)
        print(f"resume from state_dict at {n // 2:,}: continuation identical = {identical}")
        weights = torch.cat([torch.full((size,), float(rates[m] / size)) for m, size in enumerate(SIZES.values())])
        start = time.perf_counter()
        list(torch.utils.data.WeightedRandomSampler(weights, n, replacement=True, generator=torch.Generator().manual_seed(0)))
        torch_s = time.perf_counter() - start
        start = time.perf_counter()
        list(TaskMixtureSampler(SIZES, seed=0, num_samples=n, **kwargs))
        iter_s = time.perf_counter() - start
        print(f"iterating {n:,} indices: TaskMixtureSampler {iter_s:.2f}s, WeightedRandomSampler {torch_s:.2f}s "
              f"(ratio {iter_s / torch_s:.2f})")


if __name__ == "__main__":
    main()
