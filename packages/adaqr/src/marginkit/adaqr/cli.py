"""``marginkit-adaqr <command>``: every stage of the pipeline, settings from AdaQRConfig.

Heavy libraries (transformers, TRL, peft, faiss) are imported inside the handlers so that
``marginkit-adaqr --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from marginkit.adaqr.config import AdaQRConfig, apply_preset
from marginkit.adaqr.embedded import EmbeddedDataConfig


@dataclasses.dataclass
class MakeDataConfig(EmbeddedDataConfig):
    """Write the embedded data set (Python help topics, generated conversations)."""


@dataclasses.dataclass
class SampleConfig(AdaQRConfig):
    """Sample N candidate rewrites per follow-up turn (rewriter or rules)."""


@dataclasses.dataclass
class ScoreConfig(AdaQRConfig):
    """Retrieve top-K passages per candidate and compute the answer-likelihood reward."""


@dataclasses.dataclass
class PairsConfig(AdaQRConfig):
    """Build preference pairs (chosen = lower loss) from the scored candidates."""


@dataclasses.dataclass
class SFTConfig(AdaQRConfig):
    """Warm up the rewriter by SFT on a fraction of the gold rewrites (TRL SFTTrainer)."""


@dataclasses.dataclass
class DPOConfig(AdaQRConfig):
    """Align the rewriter by DPO on the preference pairs (TRL DPOTrainer)."""


@dataclasses.dataclass
class RewriteConfig(AdaQRConfig):
    """Greedy rewrites of the evaluation split by the SFT or DPO rewriter."""

    stage: str = "dpo"
    """Which trained rewriter to use: 'sft' or 'dpo'."""


@dataclasses.dataclass
class EvaluateConfig(AdaQRConfig):
    """MRR, MAP, NDCG@3 and Recall@k of every query strategy on the evaluation split."""


@dataclasses.dataclass
class DemoConfig:
    """The whole pipeline on the embedded data; prints the evaluation tables."""

    output_dir: str = "outputs/adaqr/demo"
    """Folder for the data, the runs and report.json."""
    seeds: int = 1
    """Number of DPO seeds for the selector experiment (mean +- sd)."""
    dense: bool = True
    """Also evaluate with the MiniLM dense retriever (needs the `dense` extra)."""
    neural: bool = True
    """Run the tiny-rewriter SFT + DPO part (minutes); False keeps only the fast part."""
    sft_epochs: float = 5.0
    """SFT epochs of the tiny rewriter on the seed split."""
    dpo_epochs: float = 1.0
    max_pairs: int = 480
    """DPO trains on a seeded subsample of this many reward pairs of the pool (0 = all)."""
    dpo_batch_size: int = 4
    """Pairs per DPO step (4: twice the updates of the preset's 8 for the same compute)."""
    monitor_every: int = 20
    """Steps between entanglement-monitor records during DPO."""


def _make_data(config: MakeDataConfig) -> None:
    from marginkit.adaqr.embedded import make_data

    print(json.dumps(make_data(config), indent=1))


def _sample(config: SampleConfig) -> None:
    from marginkit.adaqr import stages

    config = apply_preset(config)
    inputs = stages.load_inputs(config)
    if config.generator == "rules":
        print(stages.sample_rules(config, inputs.turns))
        return
    from marginkit.adaqr import training

    print(training.sample(config, inputs))


def _score(config: ScoreConfig) -> None:
    from marginkit.adaqr import stages

    config = apply_preset(config)
    print(stages.score(config, stages.load_inputs(config)))


def _pairs(config: PairsConfig) -> None:
    from marginkit.adaqr import stages

    config = apply_preset(config)
    path, stats = stages.pairs(config, stages.load_inputs(config))
    print(path, json.dumps(stats))


def _sft(config: SFTConfig) -> None:
    from marginkit.adaqr import stages, training

    config = apply_preset(config)
    print(training.sft(config, stages.load_inputs(config)))


def _dpo(config: DPOConfig) -> None:
    from marginkit.adaqr import stages, training

    config = apply_preset(config)
    print(training.dpo(config, stages.load_inputs(config)))


def _rewrite(config: RewriteConfig) -> None:
    from marginkit.adaqr import stages, training

    config = apply_preset(config)
    print(training.rewrite(config, stages.load_inputs(config), config.stage))


def _evaluate(config: EvaluateConfig) -> None:
    from marginkit.adaqr import stages
    from marginkit.adaqr.data import read_jsonl

    config = apply_preset(config)
    inputs = stages.load_inputs(config)
    turns = inputs.split(config.data_dir, config.split)
    strategies: dict[str, Any] = stages.baseline_queries(turns)
    for name in ("sft", "dpo"):
        path = f"{config.run_dir}/rewrites-{name}.jsonl"
        try:
            records = read_jsonl(path)
        except FileNotFoundError:
            continue
        found = {str(r["turn_id"]): str(r["rewrite"]) for r in records}
        strategies[name] = {t.id: found.get(t.id, t.question) for t in turns}
    retriever = stages.make_retriever(config, inputs.passages)
    rows = stages.evaluate_strategies(retriever, turns, strategies, config.depth, config.crosscheck)
    columns = ["mrr", "map", "ndcg@3", "recall@10", "recall@100", "mrr_follow_up", "turns"]
    if config.crosscheck:
        columns.append("crosscheck")
    print(stages.format_table(rows, columns))
    from marginkit.adaqr.data import write_json_atomic
    from marginkit.adaqr.manifest import write_manifest

    path = f"{config.run_dir}/evaluation-{config.retriever}.json"
    write_json_atomic(path, rows)
    write_manifest(config, f"evaluate-{config.retriever}", path, retriever=retriever)


def _demo(config: DemoConfig) -> None:
    from marginkit.adaqr.demo import run_demo

    run_demo(config)


COMMANDS = {
    "make-data": (MakeDataConfig, _make_data),
    "sft": (SFTConfig, _sft),
    "sample": (SampleConfig, _sample),
    "score": (ScoreConfig, _score),
    "pairs": (PairsConfig, _pairs),
    "dpo": (DPOConfig, _dpo),
    "rewrite": (RewriteConfig, _rewrite),
    "evaluate": (EvaluateConfig, _evaluate),
    "demo": (DemoConfig, _demo),
}


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point; returns nothing, so ``sys.exit(main())`` exits with status 0."""
    from marginkit.shared.cli import run_commands
    from marginkit.shared.logging import setup_logging

    setup_logging()
    run_commands("marginkit-adaqr", COMMANDS, argv)
