"""Diversity and representativeness of an instruction set.

* distinct-n (Li et al. 2016): ``|unique n-grams| / |n-grams|`` over the whole set.
* Embedding dispersion: mean pairwise cosine distance of unit vectors ``x_i``. With ``μ`` their
  mean, ``Σ_{i≠j} x_i·x_j = N²‖μ‖² − N``, so ``mean_{i≠j}(1 − cos) = 1 − (N²‖μ‖² − N)/(N(N − 1))``
  in ``O(N D)``.
* Cluster coverage: k-means (k-means++ seeding) on the reference pool; a subset covers the
  clusters it has a member in; its cluster histogram's normalised entropy ``H/log k`` says how
  evenly it spreads.
* Verb–noun diversity (Self-Instruct, Wang et al. 2023): the root verb of an instruction and its
  direct-object noun. Without a parser we use a light heuristic: the first word from a list of
  common instruction verbs (or a leading *wh*-word, recorded as ``what?``/``how?``...) within the
  first six words, and the next word after it that is not a determiner, pronoun, preposition or
  common modifier.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

import numpy as np

from trainwise.data.sft._text import word_ngrams, words

__all__ = [
    "distinct_n",
    "embedding_dispersion",
    "kmeans",
    "cluster_coverage",
    "verb_noun",
    "verb_noun_pairs",
    "verb_noun_diversity",
    "diversity_summary",
]


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """``|unique word n-grams| / |word n-grams|`` pooled over ``texts`` (0 for no n-grams)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    total, unique = 0, set()
    for text in texts:
        tokens = words(text)
        if len(tokens) < n:
            continue
        grams = word_ngrams(tokens, n)
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


def embedding_dispersion(X: np.ndarray) -> float:
    """Mean pairwise cosine distance ``mean_{i≠j} (1 − x_i·x_j)`` of unit rows (closed form)."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    if n < 2:
        return 0.0
    mean = X.mean(axis=0)
    pair_sum = n * n * float(mean @ mean) - float(np.einsum("nd,nd->", X, X))
    return 1.0 - pair_sum / (n * (n - 1))


def kmeans(X: np.ndarray, k: int, seed: int = 0, iterations: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii 2007): ``(centres [k, D], labels [N])``."""
    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k!r}")
    rng = np.random.default_rng(seed)
    centres = np.empty((k, X.shape[1]), dtype=np.float32)
    centres[0] = X[rng.integers(n)]
    x_sq = np.einsum("nd,nd->n", X, X)
    min_sq = np.maximum(x_sq - 2 * X @ centres[0] + centres[0] @ centres[0], 0)
    for c in range(1, k):
        total = float(min_sq.sum())
        pick = rng.choice(n, p=min_sq / total) if total > 0 else rng.integers(n)
        centres[c] = X[pick]
        np.minimum(min_sq, np.maximum(x_sq - 2 * X @ centres[c] + centres[c] @ centres[c], 0), out=min_sq)
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iterations):
        sq = x_sq[:, None] - 2 * X @ centres.T + np.einsum("kd,kd->k", centres, centres)[None, :]
        new_labels = sq.argmin(axis=1)
        if _ > 0 and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        for c in range(k):
            members = X[labels == c]
            if len(members):
                centres[c] = members.mean(axis=0)
    return centres, labels


def cluster_coverage(labels: np.ndarray, selected: Sequence[int], k: int | None = None) -> dict[str, float]:
    """Fraction of the pool's clusters with a selected member, and the normalised entropy of the selection."""
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if k is None else k
    hist = np.bincount(labels[np.asarray(selected, dtype=np.int64)], minlength=k) if len(selected) else np.zeros(k)
    p = hist[hist > 0] / max(hist.sum(), 1)
    entropy = float(-(p * np.log(p)).sum()) / math.log(k) if k > 1 and len(p) else 0.0
    return {"clusters": k, "covered": int((hist > 0).sum()), "coverage": float((hist > 0).mean()), "entropy": entropy}


_VERBS = set(
    """add adjust analyze analyse answer apply arrange ask assess assign build calculate categorize categorise change check choose
    cite classify clean combine compare compile complete compose compute condense construct convert correct count create critique
    debug decide decode define delete derive describe design detect determine develop devise diagnose discuss distinguish divide
    draft draw edit elaborate encode enumerate estimate evaluate examine explain express extract fill find fix format formulate
    generate give group guess highlight identify illustrate imagine implement improve infer insert interpret invent judge justify
    label list locate make map match measure merge mention name note order organize organise outline paraphrase parse pick plan
    predict prepare present produce propose prove provide rank rate recommend reformat remove rename reorder rephrase replace
    report represent respond restate rewrite say schedule score select separate share shorten show simplify solve sort specify
    spell state suggest summarize summarise tell test transform translate turn use verify write""".split()
)
_WH = {"what", "how", "why", "who", "when", "where", "which", "whom", "whose"}
_SKIP = set(
    """a an the this that these those some any each every all my your our their his her its me us you him them it i we they
    following given above below short brief simple detailed new few several many more most other another one two three four five
    of to for in on at by with from about into as and or list following out up down very good best first
    is are was were be been do does did can could would should will""".split()
)
_LEAD = {"please", "can", "could", "would", "will", "you", "kindly", "now", "then", "also", "just", "i", "want", "need", "to", "help", "me", "let", "us", "lets"}


def verb_noun(instruction: str, window: int = 6) -> tuple[str, str] | None:
    """``(verb, noun)`` of an instruction by the heuristic above, or ``None`` when none is found."""
    tokens = [t for t in words(instruction)[:40] if not t.isdigit()]
    if not tokens:
        return None
    verb_at = None
    if tokens[0] in _WH:
        verb, verb_at = f"{tokens[0]}?", 0
    else:
        counted = 0  # politeness lead-ins ("please", "can you", "I want you to") do not use up the window
        for position, token in enumerate(tokens):
            if token in _VERBS:
                verb, verb_at = token, position
                break
            if token not in _LEAD:
                counted += 1
                if counted >= window:
                    break
    if verb_at is None:
        return None
    for token in tokens[verb_at + 1 : verb_at + 1 + window]:
        if token not in _SKIP and token not in _WH and token.isalpha() and len(token) > 1:
            return verb, token
    return verb, ""


def verb_noun_pairs(instructions: Sequence[str]) -> list[tuple[str, str] | None]:
    return [verb_noun(text) for text in instructions]


def verb_noun_diversity(instructions: Sequence[str], top: int = 10) -> dict[str, Any]:
    """Distinct verbs and (verb, noun) pairs, the normalised entropy of the pairs, and the most common ones."""
    pairs = [p for p in verb_noun_pairs(instructions) if p is not None]
    pair_counts = Counter(f"{v} {n}".strip() for v, n in pairs)
    verb_counts = Counter(v for v, _ in pairs)
    total = sum(pair_counts.values())
    entropy = -sum(c / total * math.log(c / total) for c in pair_counts.values()) if total else 0.0
    return {
        "parsed_fraction": len(pairs) / len(instructions) if instructions else 0.0,
        "distinct_verbs": len(verb_counts),
        "distinct_pairs": len(pair_counts),
        "pair_entropy": entropy / math.log(total) if total > 1 else 0.0,
        "top_verbs": verb_counts.most_common(top),
        "top_pairs": pair_counts.most_common(top),
    }


def diversity_summary(
    instructions: Sequence[str],
    X: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    subset: Sequence[int] | None = None,
) -> dict[str, Any]:
    """distinct-1/2/3, dispersion, cluster coverage (when ``labels`` of the pool are given) and verb–noun stats.

    ``subset`` restricts the statistics to those indices (``X``/``labels`` stay pool-sized).
    """
    index = np.arange(len(instructions)) if subset is None else np.asarray(subset, dtype=np.int64)
    texts = [instructions[i] for i in index]
    out: dict[str, Any] = {"examples": len(texts)}
    for n in (1, 2, 3):
        out[f"distinct_{n}"] = distinct_n(texts, n)
    if X is not None:
        out["dispersion"] = embedding_dispersion(np.asarray(X)[index])
    if labels is not None:
        out["cluster_coverage"] = cluster_coverage(labels, index)
    vn = verb_noun_diversity(texts, top=5)
    out["verb_noun"] = {k: vn[k] for k in ("parsed_fraction", "distinct_verbs", "distinct_pairs", "pair_entropy", "top_pairs")}
    return out
