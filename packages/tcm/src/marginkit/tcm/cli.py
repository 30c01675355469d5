"""``marginkit-tcm train | evaluate | opis | report | demo``, built from config dataclasses."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Literal

from marginkit.tcm.config import DemoConfig, OPISConfig, ReportConfig, TrainConfig


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


def _report(config: ReportConfig) -> None:
    from pathlib import Path

    from marginkit.tcm.pareto import markdown_table, plot_pareto, summarize_runs, write_report

    files = sorted(Path(config.runs).rglob("results.json"))
    runs = [json.loads(path.read_text()) for path in files]
    runs = [run for run in runs if "R@1" in run and "opis" in run and "config" in run]
    if not runs:
        raise SystemExit(f"no results.json with R@1 and OPIS under {config.runs}")
    rows = summarize_runs(runs)
    paths = write_report(rows, config.out_dir)
    print(markdown_table(rows, list(rows[0])))
    print(f"\nwritten: {', '.join(str(path) for path in paths.values())}")
    try:
        print(f"Pareto plot: {plot_pareto(rows, Path(config.out_dir) / 'pareto.png')}")
    except ImportError:
        print("matplotlib is not installed: no plot (pip install marginkit-tcm[plot])")


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
            "report": (ReportConfig, _report),
            "demo": (DemoConfig, _demo),
        },
        argv,
    )
