"""``trainwise plan``: recommend a batch size and learning rate from a measurement or from model size and budget."""

from __future__ import annotations

import argparse
import sys

from trainwise.cli._common import whole

COMMAND = "plan"
HELP = "recommend a batch size and learning rate, with the steps/data/time trade-off to a token budget"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", metavar="FILE",
                        help="noise.jsonl (monitor log), measure.json (trainwise measure) or sweep.json (trainwise sweep), "
                        "or a directory holding one")
    parser.add_argument("--window", metavar="FIRST:LAST", help="steps of noise.jsonl to average (default: every measured step)")
    parser.add_argument("--params", metavar="N", help="model parameters (non-embedding), e.g. 350M")
    parser.add_argument("--tokens", metavar="D", help="token budget, e.g. 20B (an examples-unit measurement also needs --seq-len)")
    parser.add_argument("--examples", metavar="E", help="data budget in examples (sequences), e.g. 2M; instead of --tokens")
    parser.add_argument("--compute", metavar="C", help="compute budget in FLOPs, e.g. 1e21 (gives D = C/6N)")
    parser.add_argument("--devices", type=whole("--devices", 1), default=1, help="number of devices (default 1)")
    parser.add_argument("--throughput", metavar="RATE", help="per-device throughput, e.g. 14000tok/s or 120ex/s")
    parser.add_argument("--seq-len", type=whole("--seq-len", 1), help="tokens per sequence (converts examples and tokens)")
    parser.add_argument("--optimizer", choices=["adamw", "adam", "sgd", "sgdm"],
                        help="the optimizer you will train with (default: the measured run's, else adamw)")
    parser.add_argument("--out", metavar="DIR", help="write plan.json and plan.png here")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainwise._io import print_json, write_json
    from trainwise.plan import format_plan, make_plan, parse_quantity, parse_throughput, read_measurement

    if not args.source and not args.params:
        raise ValueError("give --from FILE, or --params with --tokens or --compute")
    reading = read_measurement(args.source, args.window) if args.source else None
    params = parse_quantity(args.params, "--params") if args.params else None
    tokens = parse_quantity(args.tokens, "--tokens") if args.tokens else None
    examples = parse_quantity(args.examples, "--examples") if args.examples else None
    compute = parse_quantity(args.compute, "--compute") if args.compute else None
    throughput = parse_throughput(args.throughput) if args.throughput else None
    plan = make_plan(reading, params=params, tokens=tokens, examples=examples, compute=compute, devices=args.devices,
                     throughput=throughput, seq_len=args.seq_len, optimizer=args.optimizer)
    if args.out:
        out = Path(args.out)
        plan["files"] = {"plan_json": str(out / "plan.json")}
        write_json(out / "plan.json", plan)  # the plan first: a missing plot extra must not lose it
        try:
            from trainwise.report.plots import plot_plan_tradeoff

            plan["files"]["plot"] = str(plot_plan_tradeoff(plan, out / "plan.png"))
            write_json(out / "plan.json", plan)
        except ImportError as exc:
            print(f"trainwise: no plot ({exc})", file=sys.stderr)
    if args.json:
        print_json(plan)
    else:
        print(format_plan(plan))
        if args.out:
            print("\nwrote " + " and ".join(plan["files"].values()))
    return 0
