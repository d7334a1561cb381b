"""Near-duplicate prompts: MinHash-LSH (ours) vs exact all-pairs Jaccard, recall and time side by side.

Pool: the Dolly/HH sample prompts, the GSM8K test questions and the GSM8K Socratic test file
(which repeats every test question) from ``../shared/data``. The baseline computes the exact
character-5-gram Jaccard of every pair; ours finds candidates with MinHash-LSH (20 bands × 5 rows)
and verifies them exactly, so its precision is 1 by construction and the question is recall.

    python benchmarks/sft_near_dedup.py           # 3,638 prompts (6.6M pairs for the baseline)
    python benchmarks/sft_near_dedup.py --quick   # 1,200 prompts
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trainwise.data.sft._text import char_shingles  # noqa: E402
from trainwise.data.sft.dedup import candidate_probability, find_near_duplicates  # noqa: E402
from trainwise.data.sft.loaders import load_jsonl  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    data = Path(args.data)
    texts = [e.instruction for e in load_jsonl(data / "instruct_and_arxiv" / "dolly_hhrlhf_train_small.jsonl")]
    texts += [e.instruction for e in load_jsonl(data / "gsm8k" / "test.jsonl")]
    texts += [e.instruction for e in load_jsonl(data / "gsm8k" / "test_socratic.jsonl")]
    if args.quick:
        texts = texts[:600] + texts[1000:1300] + texts[2319:2619]
    n = len(texts)
    print(f"{n} prompts, {n * (n - 1) // 2:,} pairs")
    for threshold in (0.8, 0.6):
        start = time.perf_counter()
        ours = find_near_duplicates(texts, threshold=threshold)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        shingles = [char_shingles(t) for t in texts]
        truth = set()
        for i in range(n):
            a = shingles[i]
            for j in range(i + 1, n):
                b = shingles[j]
                inter = len(a & b)
                if inter and inter / (len(a) + len(b) - inter) >= threshold:
                    truth.add((i, j))
        brute_s = time.perf_counter() - start
        found = {(i, j) for i, j, _ in ours.pairs}
        recall = len(found & truth) / len(truth) if truth else 1.0
        print(f"threshold {threshold}: exact all-pairs {len(truth)} pairs in {brute_s:.1f}s | MinHash-LSH {len(found)} pairs "
              f"({ours.candidates:,} candidates verified) in {ours_s:.1f}s | recall {recall:.4f}, precision "
              f"{len(found & truth) / max(len(found), 1):.4f}, speed-up {brute_s / ours_s:.1f}x "
              f"(LSH candidate probability at the threshold {float(candidate_probability(threshold, 20, 5)):.4f})")


if __name__ == "__main__":
    main()
