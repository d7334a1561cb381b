"""``trainwise data mix CONFIG.yaml --budget 300B``: per-source sampling weights with epoch caps."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COMMAND = ("data", "mix")
HELP = "plan per-source sampling weights and epochs for a token budget (Pile/LLaMA-style epoch caps)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="corpus YAML; reads <output>/report.json written by 'trainwise data curate'")
    parser.add_argument("--budget", default=None, help="token budget, e.g. 300B (default: mixture.budget in the config)")
    parser.add_argument("--max-epochs", type=float, default=None, help="default epoch cap per source (default 4)")
    parser.add_argument("--out", default=None, help="where to write the plan (default <output>/mixture.json)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args: argparse.Namespace) -> int:
    from trainwise.data.pretrain.config import load_config
    from trainwise.data.pretrain.mixture import MixtureSource, plan_mixture

    config = load_config(args.config)
    report_path = config.output / "report.json"
    if not report_path.is_file():
        raise FileNotFoundError(f"{report_path} not found; run 'trainwise data curate {args.config}' first")
    report = json.loads(report_path.read_text())
    budget = args.budget or config.mixture.get("budget")
    if budget is None:
        raise ValueError("no token budget: pass --budget (e.g. 300B) or set mixture.budget in the config")
    max_epochs = args.max_epochs if args.max_epochs is not None else float(config.mixture.get("max_epochs", 4.0))
    documents = str(config.output / "documents")
    sources = []
    for source in config.sources:
        kept = report["sources"].get(source.name)
        if not kept:
            continue  # nothing kept from this source
        preference = source.preference if source.preference is not None else kept.get("mean_preference_score", 1.0)
        sources.append(MixtureSource(name=source.name, tokens=kept["tokens"], preference=preference,
                                     quality=max(kept.get("quality", 1.0), 1e-6), max_epochs=source.max_epochs,
                                     path=documents))
    plan = plan_mixture(sources, budget, max_epochs=max_epochs)
    out = Path(args.out) if args.out else config.output / "mixture.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    loader = {"budget_tokens": plan.budget_tokens, "documents": documents, "source_field": "metadata.source",
              "weights": plan.weights(), **plan.to_dict()}
    out.write_text(json.dumps(loader, indent=2))
    if args.json:
        print(json.dumps(loader, indent=2))
    else:
        print(plan.table())
        print(f"\nplan: {out}  (weights for a loader: trainwise.data.MixtureSampler(plan['weights']))")
    return 0
