"""``trainwise plan``: recommend a batch size and learning rate from a measurement or from model size and budget."""

from __future__ import annotations

import argparse
import json
import sys

COMMAND = "plan"
HELP = "recommend a batch size and learning rate, with the steps/data/time trade-off to a token budget"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", metavar="FILE",
                        help="noise.jsonl (monitor log) or measure.json (trainwise measure --json), or a directory holding one")
    parser.add_argument("--window", metavar="FIRST:LAST", help="steps of noise.jsonl to average (default: every measured step)")
    parser.add_argument("--params", metavar="N", help="model parameters (non-embedding), e.g. 350M")
    parser.add_argument("--tokens", metavar="D", help="token budget, e.g. 20B")
    parser.add_argument("--compute", metavar="C", help="compute budget in FLOPs, e.g. 1e21 (gives D = C/6N)")
    parser.add_argument("--devices", type=int, default=1, help="number of devices (default 1)")
    parser.add_argument("--throughput", metavar="RATE", help="per-device throughput, e.g. 14000tok/s or 120ex/s")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence (to convert examples to tokens)")
    parser.add_argument("--optimizer", help="adamw or sgd (default: the measured run's, else adamw)")
    parser.add_argument("--out", metavar="DIR", help="write plan.json and plan.png here")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainwise.plan import format_plan, make_plan, parse_quantity, parse_throughput, read_measurement

    reading = read_measurement(args.source, args.window) if args.source else None
    params = parse_quantity(args.params, "--params") if args.params else None
    tokens = parse_quantity(args.tokens, "--tokens") if args.tokens else None
    compute = parse_quantity(args.compute, "--compute") if args.compute else None
    throughput = parse_throughput(args.throughput) if args.throughput else None
    if reading is None and params is None and reading is None:
        raise ValueError("give --from FILE, or --params with --tokens or --compute")
    plan = make_plan(reading, params=params, tokens=tokens, compute=compute, devices=args.devices,
                     throughput=throughput, seq_len=args.seq_len, optimizer=args.optimizer)
    if args.out:
        from trainwise.report.plots import plot_plan_tradeoff

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        plan["files"] = {"plot": plot_plan_tradeoff(plan, out / "plan.png"), "plan_json": str(out / "plan.json")}
        (out / "plan.json").write_text(json.dumps(plan, indent=1, default=str))
    if args.json:
        json.dump(plan, sys.stdout, indent=1, default=str)
        print()
    else:
        print(format_plan(plan))
        if args.out:
            print(f"\nwrote {plan['files']['plan_json']} and {plan['files']['plot']}")
    return 0
