"""Benchmark of the pre-training data pipeline (``trainwise data curate``) against plain datatrove.

1. Throughput: documents per second of our full pipeline (readers with rejects → kind/preference/density/
   DSIR annotation → kind-aware filters → exact hashes → writer → MinHash signatures → LSH buckets →
   verified clustering → duplicate removal → writer) against the same datatrove pipeline without our
   steps (datatrove's JSONL reader → Gopher quality → Gopher repetition → C4 → FineWeb → writer → its
   four MinHash stages), on the same input, in one run, alternating, best of ``--repeats``.
2. Near-duplicate precision and recall on a corpus with planted duplicates (real book chunks and web pages,
   with copies edited at random rates so their 5-gram Jaccard spans 0.5–1.0); a pair is a true duplicate
   when its exact shingle Jaccard is ≥ 0.8. Ours (LSH + exact-Jaccard verification) vs bare LSH.

Usage: ``python benchmarks/data_pipeline.py [--quick]`` (needs ``pip install 'trainwise[data]'`` and
``../shared/data``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = ROOT.parent / "shared" / "data"


def _corpus_files(quick: bool) -> list[Path]:
    mix = SHARED / "web_samples" / "data_juicer_mixture"
    files = sorted(mix.glob("*.jsonl")) + sorted((SHARED / "web_samples" / "dolma").glob("*.json*")) + \
        sorted((SHARED / "web_samples" / "olmo_c4").glob("*.json.gz"))
    if not quick:
        files.append(SHARED / "instruct_and_arxiv" / "arxiv.jsonl")
    return files


def _prepare_input(files: list[Path], folder: Path, copies: int) -> int:
    """One JSONL.gz with ``copies`` passes over the sample files (ids made unique); returns documents."""
    folder.mkdir(parents=True)
    n = 0
    with gzip.open(folder / "input.jsonl.gz", "wt", encoding="utf-8") as out:
        for c in range(copies):
            for f in files:
                opener = gzip.open if f.name.endswith(".gz") else open
                with opener(f, "rt", encoding="utf-8") as fin:
                    for i, line in enumerate(fin):
                        row = json.loads(line)
                        text = row.pop("text")
                        out.write(json.dumps({"text": text, "id": f"{f.name}/{i}/{c}", "origin": f.name}) + "\n")
                        n += 1
    return n


def _run(pipeline) -> None:
    data = None
    for step in pipeline:
        data = step(data, 0, 1)
    if data is not None:
        deque(data, maxlen=0)


def _call(step, rank: int, world_size: int) -> None:
    result = step(None, rank, world_size)  # some datatrove stages are plain functions, others generators
    if result is not None:
        deque(result, maxlen=0)


def run_baseline(input_folder: Path, work: Path) -> None:
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    mh = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
    _run([JsonlReader(str(input_folder)), GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(),
          FineWebQualityFilter(), JsonlWriter(str(work / "filtered"), output_filename="${rank}.jsonl"),
          MinhashDedupSignature(str(work / "sigs"), config=mh)])
    for bucket in range(14):
        _call(MinhashDedupBuckets(str(work / "sigs"), str(work / "dups"), config=mh), bucket, 14)
    _call(MinhashDedupCluster(str(work / "dups"), str(work / "remove"), config=mh), 0, 1)
    _run([JsonlReader(str(work / "filtered")), MinhashDedupFilter(str(work / "remove")),
          JsonlWriter(str(work / "out"), output_filename="${rank}.jsonl")])


def run_ours(input_folder: Path, work: Path, dsir) -> None:
    from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets

    from trainwise.data.pretrain.config import config_from_dict
    from trainwise.data.pretrain.pipeline import build_stages

    config = config_from_dict({"output": str(work / "out"), "sources": [{"name": "bench", "paths": [str(input_folder)]}]},
                              work)
    stages = build_stages(config, work / "_work", dsir, tasks=1)
    _run(stages["A_annotate_filter"]["pipeline"])
    (bucket_step,) = stages["B_lsh_buckets"]["pipeline"]
    assert isinstance(bucket_step, MinhashDedupBuckets)
    for bucket in range(14):
        _call(bucket_step, bucket, 14)
    _call(stages["C_verify_cluster"]["pipeline"][0], 0, 1)
    _run(stages["D_write"]["pipeline"])


def throughput(quick: bool, repeats: int) -> dict:
    from trainwise.data.pretrain.dsir import DSIRScorer

    tmp = Path(tempfile.mkdtemp(prefix="tw-bench-"))
    try:
        n_docs = _prepare_input(_corpus_files(quick), tmp / "input", copies=1)
        target = [json.loads(x)["text"] for x in open(SHARED / "web_samples/data_juicer_mixture/redpajama-arxiv-sample.jsonl")]
        with gzip.open(tmp / "input" / "input.jsonl.gz", "rt") as f:
            raw = [json.loads(x)["text"] for _, x in zip(range(500), f)]
        dsir = DSIRScorer.fit(target, raw)
        times = {"datatrove": [], "trainwise": []}
        # warm-up of both: spaCy loads once per process and adds every new token to its vocabulary the first
        # time it sees it (slow); the baseline drops papers early, so it would otherwise never pay that for them
        run_baseline(tmp / "input", tmp / "warm-datatrove")
        run_ours(tmp / "input", tmp / "warm-trainwise", dsir)
        for r in range(repeats):
            for name in (("datatrove", "trainwise") if r % 2 == 0 else ("trainwise", "datatrove")):
                work = tmp / f"{name}-{r}"
                start = time.perf_counter()
                if name == "datatrove":
                    run_baseline(tmp / "input", work)
                else:
                    run_ours(tmp / "input", work, dsir)
                times[name].append(time.perf_counter() - start)
        best = {k: min(v) for k, v in times.items()}
        return {"documents": n_docs, "seconds": best,
                "docs_per_second": {k: n_docs / v for k, v in best.items()},
                "overhead": best["trainwise"] / best["datatrove"] - 1.0}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _edit(words: list[str], rate: float, rng: random.Random, vocab: list[str]) -> list[str]:
    out = list(words)
    for i in range(len(out)):
        if rng.random() < rate:
            out[i] = rng.choice(vocab)
    return out


def dedup_quality(quick: bool, seed: int = 0) -> dict:
    from trainwise.data.pretrain.dedup import MinHashSettings, NearDuplicateIndex

    rng = random.Random(seed)
    book = (SHARED / "gutenberg_pride_and_prejudice" / "1342-0.txt").read_text(encoding="utf-8")
    book = book[book.index("It is a truth universally acknowledged"):]
    words = book.split()
    chunk = 300
    bases = [" ".join(words[i:i + chunk]) for i in range(0, len(words) - chunk, chunk)]
    for f in sorted((SHARED / "web_samples" / "olmo_c4").glob("*.json.gz")) + \
            sorted((SHARED / "web_samples" / "data_juicer_mixture").glob("*refined.jsonl")):
        opener = gzip.open if f.name.endswith(".gz") else open
        with opener(f, "rt", encoding="utf-8") as fin:
            bases += [json.loads(x)["text"] for x in fin if len(json.loads(x)["text"].split()) >= 80]
    bases = bases[:150] if quick else bases
    vocab = sorted(set(words))
    texts = list(bases)
    for base in rng.sample(bases, len(bases) // 2):
        # edit rate p replaces ~p of the words; 5-gram Jaccard ≈ (1-p)^5 / (2 - (1-p)^5): p in [0, 0.15] spans ~1.0-0.3
        texts.append(" ".join(_edit(base.split(), rng.uniform(0.0, 0.12), rng, vocab)))
    settings = MinHashSettings(threshold=0.8)
    index = NearDuplicateIndex(settings)
    index.add_many(texts)
    truth = {(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts))
             if index.similarity(i, j) >= 0.8}
    candidates = index.candidate_pairs()
    verified = {(i, j) for i, j, _ in index.verified_pairs()}

    def pr(predicted):
        tp = len(predicted & truth)
        return {"precision": tp / len(predicted) if predicted else 1.0, "recall": tp / len(truth) if truth else 1.0,
                "pairs": len(predicted)}

    sims = sorted(index.similarity(i, j) for i, j in candidates)
    return {"documents": len(texts), "true_pairs": len(truth), "trainwise_verified": pr(verified),
            "bare_lsh": pr(candidates), "bare_lsh_false_positive_similarities": [round(s, 3) for s in sims if s < 0.8][:20]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller corpus, one repeat")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"needs {SHARED}", file=sys.stderr)
        return 2
    from trainwise.data.pretrain.pipeline import quiet_datatrove_logs

    quiet_datatrove_logs()
    repeats = args.repeats or (1 if args.quick else 2)
    speed = throughput(args.quick, repeats)
    dedup = dedup_quality(args.quick)
    if args.json:
        print(json.dumps({"throughput": speed, "dedup": dedup}, indent=2))
        return 0
    dps = speed["docs_per_second"]
    print(f"throughput on {speed['documents']} documents (best of {repeats}, one process):")
    print(f"  datatrove pipeline (Gopher+C4+FineWeb+MinHash)    {dps['datatrove']:8.1f} docs/s  "
          f"({speed['seconds']['datatrove']:.2f} s)")
    print(f"  trainwise full pipeline                           {dps['trainwise']:8.1f} docs/s  "
          f"({speed['seconds']['trainwise']:.2f} s)")
    print(f"  time ratio trainwise/datatrove = {1 + speed['overhead']:.3f}  (limit 1.30)")
    print(f"near-duplicates: {dedup['documents']} documents, {dedup['true_pairs']} true pairs at Jaccard >= 0.8")
    for name in ("trainwise_verified", "bare_lsh"):
        r = dedup[name]
        print(f"  {name:<20} precision {r['precision']:.3f}  recall {r['recall']:.3f}  ({r['pairs']} pairs)")
    if dedup["bare_lsh_false_positive_similarities"]:
        print(f"  bare LSH pairs below 0.8 (first 20): {dedup['bare_lsh_false_positive_similarities']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
