"""The curate pipeline on datatrove's Ray executor keeps exactly what the local executor keeps (extra [ray])."""

from __future__ import annotations

import json
import shutil

import pytest

from trainwise.data.pretrain.config import load_config
from trainwise.data.pretrain.pipeline import run_curate
from trainwise.data.pretrain.report import iter_documents

ray = pytest.importorskip("ray", reason="pip install 'trainwise[ray]'")


def _corpus(root, shared_data):
    mix = shared_data / "web_samples" / "data_juicer_mixture"
    for name in ("redpajama-c4-refined.jsonl", "the-pile-nih-refined.jsonl", "demo-dataset-deduplication.jsonl"):
        shutil.copy(mix / name, root / name)  # copied into a temporary folder, never into the repository
    (root / "corpus.yaml").write_text(
        "output: out\ntasks: 3\nsources:\n"
        "  - {name: web, paths: [redpajama-c4-refined.jsonl, demo-dataset-deduplication.jsonl]}\n"
        "  - {name: nih, paths: [the-pile-nih-refined.jsonl]}\n")
    return root / "corpus.yaml"


def _kept_and_removed(config):
    kept = sorted(str(r["id"]) for r in iter_documents(config.output / "documents"))
    removed = sorted(str(r["id"]) for r in iter_documents(config.output / "_work" / "dropped"))
    return kept, removed


@pytest.mark.slow
def test_ray_executor_keeps_the_same_documents_as_the_local_one(tmp_path, shared_data):
    path = _corpus(tmp_path, shared_data)
    local = load_config(path)
    local.output = tmp_path / "local"
    run_curate(local)
    on_ray = load_config(path)
    on_ray.output = tmp_path / "ray"
    on_ray.executor = "ray"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        run_curate(on_ray, workers=2)
    finally:
        ray.shutdown()
    assert _kept_and_removed(on_ray) == _kept_and_removed(local)
    kept, removed = _kept_and_removed(local)
    assert kept and removed  # the corpus has near duplicates and junk to remove
    local_dedup = json.loads((local.output / "_work" / "dedup" / "summary.json").read_text())
    ray_dedup = json.loads((on_ray.output / "_work" / "dedup" / "summary.json").read_text())
    assert local_dedup == ray_dedup


def test_ray_executor_is_datatrove_s(tmp_path, shared_data):
    """Fast smoke test: executor: ray builds datatrove's RayPipelineExecutor for every stage (no cluster started)."""
    from datatrove.executor import RayPipelineExecutor

    from trainwise.data.pretrain.pipeline import _executor, build_stages

    config = load_config(_corpus(tmp_path, shared_data))
    config.executor = "ray"
    stages = build_stages(config, tmp_path / "work", None, tasks=2)
    for name, stage in stages.items():
        executor = _executor(config, stage["pipeline"], stage["tasks"], 2, tmp_path / "logs" / name)
        assert isinstance(executor, RayPipelineExecutor) and executor.world_size == stage["tasks"]
