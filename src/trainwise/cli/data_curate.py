"""``trainwise data curate CONFIG.yaml``: read, annotate, filter and deduplicate a corpus with datatrove."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainwise.cli._common import whole

COMMAND = ("data", "curate")
HELP = "curate a pre-training corpus (kind-aware filters, preference, density, DSIR, verified MinHash dedup)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="corpus YAML (inputs, filters, preferences, dsir, dedup, mixture)")
    parser.add_argument("--workers", type=whole("--workers", 1), default=None, help="parallel processes of datatrove's local executor")
    parser.add_argument("--executor", choices=("local", "ray"), default=None, help="local (default) or a Ray cluster")
    parser.add_argument("--out", default=None, help="output folder (overrides 'output' in the config)")
    parser.add_argument("--dedup-only", action="store_true",
                        help="remove duplicates only: no quality filters (same as filters: {enabled: false})")
    parser.add_argument("--overwrite", action="store_true", help="delete the output folder first instead of resuming")
    parser.add_argument("--verbose", action="store_true", help="show datatrove's per-task logs")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from trainwise._io import print_json
    from trainwise.data.pretrain.config import load_config
    from trainwise.data.pretrain.pipeline import EmptyRunError, quiet_datatrove_logs, run_curate
    from trainwise.data.pretrain.report import dedup_accounting

    config = load_config(args.config)
    if args.out:
        config.output = Path(args.out).resolve()
    if args.executor:
        config.executor = args.executor
    if args.dedup_only:
        config.filters_enabled = False
        config.raw = {**config.raw, "filters": {**(config.raw.get("filters") or {}), "enabled": False}}
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if not args.verbose:
        quiet_datatrove_logs()
    try:
        report = run_curate(config, workers=args.workers, overwrite=args.overwrite,
                            log=lambda m: print(m, file=sys.stderr))
    except EmptyRunError as exc:
        print(f"trainwise: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(report)
        return 0
    print(f"kept {report['documents_kept']} documents in {report['output']}; dropped {report['documents_dropped']}; "
          f"rejected {sum(report['documents_rejected'].values())} malformed records")
    print(f"\n{'kind':<14} {'kept':>6} {'dropped':>8} {'keep rate':>10}")
    for kind, row in report["keep_rate_by_kind"].items():
        print(f"{kind:<14} {row['kept']:>6} {row['dropped']:>8} {row['keep_rate']:>10}")
    if report["drop_reasons"]:
        print(f"\n{'drop reason':<48} {'documents':>9}")
        for reason, n in report["drop_reasons"].items():
            print(f"{reason:<48} {n:>9}")
    if report["dedup"]:
        print("\ndedup: " + dedup_accounting(report["dedup"]))
    print(f"\n{'source':<16} {'docs':>6} {'≈tokens':>10} {'quality':>8} {'preference':>10}")
    for name, row in report["sources"].items():
        print(f"{name:<16} {row['documents']:>6} {row['tokens']:>10} {row.get('mean_density_score', 0):>8.3f} "
              f"{row.get('mean_preference_score', 0):>10.3f}")
    out = Path(report["output"]).parent
    files = report["files"]
    print(f"\nkept:      {files['kept']}\ndropped:   {files['dropped_by_filters']} (filters, with rule and reason)"
          f"\n           {files['dropped_as_duplicates']} (duplicates, with cluster id and kept copy)"
          f"\nclusters:  {files['clusters']}\nrejected:  {files['rejected_input']} (malformed input records)")
    print(f"report:    {out / 'report.md'}" + (f", plot: {report['plot']}" if report.get("plot") else ""))
    return 0
