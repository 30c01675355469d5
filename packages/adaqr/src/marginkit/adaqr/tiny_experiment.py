"""Demo part 2: the tiny GPT-2 rewriter through SFT and DPO, on the test split.

On a 2-core CPU a rewriter trained from scratch on ~50 rewrites does not generate useful
rewrites, so the preference pairs come from the deterministic candidates of the pool
split scored by the reward. Each trained rewriter is evaluated two ways on the test
follow-up turns: its greedy rewrite, and as a *selector* (the deterministic candidate with
the highest mean completion log-prob under the policy). The table puts both beside the
original question and the gold rewrite, under every retriever of the demo.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from marginkit.adaqr import stages, training
from marginkit.adaqr.candidates import rule_candidates
from marginkit.adaqr.config import AdaQRConfig
from marginkit.adaqr.data import read_jsonl
from marginkit.adaqr.prompts import completion_text, fit_prompt
from marginkit.adaqr.retrieval import Retriever
from marginkit.adaqr.rewriter import log_probs

logger = logging.getLogger(__name__)

STAGE_LABELS = {"sft": "SFT", "dpo": "SFT+DPO"}


def select_by_policy(model: Any, tokenizer: Any, turns: list[Any], max_length: int) -> dict:
    """Per turn, the rule candidate with the highest mean completion-token log-prob."""
    items, spans = [], []
    for turn in turns:
        candidates = rule_candidates(turn, 5)
        prompt = fit_prompt(tokenizer, turn.history, turn.question, "", max_length // 2)
        spans.append((len(items), candidates))
        items += [(prompt, candidate) for candidate in candidates]
    scores = log_probs(model, tokenizer, items, batch_size=32)
    chosen = {}
    for turn, (start, candidates) in zip(turns, spans, strict=True):
        lengths = [
            len(tokenizer(completion_text(c), add_special_tokens=False)["input_ids"]) + 1
            for c in candidates
        ]
        means = [scores[start + i] / n for i, n in enumerate(lengths)]
        chosen[turn.id] = candidates[max(range(len(candidates)), key=means.__getitem__)]
    return chosen


def _greedy_rewrites(run: AdaQRConfig, inputs: stages.Inputs, stage: str, turns: list) -> dict:
    records = read_jsonl(training.rewrite(run, inputs, stage))
    found = {str(r["turn_id"]): str(r["rewrite"]) for r in records}
    return {turn.id: found.get(turn.id, turn.question) for turn in turns}


def neural_part(
    config: AdaQRConfig,
    inputs: stages.Inputs,
    retrievers: Mapping[str, Retriever],
    seeds: int = 1,
) -> dict[str, Any]:
    """SFT on the seed split, DPO on reward pairs of the pool, evaluation on test turns."""
    test_turns = [t for t in inputs.split(config.data_dir, "test") if t.history]
    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in retrievers}
    timings, pair_stats = [], []
    for seed in range(seeds):
        run = dataclasses.replace(
            config, seed=seed, split="test", run_dir=str(Path(config.run_dir) / f"seed{seed}")
        )
        start = time.perf_counter()
        training.sft(run, inputs)
        stages.sample_rules(run, inputs.split(run.data_dir, "pool"))
        stages.score(run, inputs)
        _, stats = stages.pairs(run, inputs)
        pair_stats.append(stats)
        training.dpo(run, inputs)
        strategies = dict(stages.baseline_queries(test_turns))
        strategies = {k: strategies[k] for k in ("original", "gold-rewrite")}
        for stage, label in STAGE_LABELS.items():
            model, tokenizer = training.load_rewriter(Path(run.run_dir) / stage)
            strategies[f"{label} rewrite"] = _greedy_rewrites(run, inputs, stage, test_turns)
            strategies[f"{label} selector"] = select_by_policy(
                model, tokenizer, test_turns, run.max_length
            )
        for name, retriever in retrievers.items():
            rows = stages.evaluate_strategies(retriever, test_turns, strategies, run.depth)
            tables[name].append({row["query"]: row for row in rows})
        timings.append(time.perf_counter() - start)
        logger.info("seed %d: %.0f s, pairs %s", seed, timings[-1], stats)
    report: dict[str, Any] = {"pairs": pair_stats, "seconds": timings, "tables": {}}
    for name, per_seed in tables.items():
        rows = _mean_rows(per_seed)
        report["tables"][name] = rows
        print(
            f"\n[{name}] test follow-up turns ({len(test_turns)}), tiny rewriter, metrics x100"
            f" (mean over {seeds} seed{'s' if seeds > 1 else ''})"
        )
        print(stages.format_table(rows, ["mrr", "mrr_sd", "ndcg@3", "recall@10", "map"]))
    return report


def _mean_rows(per_seed: list[dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Mean (and sd of MRR) over seeds, one row per strategy."""
    rows = []
    for name in per_seed[0]:
        row: dict[str, Any] = {"query": name}
        for metric in ("mrr", "ndcg@3", "recall@10", "map"):
            row[metric] = statistics.mean(table[name][metric] for table in per_seed)
        values = [table[name]["mrr"] for table in per_seed]
        row["mrr_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    return rows
