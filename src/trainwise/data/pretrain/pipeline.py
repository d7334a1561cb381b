"""The ``curate`` pipeline on datatrove executors: read → annotate → filter → dedup → write.

Stages (each a datatrove executor with its own completion markers under ``<output>/_work/logs``, so an
interrupted run resumes: finished tasks are skipped, unfinished ones rerun from scratch and overwrite their
own files, which neither duplicates nor loses documents):

A. ``tasks`` tasks: readers (with rejects) → :func:`make_annotate_step` (kind, preference, density, length,
   DSIR) → kind-aware quality filter (drops to ``_work/dropped/quality``) → exact hashes → annotated JSONL
   (``_work/annotated/<rank>.jsonl.gz``) → datatrove ``MinhashDedupSignature``;
B. ``bands`` tasks: datatrove ``MinhashDedupBuckets`` (LSH candidate pairs);
C. one task: :func:`~trainwise.data.pretrain.dedup.make_verified_cluster_step` (exact Jaccard check);
D. ``tasks`` tasks: annotated JSONL → remove duplicates (drops to ``_work/dropped/dedup``) → output
   JSONL or Parquet under ``<output>/documents``.

With ``dedup: {before_filters: true}`` the quality filter moves from A to D, after duplicate removal, so
dedup sees every document; with ``filters: {enabled: false}`` (CLI ``--dedup-only``) nothing is filtered.
The steps themselves are top-level classes in :mod:`trainwise.data.pretrain.steps`.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from trainwise._optional import require
from trainwise.data.pretrain.config import CorpusConfig
from trainwise.data.pretrain.dsir import DSIRScorer

__all__ = ["make_annotate_step", "fit_dsir", "build_stages", "run_curate", "EmptyRunError"]


class EmptyRunError(RuntimeError):
    """The run read zero documents."""


def make_annotate_step(preferences: dict[str, float], dsir: DSIRScorer | None = None,
                       source_preferences: dict[str, float] | None = None) -> Any:
    """:class:`~trainwise.data.pretrain.steps.Annotate`: ``kind``, ``kind_confidence``, ``kind_evidence``,
    ``preference_score``, ``explicit_preference``, the density/length signals of :func:`density_signals` and
    (with a fitted scorer) ``dsir_score``."""
    from trainwise.data.pretrain.steps import Annotate

    return Annotate(preferences, dsir, source_preferences)


def _iter_source_docs(config: CorpusConfig, work: Path, limit_per_source: int | None, paths=None, name=None):
    from trainwise.data.pretrain.readers import make_reader

    sources = config.sources if paths is None else [None]
    for source in sources:
        if source is None:
            from trainwise.data.pretrain.config import SourceConfig

            source = SourceConfig(name=name, paths=list(paths))
        n = 0
        for fmt, files in source.files_by_format().items():
            reader = make_reader(f"{source.name}-{fmt}-dsir", files, fmt, str(work / "dsir_reads"),
                                 source.text_key, source.id_key, source.kind, source.text_mode)
            for doc in reader.run(None, 0, 1):
                yield doc.text
                n += 1
                if limit_per_source is not None and n >= limit_per_source:
                    break
            if limit_per_source is not None and n >= limit_per_source:
                break


def fit_dsir(config: CorpusConfig, work: Path) -> DSIRScorer | None:
    """Fit DSIR's target model on ``dsir.target`` and its raw model on the first documents of every source."""
    if not config.dsir_target:
        return None
    per_source = max(1, config.dsir_raw_sample_docs // max(1, len(config.sources)))
    scorer = DSIRScorer.fit(
        _iter_source_docs(config, work, None, paths=config.dsir_target, name="dsir-target"),
        _iter_source_docs(config, work, per_source),
        num_buckets=config.dsir_num_buckets,
    )
    with (work / "dsir.json").open("w") as f:
        json.dump({"target_documents": scorer.target.n_documents, "raw_documents": scorer.raw.n_documents,
                   "num_buckets": config.dsir_num_buckets}, f)
    return scorer


def _rank_file_reader(folder: str) -> Any:
    from trainwise.data.pretrain.steps import RankFileReader

    return RankFileReader(folder)


def _task_count(config: CorpusConfig) -> int:
    if config.tasks:
        return int(config.tasks)
    n_files = sum(len(files) for s in config.sources for files in s.files_by_format().values())
    return max(1, min(n_files, max(config.workers, 1) * 4))


def build_stages(config: CorpusConfig, work: Path, dsir: DSIRScorer | None, tasks: int,
                 extra_steps: list[Any] | None = None) -> dict[str, dict[str, Any]]:
    """Pipelines and task counts of stages A–D (see module docstring)."""
    require("datatrove", extra="data", purpose="the curation pipeline")
    from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets
    from datatrove.pipeline.writers import JsonlWriter

    from trainwise.data.pretrain.dedup import (make_apply_dedup_step, make_exact_hash_step, make_signature_step,
                                               make_verified_cluster_step)
    from trainwise.data.pretrain.filters import make_kind_aware_filter
    from trainwise.data.pretrain.readers import make_reader

    readers = []
    for source in config.sources:
        for fmt, files in source.files_by_format().items():
            readers.append(make_reader(source.name, files, fmt, str(work), source.text_key, source.id_key,
                                       source.kind, source.text_mode))
    mh = config.dedup.datatrove_config()
    source_preferences = {s.name: s.preference for s in config.sources if s.preference is not None}
    quality = []
    if config.filters_enabled:
        quality = [make_kind_aware_filter(config.filters,
                                          exclusion_writer=JsonlWriter(str(work / "dropped" / "quality")))]
    filters_first = not (config.dedup_enabled and config.dedup_before_filters)
    stage_a = [
        *readers,
        make_annotate_step(config.preferences, dsir, source_preferences),
        *(extra_steps or []),
        *(quality if filters_first else []),
        make_exact_hash_step(str(work / "exact")),
        JsonlWriter(str(work / "annotated"), output_filename="${rank}.jsonl"),
    ]
    if config.dedup_enabled:
        stage_a.append(make_signature_step(str(work / "sigs"), config.dedup))
    out = str(config.output / "documents")
    writer = (_parquet_writer(out) if config.output_format == "parquet"
              else JsonlWriter(out, output_filename="${rank}.jsonl", compression=None))
    stage_d = [_rank_file_reader(str(work / "annotated"))]
    if config.dedup_enabled:
        stage_d.append(make_apply_dedup_step(str(work / "dedup"),
                                             exclusion_writer=JsonlWriter(str(work / "dropped" / "dedup"))))
    if not filters_first:
        stage_d.extend(quality)  # dedup saw every document; the filters judge the copies it kept
    stage_d.append(writer)
    stages = {"A_annotate_filter": {"pipeline": stage_a, "tasks": tasks}}
    if config.dedup_enabled:
        stages["B_lsh_buckets"] = {"pipeline": [MinhashDedupBuckets(str(work / "sigs"), str(work / "dups"), config=mh)],
                                   "tasks": config.dedup.bands}
        stages["C_verify_cluster"] = {"pipeline": [make_verified_cluster_step(
            str(work / "dups"), str(work / "exact"), str(work / "annotated"), str(work / "dedup"), config.dedup,
            [source.name for source in config.sources])],
            "tasks": 1}
    stages["D_write"] = {"pipeline": stage_d, "tasks": tasks}
    return stages


# attribute columns of the Parquet output (fixed schema: datatrove infers one from the first document, and
# attributes that only some documents carry would otherwise be dropped or break the file)
PARQUET_COLUMNS: dict[str, str] = {
    "source": "string", "origin_source": "string", "kind": "string", "kind_confidence": "float64",
    "kind_evidence": "string", "preference_score": "float64", "n_chars": "int64", "n_words": "int64",
    "approx_tokens": "int64", "compression_ratio": "float64", "distinct_3gram_ratio": "float64",
    "content_word_ratio": "float64", "number_ratio": "float64", "formula_ratio": "float64",
    "density_score": "float64", "dsir_log_weight": "float64", "dsir_score": "float64",
    "c4_line_drop_frac": "float64", "text_hash": "string", "duplicate_cluster_size": "int64",
    "duplicate_cluster_id": "string", "explicit_preference": "float64",
    "file_path": "string", "record": "string", "url": "string",
}


def _parquet_writer(folder: str) -> Any:
    """datatrove ParquetWriter with one column per attribute and the rest of the metadata as JSON."""
    pa = require("pyarrow", extra="data", purpose="Parquet output")
    from datatrove.pipeline.writers import ParquetWriter

    fields = [pa.field("text", pa.string()), pa.field("id", pa.string())]
    fields += [pa.field(name, getattr(pa, kind)()) for name, kind in PARQUET_COLUMNS.items()]
    fields.append(pa.field("metadata_json", pa.string()))

    def adapter(self, document) -> dict:
        meta = dict(document.metadata)
        row = {"text": document.text, "id": str(document.id)}
        for name in PARQUET_COLUMNS:
            value = meta.pop(name, None)
            row[name] = str(value) if (name == "record" and value is not None) else value
        row["metadata_json"] = json.dumps(meta, default=str)
        return row

    return ParquetWriter(folder, output_filename="${rank}.parquet", adapter=adapter, schema=pa.schema(fields))


def _executor(config: CorpusConfig, pipeline: list[Any], tasks: int, workers: int, logging_dir: Path) -> Any:
    if config.executor == "ray":
        require("ray", extra="ray", purpose="the Ray executor")
        from datatrove.executor import RayPipelineExecutor

        return RayPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=str(logging_dir))
    from datatrove.executor import LocalPipelineExecutor

    return LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(workers, tasks), logging_dir=str(logging_dir),
                                 skip_completed=True)


def quiet_datatrove_logs() -> None:
    """Send datatrove's per-task INFO logs only to its log files (warnings still reach stderr).

    Applies in this process (``workers == 1``); parallel workers start fresh interpreters and log as usual.
    """
    import sys

    import datatrove.executor.base as executor_base
    import datatrove.utils.logging as datatrove_logging
    from datatrove.utils.logging import logger

    original = getattr(executor_base.add_task_logger, "__wrapped__", executor_base.add_task_logger)

    def add_task_logger(logging_dir, rank, local_rank=0, node_rank=-1):
        import io

        real_stderr, sys.stderr = sys.stderr, io.StringIO()  # its INFO handler binds to this throwaway stream
        try:
            logfile = original(logging_dir, rank, local_rank, node_rank)
        finally:
            sys.stderr = real_stderr
        logger.remove()
        logger.add(sys.stderr, level="WARNING")
        logger.add(logfile, level="DEBUG")
        return logfile

    def setup_default_logger():
        logger.remove()
        logger.add(sys.stderr, level="WARNING")

    add_task_logger.__wrapped__ = original
    executor_base.add_task_logger = add_task_logger
    datatrove_logging.setup_default_logger = setup_default_logger
    setup_default_logger()


def _config_fingerprint(config: CorpusConfig) -> str:
    import hashlib

    relevant = {k: v for k, v in config.raw.items() if k not in ("workers", "executor", "mixture")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_curate(config: CorpusConfig, workers: int | None = None, overwrite: bool = False,
               extra_steps: list[Any] | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run stages A–D (resuming a previous run of the same config) and write the report.

    Returns the report dictionary (also ``<output>/report.json``). Raises :class:`EmptyRunError` when no
    document was read, and ``ValueError`` when ``<output>`` holds a run of a different config.
    """
    require("datatrove", extra="data", purpose="the curation pipeline")
    from trainwise.data.pretrain.report import write_report

    log = log or (lambda message: None)
    workers = workers or config.workers
    work = config.output / "_work"
    fingerprint = _config_fingerprint(config)
    marker = work / "config_fingerprint"
    if overwrite and config.output.exists():
        shutil.rmtree(config.output)
    if marker.exists() and marker.read_text() != fingerprint:
        raise ValueError(f"{config.output} holds a run of a different config; pass --overwrite to start over")
    work.mkdir(parents=True, exist_ok=True)
    marker.write_text(fingerprint)

    dsir_path = work / "dsir_state.json"
    if dsir_path.exists():
        dsir = DSIRScorer.from_state_dict(json.loads(dsir_path.read_text()))
    else:
        dsir = fit_dsir(config, work)
        if dsir is not None:
            dsir_path.write_text(json.dumps(dsir.state_dict()))
    tasks_file = work / "tasks"  # a resumed run must shard the input exactly as the interrupted one did
    tasks = int(tasks_file.read_text()) if tasks_file.exists() else _task_count(config)
    tasks_file.write_text(str(tasks))
    stages = build_stages(config, work, dsir, tasks, extra_steps)
    rerun_downstream = False
    for name, stage in stages.items():
        logging_dir = work / "logs" / name
        if rerun_downstream and logging_dir.exists():
            shutil.rmtree(logging_dir)  # an upstream stage changed: its completion markers are stale
        executor = _executor(config, stage["pipeline"], stage["tasks"], workers, logging_dir)
        incomplete = executor.get_incomplete_ranks() if hasattr(executor, "get_incomplete_ranks") else [0]
        if incomplete:
            rerun_downstream = True
            # an interrupted task can leave partial, unsorted MinHash signature files that datatrove would
            # then reuse ("skipping sig writing"); never trust them: the rerun writes them anew
            if name == "A_annotate_filter":  # the stage that writes the signatures
                for rank in incomplete:
                    for stale in (work / "sigs").glob(f"bucket_*/{rank:05d}.minhash.sig"):
                        stale.unlink()
            started = time.perf_counter()
            executor.run()
            log(f"stage {name}: ran {len(incomplete)}/{stage['tasks']} tasks in {time.perf_counter() - started:.1f} s")
            still = executor.get_incomplete_ranks() if hasattr(executor, "get_incomplete_ranks") else []
            if still:
                raise RuntimeError(f"stage {name}: tasks {sorted(still)[:10]} failed; see {logging_dir}/logs. "
                                   "Run the same command again to resume.")
        else:
            log(f"stage {name}: already complete, skipped")
        if name == "A_annotate_filter":
            n_read = sum(json.loads(p.read_text())["read"] for p in (work / "counts").glob("*.json"))
            if n_read == 0:
                rejects = sum(1 for p in (work / "rejects").glob("*.jsonl") for _ in p.open())
                raise EmptyRunError(f"the run read zero documents from {len(config.sources)} source(s) "
                                    f"({rejects} rejected records; see {work / 'rejects'})")
    return write_report(config, work)
