"""Pre-training data curation on datatrove: kind-aware quality filters, source preference, knowledge
density, DSIR domain relevance, verified MinHash dedup, and a mixture planner.

Light modules (kinds, keeper, density, dsir, mixture) import only numpy; everything that needs datatrove imports
it inside functions (extra ``[data]``). Names resolve lazily on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "KINDS", "KindResult", "classify_kind", "preference_weights", "preference_score", "PREFERENCE_PRESETS",
    "kind_features", "kind_probabilities", "fit_kind_model", "choose_keeper", "corruption_rate",
    "density_signals",
    "HashedNgramModel", "DSIRScorer", "gumbel_top_k",
    "MinHashSettings", "NearDuplicateIndex", "jaccard", "candidate_probability", "exact_text_hash",
    "FilterConfig", "make_kind_aware_filter",
    "MixtureSource", "MixturePlan", "MixtureSampler", "plan_mixture", "parse_token_count",
    "CorpusConfig", "SourceConfig", "load_config",
    "make_annotate_step", "run_curate", "EmptyRunError",
    "make_reader",
]

_WHERE = {
    "KINDS": "kinds", "KindResult": "kinds", "classify_kind": "kinds", "preference_weights": "kinds",
    "preference_score": "kinds", "PREFERENCE_PRESETS": "kinds", "kind_features": "kinds",
    "kind_probabilities": "kinds", "fit_kind_model": "kinds", "choose_keeper": "keeper", "corruption_rate": "keeper",
    "density_signals": "density",
    "HashedNgramModel": "dsir", "DSIRScorer": "dsir", "gumbel_top_k": "dsir",
    "MinHashSettings": "dedup", "NearDuplicateIndex": "dedup", "jaccard": "dedup",
    "candidate_probability": "dedup", "exact_text_hash": "dedup",
    "FilterConfig": "filters", "make_kind_aware_filter": "filters",
    "MixtureSource": "mixture", "MixturePlan": "mixture", "MixtureSampler": "mixture", "plan_mixture": "mixture",
    "parse_token_count": "mixture",
    "CorpusConfig": "config", "SourceConfig": "config", "load_config": "config",
    "make_annotate_step": "pipeline", "run_curate": "pipeline", "EmptyRunError": "pipeline",
    "make_reader": "readers",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
