"""The whole curation run as one function, and its report (JSON-ready dict, Markdown, terminal table).

:func:`curate` = load → clean (drops counted per reason) → score (heuristics) → embed → diversity
before → select ``k`` → diversity after → per-task mixture (T5 rates, expected epochs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np

from trainwise.data.sft.clean import CleanConfig, CleanResult, clean
from trainwise.data.sft.diversity import diversity_summary, kmeans
from trainwise.data.sft.embed import embed_texts
from trainwise.data.sft.loaders import LoadReport, SFTExample
from trainwise.data.sft.mixing import mixing_rates, mixture_table
from trainwise.data.sft.scores import heuristic_scores
from trainwise.data.sft.select import (coverage_distance, deita_select, facility_location_greedy, k_center_greedy, kmeans_medoids,
                                        random_select)

__all__ = ["CurationResult", "curate", "render_markdown", "allocate", "SELECTORS"]

AUTO_FACILITY_MAX = 15_000

SELECTORS = ("auto", "facility", "kmedoids", "kcenter", "deita", "random")


@dataclass
class CurationResult:
    cleaned: list[SFTExample]
    selected: list[SFTExample]
    clean_result: CleanResult
    report: dict[str, Any] = field(default_factory=dict)
    #: per cleaned example: source, task, heuristic scores, cluster, selected
    scores: list[dict[str, Any]] = field(default_factory=list)


def _per_task(examples: Sequence[SFTExample]) -> dict[str, int]:
    out: dict[str, int] = {}
    for example in examples:
        out[example.task] = out.get(example.task, 0) + 1
    return out


def curate(
    examples: Sequence[SFTExample],
    *,
    load_report: LoadReport | None = None,
    eval_texts: Sequence[str] | None = None,
    eval_sources: Sequence[str] | None = None,
    config: CleanConfig | None = None,
    k: int | None = None,
    selector: Literal["auto", "facility", "kmedoids", "kcenter", "deita", "random"] = "auto",
    deita_threshold: float = 0.9,
    embed_backend: Literal["auto", "minilm", "tfidf"] = "auto",
    clusters: int | None = None,
    mix_mode: Literal["proportional", "temperature", "equal"] = "temperature",
    mix_cap: float | None = None,
    mix_temperature: float = 2.0,
    seed: int = 0,
    examples_per_reason: int = 3,
    verbose: bool = False,
    ifd_scorer: Callable[[list[str], list[str]], np.ndarray] | None = None,
    max_ifd: float | None = None,
    per_task: bool = True,
) -> CurationResult:
    """Run the curation steps and build the report (see the module docstring).

    ``verbose`` prints each stage and its duration to stderr (the CLI's progress).
    ``ifd_scorer(prompts, responses) -> IFD [N]`` (e.g. :func:`~trainwise.data.sft.scores.ifd_scores`
    bound to a model) scores the cleaned examples; with ``max_ifd`` those above it are dropped
    (reason ``ifd_above_max``; Cherry LLM treats IFD > 1 as a misaligned pair).
    ``per_task`` (default): split ``k`` over the tasks by the mixing rates (:func:`allocate`; default
    temperature ``T = 2``, so a 10-example task next to a 500-example one keeps all 10) and select
    within each task. The mix is applied **once**: when it shaped the selection, the selected
    set is meant to be read once per epoch (proportional, 1 epoch per task in the report); without
    a per-task selection it is applied as sampling rates (the table's epochs are those rates').
    Facility location weighs each candidate by its heuristic quality.
    """
    import sys
    import time

    started = time.perf_counter()

    def stage(message: str) -> None:
        if verbose:
            print(f"[{time.perf_counter() - started:7.1f}s] {message}", file=sys.stderr, flush=True)

    stage(f"cleaning {len(examples)} examples" + (f" against {len(eval_texts)} evaluation items" if eval_texts else ""))
    if selector not in SELECTORS:
        raise ValueError(f"unknown selector {selector!r}; choose one of {', '.join(SELECTORS)}")
    cleaned_result = clean(examples, config, eval_texts=eval_texts)
    ifd = None
    if ifd_scorer is not None and cleaned_result.kept:
        stage(f"IFD of {len(cleaned_result.kept)} examples")
        ifd = np.asarray(ifd_scorer([e.prompt for e in cleaned_result.kept], [e.response for e in cleaned_result.kept]), dtype=float)
        if ifd.shape != (len(cleaned_result.kept),):
            raise ValueError(f"ifd_scorer returned shape {ifd.shape} for {len(cleaned_result.kept)} examples")
        if max_ifd is not None:
            from trainwise.data.sft.clean import Dropped

            keep = [i for i in range(len(ifd)) if not (ifd[i] > max_ifd)]
            for i in sorted(set(range(len(ifd))) - set(keep)):
                cleaned_result.dropped.append(Dropped(cleaned_result.kept[i], "ifd_above_max", f"IFD {ifd[i]:.3f} > {max_ifd}",
                                                      cleaned_result.kept_indices[i]))
            cleaned_result.dropped.sort(key=lambda d: d.index)
            cleaned_result.kept = [cleaned_result.kept[i] for i in keep]
            cleaned_result.kept_indices = [cleaned_result.kept_indices[i] for i in keep]
            ifd = ifd[keep]
    cleaned = cleaned_result.kept
    report: dict[str, Any] = {
        "input": {"examples": len(examples), "per_task": _per_task(examples)},
        "load": load_report.as_dict() if load_report is not None else None,
        "dropped": {"counts": cleaned_result.counts(), "examples": cleaned_result.examples_by_reason(examples_per_reason)},
        "cleaned": {"examples": len(cleaned), "per_task": _per_task(cleaned)},
    }
    if cleaned_result.decontamination is not None:
        dec = cleaned_result.decontamination
        report["decontamination"] = {
            "ngram": dec.ngram, "min_overlap": dec.min_overlap, "eval_items": len(eval_texts or []),
            "contaminated_examples": len(dec.contaminated), "exact_matches": len(dec.exact),
            "collisions": [dict(c.as_dict(), source=examples[c.train_index].source,
                                eval_source=eval_sources[c.eval_index] if eval_sources is not None else None)
                           for c in dec.collisions[:200]],
        }
    if not cleaned:
        report["selection"] = None
        return CurationResult(cleaned, [], cleaned_result, report)

    instructions = [e.instruction for e in cleaned]
    heuristics = [heuristic_scores(e.instruction, e.response) for e in cleaned]
    quality = np.array([h.quality for h in heuristics])
    complexity = np.array([h.complexity for h in heuristics])
    stage(f"embedding {len(cleaned)} prompts ({embed_backend})")
    X, backend = embed_texts(instructions, backend=embed_backend)
    stage(f"clustering and diversity ({backend})")
    n_clusters = clusters or max(2, min(50, int(round(np.sqrt(len(cleaned) / 2)))))
    n_clusters = min(n_clusters, len(cleaned))
    _, labels = kmeans(X, n_clusters, seed=seed)
    report["scores"] = {"quality_mean": float(quality.mean()), "complexity_mean": float(complexity.mean()),
                        "refusals": int(sum(h.refusal for h in heuristics))}
    if ifd is not None:
        finite = ifd[np.isfinite(ifd)]
        report["scores"]["ifd"] = {"mean": float(finite.mean()) if finite.size else None,
                                   "median": float(np.median(finite)) if finite.size else None,
                                   "above_1": int((finite > 1).sum()), "not_scored": int((~np.isfinite(ifd)).sum())}
    report["diversity_before"] = diversity_summary(instructions, X, labels)
    report["embedding"] = {"backend": backend, "dim": int(X.shape[1]), "clusters": n_clusters}

    if k is None or k >= len(cleaned):
        chosen = list(range(len(cleaned)))
        method = "all"
    else:
        # facility location is O(N² D) to start: beyond AUTO_FACILITY_MAX examples use its k-means proxy
        method = selector if selector != "auto" else ("facility" if len(cleaned) <= AUTO_FACILITY_MAX else "kmedoids")
        stage(f"selecting {k} of {len(cleaned)} ({method}{', per task by the mix rates' if per_task else ''})")

        def pick(rows: np.ndarray, count: int) -> list[int]:
            sub = X[rows]
            if count >= len(rows):
                return rows.tolist()
            if method == "facility":
                local = facility_location_greedy(sub, count, weights=quality[rows])
            elif method == "kmedoids":
                local = kmeans_medoids(sub, count, seed=seed)
            elif method == "kcenter":
                local = k_center_greedy(sub, count)
            elif method == "deita":
                local = deita_select(sub, (complexity * quality)[rows], count, threshold=deita_threshold)
            else:
                local = random_select(len(rows), count, seed=seed)
            return rows[np.asarray(local, dtype=np.int64)].tolist()

        if per_task:
            task_names = sorted(_per_task(cleaned))
            task_rows = {name: np.flatnonzero([e.task == name for e in cleaned]) for name in task_names}
            quota = allocate(k, [len(task_rows[n]) for n in task_names],
                             mixing_rates([len(task_rows[n]) for n in task_names], mode=mix_mode, cap=mix_cap, temperature=mix_temperature))
            chosen = [i for name, count in zip(task_names, quota) if count for i in pick(task_rows[name], int(count))]
        else:
            chosen = pick(np.arange(len(cleaned)), k)
    chosen = sorted(chosen)
    selected = [cleaned[i] for i in chosen]
    random_cov = [coverage_distance(X, random_select(len(cleaned), len(chosen), s)) for s in range(5)] if method != "all" else None
    report["selection"] = {
        "method": method, "k": len(chosen), "requested_k": k, "per_task": bool(per_task),
        "coverage_distance": coverage_distance(X, chosen),
        "random_coverage_distance": ({"mean": float(np.mean([r["mean"] for r in random_cov])),
                                      "max": float(np.mean([r["max"] for r in random_cov])), "seeds": 5}
                                     if random_cov else None),
        "quality_mean": float(quality[chosen].mean()), "complexity_mean": float(complexity[chosen].mean()),
    }
    stage("coverage and diversity of the selection")
    report["diversity_after"] = diversity_summary(instructions, X, labels, subset=chosen)
    if method != "all":
        # the same statistics for a random subset of the same size: distinct-n and coverage depend on size
        report["diversity_random"] = diversity_summary(instructions, X, labels, subset=sorted(random_select(len(cleaned), len(chosen), seed)))
    sizes = _per_task(selected)
    names = sorted(sizes)
    mixed_in_selection = bool(per_task and method != "all")
    used_mode = "proportional" if mixed_in_selection else mix_mode
    used_cap = None if mixed_in_selection else mix_cap
    rates = mixing_rates([sizes[n] for n in names], mode=used_mode, cap=used_cap, temperature=mix_temperature)
    total = int(sum(min(sizes[n], used_cap) if used_cap else sizes[n] for n in names))
    table = mixture_table(names, [sizes[n] for n in names], rates.tolist(), total)
    for row in table:
        row["input"] = report["input"]["per_task"].get(row["task"], 0)
        row["cleaned"] = report["cleaned"]["per_task"].get(row["task"], 0)
    report["mixture"] = {"mode": used_mode, "cap": used_cap, "temperature": mix_temperature if used_mode == "temperature" else None,
                         "applied_in": "selection" if mixed_in_selection else "sampling",
                         "selection_rule": ({"mode": mix_mode, "cap": mix_cap,
                                             "temperature": mix_temperature if mix_mode == "temperature" else None}
                                            if mixed_in_selection else None),
                         "draws_per_epoch": total, "tasks": table}
    chosen_set = set(chosen)
    scores = [dict(source=e.source, task=e.task, cluster=int(labels[i]), selected=i in chosen_set,
                   ifd=None if ifd is None or not np.isfinite(ifd[i]) else float(ifd[i]),
                   **{key: value for key, value in heuristics[i].as_dict().items()})
              for i, e in enumerate(cleaned)]
    stage("done")
    return CurationResult(cleaned, selected, cleaned_result, report, scores)


def allocate(k: int, sizes: Sequence[int], rates: Sequence[float]) -> list[int]:
    """Split ``k`` into per-task quotas ``≈ k·r_m``, none above its task size (largest remainders).

    When a task is too small for its share, the excess goes to the other tasks in proportion to
    their rates. Sums to ``min(k, Σ sizes)``.
    """
    sizes_arr = np.asarray(sizes, dtype=np.int64)
    rates_arr = np.asarray(rates, dtype=float)
    total = int(min(k, sizes_arr.sum()))
    quota = np.zeros(len(sizes_arr), dtype=np.int64)
    open_tasks = sizes_arr > 0
    while quota.sum() < total:
        remaining = total - int(quota.sum())
        weights = np.where(open_tasks, rates_arr, 0.0)
        if weights.sum() <= 0:
            weights = open_tasks.astype(float)
        share = remaining * weights / weights.sum()
        extra = np.floor(share).astype(np.int64)
        leftover = remaining - int(extra.sum())
        order = np.argsort(-(share - extra), kind="stable")
        extra[order[:leftover]] += 1
        quota = np.minimum(quota + extra, sizes_arr)
        open_tasks = quota < sizes_arr
    return quota.tolist()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |" for row in rows]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """A readable Markdown report (also printed as the CLI's table)."""
    out = ["# SFT data report", ""]
    out.append(f"Input: {report['input']['examples']} examples; after cleaning: {report['cleaned']['examples']}"
               + (f"; selected: {report['selection']['k']} ({report['selection']['method']})" if report.get("selection") else ""))
    load = report.get("load")
    if load and load["skipped"]:
        out += ["", f"## Skipped lines ({len(load['skipped'])})", ""]
        out += _table(["file", "line", "problem"], [(b["path"], b["line"], b["problem"][:100]) for b in load["skipped"][:20]])
    if load and load.get("notes"):
        out += ["", f"## Read with a note ({len(load['notes'])})", ""]
        out += _table(["file", "line", "note"], [(b["path"], b["line"], b["problem"][:100]) for b in load["notes"][:20]])
    out += ["", "## Dropped, per reason", ""]
    counts = report["dropped"]["counts"]
    if counts:
        out += _table(["reason", "count", "example (source: prompt → detail)"],
                      [(reason, count, "; ".join(f"{e['source'].rsplit('/', 1)[-1]}: {e['prompt'][:60]!r} → {e['detail'][:80]}"
                                                 for e in report["dropped"]["examples"].get(reason, [])[:2]))
                       for reason, count in sorted(counts.items(), key=lambda kv: -kv[1])])
    else:
        out.append("nothing dropped")
    dec = report.get("decontamination")
    if dec:
        out += ["", f"## Decontamination ({dec['ngram']}-grams, overlap ≥ {dec['min_overlap']})", "",
                f"{dec['contaminated_examples']} training examples collide with {dec['eval_items']} evaluation items "
                f"({dec['exact_matches']} exact matches)."]
        if dec["collisions"]:
            out += [""] + _table(["train example", "eval item", "overlap", "exact"],
                                 [(c["source"].rsplit("/", 1)[-1], (c.get("eval_source") or str(c["eval_index"])).rsplit("/", 1)[-1],
                                   c["overlap"], c["exact"]) for c in dec["collisions"][:10]])
    scores = report.get("scores")
    if scores:
        line = (f"Heuristic quality (mean) {scores['quality_mean']:.3f}, complexity {scores['complexity_mean']:.2f}, "
                f"refusals {scores['refusals']}")
        if scores.get("ifd") and scores["ifd"]["mean"] is not None:
            line += (f"; IFD mean {scores['ifd']['mean']:.3f}, median {scores['ifd']['median']:.3f}, "
                     f"{scores['ifd']['above_1']} above 1 (instruction does not help: likely misaligned)")
        out += ["", "## Scores", "", line]
    before, after = report.get("diversity_before"), report.get("diversity_after")
    rand = report.get("diversity_random")
    if before and after:
        out += ["", f"## Diversity (embeddings: {report['embedding']['backend']}, {report['embedding']['clusters']} clusters)", ""]
        views = [before, after] + ([rand] if rand else [])
        rows = [(key, *(v[key] for v in views)) for key in ("examples", "distinct_1", "distinct_2", "distinct_3", "dispersion")]
        rows.append(("cluster coverage", *(v["cluster_coverage"]["coverage"] for v in views)))
        rows.append(("cluster entropy", *(v["cluster_coverage"]["entropy"] for v in views)))
        for key in ("distinct_verbs", "distinct_pairs", "pair_entropy"):
            rows.append((f"verb–noun {key}", *(v["verb_noun"][key] for v in views)))
        out += _table(["metric", "cleaned", "selected"] + (["random subset, same size"] if rand else []), rows)
        out.append("")
        out.append("Top verb–noun pairs (selected): " + ", ".join(f"{p} ({c})" for p, c in after["verb_noun"]["top_pairs"]))
    selection = report.get("selection")
    if selection and selection.get("random_coverage_distance"):
        ours, rand = selection["coverage_distance"], selection["random_coverage_distance"]
        out += ["", "## Coverage (distance of every cleaned example to its nearest selected one)", ""]
        out += _table(["selection", "mean distance", "max distance"],
                      [(selection["method"], ours["mean"], ours["max"]), (f"random (mean of {rand['seeds']} seeds)", rand["mean"], rand["max"])])
    mixture = report.get("mixture")
    if mixture:
        label = {"proportional": "examples-proportional", "temperature": f"temperature T={mixture['temperature']}", "equal": "equal"}[mixture["mode"]]
        cap = f", cap K={mixture['cap']:g}" if mixture["cap"] else ""
        rule = mixture.get("selection_rule")
        if rule:
            label = (f"the {rule['mode']}" + (f" T={rule['temperature']}" if rule["temperature"] else "")
                     + (f" cap K={rule['cap']:g}" if rule["cap"] else "") + " mix was applied when selecting; read the selection once per epoch")
        out += ["", f"## Per-task mix ({label}{cap}; one epoch = {mixture['draws_per_epoch']} draws)", ""]
        out += _table(["task", "input", "cleaned", "selected", "rate", "draws/epoch", "effective epochs"],
                      [(r["task"], r["input"], r["cleaned"], r["examples"], r["rate"], r["expected_draws"], r["expected_epochs"])
                       for r in mixture["tasks"]])
    return "\n".join(out) + "\n"
