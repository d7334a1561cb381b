"""The curate pipeline's own datatrove steps, as top-level classes like datatrove's (import needs ``[data]``).

- :class:`Annotate` — kind, preference, density and length signals, DSIR score;
- :class:`ExactHashes` — whitespace-normalised text hash per document (exact duplicates up to spacing);
- :class:`VerifiedMinhashCluster` — replaces datatrove's ``MinhashDedupCluster``: verifies every LSH pair by
  its exact Jaccard, joins exact and verified pairs into clusters, keeps one copy per cluster
  (:mod:`~trainwise.data.pretrain.keeper`) and writes ``clusters.jsonl``, ``pairs.jsonl``, ``summary.json``;
- :class:`ApplyDedup` — drops the documents the clustering stage removed, with rule and reason;
- :class:`RankFileReader` — reads back the annotated documents of one rank.

The factories ``make_*_step`` in :mod:`.pipeline` and :mod:`.dedup` return these.
"""

from __future__ import annotations

import gzip
import json
import struct
from collections import defaultdict
from typing import Any, Sequence

from trainwise._optional import require

require("datatrove", extra="data", purpose="the curation pipeline")

from datatrove.data import Document  # noqa: E402
from datatrove.io import get_datafolder  # noqa: E402
from datatrove.pipeline.base import PipelineStep  # noqa: E402
from datatrove.pipeline.filters.base_filter import BaseFilter  # noqa: E402
from datatrove.utils.binaryio import read_tuples_from_file  # noqa: E402

from trainwise.data.pretrain.dedup import MinHashSettings, _Shingler, exact_text_hash, jaccard  # noqa: E402
from trainwise.data.pretrain.density import density_signals  # noqa: E402
from trainwise.data.pretrain.keeper import background_counts, choose_keeper  # noqa: E402
from trainwise.data.pretrain.kinds import classify_kind, preference_score  # noqa: E402
from trainwise.data.similarity import connected_components  # noqa: E402

__all__ = ["Annotate", "ExactHashes", "VerifiedMinhashCluster", "ApplyDedup", "RankFileReader"]

Node = tuple[int, int]  # (rank of the annotated file, index of the document in it)
_EXACT_FORMAT = "<QI"  # (text hash, document index in the rank's stream)


class Annotate(PipelineStep):
    """Adds ``kind``, ``kind_confidence``, ``kind_evidence``, ``preference_score``, ``explicit_preference``,
    the signals of :func:`density_signals` and (with a fitted scorer) ``dsir_score``.

    ``explicit_preference`` is what the user or the data stated: the source's ``preference``
    (``source_preferences``), else the weight of a kind that metadata gave for certain (``kind:``, a
    RedPajama/Pile set name, ``arxiv_id``); ``None`` when the kind was read from the text, a URL's domain or
    a "crawl" source field.
    """

    type = "🏷 - ANNOTATE"
    name = "🏷 trainwise kind, preference, density, DSIR"

    def __init__(self, preferences: dict[str, float], dsir: Any = None,
                 source_preferences: dict[str, float] | None = None):
        super().__init__()
        self.preferences = dict(preferences)
        self.dsir = dsir
        self.source_preferences = dict(source_preferences or {})

    def run(self, data, rank: int = 0, world_size: int = 1):
        for doc in data:
            with self.track_time():
                result = classify_kind(doc.text, doc.metadata)
                meta = doc.metadata
                meta["kind"] = result.kind
                meta["kind_confidence"] = result.confidence
                meta["kind_evidence"] = result.evidence
                meta["preference_score"] = round(preference_score(result, self.preferences), 4)
                explicit = self.source_preferences.get(meta.get("source"))
                if explicit is None and result.evidence.startswith("metadata") and result.confidence >= 1.0:
                    explicit = self.preferences[result.kind]  # kind:, a set name or arxiv_id; not a URL or "crawl"
                meta["explicit_preference"] = explicit
                meta.update(density_signals(doc.text))
                if self.dsir is not None:
                    meta.update(self.dsir.score(doc.text))
                self.stat_update(f"kind_{result.kind}")
            yield doc


class ExactHashes(PipelineStep):
    """Writes ``(exact_text_hash, doc index)`` per document to ``{rank:05d}.exact`` and passes documents on."""

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


class VerifiedMinhashCluster(PipelineStep):
    """Replacement for datatrove's ``MinhashDedupCluster`` that verifies each LSH pair by exact Jaccard.

    Reads the ``.dups`` pairs of ``MinhashDedupBuckets`` and the exact-hash files, loads only the documents
    in a candidate pair or an exact-duplicate group from ``documents_folder`` (``{rank:05d}.jsonl.gz`` in the
    order of the signatures), and writes to ``output_folder``:

    - ``{rank:05d}.removals.json``: document index → reason, cluster id, kept copy, Jaccard;
    - ``clusters.jsonl``: one line per cluster: id, size, keeper, members (id, source, kind, Jaccard to the
      keeper, corruption rate, kept or removed and why);
    - ``pairs.jsonl``: every LSH candidate with its Jaccard and decision (``exact``, ``verified``, ``rejected``);
    - ``summary.json``: the accounting, in which ``lsh_candidate_pairs = lsh_pairs_exact +
      lsh_pairs_verified + lsh_pairs_rejected`` and ``documents_removed = documents_in_clusters − clusters``.

    Runs as one task.
    """

    type = "🫂 - DEDUP"
    name = "🎯 MinHash clusters, verified by exact Jaccard"

    def __init__(self, dups_folder: str, exact_folder: str, documents_folder: str, output_folder: str,
                 settings: MinHashSettings | None = None, source_order: Sequence[str] = ()):
        super().__init__()
        self.dups_folder, self.exact_folder = dups_folder, exact_folder
        self.documents_folder, self.output_folder = documents_folder, output_folder
        self.settings = settings or MinHashSettings()
        self.source_order = list(source_order)

    # --- reading ------------------------------------------------------------------------------------
    def _read_candidates(self) -> set[tuple[Node, Node]]:
        dups = get_datafolder(self.dups_folder)
        candidates: set[tuple[Node, Node]] = set()
        for name in dups.list_files(glob_pattern="*.dups"):
            with dups.open(name, "rb") as f:
                for f1, d1, f2, d2 in read_tuples_from_file(f, "4I", lines_to_buffer=1000):
                    a, b = (f1, d1), (f2, d2)
                    if a != b:
                        candidates.add((min(a, b), max(a, b)))
        return candidates

    def _read_exact_groups(self) -> tuple[dict[Node, int], list[list[Node]]]:
        exact = get_datafolder(self.exact_folder)
        hash_of: dict[Node, int] = {}
        groups: dict[int, list[Node]] = defaultdict(list)
        for name in exact.list_files(glob_pattern="*.exact"):
            file_rank = int(name.split("/")[-1].split(".")[0])
            with exact.open(name, "rb") as f:
                for text_hash, index in read_tuples_from_file(f, "QI", lines_to_buffer=1000):
                    hash_of[(file_rank, index)] = text_hash
                    groups[text_hash].append((file_rank, index))
        return hash_of, [sorted(members) for members in groups.values() if len(members) > 1]

    def _load_documents(self, needed: set[Node]) -> tuple[dict[Node, dict[str, Any]], dict[Node, str]]:
        docs = get_datafolder(self.documents_folder)
        by_rank: dict[int, set[int]] = defaultdict(set)
        for file_rank, index in needed:
            by_rank[file_rank].add(index)
        info: dict[Node, dict[str, Any]] = {}
        texts: dict[Node, str] = {}
        for file_rank, indices in by_rank.items():
            with docs.open(f"{file_rank:05d}.jsonl.gz", "rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
                for index, line in enumerate(f):
                    if index in indices:
                        row = json.loads(line)
                        meta = row.get("metadata", {})
                        info[(file_rank, index)] = {
                            "id": row.get("id"), "source": meta.get("source"), "kind": meta.get("kind"),
                            "explicit_preference": meta.get("explicit_preference"),
                            "file_path": meta.get("file_path"), "record": meta.get("record"),
                        }
                        texts[(file_rank, index)] = row.get("text", "")
        return info, texts

    # --- deciding -----------------------------------------------------------------------------------
    def _verify(self, candidates, hash_of, info, shingles_of) -> tuple[list[tuple[Node, Node]], dict[str, int]]:
        """Verified near-duplicate edges, and the candidate accounting; writes ``pairs.jsonl``."""
        counts = {"lsh_pairs_exact": 0, "lsh_pairs_verified": 0, "lsh_pairs_rejected": 0}
        edges = []
        with get_datafolder(self.output_folder).open("pairs.jsonl", "wt") as pairs_file:
            for a, b in sorted(candidates):
                if hash_of.get(a) is not None and hash_of.get(a) == hash_of.get(b):
                    decision, similarity = "exact", 1.0
                else:
                    similarity = jaccard(shingles_of(a), shingles_of(b))
                    decision = "verified" if similarity >= self.settings.threshold else "rejected"
                counts[f"lsh_pairs_{decision}"] += 1
                if decision == "verified":
                    edges.append((a, b))
                pairs_file.write(json.dumps({
                    "a": info.get(a, {}).get("id"), "b": info.get(b, {}).get("id"),
                    "a_source": info.get(a, {}).get("source"), "b_source": info.get(b, {}).get("source"),
                    "jaccard": round(similarity, 4), "decision": decision,
                }) + "\n")
        for name, value in counts.items():
            self.stat_update(name, value=value)
        return edges, counts

    def _clusters(self, exact_groups: list[list[Node]], edges: list[tuple[Node, Node]]) -> list[list[Node]]:
        nodes = sorted({n for group in exact_groups for n in group} | {n for edge in edges for n in edge})
        index = {node: i for i, node in enumerate(nodes)}
        pairs = [(index[g[0]], index[other]) for g in exact_groups for other in g[1:]]
        pairs += [(index[a], index[b]) for a, b in edges]
        components, _ = connected_components(len(nodes), pairs)
        return sorted([[nodes[i] for i in component] for component in components])

    def _decide(self, clusters, hash_of, info, texts, shingles_of):
        """Keeper of each cluster; removals per rank and one record per cluster."""
        background = background_counts(texts.values())
        removals: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
        records = []
        for number, members in enumerate(clusters):
            cluster_id = f"c{number:06d}"
            keeper, corruption = choose_keeper(members, texts, info, self.source_order, background)
            rows = []
            for node in members:
                similarity = 1.0 if node == keeper else jaccard(shingles_of(node), shingles_of(keeper))
                reason = None
                if node != keeper:
                    reason = "exact_duplicate" if hash_of.get(node) == hash_of.get(keeper) else "near_duplicate"
                    removals[node[0]][node[1]] = {
                        "reason": reason, "cluster_id": cluster_id, "duplicate_of": info.get(keeper, {}).get("id"),
                        "duplicate_of_source": info.get(keeper, {}).get("source"),
                        "jaccard": round(similarity, 4), "cluster_size": len(members),
                    }
                rows.append({"id": info.get(node, {}).get("id"), "source": info.get(node, {}).get("source"),
                             "kind": info.get(node, {}).get("kind"), "jaccard_to_keeper": round(similarity, 4),
                             "corruption": round(corruption[node], 4),
                             "explicit_preference": info.get(node, {}).get("explicit_preference"),
                             "kept": node == keeper, "reason": reason})
            records.append({"cluster_id": cluster_id, "size": len(members),
                            "keeper": {"id": info.get(keeper, {}).get("id"), "source": info.get(keeper, {}).get("source")},
                            "members": rows})
        return removals, records

    # --- writing ------------------------------------------------------------------------------------
    def _write(self, removals, records, ranks, counts, n_candidates, exact_groups) -> None:
        out = get_datafolder(self.output_folder)
        sizes: dict[int, dict[int, tuple[int, str]]] = defaultdict(dict)
        for record in records:
            for node in record.pop("_nodes"):
                sizes[node[0]][node[1]] = (record["size"], record["cluster_id"])
        for file_rank in set(ranks) | set(removals) | set(sizes):
            with out.open(f"{file_rank:05d}.removals.json", "wt") as f:
                json.dump({"removals": {str(k): v for k, v in removals[file_rank].items()},
                           "clusters": {str(k): list(v) for k, v in sizes[file_rank].items()}}, f)
        with out.open("clusters.jsonl", "wt") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        removed = [r for record in records for r in record["members"] if not r["kept"]]
        summary = {
            "lsh_candidate_pairs": n_candidates, **counts,
            "exact_duplicate_groups": len(exact_groups),
            "exact_duplicate_documents": sum(len(g) for g in exact_groups),
            "clusters": len(records),
            "documents_in_clusters": sum(r["size"] for r in records),
            "documents_removed": len(removed),
            "removed_exact_duplicates": sum(r["reason"] == "exact_duplicate" for r in removed),
            "removed_near_duplicates": sum(r["reason"] == "near_duplicate" for r in removed),
            "threshold": self.settings.threshold, "bands": self.settings.bands, "rows": self.settings.rows,
            "n_grams": self.settings.n_grams,
        }
        with out.open("summary.json", "wt") as f:
            json.dump(summary, f, indent=2)
        self.stat_update("documents_removed", value=len(removed))

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if world_size != 1:
            raise ValueError(f"the verified clustering stage runs as one task, got world_size={world_size}")
        candidates = self._read_candidates()
        hash_of, exact_groups = self._read_exact_groups()
        needed = {n for pair in candidates for n in pair} | {n for group in exact_groups for n in group}
        info, texts = self._load_documents(needed)
        shingler = _Shingler(self.settings)
        cache: dict[Node, frozenset[int]] = {}

        def shingles_of(node: Node) -> frozenset[int]:
            if node not in cache:
                cache[node] = shingler.shingle_set(texts.get(node, ""))
            return cache[node]

        edges, counts = self._verify(candidates, hash_of, info, shingles_of)
        clusters = self._clusters(exact_groups, edges)
        removals, records = self._decide(clusters, hash_of, info, texts, shingles_of)
        for record, members in zip(records, clusters):
            record["_nodes"] = members
        self._write(removals, records, {n[0] for n in needed}, counts, len(candidates), exact_groups)
        return
        yield  # pragma: no cover - makes this a generator like every datatrove step


class ApplyDedup(BaseFilter):
    """Drops the documents listed in ``{rank:05d}.removals.json``; every kept or dropped document in a
    cluster gets ``duplicate_cluster_id`` and ``duplicate_cluster_size``, dropped ones ``dedup_*`` fields."""

    name = "🫂 trainwise remove duplicates"

    def __init__(self, folder: str, exclusion_writer: Any = None):
        super().__init__(exclusion_writer)
        self.folder = get_datafolder(folder)

    def run(self, data, rank: int = 0, world_size: int = 1):
        path = f"{rank:05d}.removals.json"
        self._removals, self._clusters = {}, {}
        if self.folder.exists(path):
            with self.folder.open(path, "rt") as f:
                loaded = json.load(f)
            self._removals = {int(k): v for k, v in loaded["removals"].items()}
            self._clusters = {int(k): v for k, v in loaded["clusters"].items()}
        self._index = -1
        yield from super().run(data, rank, world_size)

    def filter(self, doc):
        self._index += 1
        size, cluster_id = self._clusters.get(self._index, (1, None))
        doc.metadata["duplicate_cluster_size"] = size
        if cluster_id is not None:
            doc.metadata["duplicate_cluster_id"] = cluster_id
        removal = self._removals.get(self._index)
        if removal is None:
            return True
        doc.metadata.update({f"dedup_{k}": v for k, v in removal.items() if k not in ("reason", "cluster_id")})
        doc.metadata["filter_reason"] = f"dedup:{removal['reason']}"
        return False, f"dedup:{removal['reason']}"


class RankFileReader(PipelineStep):
    """Reads ``{rank:05d}.jsonl.gz`` of the annotate stage exactly (a rank with no documents has no file)."""

    type = "📖 - READER"
    name = "📖 annotated documents of this rank"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        import orjson

        df = get_datafolder(self.folder)
        path = f"{rank:05d}.jsonl.gz"
        if not df.exists(path):
            return
        with df.open(path, "rb") as raw, gzip.open(raw, "rb") as f:
            for line in f:
                row = orjson.loads(line)
                self.stat_update("documents")
                yield Document(text=row["text"], id=row["id"], metadata=row.get("metadata", {}))
