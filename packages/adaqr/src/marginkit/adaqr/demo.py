"""The demo: the pipeline on the embedded Python-help data, printing what it measured.

Part 1 (seconds): model-free query strategies and the reward-best / reward-worst
candidate of the deterministic generator, under BM25 and (when installed) MiniLM.
Part 2 (minutes): a tiny GPT-2 rewriter, SFT on the seed split, DPO on pairs built from
the pool by the reward, evaluated as a candidate selector on the test split.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from marginkit.adaqr.candidates import rule_candidates
from marginkit.adaqr.config import AdaQRConfig, apply_preset
from marginkit.adaqr.embedded import EmbeddedDataConfig, make_data
from marginkit.adaqr.readers import UnigramReader
from marginkit.adaqr.retrieval import Retriever
from marginkit.adaqr.reward import RewardScorer
from marginkit.adaqr.stages import (
    Inputs,
    baseline_queries,
    evaluate_strategies,
    format_table,
    load_inputs,
    make_retriever,
)

logger = logging.getLogger(__name__)

COLUMNS = ["mrr", "map", "ndcg@3", "recall@10", "recall@100", "turns"]


def reward_selected(
    retriever: Retriever, inputs: Inputs, turns: list[Any], k: int = 5
) -> dict[str, dict[str, str]]:
    """Reward-best and reward-worst rule candidate per turn (uses the answer: analysis only)."""
    scorer = RewardScorer(retriever, UnigramReader(inputs.passages), k=k)
    best, worst = {}, {}
    for turn in turns:
        scored = [
            c for c in scorer.score_turn(turn, rule_candidates(turn, 5)) if c.loss is not None
        ]
        scored.sort(key=lambda c: c.loss)  # type: ignore[arg-type, return-value]
        best[turn.id] = scored[0].text if scored else turn.question
        worst[turn.id] = scored[-1].text if scored else turn.question
    return {"reward-best (oracle)": best, "reward-worst": worst}


def fast_part(config: AdaQRConfig, inputs: Inputs, dense: bool) -> dict[str, Any]:
    """Part 1: every strategy on all follow-up turns, BM25 and optionally MiniLM."""
    follow_ups = [turn for turn in inputs.turns if turn.history]
    report: dict[str, Any] = {}
    retrievers = ["bm25"] + (["dense"] if dense else [])
    for name in retrievers:
        start = time.perf_counter()
        try:
            retriever = make_retriever(dataclasses.replace(config, retriever=name), inputs.passages)
        except ImportError as error:
            print(f"\n[{name}] skipped: {error}")
            continue
        strategies = baseline_queries(follow_ups)
        strategies.update(reward_selected(retriever, inputs, follow_ups, config.k))
        rows = evaluate_strategies(retriever, follow_ups, strategies, config.depth)
        seconds = time.perf_counter() - start
        print(f"\n[{name}, tau {retriever.tau}] follow-up turns, metrics x100 ({seconds:.1f} s)")
        print(format_table(rows, COLUMNS))
        by_name = {row["query"]: row for row in rows}
        gain = by_name["reward-best (oracle)"]["mrr"] - by_name["original"]["mrr"]
        print(f"MRR(reward-best) - MRR(original) = {gain:+.2f}")
        report[name] = {"rows": rows, "reward_gain_mrr": gain, "seconds": seconds}
    return report


def run_demo(demo: Any) -> dict[str, Any]:
    """Run the demo described in the module docstring; writes report.json."""
    out = Path(demo.output_dir)
    data_dir = out / "data"
    manifest = make_data(EmbeddedDataConfig(output_dir=str(data_dir)))
    print(
        f"embedded data: {manifest['passages']} passages, {manifest['conversations']} "
        f"conversations, {manifest['follow_up_turns']} follow-up turns (Python "
        f"{manifest['python']})"
    )
    config = apply_preset(
        AdaQRConfig(data_dir=str(data_dir), run_dir=str(out / "run"), preset="cpu-tiny")
    )
    inputs = load_inputs(config)
    report: dict[str, Any] = {"manifest": manifest, "fast": fast_part(config, inputs, demo.dense)}
    if demo.neural:
        from marginkit.adaqr.tiny_experiment import neural_part

        report["neural"] = neural_part(config, inputs, demo.seeds)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"\nreport: {out / 'report.json'}")
    return report
