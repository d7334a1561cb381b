"""``trainwise data mix CONFIG.yaml --budget 300B``: per-source sampling weights with epoch caps."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trainwise.cli._common import positive_float

COMMAND = ("data", "mix")
HELP = "plan per-source sampling weights and epochs for a token budget (Pile/LLaMA-style epoch caps)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="corpus YAML; reads <output>/report.json written by 'trainwise data curate'")
    parser.add_argument("--budget", default=None, help="token budget, e.g. 300B (default: mixture.budget in the config)")
    parser.add_argument("--max-epochs", type=positive_float("--max-epochs"), default=None, help="default epoch cap per source (default 4)")
    parser.add_argument("--out", default=None, help="where to write the plan (default <output>/mixture.json)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args: argparse.Namespace) -> int:
    from trainwise._io import print_json, write_json
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
    source_kinds = report.get("source_kinds", {})
    for source in config.sources:
        kept = report["sources"].get(source.name)
        if not kept:
            continue  # nothing kept from this source
        quality = max(kept.get("quality", 1.0), 1e-6)
        kinds = source_kinds.get(source.name, {})
        if source.kind is None and source.preference is None and len(kinds) > 1:
            # a mixed source: each kind it holds is planned on its own, with its kind's preference
            for kind, row in sorted(kinds.items()):
                sources.append(MixtureSource(name=f"{source.name}/{kind}", tokens=row["tokens"],
                                             preference=config.preferences.get(kind, 1.0), quality=quality,
                                             max_epochs=source.max_epochs, path=documents))
            continue
        preference = source.preference if source.preference is not None else kept.get("mean_preference_score", 1.0)
        sources.append(MixtureSource(name=source.name, tokens=kept["tokens"], preference=preference,
                                     quality=quality, max_epochs=source.max_epochs, path=documents))
    if not sources:
        raise ValueError(f"{report_path} lists no kept documents for the sources of {args.config}")
    plan = plan_mixture(sources, budget, max_epochs=max_epochs)
    out = Path(args.out) if args.out else config.output / "mixture.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    loader = {"budget_tokens": plan.budget_tokens, "documents": documents, "source_field": "metadata.source",
              "kind_field": "metadata.kind (names 'source/kind' are one kind inside a mixed source)",
              "weights": plan.weights(), **plan.to_dict()}
    write_json(out, loader)  # strict JSON: a weight that is not a number is null, never NaN
    if args.json:
        print_json(loader)
    elif len(sources) == 1:
        only = plan.sources[0]
        print(f"one source ({only['name']}, {only['available_tokens']:.3g} tokens of one kind): nothing to mix; it gets "
              f"weight 1.0 and {plan.budget_tokens / max(only['available_tokens'], 1):.3g} epochs for the budget "
              f"of {plan.budget_tokens:.3g} tokens" + ("" if plan.feasible else
                                                       f", more than its epoch cap of {only['max_epochs']:g}"))
    else:
        print(plan.table())
        print(f"\nplan: {out}  (weights for a loader: trainwise.data.MixtureSampler(plan['weights']))")
    return 0
