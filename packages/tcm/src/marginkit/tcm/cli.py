"""Command line ``marginkit-tcm <command>``, generated from config dataclasses."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


@dataclasses.dataclass
class DemoConfig:
    """Print the F-beta utility of a few (TPR, TNR) pairs."""

    beta: float = 1.0
    """Weight of the true-negative rate in the F-beta utility."""


def _demo(config: DemoConfig) -> None:
    from marginkit.tcm.utility import f_beta_utility

    print(f"{'TPR':>6} {'TNR':>6} {'U':>8}")
    for tpr, tnr in [(1.0, 1.0), (0.5, 1.0), (1.0, 0.5), (0.0, 0.0)]:
        print(f"{tpr:6.2f} {tnr:6.2f} {float(f_beta_utility(tpr, tnr, config.beta)):8.4f}")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``marginkit-tcm`` console script."""
    from marginkit.shared.cli import run_commands

    run_commands("marginkit-tcm", {"demo": (DemoConfig, _demo)}, argv)
