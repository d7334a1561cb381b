"""``trainwise data curate/mix/stats`` end to end on small real samples, rejects, resume, WARC (extra [data])."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

pytest.importorskip("datatrove", reason="datatrove is not installed (pip install 'trainwise[data]')")
pytest.importorskip("spacy", reason="datatrove's English word tokenizer needs spaCy (pip install 'trainwise[data]')")
pytest.importorskip("yaml", reason="needs pyyaml")

from trainwise.cli.main import main  # noqa: E402
from trainwise.data.pretrain.config import load_config  # noqa: E402
from trainwise.data.pretrain.pipeline import quiet_datatrove_logs, run_curate  # noqa: E402
from trainwise.data.pretrain.report import iter_documents  # noqa: E402

def _book_chunk(shared: Path, start: int, length: int = 6000) -> str:
    text = (shared / "gutenberg_pride_and_prejudice" / "1342-0.txt").read_text(encoding="utf-8")
    begin = text.index("It is a truth universally acknowledged") + start
    return text[begin:begin + length]


def _write_inputs(root: Path, shared: Path) -> Path:
    broken = root / "broken"
    broken.mkdir()
    good = {"text": _book_chunk(shared, 20_000), "id": "good-1"}
    (broken / "a.jsonl").write_text(json.dumps(good) + "\n{not json\n" + json.dumps({"body": "no text key"}) + "\n")
    (broken / "b.jsonl.gz").write_bytes(gzip.compress(b'{"text": "truncated') [:-6])  # a cut gzip stream
    texts = root / "texts"
    texts.mkdir()
    chapter = _book_chunk(shared, 0)
    (texts / "chapter.txt").write_text(chapter)
    (texts / "chapter-copy.txt").write_text(chapter.replace("\n", "  \n"))  # exact duplicate up to whitespace
    (texts / "chapter-edit.txt").write_text(chapter + "\nA new edition, with a few words of preface.\n")
    config = root / "corpus.yaml"
    config.write_text(f"""
output: {root / 'out'}
workers: 1
sources:
  - name: crawl
    paths: [{shared / 'web_samples/dolma/provided_documents_000.json.gz'}]
    max_epochs: 1.0
  - name: stackexchange
    paths: [{shared / 'web_samples/data_juicer_mixture/redpajama-pile-stackexchange-refined.jsonl'}]
  - name: broken
    paths: [{broken}]
  - name: texts
    paths: [{texts}]
    kind: book
dsir:
  target: [{shared / 'web_samples/data_juicer_mixture/redpajama-pile-stackexchange-refined.jsonl'}]
mixture: {{budget: 40k}}
""")
    return config


SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"  # as tests/conftest.py


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    shared_data = SHARED_DATA
    root = tmp_path_factory.mktemp("curate")
    config = _write_inputs(root, shared_data)
    code = main(["data", "curate", str(config), "--workers", "1"])
    assert code == 0
    return root, config


def test_curate_keeps_attributes_provenance_and_unchanged_text(curated, shared_data):
    root, _ = curated
    rows = list(iter_documents(root / "out" / "documents"))
    assert rows
    for row in rows:
        meta = row["metadata"]
        for key in ("source", "file_path", "record", "kind", "kind_confidence", "preference_score", "density_score",
                    "compression_ratio", "distinct_3gram_ratio", "approx_tokens", "dsir_score", "text_hash"):
            assert key in meta, (key, row["id"])
    se_path = shared_data / "web_samples/data_juicer_mixture/redpajama-pile-stackexchange-refined.jsonl"
    originals = [json.loads(line)["text"] for line in se_path.open()]
    kept_se = [r for r in rows if r["metadata"]["source"] == "stackexchange"]
    assert len(kept_se) == 10
    for r in kept_se:
        assert r["text"] == originals[r["metadata"]["record"] - 1]  # record = JSONL line number (1-based)
    crawl = [r for r in rows if r["metadata"]["source"] == "crawl"]
    assert all(r["metadata"].get("origin_source") == "common-crawl" for r in crawl)


def test_report_counts_rejects_drops_dedup_and_keep_rates(curated):
    root, _ = curated
    report = json.loads((root / "out" / "report.json").read_text())
    assert report["documents_rejected"]["broken"] == 3
    errors = " ".join(r["error"] + r["location"] for r in report["rejected_examples"])
    assert "malformed JSON" in errors and "line 2" in errors and "'text'" in errors and "file" in errors
    assert report["keep_rate_by_kind"]["forum"]["keep_rate"] == 1.0
    assert report["documents_read"]["crawl"] == 10
    assert any(reason.startswith("gopher_quality:") for reason in report["drop_reasons"])
    assert report["drop_reasons"].get("dedup:exact_duplicate", 0) + report["drop_reasons"].get("dedup:near_duplicate", 0) == 2
    assert report["dedup"]["documents_removed"] == 2
    for reason, examples in report["drop_examples"].items():
        assert examples and all(e["text"] for e in examples)
    assert (root / "out" / "report.md").read_text().startswith("# Curation report")
    assert (root / "out" / "scores.png").stat().st_size > 1000


def test_mix_and_stats_commands(curated, capsys):
    root, config = curated
    capsys.readouterr()
    assert main(["data", "mix", str(config), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert abs(sum(plan["weights"].values()) - 1.0) < 1e-9
    assert abs(plan["total_tokens"] - 40_000) < 1e-6 and plan["feasible"]
    rows = {r["name"]: r for r in plan["sources"]}
    assert rows["crawl"]["epochs"] <= 1.0 + 1e-12
    assert rows["stackexchange"]["epochs"] > rows["crawl"]["epochs"]  # forum preference 2.0 vs web 1.0
    assert main(["data", "stats", str(root / "out" / "documents"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["sources"]["stackexchange"]["documents"] == 10


def test_interrupted_run_resumes_without_duplicates_or_losses(curated, tmp_path, shared_data):
    import datatrove.pipeline.base as base

    clean_root, _ = curated
    config_path = _write_inputs(tmp_path, shared_data)
    config = load_config(config_path)
    quiet_datatrove_logs()

    class CrashOnce(base.PipelineStep):
        name = "crash once"

        def __init__(self, flag: Path):
            super().__init__()
            self.flag = flag

        def run(self, data, rank=0, world_size=1):
            for i, doc in enumerate(data):
                if rank == 0 and i == 12 and not self.flag.exists():
                    self.flag.write_text("crashed")
                    raise RuntimeError("simulated crash")
                yield doc

    flag = tmp_path / "crashed.flag"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_curate(config, extra_steps=[CrashOnce(flag)])
    assert flag.exists()
    report = run_curate(config, extra_steps=[CrashOnce(flag)])  # resumes: rank 0 is skipped, the rest run
    ids = [r["id"] for r in iter_documents(tmp_path / "out" / "documents")]
    clean_ids = [r["id"] for r in iter_documents(clean_root / "out" / "documents")]
    assert len(ids) == len(set(ids)) == report["documents_kept"]
    assert sorted(ids) == sorted(clean_ids)


def test_a_run_that_reads_nothing_is_an_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"output: {tmp_path / 'out'}\nsources:\n  - name: bad\n    paths: [{bad}]\n")
    assert main(["data", "curate", str(config)]) == 1
    assert "zero documents" in capsys.readouterr().err


def test_config_errors_name_the_bad_value(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"output: {tmp_path}\nsources:\n  - name: a\n    paths: [{tmp_path / 'missing'}]\n")
    assert main(["data", "curate", str(config)]) == 2
    config.write_text("sources:\n  - {name: a, paths: [x], kind: novel}\n")
    with pytest.raises(ValueError, match="'novel'"):
        load_config(config)


def test_warc_reader_extracts_text(shared_data, tmp_path):
    from trainwise.data.pretrain.readers import make_reader

    reader = make_reader("warc", [shared_data / "web_samples/dolma/sample-0000.warc.gz"], "warc", str(tmp_path))
    docs = list(reader.run(None, 0, 1))
    assert len(docs) >= 15
    assert sum(len(d.text) > 200 for d in docs) >= 10
    assert all(d.metadata["source"] == "warc" and d.metadata.get("url") for d in docs)


def test_parquet_output_keeps_heterogeneous_attributes(tmp_path):
    from datatrove.data import Document

    from trainwise.data.pretrain.pipeline import _parquet_writer

    docs = [Document(text="first", id="a", metadata={"source": "s", "kind": "web", "c4_line_drop_frac": 0.25,
                                                      "record": 3, "lang": "en"}),
            Document(text="second", id="b", metadata={"source": "s", "kind": "paper", "origin_source": "arxiv",
                                                       "dsir_score": -0.5, "custom": {"x": 1}})]
    list(_parquet_writer(str(tmp_path / "out")).run(iter(docs), 0, 1))
    rows = {r["id"]: r for r in iter_documents(tmp_path / "out")}
    assert rows["a"]["text"] == "first" and rows["a"]["metadata"]["c4_line_drop_frac"] == 0.25
    assert rows["a"]["metadata"]["lang"] == "en" and rows["a"]["metadata"]["record"] == "3"
    assert rows["b"]["metadata"]["origin_source"] == "arxiv" and rows["b"]["metadata"]["custom"] == {"x": 1}
    assert "c4_line_drop_frac" not in rows["b"]["metadata"]


def test_parquet_and_text_readers_reject_what_they_cannot_use(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trainwise.data.pretrain.readers import make_reader

    pq.write_table(pa.table({"text": ["a parquet document", None], "id": ["p1", "p2"]}), tmp_path / "in.parquet")
    (tmp_path / "latin.txt").write_bytes("caf\xe9 au lait".encode("cp1252"))
    (tmp_path / "garbage.parquet").write_bytes(b"not parquet at all")
    reader = make_reader("pq", [tmp_path / "in.parquet", tmp_path / "garbage.parquet"], "parquet", str(tmp_path / "w"))
    docs = list(reader.run(None, 0, 1))
    assert [d.text for d in docs] == ["a parquet document"]
    rejects = [json.loads(x) for x in (tmp_path / "w" / "rejects" / "pq_00000.jsonl").read_text().splitlines()]
    assert len(rejects) == 2
    assert any("garbage.parquet" in r["file"] and r["location"] == "file" for r in rejects)
    text = list(make_reader("t", [tmp_path / "latin.txt"], "text", str(tmp_path / "w")).run(None, 0, 1))
    assert text[0].text == "café au lait" and text[0].metadata["encoding"] == "cp1252"
