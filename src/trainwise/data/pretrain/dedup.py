"""Exact and MinHash near-duplicate removal across sources, with every LSH candidate verified.

MinHash LSH (Broder 1997; docs/science.md §7): 5-gram word shingles of the normalised text, ``b = 14`` bands
× ``r = 8`` rows. Two documents with Jaccard similarity ``s`` share a band with probability

    P(candidate | s) = 1 − (1 − s^r)^b,

which is 0.92 at ``s = 0.8`` but still 0.51 at ``s = 0.72`` and 0.30 at ``s = 0.7``: bare LSH removes pairs
well below the threshold. Every candidate pair is therefore checked by its exact Jaccard similarity
``J(A, B) = |A ∩ B| / |A ∪ B|`` of the shingle sets before anything is removed. Exact duplicates
(identical text after whitespace normalisation) are always removed.

The shingles and signatures are datatrove's (``MinhashDedupSignature``: same text normalisation, word
tokenizer and hash), so in-memory results here equal the on-disk pipeline's; the pipeline uses datatrove's
signature and bucket stages and :func:`make_verified_cluster_step` in place of its clustering stage. One
document per cluster is kept: the one with the highest ``preference_score``, then ``density_score``.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from trainwise._optional import require
from trainwise.data.similarity import candidate_probability as _candidate_probability
from trainwise.data.similarity import connected_components, jaccard

__all__ = [
    "MinHashSettings",
    "WhitespaceWordTokenizer",
    "make_signature_step",
    "candidate_probability",
    "exact_text_hash",
    "jaccard",
    "NearDuplicateIndex",
    "make_verified_cluster_step",
    "make_apply_dedup_step",
    "make_exact_hash_step",
]

_SPACES = re.compile(r"\s+")


def exact_text_hash(text: str) -> int:
    """64-bit hash of the whitespace-normalised text (exact duplicates up to spacing)."""
    normalised = _SPACES.sub(" ", text).strip()
    return int.from_bytes(hashlib.blake2b(normalised.encode("utf-8"), digest_size=8).digest(), "little")


def candidate_probability(similarity: float, bands: int = 14, rows: int = 8) -> float:
    """``1 − (1 − s^r)^b`` with this pipeline's default bands and rows (:func:`trainwise.data.similarity.candidate_probability`)."""
    return _candidate_probability(similarity, bands, rows)


@dataclass(frozen=True)
class MinHashSettings:
    """docs/science.md §7 defaults: 5-gram shingles, 14 bands × 8 rows; pairs below ``threshold`` are kept."""

    n_grams: int = 5
    bands: int = 14
    rows: int = 8
    threshold: float = 0.8
    seed: int = 1
    language: str = "en"
    tokenizer: str = "whitespace"

    def __post_init__(self) -> None:
        if self.tokenizer not in ("whitespace", "datatrove"):
            raise ValueError(f"tokenizer must be 'whitespace' or 'datatrove', got {self.tokenizer!r}")
        if self.n_grams < 1 or self.bands < 1 or self.rows < 1:
            raise ValueError(f"n_grams, bands and rows must be >= 1, got {self.n_grams}, {self.bands}, {self.rows}")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold!r}")

    def datatrove_config(self) -> Any:
        require("datatrove", extra="data", purpose="MinHash deduplication")
        from datatrove.pipeline.dedup.minhash import MinhashConfig

        return MinhashConfig(n_grams=self.n_grams, num_buckets=self.bands, hashes_per_bucket=self.rows, seed=self.seed)


class WhitespaceWordTokenizer:
    """Word tokenizer for MinHash shingles of *normalised* text.

    datatrove shingles ``simplify_text(text)`` (lower-cased, punctuation removed, digits → 0, whitespace
    collapsed) and then runs its spaCy word tokenizer on it. On normalised text spaCy only splits a few
    contractions differently from ``str.split`` (< 0.5 % of tokens on ``../shared/data``) but costs ~10 s for
    one 60 KB arXiv paper against ~2 ms; ``MinHashSettings(tokenizer="datatrove")`` restores spaCy.
    """

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()


def make_signature_step(output_folder: str, settings: "MinHashSettings") -> Any:
    """datatrove's ``MinhashDedupSignature`` with :class:`WhitespaceWordTokenizer` unless told otherwise."""
    require("datatrove", extra="data", purpose="MinHash deduplication")
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    step = MinhashDedupSignature(output_folder, config=settings.datatrove_config(), language=settings.language)
    if settings.tokenizer == "whitespace":
        step.word_tokenizer = WhitespaceWordTokenizer()
    return step


class _Shingler:
    """datatrove's MinHash shingles and signatures without its on-disk state."""

    def __init__(self, settings: MinHashSettings):
        require("datatrove", extra="data", purpose="MinHash deduplication")
        from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

        self.settings = settings
        # output_folder is only opened in run(); a placeholder path is never written
        self._signer = MinhashDedupSignature(output_folder="/nonexistent-trainwise-placeholder",
                                             config=settings.datatrove_config(), language=settings.language)
        if settings.tokenizer == "whitespace":
            self._signer.word_tokenizer = WhitespaceWordTokenizer()

    def shingles(self, text: str) -> np.ndarray:
        return self._signer.get_shingles(text)

    def shingle_set(self, text: str) -> frozenset[int]:
        return frozenset(self.shingles(text).ravel().tolist())

    def signature(self, shingles: np.ndarray) -> list[tuple[int, ...]]:
        return [tuple(band) for band in self._signer.get_signature(shingles)]


class NearDuplicateIndex:
    """In-memory MinHash LSH over a list of texts, with exact-Jaccard verification of candidates.

    >>> idx = NearDuplicateIndex()
    >>> idx.add_many(["a b c d e f g h i j k", "a b c d e f g h i j k", "totally different words here now"])
    >>> [(i, j) for i, j, s in idx.verified_pairs()]
    [(0, 1)]
    """

    def __init__(self, settings: MinHashSettings | None = None):
        self.settings = settings or MinHashSettings()
        self._shingler = _Shingler(self.settings)
        self._shingle_sets: list[frozenset[int]] = []
        self._buckets: list[dict[tuple[int, ...], list[int]]] = [defaultdict(list) for _ in range(self.settings.bands)]

    def add(self, text: str) -> int:
        shingles = self._shingler.shingles(text)
        index = len(self._shingle_sets)
        self._shingle_sets.append(frozenset(shingles.ravel().tolist()))
        if shingles.size:
            for band, key in enumerate(self._shingler.signature(shingles)):
                self._buckets[band][key].append(index)
        return index

    def add_many(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.add(text)

    def candidate_pairs(self) -> set[tuple[int, int]]:
        """Pairs ``(i, j)``, ``i < j``, that share at least one band (bare LSH)."""
        pairs: set[tuple[int, int]] = set()
        for buckets in self._buckets:
            for members in buckets.values():
                for a in range(len(members)):
                    for b in range(a + 1, len(members)):
                        pairs.add((members[a], members[b]))
        return pairs

    def similarity(self, i: int, j: int) -> float:
        return jaccard(self._shingle_sets[i], self._shingle_sets[j])

    def verified_pairs(self, threshold: float | None = None) -> list[tuple[int, int, float]]:
        """Candidate pairs whose exact shingle Jaccard is ``>= threshold`` (default: the settings')."""
        threshold = self.settings.threshold if threshold is None else threshold
        out = []
        for i, j in sorted(self.candidate_pairs()):
            similarity = self.similarity(i, j)
            if similarity >= threshold:
                out.append((i, j, similarity))
        return out

    def clusters(self, threshold: float | None = None) -> list[list[int]]:
        """Connected components (size ≥ 2) of the verified pairs."""
        return connected_components(len(self._shingle_sets), self.verified_pairs(threshold))[0]


# --- datatrove pipeline steps ---------------------------------------------------------------------
_EXACT_FORMAT = "<QI"  # (text hash, document index in the rank's stream)


def make_exact_hash_step(output_folder: str) -> Any:
    """Step that writes ``(exact_text_hash, doc index)`` per document to ``{rank:05d}.exact`` and passes docs on."""
    require("datatrove", extra="data", purpose="exact deduplication")
    from datatrove.io import get_datafolder
    from datatrove.pipeline.base import PipelineStep

    class ExactHashes(PipelineStep):
        type = "🫂 - DEDUP"
        name = "#️⃣ trainwise exact hashes"

        def __init__(self, folder: str):
            super().__init__()
            self.folder = get_datafolder(folder)

        def run(self, data, rank: int = 0, world_size: int = 1):
            with self.folder.open(f"{rank:05d}.exact", "wb") as out:
                for index, doc in enumerate(data):
                    text_hash = exact_text_hash(doc.text)
                    doc.metadata["text_hash"] = f"{text_hash:016x}"
                    out.write(struct.pack(_EXACT_FORMAT, text_hash, index))
                    yield doc

    return ExactHashes(output_folder)


def make_verified_cluster_step(
    dups_folder: str,
    exact_folder: str,
    documents_folder: str,
    output_folder: str,
    settings: MinHashSettings | None = None,
) -> Any:
    """Replacement for datatrove's ``MinhashDedupCluster`` that verifies each LSH pair by exact Jaccard.

    Reads the ``.dups`` pairs of ``MinhashDedupBuckets`` and the exact-hash files, loads only the candidate
    documents from ``documents_folder`` (``{rank:05d}.jsonl.gz`` written in the same order as the
    signatures), unions exact duplicates and verified near duplicates, and writes for each rank
    ``{rank:05d}.removals.json`` (doc index → reason, kept duplicate, Jaccard) and ``summary.json`` /
    ``pairs.jsonl`` (every candidate with its Jaccard and decision). Runs with ``world_size == 1``.
    """
    require("datatrove", extra="data", purpose="MinHash deduplication")
    import gzip

    from datatrove.io import get_datafolder
    from datatrove.pipeline.base import PipelineStep
    from datatrove.utils.binaryio import read_tuples_from_file

    settings = settings or MinHashSettings()

    class VerifiedMinhashCluster(PipelineStep):
        type = "🫂 - DEDUP"
        name = "🎯 MinHash clusters, verified by exact Jaccard"

        def run(self, data=None, rank: int = 0, world_size: int = 1):
            if world_size != 1:
                raise ValueError(f"the verified clustering stage runs as one task, got world_size={world_size}")
            dups = get_datafolder(dups_folder)
            exact = get_datafolder(exact_folder)
            docs = get_datafolder(documents_folder)
            out = get_datafolder(output_folder)

            candidates: set[tuple[tuple[int, int], tuple[int, int]]] = set()
            for name in dups.list_files(glob_pattern="*.dups"):
                with dups.open(name, "rb") as f:
                    for f1, d1, f2, d2 in read_tuples_from_file(f, "4I", lines_to_buffer=1000):
                        a, b = (f1, d1), (f2, d2)
                        candidates.add((min(a, b), max(a, b)))
            exact_groups: dict[int, list[tuple[int, int]]] = defaultdict(list)
            for name in exact.list_files(glob_pattern="*.exact"):
                file_rank = int(name.split("/")[-1].split(".")[0])
                with exact.open(name, "rb") as f:
                    for text_hash, index in read_tuples_from_file(f, "QI", lines_to_buffer=1000):
                        exact_groups[text_hash].append((file_rank, index))
            exact_edges = set()
            for members in exact_groups.values():
                for other in members[1:]:
                    exact_edges.add((members[0], other))

            needed: dict[int, set[int]] = defaultdict(set)
            for a, b in list(candidates) + list(exact_edges):
                needed[a[0]].add(a[1])
                needed[b[0]].add(b[1])
            info: dict[tuple[int, int], dict[str, Any]] = {}
            texts: dict[tuple[int, int], str] = {}
            for file_rank, indices in needed.items():
                path = f"{file_rank:05d}.jsonl.gz"
                with docs.open(path, "rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
                    for index, line in enumerate(f):
                        if index in indices:
                            row = json.loads(line)
                            meta = row.get("metadata", {})
                            info[(file_rank, index)] = {
                                "id": row.get("id"), "source": meta.get("source"), "kind": meta.get("kind"),
                                "preference_score": meta.get("preference_score", 0.0),
                                "density_score": meta.get("density_score", 0.0),
                            }
                            texts[(file_rank, index)] = row.get("text", "")
            shingler = _Shingler(settings)
            shingle_cache: dict[tuple[int, int], frozenset[int]] = {}

            def shingles_of(key: tuple[int, int]) -> frozenset[int]:
                if key not in shingle_cache:
                    shingle_cache[key] = shingler.shingle_set(texts.get(key, ""))
                return shingle_cache[key]

            parent: dict[tuple[int, int], tuple[int, int]] = {}

            def find(x):
                parent.setdefault(x, x)
                while parent[x] != x:
                    parent[x] = parent[parent[x]]
                    x = parent[x]
                return x

            edge_jaccard: dict[tuple[tuple[int, int], tuple[int, int]], float] = {}
            with out.open("pairs.jsonl", "wt") as pairs_file:
                for a, b in sorted(exact_edges):
                    parent[find(b)] = find(a)
                    edge_jaccard[(a, b)] = 1.0
                    self.stat_update("exact_duplicate_pairs")
                accepted = rejected = 0
                for a, b in sorted(candidates - exact_edges):
                    similarity = jaccard(shingles_of(a), shingles_of(b))
                    keep_pair = similarity >= settings.threshold
                    pairs_file.write(json.dumps({
                        "a": info.get(a, {}).get("id"), "b": info.get(b, {}).get("id"),
                        "a_source": info.get(a, {}).get("source"), "b_source": info.get(b, {}).get("source"),
                        "jaccard": round(similarity, 4), "duplicate": keep_pair,
                    }) + "\n")
                    if keep_pair:
                        accepted += 1
                        parent[find(b)] = find(a)
                        edge_jaccard[(a, b)] = similarity
                    else:
                        rejected += 1
                self.stat_update("lsh_pairs_verified", value=accepted)
                self.stat_update("lsh_pairs_rejected", value=rejected)

            clusters: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
            for node in list(parent):
                clusters[find(node)].append(node)
            removals: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
            sizes: dict[int, dict[int, int]] = defaultdict(dict)
            best_similarity: dict[tuple[int, int], float] = {}
            for (a, b), similarity in edge_jaccard.items():
                for node in (a, b):
                    best_similarity[node] = max(best_similarity.get(node, 0.0), similarity)
            n_removed = 0
            for members in clusters.values():
                if len(members) < 2:
                    continue
                keeper = max(members, key=lambda n: (info.get(n, {}).get("preference_score") or 0.0,
                                                     info.get(n, {}).get("density_score") or 0.0,
                                                     -n[0], -n[1]))
                for node in members:
                    sizes[node[0]][node[1]] = len(members)
                    if node == keeper:
                        continue
                    n_removed += 1
                    exact_dup = exact_text_hash(texts.get(node, "")) == exact_text_hash(texts.get(keeper, ""))
                    removals[node[0]][node[1]] = {
                        "reason": "exact_duplicate" if exact_dup else "near_duplicate",
                        "duplicate_of": info.get(keeper, {}).get("id"),
                        "duplicate_of_source": info.get(keeper, {}).get("source"),
                        "jaccard": round(jaccard(shingles_of(node), shingles_of(keeper)), 4),
                        "cluster_size": len(members),
                    }
            for file_rank in set(needed) | set(removals):
                with out.open(f"{file_rank:05d}.removals.json", "wt") as f:
                    json.dump({"removals": {str(k): v for k, v in removals[file_rank].items()},
                               "cluster_sizes": {str(k): v for k, v in sizes[file_rank].items()}}, f)
            with out.open("summary.json", "wt") as f:
                json.dump({"lsh_candidate_pairs": len(candidates), "lsh_pairs_verified": accepted,
                           "lsh_pairs_rejected": rejected, "exact_duplicate_pairs": len(exact_edges),
                           "documents_removed": n_removed,
                           "clusters": sum(1 for m in clusters.values() if len(m) > 1),
                           "threshold": settings.threshold, "bands": settings.bands, "rows": settings.rows,
                           "n_grams": settings.n_grams}, f, indent=2)
            self.stat_update("documents_removed", value=n_removed)
            return
            yield  # pragma: no cover - makes this a generator like every datatrove step

    return VerifiedMinhashCluster()


def make_apply_dedup_step(removals_folder: str, exclusion_writer: Any = None) -> Any:
    """Filter that drops the documents listed in ``{rank:05d}.removals.json`` (reason kept in metadata)."""
    require("datatrove", extra="data", purpose="deduplication")
    from datatrove.io import get_datafolder
    from datatrove.pipeline.filters.base_filter import BaseFilter

    class ApplyDedup(BaseFilter):
        name = "🫂 trainwise remove duplicates"

        def __init__(self, folder: str, exclusion_writer: Any = None):
            super().__init__(exclusion_writer)
            self.folder = get_datafolder(folder)

        def run(self, data, rank: int = 0, world_size: int = 1):
            path = f"{rank:05d}.removals.json"
            if self.folder.exists(path):
                with self.folder.open(path, "rt") as f:
                    loaded = json.load(f)
                self._removals = {int(k): v for k, v in loaded["removals"].items()}
                self._sizes = {int(k): v for k, v in loaded["cluster_sizes"].items()}
            else:
                self._removals, self._sizes = {}, {}
            self._index = -1
            yield from super().run(data, rank, world_size)

        def filter(self, doc):
            self._index += 1
            doc.metadata["duplicate_cluster_size"] = self._sizes.get(self._index, 1)
            removal = self._removals.get(self._index)
            if removal is None:
                return True
            doc.metadata.update({f"dedup_{k}": v for k, v in removal.items() if k != "reason"})
            return False, f"dedup:{removal['reason']}"

    return ApplyDedup(removals_folder, exclusion_writer)


