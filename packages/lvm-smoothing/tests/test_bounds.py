"""Confidence bounds against closed forms, hand computations and exact miss probabilities."""

import math

import numpy as np
import pytest
from scipy import stats

from marginkit.lvm_smoothing.bounds import (
    bernstein_half_width,
    bernstein_lower,
    bernstein_upper,
    clopper_pearson_lower,
    clopper_pearson_upper,
)


def test_clopper_pearson_unanimous_lower_bound_is_alpha_root():
    assert float(clopper_pearson_lower(100, 100, 0.001)) == pytest.approx(0.001 ** (1 / 100))
    assert float(clopper_pearson_lower(100, 100, 0.001)) == pytest.approx(0.933254, abs=1e-6)


def test_clopper_pearson_matches_hand_values():
    assert float(clopper_pearson_lower(990, 1000, 0.001)) == pytest.approx(0.976036, abs=1e-6)
    # up(0, n) = 1 - a^(1/n) in closed form.
    assert float(clopper_pearson_upper(0, 1000, 0.001)) == pytest.approx(1 - 0.001 ** (1 / 1000))
    assert float(clopper_pearson_upper(0, 1000, 0.001)) == pytest.approx(0.006884, abs=1e-6)


def test_clopper_pearson_edges_are_zero_and_one_not_nan():
    assert float(clopper_pearson_lower(0, 50, 0.01)) == 0.0
    assert float(clopper_pearson_upper(50, 50, 0.01)) == 1.0


def test_clopper_pearson_is_one_end_of_the_two_sided_interval_at_twice_the_level():
    k, n, a = 37, 120, 0.01
    two_sided_low = stats.beta.ppf(a, k, n - k + 1)  # (1 - 2a) interval's lower end
    assert float(clopper_pearson_lower(k, n, a)) == pytest.approx(two_sided_low)
    test = stats.binomtest(k, n).proportion_ci(confidence_level=1 - 2 * a, method="exact")
    assert float(clopper_pearson_lower(k, n, a)) == pytest.approx(test.low)
    assert float(clopper_pearson_upper(k, n, a)) == pytest.approx(test.high)


def _exact_lower_miss(n, p, a):
    ks = np.arange(n + 1)
    return float(np.sum(stats.binom.pmf(ks, n, p) * (clopper_pearson_lower(ks, n, a) > p)))


def _exact_upper_miss(n, p, a):
    ks = np.arange(n + 1)
    return float(np.sum(stats.binom.pmf(ks, n, p) * (clopper_pearson_upper(ks, n, a) < p)))


@pytest.mark.parametrize(
    ("n", "p", "a", "expected"),
    [(100, 0.9, 0.001, 3.217e-4), (1000, 0.5, 0.001, 8.653e-4), (50, 0.3, 0.05, 0.04776)],
)
def test_clopper_pearson_exact_miss_probability_stays_below_level(n, p, a, expected):
    miss = _exact_lower_miss(n, p, a)
    assert miss == pytest.approx(expected, rel=2e-3)
    assert miss <= a


def test_clopper_pearson_upper_side_exact_miss():
    assert _exact_upper_miss(100, 0.9, 0.001) == pytest.approx(8.076e-4, rel=2e-3)


def test_bernstein_lower_bound_by_hand():
    t = math.log(200)
    assert t == pytest.approx(5.298317, abs=1e-6)
    assert math.sqrt(2 * 0.01 * t / 100) == pytest.approx(0.032552, abs=1e-6)
    assert float(bernstein_lower(0.8, 0.01, 100, 0.01)) == pytest.approx(0.642571, abs=1e-6)
    # constant for a range of width 2 ([-1, 1]) doubles: 14 t / (3 * 99)
    wide = bernstein_half_width(0.0, 100, 0.01, width=2.0)
    assert float(wide) == pytest.approx(0.249752, abs=1e-6)


def test_bernstein_bounds_are_clipped_to_the_range():
    assert float(bernstein_upper(0.99, 0.01, 20, 0.01)) == 1.0
    assert float(bernstein_lower(0.01, 0.01, 20, 0.01)) == 0.0


@pytest.mark.parametrize(
    ("p", "sd", "eb", "cp"), [(0.9, 0.30, 4.45e-3, 3.57e-3), (0.9, 0.05, 9.35e-4, 3.57e-3)]
)
def test_bernstein_and_clopper_pearson_half_widths_at_large_n(p, sd, eb, cp):
    n, a = 100_000, 1e-4
    assert float(bernstein_half_width(sd**2, n, a)) == pytest.approx(eb, rel=5e-3)
    assert p - float(clopper_pearson_lower(p * n, n, a)) == pytest.approx(cp, rel=1e-2)


def test_bernstein_exact_miss_on_bernoulli_data():
    n, p, a = 1000, 0.5, 0.05
    ks = np.arange(n + 1)
    means = ks / n
    variances = ks * (n - ks) / (n * (n - 1))
    miss = np.sum(stats.binom.pmf(ks, n, p) * (bernstein_lower(means, variances, n, a) > p))
    assert float(miss) == pytest.approx(5.58e-4, rel=1e-2)


def test_bernstein_lower_bound_covers_a_low_variance_bounded_mean_by_simulation():
    # Beta(40, 10) on [0, 1]: mean 0.8, sd 0.056; EB lower bound at a = 0.1 over 2000 repetitions.
    rng = np.random.default_rng(0)
    a, n, reps = 0.1, 200, 2000
    draws = rng.beta(40, 10, size=(reps, n))
    lows = bernstein_lower(draws.mean(1), draws.var(1, ddof=1), n, a)
    miss = float(np.mean(lows > 0.8))
    assert miss <= a + 3 * math.sqrt(a * (1 - a) / reps)


def test_clopper_pearson_lower_bound_covers_bernoulli_mean_by_simulation():
    rng = np.random.default_rng(1)
    a, n, p, reps = 0.1, 100, 0.7, 2000
    lows = clopper_pearson_lower(rng.binomial(n, p, size=reps), n, a)
    assert float(np.mean(lows > p)) <= a + 3 * math.sqrt(a * (1 - a) / reps)


@pytest.mark.parametrize("level", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_levels_outside_the_open_unit_interval_are_rejected(level):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        clopper_pearson_lower(3, 10, level)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        bernstein_lower(0.5, 0.1, 10, level)


def test_bernstein_rejects_fewer_than_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        bernstein_lower(0.5, 0.0, 1, 0.01)
