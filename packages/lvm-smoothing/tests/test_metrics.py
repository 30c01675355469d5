"""Certified accuracy, ACR and plots on hand-made results."""

import numpy as np
import pytest

from marginkit.lvm_smoothing.metrics import (
    abstention_rate,
    average_certified_radius,
    certified_accuracy,
    high_probability_accuracy,
    plot_certified_accuracy,
    radius_grid,
)

PREDICT = [0, 1, -1, 2, 1]
LABEL = [0, 1, 2, 0, 1]
RADIUS = [0.5, 0.2, 0.9, 1.0, 0.0]  # the abstained row's 0.9 must not count


def test_certified_accuracy_counts_correct_rows_with_radius_at_least_r():
    assert certified_accuracy(PREDICT, LABEL, RADIUS, [0.0, 0.2, 0.3, 0.5, 0.6]).tolist() == [
        0.6,
        0.4,
        0.2,
        0.2,
        0.0,
    ]


def test_acr_and_abstention_by_hand():
    assert average_certified_radius(PREDICT, LABEL, RADIUS) == pytest.approx((0.5 + 0.2) / 5)
    assert abstention_rate(PREDICT) == pytest.approx(0.2)


def test_high_probability_accuracy_formula():
    n, alpha, rho = 500, 0.001, 0.001
    log = np.log(1 / rho)
    expected = 0.6 - alpha - np.sqrt(alpha * (1 - alpha) * log / n) - log / (3 * n)
    assert high_probability_accuracy(0.6, n, alpha, rho) == pytest.approx(expected)


def test_radius_grid_includes_the_end():
    grid = radius_grid(0.05)
    assert grid[-1] == pytest.approx(0.05) and len(grid) == 6


def test_mismatched_and_nan_columns_raise():
    with pytest.raises(ValueError, match="one length"):
        certified_accuracy([0, 1], [0], [0.1, 0.2], [0.0])
    with pytest.raises(ValueError, match="NaN"):
        average_certified_radius([0], [0], [float("nan")])


def test_curves_of_several_runs_go_to_one_png(tmp_path):
    path = plot_certified_accuracy(
        {"a": (PREDICT, LABEL, RADIUS), "b": ([0] * 5, LABEL, [0.1] * 5)}, tmp_path / "c.png"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
