"""The demo: the pipeline on the embedded Python-help data, printing what it measured.

Part 1 (seconds): model-free query strategies and the reward-best / reward-worst
candidate of the deterministic generator, under BM25 and (when installed) MiniLM.
Part 2 (minutes): a tiny GPT-2 rewriter, SFT on the seed split, DPO on pairs built from
the pool by the reward; original question vs SFT vs SFT+DPO vs gold rewrite on the test
split, under the same retrievers. Passage embeddings are cached under the output folder.
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

COLUMNS = ["mrr", "map", "ndcg@3", "recall@10", "recall@100"]


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


def build_retrievers(config: AdaQRConfig, passages: Any, dense: bool) -> dict[str, Retriever]:
    """BM25 and, when ``dense`` and the encoder is installed, MiniLM (built once)."""
    retrievers: dict[str, Retriever] = {}
    for name in ["bm25"] + (["dense"] if dense else []):
        start = time.perf_counter()
        try:
            retrievers[name] = make_retriever(dataclasses.replace(config, retriever=name), passages)
        except ImportError as error:
            print(f"\n[{name}] skipped: {error}")
            continue
        logger.info("%s index built in %.1f s", name, time.perf_counter() - start)
    return retrievers


def fast_part(retrievers: dict[str, Retriever], inputs: Inputs, k: int, depth: int) -> dict:
    """Part 1: every model-free strategy on all follow-up turns, under each retriever."""
    follow_ups = [turn for turn in inputs.turns if turn.history]
    report: dict[str, Any] = {}
    for name, retriever in retrievers.items():
        start = time.perf_counter()
        strategies = baseline_queries(follow_ups)
        strategies.update(reward_selected(retriever, inputs, follow_ups, k))
        rows = evaluate_strategies(retriever, follow_ups, strategies, depth)
        seconds = time.perf_counter() - start
        print(
            f"\n[{name}, tau {retriever.tau}] all {len(follow_ups)} follow-up turns, "
            f"metrics x100 ({seconds:.1f} s)"
        )
        print(format_table(rows, COLUMNS))
        by_name = {row["query"]: row for row in rows}
        gain = by_name["reward-best (oracle)"]["mrr"] - by_name["original"]["mrr"]
        print(f"MRR(reward-best) - MRR(original) = {gain:+.2f}")
        report[name] = {
            "rows": rows,
            "reward_gain_mrr": gain,
            "seconds": seconds,
            "settings": retriever.settings,
        }
    return report


def run_demo(demo: Any) -> dict[str, Any]:
    """Run the demo described in the module docstring; writes report.json."""
    started = time.perf_counter()
    out = Path(demo.output_dir)
    data_dir = out / "data"
    manifest = make_data(EmbeddedDataConfig(output_dir=str(data_dir)))
    print(
        f"embedded data: {manifest['passages']} passages, {manifest['conversations']} "
        f"conversations, {manifest['follow_up_turns']} follow-up turns (Python "
        f"{manifest['python']})"
    )
    config = apply_preset(
        AdaQRConfig(
            data_dir=str(data_dir),
            run_dir=str(out / "run"),
            preset="cpu-tiny",
            embedding_cache=str(out / "embeddings"),
            sft_epochs=demo.sft_epochs,
            dpo_epochs=demo.dpo_epochs,
            max_pairs=demo.max_pairs,
            dpo_batch_size=demo.dpo_batch_size,
            monitor_every=demo.monitor_every,
            generator="rules",
        )
    )
    inputs = load_inputs(config)
    retrievers = build_retrievers(config, inputs.passages, demo.dense)
    report: dict[str, Any] = {
        "manifest": manifest,
        "fast": fast_part(retrievers, inputs, config.k, config.depth),
    }
    if demo.neural:
        from marginkit.adaqr.tiny_experiment import neural_part

        report["neural"] = neural_part(config, inputs, retrievers, demo.seeds)
    report["seconds"] = time.perf_counter() - started
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"\nreport: {out / 'report.json'} ({report['seconds']:.0f} s)")
    return report
