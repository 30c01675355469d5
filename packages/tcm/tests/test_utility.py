"""Utility and calibration range against hand-computed values."""

import numpy as np
import pytest

from marginkit.tcm.utility import calibration_range, f_beta_utility


def test_f1_utility_of_half_tpr_full_tnr_is_two_thirds():
    assert float(f_beta_utility(0.5, 1.0)) == pytest.approx(2 / 3, abs=1e-15)


def test_beta_two_up_weights_true_negative_rate():
    # (1 + 4) * 0.5 * 1 / (4 * 0.5 + 1) = 2.5 / 3 ; (1 + 4) * 1 * 0.5 / (4 * 1 + 0.5) = 2.5 / 4.5
    assert float(f_beta_utility(0.5, 1.0, beta=2.0)) == pytest.approx(5 / 6, abs=1e-15)
    assert float(f_beta_utility(1.0, 0.5, beta=2.0)) == pytest.approx(5 / 9, abs=1e-15)


def test_utility_of_zero_rates_is_zero_not_nan():
    assert float(f_beta_utility(0.0, 0.0)) == 0.0


def test_calibration_range_hits_far_ten_and_one_percent():
    # Linear quantile of 0.00..0.99 at 0.90 is index 89.1 -> 0.891; at 0.99, 98.01 -> 0.9801.
    d_min, d_max = calibration_range(np.arange(100) / 100, (0.01, 0.1))
    assert d_min == pytest.approx(0.891, abs=1e-12)
    assert d_max == pytest.approx(0.9801, abs=1e-12)


def test_empty_range_error_names_far_range_and_negative_count():
    with pytest.raises(ValueError, match=r"\(0.01, 0.1\).*5 negative pairs"):
        calibration_range(np.zeros(5), (0.01, 0.1))
