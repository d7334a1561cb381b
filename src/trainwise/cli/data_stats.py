"""``trainwise data stats PATH...``: documents, tokens, kinds and scores of a corpus (curated or raw)."""

from __future__ import annotations

import argparse
import sys

from trainwise.cli._common import print_json, whole

COMMAND = ("data", "stats")
HELP = "documents, approximate tokens, kinds and mean scores per source and kind of JSONL/Parquet files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="files or folders of JSONL(.gz) or Parquet documents")
    parser.add_argument("--limit", type=whole("--limit", 1), default=None, help="read at most this many documents")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainwise.data.pretrain.density import density_signals
    from trainwise.data.pretrain.kinds import classify_kind, preference_score, preference_weights
    from trainwise.data.pretrain.report import iter_documents, summarize_documents

    weights = preference_weights()
    skipped: list[str] = []  # "file:line: why" of every record that is not a document (never a 0-token one)

    def rows():
        n = 0
        for path in args.paths:
            p = Path(path)
            if not p.exists():
                raise FileNotFoundError(f"{path!r} does not exist")
            for row in iter_documents(p, skipped=skipped):
                meta = row["metadata"]
                if "kind" not in meta:  # raw input: annotate on the fly
                    result = classify_kind(row["text"], meta)
                    meta.update(kind=result.kind, preference_score=preference_score(result, weights))
                if "density_score" not in meta:
                    meta.update(density_signals(row["text"]))
                meta.setdefault("source", p.name.split(".")[0])
                yield row
                n += 1
                if args.limit is not None and n >= args.limit:
                    return

    summary = summarize_documents(rows())
    summary["skipped"] = skipped
    for line in skipped[:20]:
        print(f"trainwise: warning: skipped {line}", file=sys.stderr)
    if len(skipped) > 20:
        print(f"trainwise: warning: skipped {len(skipped) - 20} more records (all listed under 'skipped' in --json)",
              file=sys.stderr)
    if not summary["sources"]:
        raise ValueError(f"no documents found in {', '.join(args.paths)}"
                         + (f" ({len(skipped)} records skipped: {skipped[0]}{' ...' if len(skipped) > 1 else ''})"
                            if skipped else ""))
    if args.json:
        print_json(summary)
        return 0
    for group in ("sources", "kinds"):
        print(f"{group[:-1]:<16} {'docs':>7} {'≈tokens':>11} {'density':>8} {'preference':>10} {'dsir':>8}")
        for name, row in sorted(summary[group].items(), key=lambda kv: -kv[1]["tokens"]):
            dsir = row.get("mean_dsir_score")
            print(f"{name:<16} {row['documents']:>7} {row['tokens']:>11} {row.get('mean_density_score', 0):>8.3f} "
                  f"{row.get('mean_preference_score', 0):>10.3f} {'' if dsir is None else f'{dsir:>8.4f}'}")
        print()
    if skipped:
        print(f"skipped {len(skipped)} records that are not documents (listed on stderr), not counted above")
    return 0
