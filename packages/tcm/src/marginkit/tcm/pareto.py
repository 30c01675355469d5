"""Accuracy vs threshold-consistency report over runs: grouped means, spreads, Pareto front."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which ``(accuracy, opis)`` points are not dominated (higher accuracy, lower OPIS).

    A point is dominated when another has accuracy ``>=`` and OPIS ``<=``, with at least
    one strict; equal points both stay on the front.
    """
    flags = []
    for index, (accuracy, opis) in enumerate(points):
        dominated = any(
            other_acc >= accuracy
            and other_opis <= opis
            and (other_acc, other_opis) != (accuracy, opis)
            for other, (other_acc, other_opis) in enumerate(points)
            if other != index
        )
        flags.append(not dominated)
    return flags


def _mean_sd(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize_runs(
    runs: Sequence[dict[str, Any]],
    group_key: str = "config",
    metrics: Sequence[str] = ("R@1", "MAP@R", "opis", "eps_opis"),
) -> list[dict[str, Any]]:
    """Group runs by ``group_key`` (all settings but the seed) and report mean and sd.

    Each output row has ``<metric>/mean``, ``<metric>/sd``, ``n`` and ``pareto`` (on the
    mean R@1 and mean OPIS of the groups).
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(str(run[group_key]), []).append(run)
    rows = []
    for name, members in groups.items():
        row: dict[str, Any] = {group_key: name, "n": len(members)}
        for metric in metrics:
            values = [float(member[metric]) for member in members if metric in member]
            if values:
                row[f"{metric}/mean"], row[f"{metric}/sd"] = _mean_sd(values)
        rows.append(row)
    flags = pareto_front([(row["R@1/mean"], row["opis/mean"]) for row in rows])
    for row, flag in zip(rows, flags):
        row["pareto"] = flag
    return rows


def write_report(rows: list[dict[str, Any]], out_dir: str | Path, stem: str = "report") -> dict:
    """Write ``rows`` as Markdown, CSV and JSON under ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(key for row in rows for key in row))
    paths = {"md": out / f"{stem}.md", "csv": out / f"{stem}.csv", "json": out / f"{stem}.json"}
    paths["md"].write_text(markdown_table(rows, keys) + "\n")
    with open(paths["csv"], "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    paths["json"].write_text(json.dumps(rows, indent=2, default=str))
    return paths


def markdown_table(rows: list[dict[str, Any]], keys: Sequence[str]) -> str:
    """A Markdown table of ``rows``; floats with four significant digits."""

    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(row.get(key, "")) for key in keys) + " |" for row in rows]
    return "\n".join(lines)


def plot_pareto(rows: list[dict[str, Any]], path: str | Path, group_key: str = "config") -> Path:
    """Mean R@1 against mean OPIS with sd error bars, the front joined by a line (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4.5))
    for row in rows:
        axis.errorbar(
            row["opis/mean"],
            row["R@1/mean"],
            xerr=row.get("opis/sd", 0.0),
            yerr=row.get("R@1/sd", 0.0),
            fmt="o" if row["pareto"] else "x",
            capsize=3,
        )
        axis.annotate(str(row[group_key]), (row["opis/mean"], row["R@1/mean"]), fontsize=7)
    front = sorted((r["opis/mean"], r["R@1/mean"]) for r in rows if r["pareto"])
    if len(front) > 1:
        axis.plot(*zip(*front), "--", color="grey", linewidth=1)
    axis.set_xlabel("OPIS (lower is more threshold-consistent)")
    axis.set_ylabel("R@1")
    axis.set_title("Accuracy vs threshold consistency (mean ± sd over seeds)")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
