"""Certified accuracy, average certified radius, abstention rate and accuracy-vs-radius plots.

Over ``N`` inputs with radius ``R_i = 0`` on abstention:
``CA(r) = (1/N) sum_i 1[predict_i = label_i and R_i >= r]`` (as Cohen's ``analyze.py``),
``ACR = (1/N) sum_i R_i 1[predict_i = label_i]``; clean accuracy is ``CA(0)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike


def _columns(predict: ArrayLike, label: ArrayLike, radius: ArrayLike):
    predict, label = np.asarray(predict), np.asarray(label)
    radius = np.asarray(radius, dtype=np.float64)
    if not (predict.shape == label.shape == radius.shape) or predict.ndim != 1:
        raise ValueError(
            f"predict, label and radius must be 1-D of one length, got {predict.shape}, "
            f"{label.shape}, {radius.shape}"
        )
    if predict.size == 0:
        raise ValueError("no results to summarise")
    if np.isnan(radius).any():
        raise ValueError("radius contains NaN")
    radius = np.where(predict == -1, 0.0, radius)
    return predict, label, radius


def certified_accuracy(
    predict: ArrayLike, label: ArrayLike, radius: ArrayLike, radii: ArrayLike
) -> np.ndarray:
    """``CA(r)`` at every ``r`` in ``radii``; shape ``(len(radii),)``."""
    predict, label, radius = _columns(predict, label, radius)
    correct = predict == label
    thresholds = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    return np.array([np.mean(correct & (radius >= r)) for r in thresholds])


def average_certified_radius(predict: ArrayLike, label: ArrayLike, radius: ArrayLike) -> float:
    """``ACR``: the mean radius over inputs, counting 0 for wrong or abstained ones."""
    predict, label, radius = _columns(predict, label, radius)
    return float(np.mean(np.where(predict == label, radius, 0.0)))


def abstention_rate(predict: ArrayLike) -> float:
    """Fraction of inputs with ``predict == -1``."""
    values = np.asarray(predict)
    if values.size == 0:
        raise ValueError("no results to summarise")
    return float(np.mean(values == -1))


def high_probability_accuracy(
    accuracy: ArrayLike, num_points: int, alpha: float, rho: float = 0.001
) -> np.ndarray:
    """``CA - alpha - sqrt(alpha (1 - alpha) ln(1/rho) / N) - ln(1/rho) / (3N)``.

    A lower bound, holding with probability ``1 - rho``, on the certified accuracy of the
    population the ``N`` points were drawn from.
    """
    log_term = math.log(1.0 / rho)
    slack = alpha + math.sqrt(alpha * (1 - alpha) * log_term / num_points)
    return np.asarray(accuracy, dtype=np.float64) - slack - log_term / (3 * num_points)


def radius_grid(max_radius: float, step: float = 0.01) -> np.ndarray:
    """``arange(0, max_radius + step, step)``: the radii of a curve."""
    return np.arange(0.0, max_radius + step, step)


def plot_certified_accuracy(
    runs: Mapping[str, tuple[ArrayLike, ArrayLike, ArrayLike]],
    path: str | Path,
    title: str = "",
    max_radius: float | None = None,
) -> Path:
    """One PNG with a certified-accuracy curve per run ``{name: (predict, label, radius)}``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "plotting needs matplotlib: pip install 'marginkit-lvm-smoothing[plot]'"
        ) from error
    if not runs:
        raise ValueError("no runs to plot")
    largest = max(float(np.max(np.asarray(r, dtype=float))) for _, _, r in runs.values())
    grid = radius_grid(max_radius if max_radius is not None else max(largest, 0.01))
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, (predict, label, radius) in runs.items():
        axis.plot(grid, certified_accuracy(predict, label, radius, grid), label=name)
    axis.set_xlabel("l2 radius")
    axis.set_ylabel("certified accuracy")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend()
    if title:
        axis.set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def summary_row(
    predict: ArrayLike, label: ArrayLike, radius: ArrayLike, radii: Sequence[float]
) -> dict[str, float]:
    """Flat metrics of one run: ``ca/<r>`` at each radius, ``acr``, ``abstain``."""
    row = {
        f"ca/{r:g}": float(v)
        for r, v in zip(radii, certified_accuracy(predict, label, radius, radii))
    }
    row["acr"] = average_certified_radius(predict, label, radius)
    row["abstain"] = abstention_rate(predict)
    return row
