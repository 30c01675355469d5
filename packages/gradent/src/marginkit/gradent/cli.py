"""Command line: ``marginkit-gradent measure | study | demo``.

Heavy libraries (transformers, datasets) are imported inside the handlers, so ``--help``
stays fast.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path


@dataclasses.dataclass
class DemoConfig:
    """Sentiment pairs on a tiny GPT-2: gradient cosines per suffix length, DPO vs normalised."""

    output_dir: str = "outputs/gradent"
    """Folder for the plot and the JSON results."""
    seeds: int = 3
    """Number of seeds of the training comparison."""
    sft_steps: int = 300
    """Adam steps of supervised fine-tuning on prompt + chosen (lr 3e-3, batch 16)."""
    probe_pairs: int = 48
    """Fresh pairs per suffix length in the probe table."""
    train_pairs: int = 48
    """Pairs of the full-batch training comparison (suffix length 8)."""
    train_steps: int = 40
    """Full-batch steps per method (DPO and masked DPO: SGD lr 0.02; normalised: lr 2.0)."""


@dataclasses.dataclass
class MeasureConfig:
    """Measure per-pair gradient entanglement of a causal LM on a local preference file."""

    data: str
    """JSONL/JSON/CSV/Parquet file with prompt, chosen and rejected text columns."""
    model: str
    """Hub id or local folder of a transformers causal LM (loaded as given; no download
    happens when it is a local folder)."""
    reference_model: str | None = None
    """Reference model for losses that need one; the policy itself when None."""
    loss: str = "dpo"
    """Loss whose weights give the predicted changes and cases."""
    beta: float = 0.1
    """The loss's beta."""
    params: str = "trainable"
    """Parameter set: trainable, all, lora, lm_head or a regular expression."""
    max_pairs: int = 64
    """Pairs measured (the first ones of the file)."""
    strategy: str = "auto"
    """loop, vmap or auto."""
    chunk_size: int | None = None
    """Pairs per vmap call."""
    output: str = "outputs/gradent/measure.json"
    """Where the summary is written."""


@dataclasses.dataclass
class StudyConfig:
    """Gradient cosines of sentiment pairs per shared-suffix length on a fresh tiny GPT-2."""

    pairs: int = 48
    """Pairs per suffix length."""
    sft_steps: int = 300
    """SFT steps before measuring (0: measure at initialisation)."""
    seed: int = 0
    """Seed of the model and the data."""


def _demo(config: DemoConfig) -> None:
    from marginkit.gradent.demo import run_demo

    run_demo(config)


def _measure(config: MeasureConfig) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from marginkit.gradent.logprobs import pair_logps, tokenize_pairs
    from marginkit.gradent.measure import measure_pairs, summarize

    suffix = Path(config.data).suffix.lstrip(".")
    kind = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}.get(suffix)
    if kind is None:
        raise SystemExit(f"unsupported data file type {suffix!r}: use jsonl, json, csv or parquet")
    data_path = Path(config.data)
    if not data_path.is_file():
        raise SystemExit(f"no data file at {data_path}")
    if data_path.stat().st_size == 0:
        raise SystemExit(f"{data_path} is empty: it needs prompt, chosen and rejected rows")
    table = datasets.load_dataset(kind, data_files=config.data, split="train")
    rows = [table[i] for i in range(min(config.max_pairs, len(table)))]
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    model = AutoModelForCausalLM.from_pretrained(config.model)
    max_length = getattr(model.config, "max_position_embeddings", None)
    batch = tokenize_pairs(tokenizer, rows, max_length=max_length)
    reference_model = (
        AutoModelForCausalLM.from_pretrained(config.reference_model)
        if config.reference_model
        else model
    )
    with torch.no_grad():
        reference = pair_logps(reference_model.eval(), batch)
    stats = measure_pairs(
        model,
        batch,
        loss=config.loss,
        params=config.params,
        strategy=config.strategy,
        chunk_size=config.chunk_size,
        reference=reference,
    )
    metrics = summarize(stats)
    Path(config.output).parent.mkdir(parents=True, exist_ok=True)
    Path(config.output).write_text(json.dumps(metrics, indent=1))
    for name, value in metrics.items():
        if not name.endswith("_median"):
            print(f"{name:<45} {value:.4f}")
    return metrics


def _study(config: StudyConfig) -> None:
    import torch

    from marginkit.gradent.data import tiny_gpt2
    from marginkit.gradent.demo import print_probe_table, probe_table, sft

    torch.set_num_threads(1)
    model = tiny_gpt2(seed=config.seed)
    if config.sft_steps:
        sft(model, steps=config.sft_steps, lr=3e-3, batch_size=16, seed=config.seed)
    print_probe_table(probe_table(model, config.pairs, seed=config.seed))


def main(argv: Sequence[str] | None = None) -> None:
    from marginkit.shared.cli import run_commands
    from marginkit.shared.logging import setup_logging

    setup_logging()
    run_commands(
        "marginkit-gradent",
        {
            "measure": (MeasureConfig, _measure),
            "study": (StudyConfig, _study),
            "demo": (DemoConfig, _demo),
        },
        argv,
    )
