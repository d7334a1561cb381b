"""Domain relevance by hashed n-gram importance weights (DSIR; Xie et al. 2023, arXiv:2302.03169).

Each text ``x`` is a bag of hashed features ``z(x) ∈ ℕ^m`` (lower-cased word unigrams and bigrams,
hashed into ``m`` buckets, the paper's default ``m = 10 000``). Two categorical models are fitted:
``p_target`` on a sample of the target domain and ``p_raw`` on the raw corpus, each as

    p(j) ∝ α + Σ_docs z_j(x) / Σ_j' z_j'(x)     (α = 0.01 per bucket),

i.e. every document contributes its *normalised* feature histogram. Xie et al. pool raw counts, which is
the same for documents of similar length; on a mixed corpus pooled counts let a few 60 KB papers define
``p_raw`` and the weights collapse (on ``../shared/data`` pooled counts rank arXiv above C4 with AUC 0.38,
normalised histograms with AUC 1.0; see ``tests/data/test_pretrain_light.py``). The importance weight of
``x`` is

    log w(x) = Σ_j z_j(x) · (log p_target(j) − log p_raw(j)),

stored per document as ``dsir_log_weight`` and, length-normalised, as ``dsir_score = log w(x) / Σ_j z_j(x)``
(mean log-ratio per feature, comparable across lengths). :func:`gumbel_top_k` resamples ``k`` documents
without replacement with probability ∝ ``w``: keep the top-k of ``log w_i + G_i``, ``G_i ~ Gumbel(0, 1)``.
"""

from __future__ import annotations

import math
import re
import zlib
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["HashedNgramModel", "DSIRScorer", "gumbel_top_k"]

_WORD = re.compile(r"\w+", re.UNICODE)
_BIGRAM_MULTIPLIER = 1_000_003


def _features(text: str, num_buckets: int) -> np.ndarray:
    """Bucket ids of the unigrams and bigrams of ``text`` (stable across processes: crc32, not ``hash``)."""
    words = _WORD.findall(text.lower())
    if not words:
        return np.zeros(0, dtype=np.int64)
    unigram = np.fromiter((zlib.crc32(w.encode("utf-8")) for w in words), dtype=np.int64, count=len(words))
    bigram = unigram[:-1] * _BIGRAM_MULTIPLIER + unigram[1:] + 1
    return np.concatenate([unigram, bigram]) % num_buckets


class HashedNgramModel:
    """Smoothed categorical distribution over ``num_buckets`` hashed n-gram features (per-document histograms)."""

    def __init__(self, num_buckets: int = 10_000, smoothing: float = 0.01):
        if not isinstance(num_buckets, int) or num_buckets < 2:
            raise ValueError(f"num_buckets must be an integer >= 2, got {num_buckets!r}")
        if not (smoothing > 0 and math.isfinite(smoothing)):
            raise ValueError(f"smoothing must be a finite number > 0, got {smoothing!r}")
        self.num_buckets = num_buckets
        self.smoothing = float(smoothing)
        self.counts = np.zeros(num_buckets, dtype=np.float64)
        self.n_documents = 0

    def update(self, texts: Iterable[str]) -> "HashedNgramModel":
        for text in texts:
            features = _features(text, self.num_buckets)
            if features.size:
                self.counts += np.bincount(features, minlength=self.num_buckets) / features.size
            self.n_documents += 1
        return self

    def log_probs(self) -> np.ndarray:
        smoothed = self.counts + self.smoothing
        return np.log(smoothed / smoothed.sum())

    def state_dict(self) -> dict[str, Any]:
        return {"num_buckets": self.num_buckets, "smoothing": self.smoothing, "counts": self.counts.tolist(),
                "n_documents": self.n_documents}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        counts = np.asarray(state["counts"], dtype=np.float64)
        if counts.shape != (int(state["num_buckets"]),):
            raise ValueError(f"counts has shape {counts.shape}, expected ({state['num_buckets']},)")
        self.num_buckets = int(state["num_buckets"])
        self.smoothing = float(state["smoothing"])
        self.counts = counts
        self.n_documents = int(state["n_documents"])


class DSIRScorer:
    """``log p_target(x) − log p_raw(x)`` under hashed n-gram bag models (see module docstring).

    >>> s = DSIRScorer.fit(["proof of the theorem", "lemma and proof"], ["buy cheap shoes", "proof of purchase"])
    >>> s.score("the lemma has a proof")["dsir_score"] > s.score("cheap shoes to buy")["dsir_score"]
    True
    """

    def __init__(self, target: HashedNgramModel, raw: HashedNgramModel):
        if target.num_buckets != raw.num_buckets:
            raise ValueError(f"target and raw models differ in num_buckets: {target.num_buckets} vs {raw.num_buckets}")
        self.target = target
        self.raw = raw
        self._log_ratio: np.ndarray | None = None

    @classmethod
    def fit(cls, target_texts: Iterable[str], raw_texts: Iterable[str], num_buckets: int = 10_000) -> "DSIRScorer":
        target = HashedNgramModel(num_buckets).update(target_texts)
        raw = HashedNgramModel(num_buckets).update(raw_texts)
        if target.n_documents == 0:
            raise ValueError("DSIR needs at least one target document; the target sample is empty")
        if raw.n_documents == 0:
            raise ValueError("DSIR needs at least one raw document; the raw sample is empty")
        return cls(target, raw)

    @property
    def log_ratio(self) -> np.ndarray:
        if self._log_ratio is None:
            self._log_ratio = self.target.log_probs() - self.raw.log_probs()
        return self._log_ratio

    def score(self, text: str) -> dict[str, float]:
        features = _features(text, self.target.num_buckets)
        if features.size == 0:
            return {"dsir_log_weight": 0.0, "dsir_score": 0.0}
        log_weight = float(self.log_ratio[features].sum())
        return {"dsir_log_weight": round(log_weight, 4), "dsir_score": round(log_weight / features.size, 6)}

    def state_dict(self) -> dict[str, Any]:
        return {"target": self.target.state_dict(), "raw": self.raw.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.target.load_state_dict(state["target"])
        self.raw.load_state_dict(state["raw"])
        self._log_ratio = None

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "DSIRScorer":
        scorer = cls(HashedNgramModel(int(state["target"]["num_buckets"])), HashedNgramModel(int(state["raw"]["num_buckets"])))
        scorer.load_state_dict(state)
        return scorer


def gumbel_top_k(log_weights: Sequence[float], k: int, seed: int = 0) -> list[int]:
    """Indices of ``k`` items sampled without replacement with probability ∝ ``exp(log_weights)``.

    Gumbel top-k trick (Kool et al. 2019): ``argtop_k(log w_i + G_i)`` with ``G_i ~ Gumbel(0, 1)``.
    """
    log_w = np.asarray(log_weights, dtype=np.float64)
    if not 0 <= k <= log_w.size:
        raise ValueError(f"k must be in [0, {log_w.size}], got {k!r}")
    if np.isnan(log_w).any():
        raise ValueError(f"log_weights contain NaN at positions {np.flatnonzero(np.isnan(log_w))[:5].tolist()}")
    keys = log_w + np.random.default_rng(seed).gumbel(size=log_w.size)
    return [int(i) for i in np.argsort(-keys, kind="stable")[:k]]


