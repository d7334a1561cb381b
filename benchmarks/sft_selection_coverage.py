"""Coverage of k selected instructions: facility location / k-means medoids / k-center greedy / Deita vs random, side by side.

Pool: GSM8K train questions + the Dolly/HH sample prompts from ``../shared/data`` after cleaning
(duplicates and broken answers dropped). Embeddings: hashed TF-IDF + LSA (always available) or
the packaged MiniLM (``--embed minilm``, extra ``[embed]``). Coverage of a selection ``S`` is the
mean (and max) Euclidean distance of every pool example to its nearest selected example; lower
is better. Random is averaged over ``--seeds`` seeds (± one standard deviation).

    python benchmarks/sft_selection_coverage.py            # full pool, k = 100, 500, 1000
    python benchmarks/sft_selection_coverage.py --quick    # 2,000-example pool, k = 50, 200
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trainwise.data.sft.clean import clean  # noqa: E402
from trainwise.data.sft.diversity import cluster_coverage, kmeans  # noqa: E402
from trainwise.data.sft.embed import embed_texts  # noqa: E402
from trainwise.data.sft.loaders import load_jsonl  # noqa: E402
from trainwise.data.sft.scores import heuristic_scores  # noqa: E402
from trainwise.data.sft.select import coverage_distance, deita_select, facility_location_greedy, k_center_greedy, kmeans_medoids, random_select  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--embed", choices=["tfidf", "minilm"], default="tfidf")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()

    data = Path(args.data)
    pool = load_jsonl(data / "gsm8k" / "train.jsonl", task="gsm8k") + load_jsonl(
        data / "instruct_and_arxiv" / "dolly_hhrlhf_train_small.jsonl", task="dolly")
    if args.quick:
        rng = np.random.default_rng(0)
        pool = [pool[i] for i in sorted(rng.choice(len(pool), 2000, replace=False))]
    cleaned = clean(pool).kept
    texts = [e.instruction for e in cleaned]
    start = time.perf_counter()
    X, backend = embed_texts(texts, backend=args.embed)
    print(f"pool: {len(cleaned)} cleaned prompts (of {len(pool)}), embeddings {backend} {X.shape[1]}-d "
          f"in {time.perf_counter() - start:.1f}s")
    n_clusters = 50
    _, labels = kmeans(X, n_clusters, seed=123)  # clusters for the coverage column, independent of the selectors' seeds
    scores = np.array([(lambda h: h.complexity * h.quality)(heuristic_scores(e.instruction, e.response)) for e in cleaned])
    ks = (50, 200) if args.quick else (100, 500, 1000)
    header = f"{'k':>5} {'method':<10} {'mean dist':>10} {'± sd':>7} {'max dist':>9} {'clusters hit':>13} {'mean/random':>12} {'max/random':>11} {'time s':>7}"
    print(header)
    print("-" * len(header))
    for k in ks:
        random_runs = [random_select(len(X), k, seed) for seed in range(args.seeds)]
        random_cov = [coverage_distance(X, s) for s in random_runs]
        r_mean = float(np.mean([c["mean"] for c in random_cov]))
        r_max = float(np.mean([c["max"] for c in random_cov]))
        r_sd = float(np.std([c["mean"] for c in random_cov]))
        r_hit = float(np.mean([cluster_coverage(labels, s, n_clusters)["covered"] for s in random_runs]))
        print(f"{k:>5} {'random':<10} {r_mean:>10.4f} {r_sd:>7.4f} {r_max:>9.4f} {r_hit:>13.1f} {1.0:>12.3f} {1.0:>11.3f} {'':>7}")
        for name, select in (("facility", lambda: facility_location_greedy(X, k)), ("kmedoids", lambda: kmeans_medoids(X, k)), ("kcenter", lambda: k_center_greedy(X, k)),
                             ("deita", lambda: deita_select(X, scores, k, threshold=0.9))):
            start = time.perf_counter()
            chosen = select()
            elapsed = time.perf_counter() - start
            cov = coverage_distance(X, chosen)
            hit = cluster_coverage(labels, chosen, n_clusters)["covered"]
            print(f"{k:>5} {name:<10} {cov['mean']:>10.4f} {'':>7} {cov['max']:>9.4f} {hit:>13d} "
                  f"{cov['mean'] / r_mean:>12.3f} {cov['max'] / r_max:>11.3f} {elapsed:>7.1f}")
    print("lower distance is better; ratios < 1 beat random selection of the same k")


if __name__ == "__main__":
    main()
