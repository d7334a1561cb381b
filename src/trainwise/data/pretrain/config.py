"""``corpus.yaml``: inputs, filters, preferences, DSIR target, dedup and mixture settings in one file.

```yaml
output: runs/corpus            # relative paths are relative to this file
output_format: jsonl           # or parquet
workers: 1                     # datatrove local executor processes (--workers overrides)
sources:
  - name: web
    paths: [data/crawl/]       # files or folders; JSONL(.gz), Parquet, WARC or plain text
    format: jsonl              # optional: detected from the file names
    kind: null                 # optional: force a kind for the whole source
    max_epochs: 1.0            # optional: mixture epoch cap for this source
preferences: {preset: trainwise, weights: {book: 2.5}}
filters: {gopher_quality: {min_doc_words: 50}}      # see FilterConfig; {enabled: false}: no filters
dsir: {target: [my_domain_sample.jsonl], num_buckets: 10000, raw_sample_docs: 2000}
dedup: {enabled: true, before_filters: false, threshold: 0.8, n_grams: 5, bands: 14, rows: 8}
mixture: {budget: 300B, max_epochs: 4.0}
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from trainwise._optional import require
from trainwise.data.pretrain.dedup import MinHashSettings
from trainwise.data.pretrain.filters import FilterConfig
from trainwise.data.pretrain.kinds import KINDS, preference_weights
from trainwise.data.pretrain.readers import FORMATS, detect_format, expand_paths

__all__ = ["SourceConfig", "CorpusConfig", "load_config"]

_TOP_KEYS = {"output", "output_format", "workers", "tasks", "executor", "sources", "preferences", "filters",
             "dsir", "dedup", "mixture", "language"}


@dataclass
class SourceConfig:
    name: str
    paths: list[Path]
    format: str | None = None
    kind: str | None = None
    text_key: str = "text"
    id_key: str = "id"
    text_mode: str = "file"
    max_epochs: float | None = None
    preference: float | None = None

    def files_by_format(self) -> dict[str, list[Path]]:
        files = expand_paths(self.paths, self.format)
        if not files:
            raise ValueError(f"source {self.name!r}: no input files under {[str(p) for p in self.paths]}")
        grouped: dict[str, list[Path]] = {}
        for f in files:
            grouped.setdefault(self.format or detect_format(f), []).append(f)
        return grouped


@dataclass
class CorpusConfig:
    output: Path
    sources: list[SourceConfig]
    output_format: str = "jsonl"
    workers: int = 1
    tasks: int | None = None
    executor: str = "local"
    preferences: dict[str, float] = field(default_factory=preference_weights)
    filters: FilterConfig = field(default_factory=FilterConfig)
    dsir_target: list[Path] = field(default_factory=list)
    dsir_num_buckets: int = 10_000
    dsir_raw_sample_docs: int = 2_000
    dedup_enabled: bool = True
    dedup_before_filters: bool = False
    filters_enabled: bool = True
    dedup: MinHashSettings = field(default_factory=MinHashSettings)
    mixture: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def _paths(value: Any, base: Path, what: str) -> list[Path]:
    items = value if isinstance(value, list) else [value]
    if not items or any(not isinstance(v, str) for v in items):
        raise ValueError(f"{what} must be a path or a list of paths, got {value!r}")
    return [(base / v).resolve() if not Path(v).expanduser().is_absolute() else Path(v).expanduser() for v in items]


def _section(data: Mapping[str, Any], key: str, allowed: set[str] | None = None) -> Mapping[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise ValueError(f"'{key}' must be a mapping, got {value!r}")
    if allowed is not None and set(value) - allowed:
        raise ValueError(f"unknown {key} option(s) {sorted(set(value) - allowed)}; expected some of {sorted(allowed)}")
    return value


def _whole(value: Any, key: str, low: int = 1) -> int:
    """A whole number ``>= low`` (``1.5``, ``"x"``, ``null`` or ``true`` refused, naming the key)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{key} must be a whole number >= {low}, got {value!r}")
    return value


def _number_or_none(value: Any, key: str, positive: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
            or (positive and value == 0):
        raise ValueError(f"{key} must be a finite number {'> 0' if positive else '>= 0'} or null, got {value!r}")
    return value


#: datatrove filter classes whose keyword arguments the ``filters`` sections pass on
_FILTER_CLASSES = {"gopher_quality": "GopherQualityFilter", "gopher_quality_relaxed": "GopherQualityFilter",
                   "gopher_repetition": "GopherRepetitionFilter", "gopher_repetition_relaxed": "GopherRepetitionFilter",
                   "c4": "C4QualityFilter", "fineweb": "FineWebQualityFilter"}


def _check_filters(filters: Mapping[str, Any]) -> None:
    """Each rule's section is a mapping of that datatrove filter's keyword arguments with non-negative numbers
    (``min_doc_words: -5`` and a misspelt key refused here, not deep in the pipeline)."""
    import inspect

    defaults = FilterConfig()
    for section, value in filters.items():
        if section in _FILTER_CLASSES:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ValueError(f"filters.{section} must be a mapping of options, got {value!r}")
            known = set(getattr(defaults, section))
            if not known or set(value) - known:
                require("datatrove", extra="data", purpose="quality filters")
                import datatrove.pipeline.filters as datatrove_filters

                cls = getattr(datatrove_filters, _FILTER_CLASSES[section])
                known |= set(inspect.signature(cls.__init__).parameters) - {"self", "exclusion_writer", "language"}
            unknown = sorted(set(map(str, value)) - known)
            if unknown:
                raise ValueError(f"unknown filters.{section} option(s) {unknown}; expected some of {sorted(known)}")
            for key, number in value.items():
                if isinstance(number, (list, tuple)):
                    continue  # n-gram tables such as top_n_grams: datatrove checks their shape
                if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float))
                                           or not math.isfinite(number) or number < 0):
                    raise ValueError(f"filters.{section}.{key} must be a number >= 0 (or null), got {number!r}")
        elif section == "min_words":
            _whole(value, "filters.min_words", 0)
        elif section == "kind_rules":
            if not isinstance(value, Mapping) or not all(isinstance(v, (list, tuple)) for v in value.values()):
                raise ValueError(f"filters.kind_rules must map kinds to lists of rules, got {value!r}")
        elif section == "language" and not isinstance(value, str):
            raise ValueError(f"filters.language must be a language code, got {value!r}")


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


def config_from_dict(data: Mapping[str, Any], base: Path) -> CorpusConfig:
    """Validate a parsed YAML mapping; relative paths resolve against ``base``."""
    if not isinstance(data, Mapping):
        raise ValueError(f"the config must be a mapping, got {type(data).__name__}")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; expected some of {sorted(_TOP_KEYS)}")
    if "sources" not in data or not data["sources"]:
        raise ValueError("the config needs a non-empty 'sources' list")
    if not isinstance(data["sources"], list):
        raise ValueError(f"'sources' must be a list of sources, got {data['sources']!r}")
    sources = []
    seen = set()
    for i, item in enumerate(data["sources"]):
        if not isinstance(item, Mapping) or "name" not in item or "paths" not in item:
            raise ValueError(f"sources[{i}] needs 'name' and 'paths', got {item!r}")
        extra = set(item) - set(SourceConfig.__dataclass_fields__)
        if extra:
            raise ValueError(f"sources[{i}] ({item['name']!r}) has unknown keys {sorted(extra)}; "
                             f"expected some of {sorted(SourceConfig.__dataclass_fields__)}")
        name = str(item["name"])
        if name in seen or not name.replace("-", "_").isidentifier():
            raise ValueError(f"source name {name!r} must be unique and made of letters, digits, '-' or '_'")
        seen.add(name)
        fmt = item.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise ValueError(f"source {name!r}: unknown format {fmt!r}; expected one of {FORMATS}")
        preference = item.get("preference")
        if preference is not None and (isinstance(preference, bool) or not isinstance(preference, (int, float))
                                       or not preference >= 0):
            raise ValueError(f"sources[{i}] ({name!r}): preference must be a number >= 0, got {preference!r}")
        kind = item.get("kind")
        if kind is not None and kind not in KINDS:
            raise ValueError(f"source {name!r}: unknown kind {kind!r}; expected one of {KINDS}")
        for key in ("text_key", "id_key"):
            if key in item and not isinstance(item[key], str):
                raise ValueError(f"sources[{i}] ({name!r}): {key} must be a field name, got {item[key]!r}")
        if item.get("text_mode", "file") not in ("file", "paragraph"):
            raise ValueError(f"sources[{i}] ({name!r}): text_mode must be 'file' or 'paragraph', got {item['text_mode']!r}")
        _number_or_none(item.get("max_epochs"), f"sources[{i}] ({name!r}): max_epochs", positive=True)
        sources.append(SourceConfig(
            name=name, paths=_paths(item["paths"], base, f"sources[{i}].paths"), format=fmt, kind=kind,
            text_key=item.get("text_key", "text"), id_key=item.get("id_key", "id"),
            text_mode=item.get("text_mode", "file"), max_epochs=item.get("max_epochs"),
            preference=item.get("preference"),
        ))
    output_format = data.get("output_format", "jsonl")
    if output_format not in ("jsonl", "parquet"):
        raise ValueError(f"output_format must be 'jsonl' or 'parquet', got {output_format!r}")
    executor = data.get("executor", "local")
    if executor not in ("local", "ray"):
        raise ValueError(f"executor must be 'local' or 'ray', got {executor!r}")
    prefs = _section(data, "preferences", {"preset", "weights"})
    weights = preference_weights(prefs.get("preset", "trainwise"), prefs.get("weights"))
    dsir = _section(data, "dsir", {"target", "num_buckets", "raw_sample_docs"})
    dedup = dict(_section(data, "dedup"))
    enabled = _flag(dedup.pop("enabled", True), "dedup.enabled")
    before_filters = _flag(dedup.pop("before_filters", False), "dedup.before_filters")
    allowed = set(MinHashSettings.__dataclass_fields__)
    if set(dedup) - allowed:
        raise ValueError(f"unknown dedup option(s) {sorted(set(dedup) - allowed)}; "
                         f"expected some of {sorted(allowed | {'enabled', 'before_filters'})}")
    filters = dict(_section(data, "filters"))
    filters_enabled = _flag(filters.pop("enabled", True), "filters.enabled")
    if "language" in data:
        filters.setdefault("language", data["language"])
    _check_filters(filters)
    workers = _whole(data.get("workers", 1), "workers")
    if data.get("tasks") is not None:
        _whole(data["tasks"], "tasks")
    for key in ("n_grams", "bands", "rows"):
        if key in dedup:
            _whole(dedup[key], f"dedup.{key}")
    if "seed" in dedup:
        _whole(dedup["seed"], "dedup.seed", 0)
    if "threshold" in dedup and _number_or_none(dedup["threshold"], "dedup.threshold", positive=True) is None:
        raise ValueError("dedup.threshold must be a number in (0, 1], got None")
    for key in ("language", "tokenizer"):
        if key in dedup and not isinstance(dedup[key], str):
            raise ValueError(f"dedup.{key} must be a string, got {dedup[key]!r}")
    minhash = MinHashSettings(**dedup)
    return CorpusConfig(
        output=_paths(data.get("output", "curated"), base, "output")[0],
        sources=sources, output_format=output_format, workers=workers,
        tasks=data.get("tasks"), executor=executor, preferences=weights,
        filters=FilterConfig.from_dict(filters),
        dsir_target=_paths(dsir["target"], base, "dsir.target") if dsir.get("target") else [],
        dsir_num_buckets=_whole(dsir.get("num_buckets", 10_000), "dsir.num_buckets"),
        dsir_raw_sample_docs=_whole(dsir.get("raw_sample_docs", 2_000), "dsir.raw_sample_docs"),
        dedup_enabled=enabled, dedup_before_filters=before_filters, filters_enabled=filters_enabled,
        dedup=minhash,
        mixture=dict(_section(data, "mixture", {"budget", "max_epochs"})), raw=dict(data),
    )


def load_config(path: str | Path) -> CorpusConfig:
    """Read and validate ``corpus.yaml`` (extra ``[yaml]`` or ``[data]``)."""
    yaml = require("yaml", extra="data", purpose="reading corpus.yaml")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    with path.open(encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return config_from_dict(data or {}, path.resolve().parent)
    except ValueError as exc:  # one line that names the file
        raise ValueError(f"{path}: {exc}") from None
