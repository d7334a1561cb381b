"""``trainwise report``: one self-contained HTML page from measure, plan, sweep and branched results."""

from __future__ import annotations

import argparse

COMMAND = "report"
HELP = "write one self-contained HTML page (plots embedded) from measure/plan/sweep results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="PATH",
                        help="result files (measure.json, plan.json, sweep.json, branched.json) or directories holding them")
    parser.add_argument("-o", "--out", default="report.html", help="output file (default report.html)")
    parser.add_argument("--title", default="trainwise report")


def run(args: argparse.Namespace) -> int:
    from trainwise.report.html import write_report

    path = write_report(args.inputs, args.out, title=args.title)
    print(f"report written to {path.resolve()}")
    return 0
