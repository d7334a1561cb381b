"""Fine-tuning (SFT) data curation: load, clean, score, diversify, select and mix instruction sets.

Quality over quantity (LIMA, AlpaGasus, Deita), diverse prompts, balanced tasks (T5 mixing):

* :mod:`~trainwise.data.sft.loaders`   prompt/response, instruction/input/output, chat ``messages`` JSONL
* :mod:`~trainwise.data.sft.clean`     empty/truncated answers, length bounds, duplicates, decontamination
* :mod:`~trainwise.data.sft.dedup`     exact and MinHash-LSH near-duplicate prompts (numpy)
* :mod:`~trainwise.data.sft.decontam`  n-gram overlap with evaluation sets
* :mod:`~trainwise.data.sft.scores`    heuristic quality/complexity scores and IFD with any causal LM
* :mod:`~trainwise.data.sft.embed`     sentence embeddings (optional MiniLM package) or hashed TF-IDF
* :mod:`~trainwise.data.sft.diversity` distinct-n, embedding dispersion, cluster coverage, verb–noun pairs
* :mod:`~trainwise.data.sft.select`    facility location, k-center greedy, Deita admission, coverage distance
* :mod:`~trainwise.data.sft.mixing`    :class:`TaskMixtureSampler` (resumable multi-task sampler)
* :mod:`~trainwise.data.sft.report`    :func:`curate` (the whole run) and its Markdown/JSON report

Names are imported lazily, so ``import trainwise.data.sft`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SFTExample": "loaders", "SFTFormatError": "loaders", "LoadReport": "loaders", "load_jsonl": "loaders",
    "load_many": "loaders", "parse_record": "loaders", "instruction_text": "loaders",
    "CleanConfig": "clean", "CleanResult": "clean", "clean": "clean", "is_truncated": "clean",
    "find_near_duplicates": "dedup", "find_exact_duplicates": "dedup", "candidate_probability": "dedup",
    "decontaminate": "decontam", "DecontaminationReport": "decontam",
    "heuristic_scores": "scores", "ifd_scores": "scores",
    "embed_texts": "embed", "HashedTfidfEmbedder": "embed",
    "distinct_n": "diversity", "embedding_dispersion": "diversity", "cluster_coverage": "diversity",
    "verb_noun_pairs": "diversity", "diversity_summary": "diversity",
    "k_center_greedy": "select", "facility_location_greedy": "select", "kmeans_medoids": "select", "deita_select": "select", "random_select": "select", "coverage_distance": "select",
    "curate": "report", "render_markdown": "report",
    "TaskMixtureSampler": "mixing", "mixing_rates": "mixing", "expected_epochs": "mixing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trainwise.data.sft' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"trainwise.data.sft.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
