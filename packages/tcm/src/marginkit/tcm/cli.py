"""Command line ``marginkit-tcm train | evaluate | opis | demo``, from config dataclasses."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Literal

from marginkit.tcm.config import DemoConfig, OPISConfig, TrainConfig


@dataclasses.dataclass
class EvaluateConfig:
    """Retrieval (R@k, R-precision, MAP@R) and OPIS of saved embeddings and labels."""

    embeddings: str
    """.npz / .pt (embeddings, labels), .npy (with --labels), .csv or .parquet."""
    labels: str | None = None
    """Labels .npy when --embeddings is a .npy file."""
    ks: tuple[int, ...] = (1, 2, 4, 8)
    """The k of each R@k (a hit rate)."""
    ties: Literal["index", "pessimistic"] = "index"
    """Tie rule of the neighbour ranking."""
    opis: OPISConfig = dataclasses.field(default_factory=OPISConfig)
    """OPIS settings."""
    output: str | None = None
    """Write the metrics as JSON here as well."""


@dataclasses.dataclass
class OpisConfig:
    """OPIS and eps-OPIS of saved embeddings and labels."""

    embeddings: str
    """.npz / .pt (embeddings, labels), .npy (with --labels), .csv or .parquet."""
    labels: str | None = None
    """Labels .npy when --embeddings is a .npy file."""
    opis: OPISConfig = dataclasses.field(default_factory=OPISConfig)
    """OPIS settings."""
    device: str | None = None
    """cpu, cuda, ...; default: automatic."""


def _train(config: TrainConfig) -> None:
    from marginkit.shared import setup_logging

    setup_logging()
    summary = train(config)
    print(json.dumps(summary, indent=2, default=str))


def _evaluate(config: EvaluateConfig) -> None:
    from marginkit.tcm.data import load_embeddings
    from marginkit.tcm.evaluate import evaluate_embeddings

    loaded = load_embeddings(config.embeddings, config.labels)
    metrics = evaluate_embeddings(
        loaded.embeddings, loaded.labels, config.opis, config.ks, config.ties
    )
    text = json.dumps(metrics, indent=2, default=str)
    if config.output:
        with open(config.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    print(text)


def _opis(config: OpisConfig) -> None:
    from marginkit.shared import select_device
    from marginkit.tcm.data import load_embeddings
    from marginkit.tcm.opis import compute_opis

    loaded = load_embeddings(config.embeddings, config.labels)
    result = compute_opis(
        loaded.embeddings, loaded.labels, config.opis, select_device(config.device)
    )
    print(json.dumps(result.summary(), indent=2, default=str))


def _demo(config: DemoConfig) -> None:
    import torch

    from marginkit.tcm.demo import run_demo

    torch.set_num_threads(1)
    run_demo(config)


def train(config: TrainConfig) -> dict:
    from marginkit.tcm.train import train as run

    return run(config)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``marginkit-tcm`` console script."""
    from marginkit.shared.cli import run_commands

    run_commands(
        "marginkit-tcm",
        {
            "train": (TrainConfig, _train),
            "evaluate": (EvaluateConfig, _evaluate),
            "opis": (OpisConfig, _opis),
            "demo": (DemoConfig, _demo),
        },
        argv,
    )
