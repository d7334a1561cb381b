"""Report of a curate run: what was read, rejected, dropped (why, with examples), deduplicated and kept.

Writes ``<output>/report.json``, ``report.md`` and ``scores.png`` (score distributions of kept and dropped
documents by kind). ``report.json["sources"]`` (tokens, documents, mean quality and preference per source)
is what ``trainwise data mix`` plans from.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterator

__all__ = ["iter_documents", "write_report", "summarize_documents"]

_SCORES = ("preference_score", "density_score", "dsir_score", "compression_ratio")
_EXAMPLES_PER_REASON = 3


def iter_documents(folder: Path, skipped: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows (``text``, ``id``, ``metadata``) of a JSONL(.gz)/Parquet file or of every such file under a folder.

    A record that is not a document (bad JSON or UTF-8, not an object, no string ``text``, ``metadata`` not an
    object) raises ``ValueError`` naming ``file:line``; with a ``skipped`` list it is appended there as
    ``"file:line: why"`` instead and the reading goes on (never counted as an empty document).
    """
    folder = Path(folder)

    def bad(where: str, why: str) -> None:
        if skipped is None:
            raise ValueError(f"{where}: {why}")
        skipped.append(f"{where}: {why}")

    for path in [folder] if folder.is_file() else sorted(folder.rglob("*")):
        name = path.name
        if name.endswith((".jsonl", ".jsonl.gz")):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as f:
                line_number = 0
                while True:
                    line_number += 1
                    where = f"{path}:{line_number}"
                    try:
                        raw = f.readline()
                    except EOFError:
                        raise ValueError(f"{where}: the compressed file ends early (truncated .gz?)") from None
                    except (gzip.BadGzipFile, zlib.error) as exc:
                        raise ValueError(f"{where}: not a readable gzip file ({exc})") from None
                    if not raw:
                        break
                    try:
                        line = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
                    except UnicodeDecodeError as exc:
                        bad(where, f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
                        continue
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        bad(where, f"invalid JSON at column {exc.colno}: {exc.msg}")
                        continue
                    except RecursionError:
                        bad(where, "JSON nested too deeply")
                        continue
                    if not isinstance(row, dict):
                        bad(where, f"expected a JSON object, got {type(row).__name__}")
                        continue
                    if "metadata" not in row:  # expanded metadata
                        row = {"text": row.pop("text", None), "id": row.pop("id", None), "metadata": row}
                    if not isinstance(row.get("text"), str):
                        bad(where, "no 'text' field" if row.get("text") is None
                            else f"'text' is a {type(row['text']).__name__}, not a string")
                        continue
                    if not isinstance(row["metadata"], dict):
                        bad(where, f"'metadata' is a {type(row['metadata']).__name__}, not an object")
                        continue
                    problem = _metadata_problem(row["metadata"])
                    if problem:
                        bad(where, problem)
                        continue
                    yield row
        elif name.endswith(".parquet"):
            from trainwise._optional import require

            require("pyarrow", extra="data", purpose="reading Parquet")
            import pyarrow.parquet as pq

            try:
                table = pq.read_table(path)
            except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError: a damaged or non-Parquet file
                raise ValueError(f"{path}: not a readable Parquet file ({exc})") from None
            for number, row in enumerate(table.to_pylist(), start=1):
                where = f"{path}:row {number}"
                text, doc_id = row.pop("text", None), row.pop("id", None)
                if not isinstance(text, str):
                    bad(where, "no 'text' field" if text is None else f"'text' is a {type(text).__name__}, not a string")
                    continue
                if "metadata_json" in row:  # our Parquet output: attribute columns + the rest as JSON
                    try:
                        meta = json.loads(row.pop("metadata_json") or "{}")
                    except (json.JSONDecodeError, TypeError) as exc:
                        bad(where, f"'metadata_json' is not JSON ({exc})")
                        continue
                    if not isinstance(meta, dict):
                        bad(where, "'metadata_json' is not a JSON object")
                        continue
                    meta.update({k: v for k, v in row.items() if v is not None})
                else:  # any other Parquet file: a metadata struct or plain columns
                    meta = row.pop("metadata", None) or row
                    if not isinstance(meta, dict):
                        bad(where, f"'metadata' is a {type(meta).__name__}, not an object")
                        continue
                problem = _metadata_problem(meta)
                if problem:
                    bad(where, problem)
                    continue
                yield {"text": text, "id": doc_id, "metadata": meta}


def _metadata_problem(meta: dict[str, Any]) -> str | None:
    """Why the fields a summary groups and counts by (``source``, ``kind``, ``approx_tokens``) are unusable."""
    for key in ("source", "kind"):
        if key in meta and not isinstance(meta[key], str):
            return f"metadata {key!r} is {meta[key]!r}, not a string"
    tokens = meta.get("approx_tokens")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, (int, float))
                               or not math.isfinite(tokens) or tokens < 0):
        return f"metadata 'approx_tokens' is {tokens!r}, not a token count"
    return None


def summarize_documents(rows: Iterator[dict[str, Any]]) -> dict[str, Any]:
    """Documents, approximate tokens and mean scores per source and per kind."""
    per: dict[str, dict[str, dict[str, Any]]] = {"sources": {}, "kinds": {}}
    for row in rows:
        meta = row["metadata"]
        for group, key in (("sources", meta.get("source", "?")), ("kinds", meta.get("kind", "?"))):
            entry = per[group].setdefault(key, {"documents": 0, "tokens": 0, "_sums": Counter()})
            entry["documents"] += 1
            entry["tokens"] += int(meta.get("approx_tokens", len(row.get("text", "")) / 4))
            for score in _SCORES:
                if isinstance(meta.get(score), (int, float)):
                    entry["_sums"][score] += float(meta[score])
    for group in per.values():
        for entry in group.values():
            sums = entry.pop("_sums")
            for score in _SCORES:
                if score in sums:
                    entry[f"mean_{score}"] = round(sums[score] / entry["documents"], 4)
            entry["quality"] = entry.get("mean_density_score", 0.0)
    return per


def _snippet(text: str, n: int = 240) -> str:
    text = " ".join(text.split())
    return text[:n] + ("…" if len(text) > n else "")


def write_report(config: Any, work: Path) -> dict[str, Any]:
    output = Path(config.output)
    read = Counter()
    rejected = Counter()
    for p in sorted((work / "counts").glob("*.json")):
        c = json.loads(p.read_text())
        read[c["source"]] += c["read"]
        rejected[c["source"]] += c["rejected"]
    reject_examples = []
    for p in sorted((work / "rejects").glob("*.jsonl")):
        for line in p.open():
            if len(reject_examples) < 20:
                reject_examples.append(json.loads(line))

    drop_reasons: Counter = Counter()
    drop_by_kind: Counter = Counter()
    drop_by_source: dict[str, Counter] = defaultdict(Counter)
    examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    score_values: dict[str, dict[str, list[float]]] = {"kept": defaultdict(list), "dropped": defaultdict(list)}
    for stage in ("quality", "dedup"):
        folder = work / "dropped" / stage
        if not folder.exists():
            continue
        for row in iter_documents(folder):
            meta = row["metadata"]
            reason = meta.get("filter_reason", f"{stage}:unknown")
            drop_reasons[reason] += 1
            drop_by_kind[meta.get("kind", "?")] += 1
            drop_by_source[meta.get("source", "?")][reason] += 1
            if len(examples[reason]) < _EXAMPLES_PER_REASON:
                examples[reason].append({"id": row.get("id"), "source": meta.get("source"), "kind": meta.get("kind"),
                                         "file": meta.get("file_path"), "record": meta.get("record"),
                                         **({"duplicate_of": meta.get("dedup_duplicate_of"),
                                             "jaccard": meta.get("dedup_jaccard")} if stage == "dedup" else {}),
                                         "text": _snippet(row.get("text", ""))})
            for score in _SCORES:
                if isinstance(meta.get(score), (int, float)):
                    score_values["dropped"][score].append(float(meta[score]))

    source_kinds: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)

    def kept_rows():
        for row in iter_documents(output / "documents"):
            meta = row["metadata"]
            entry = source_kinds[meta.get("source", "?")].setdefault(meta.get("kind", "?"), {"documents": 0, "tokens": 0})
            entry["documents"] += 1
            entry["tokens"] += int(meta.get("approx_tokens", len(row.get("text", "")) / 4))
            for score in _SCORES:
                if isinstance(meta.get(score), (int, float)):
                    score_values["kept"][score].append(float(meta[score]))
            yield row

    kept = summarize_documents(kept_rows())
    keep_rate = {}
    for kind in sorted(set(kept["kinds"]) | set(drop_by_kind)):
        n_kept = kept["kinds"].get(kind, {}).get("documents", 0)
        total = n_kept + drop_by_kind.get(kind, 0)
        keep_rate[kind] = {"kept": n_kept, "dropped": drop_by_kind.get(kind, 0),
                           "keep_rate": round(n_kept / total, 4) if total else None}
    dedup_summary = {}
    if (work / "dedup" / "summary.json").exists():
        dedup_summary = json.loads((work / "dedup" / "summary.json").read_text())
    report = {
        "output": str(output / "documents"),
        "documents_read": dict(read), "documents_rejected": dict(rejected),
        "rejected_examples": reject_examples,
        "documents_kept": sum(v["documents"] for v in kept["sources"].values()),
        "documents_dropped": sum(drop_reasons.values()),
        "drop_reasons": dict(drop_reasons.most_common()),
        "drop_reasons_by_source": {k: dict(v.most_common()) for k, v in drop_by_source.items()},
        "drop_examples": dict(examples),
        "keep_rate_by_kind": keep_rate,
        "dedup": dedup_summary,
        "files": {
            "kept": str(output / "documents"),
            "dropped_by_filters": str(work / "dropped" / "quality"),
            "dropped_as_duplicates": str(work / "dropped" / "dedup"),
            "clusters": str(work / "dedup" / "clusters.jsonl"),
            "candidate_pairs": str(work / "dedup" / "pairs.jsonl"),
            "rejected_input": str(work / "rejects"),
        },
        "source_kinds": source_kinds,
        "sources": kept["sources"], "kinds": kept["kinds"],
        "preferences": dict(config.preferences),
    }
    plot = _plot_scores(score_values, output / "scores.png")
    if plot:
        report["plot"] = plot
    (output / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (output / "report.md").write_text(render_markdown(report))
    return report


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["# Curation report", "",
             f"Kept **{report['documents_kept']}** documents, dropped {report['documents_dropped']}, "
             f"rejected {sum(report['documents_rejected'].values())} malformed records. Output: `{report['output']}`.", "",
             "## Keep rate by kind", "", "| kind | kept | dropped | keep rate |", "|---|---:|---:|---:|"]
    for kind, row in report["keep_rate_by_kind"].items():
        lines.append(f"| {kind} | {row['kept']} | {row['dropped']} | {row['keep_rate']} |")
    lines += ["", "## Drops by reason", "", "| reason | documents |", "|---|---:|"]
    lines += [f"| {reason} | {n} |" for reason, n in report["drop_reasons"].items()]
    lines += ["", "## Examples of dropped documents", ""]
    for reason, rows in report["drop_examples"].items():
        lines.append(f"**{reason}**")
        for r in rows:
            extra = f" (duplicate of {r['duplicate_of']}, J={r['jaccard']})" if r.get("duplicate_of") else ""
            lines.append(f"- `{r['source']}` {r['kind']} `{r['id']}`{extra}: {r['text']}")
        lines.append("")
    if report["dedup"]:
        d = report["dedup"]
        lines += ["## Deduplication", "",
                  dedup_accounting(d), ""]
    lines += ["## Files", "", "| what | where |", "|---|---|"]
    lines += [f"| {what.replace('_', ' ')} | `{where}` |" for what, where in report.get("files", {}).items()]
    lines += ["", "## Kept by source", "", "| source | documents | ≈ tokens | quality | preference |", "|---|---:|---:|---:|---:|"]
    for name, row in report["sources"].items():
        lines.append(f"| {name} | {row['documents']} | {row['tokens']} | {row.get('mean_density_score', '')} | "
                     f"{row.get('mean_preference_score', '')} |")
    if report["rejected_examples"]:
        lines += ["", "## Rejected input (first 20)", ""]
        lines += [f"- `{r['file']}` {r['location']}: {r['error']}" for r in report["rejected_examples"]]
    return "\n".join(lines) + "\n"


def _n(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else (plural or noun + 's')}"


def dedup_accounting(d: dict[str, Any]) -> str:
    """One paragraph whose numbers add up: candidates = exact + verified + rejected; removed = members − clusters."""
    return (f"{_n(d['lsh_candidate_pairs'], 'LSH candidate pair')} = {d['lsh_pairs_exact']} exact + "
            f"{d['lsh_pairs_verified']} verified (Jaccard ≥ {d['threshold']}) + {d['lsh_pairs_rejected']} rejected "
            f"by the exact check; {_n(d['exact_duplicate_groups'], 'group')} of exact duplicates "
            f"({_n(d['exact_duplicate_documents'], 'document')}). {_n(d['clusters'], 'cluster')} hold "
            f"{_n(d['documents_in_clusters'], 'document')}: {d['clusters']} kept, {d['documents_removed']} removed "
            f"({d['removed_exact_duplicates']} exact, {d['removed_near_duplicates']} near duplicates).")


def _plot_scores(values: dict[str, dict[str, list[float]]], path: Path) -> str | None:
    try:
        from trainwise._optional import pyplot

        plt = pyplot()
    except ImportError:
        return None
    scores = [s for s in _SCORES if values["kept"].get(s) or values["dropped"].get(s)]
    if not scores:
        return None
    fig, axes = plt.subplots(1, len(scores), figsize=(4 * len(scores), 3.2))
    axes = axes if len(scores) > 1 else [axes]
    for ax, score in zip(axes, scores):
        for group, colour in (("kept", "tab:blue"), ("dropped", "tab:red")):
            data = values[group].get(score, [])
            if data:
                ax.hist(data, bins=30, alpha=0.55, color=colour, label=f"{group} ({len(data)})")
        ax.set_title(score)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
