"""Demo part 2: the tiny GPT-2 rewriter through SFT and DPO, evaluated as a selector.

On a 2-core CPU a rewriter trained from scratch on ~50 rewrites does not generate useful
rewrites, so the preference pairs come from the deterministic candidates of the pool
split scored by the reward; the aligned policy is then used to pick, for each test turn,
the candidate with the highest mean completion log-prob, and that pick is evaluated.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from pathlib import Path
from typing import Any

from marginkit.adaqr import stages, training
from marginkit.adaqr.candidates import rule_candidates
from marginkit.adaqr.config import AdaQRConfig
from marginkit.adaqr.prompts import completion_text, fit_prompt
from marginkit.adaqr.rewriter import log_probs

logger = logging.getLogger(__name__)


def select_by_policy(model: Any, tokenizer: Any, turns: list[Any], max_length: int) -> dict:
    """Per turn, the rule candidate with the highest mean completion-token log-prob."""
    chosen = {}
    for turn in turns:
        candidates = rule_candidates(turn, 5)
        prompt = fit_prompt(tokenizer, turn.history, turn.question, "", max_length // 2)
        scores = log_probs(model, tokenizer, [(prompt, c) for c in candidates])
        lengths = [
            len(tokenizer(completion_text(c), add_special_tokens=False)["input_ids"]) + 1
            for c in candidates
        ]
        means = [s / n for s, n in zip(scores, lengths, strict=True)]
        chosen[turn.id] = candidates[max(range(len(candidates)), key=means.__getitem__)]
    return chosen


def neural_part(config: AdaQRConfig, inputs: stages.Inputs, seeds: int = 1) -> dict[str, Any]:
    """SFT on the seed split, DPO on reward pairs of the pool, selector MRR on test."""
    base = dataclasses.replace(
        config, generator="rules", split="test", sft_epochs=5.0, dpo_epochs=1.0, monitor_every=20
    )
    test_turns = [t for t in inputs.split(base.data_dir, "test") if t.history]
    retriever = stages.make_retriever(base, inputs.passages)
    results: dict[str, list[float]] = {"sft": [], "dpo": []}
    rows = []
    for seed in range(seeds):
        run = dataclasses.replace(
            base, seed=seed, run_dir=str(Path(config.run_dir) / f"seed{seed}")
        )
        start = time.perf_counter()
        training.sft(run, inputs)
        stages.sample_rules(run, inputs.split(run.data_dir, "pool"))
        stages.score(run, inputs)
        _, pair_stats = stages.pairs(run, inputs)
        training.dpo(run, inputs)
        strategies = {}
        for stage in ("sft", "dpo"):
            model, tokenizer = training.load_rewriter(Path(run.run_dir) / stage)
            strategies[f"{stage} selector"] = select_by_policy(
                model, tokenizer, test_turns, run.max_length
            )
        table = stages.evaluate_strategies(retriever, test_turns, strategies, run.depth)
        for row in table:
            results["sft" if row["query"].startswith("sft") else "dpo"].append(row["mrr"])
        rows += table
        logger.info("seed %d: %.0f s, pairs %s", seed, time.perf_counter() - start, pair_stats)
    print("\n[tiny rewriter, BM25] test follow-up turns, selector MRR x100")
    for name, values in results.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"  {name:<4} {statistics.mean(values):6.2f} +- {spread:.2f}  ({len(values)} seeds)")
    return {"rows": rows, "mrr": results}
