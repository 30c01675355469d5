"""Command line: ``marginkit-gradent measure | study | demo``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


@dataclasses.dataclass
class DemoConfig:
    """Sentiment pairs on a tiny GPT-2: gradient cosines per suffix length, DPO vs normalised."""

    output_dir: str = "outputs/gradent"
    """Folder for the plot and the JSON results."""
    seeds: int = 3
    """Number of seeds of the training comparison."""


def _demo(config: DemoConfig) -> None:
    from marginkit.gradent.demo import run_demo

    run_demo(config)


def main(argv: Sequence[str] | None = None) -> None:
    from marginkit.shared.cli import run_commands
    from marginkit.shared.logging import setup_logging

    setup_logging()
    run_commands("marginkit-gradent", {"demo": (DemoConfig, _demo)}, argv)
