"""Exact W2 and coupling composition against hand-computed values."""

import math

import numpy as np

from marginkit.mmsb.metrics import compose_couplings, w2
from marginkit.mmsb.model import SBIRR


def test_w2_matches_sorted_one_dimensional_transport():
    # Sorted matching: (0.5^2 + 1.5^2 + 2^2) / 3.
    assert abs(w2(np.array([0.0, 1.0, 2.0]), np.array([0.5, 2.5, 4.0])) - 1.4719601444) < 1e-9
    assert abs(math.sqrt((0.25 + 2.25 + 4) / 3) - 1.4719601444) < 1e-9


def test_w2_with_unequal_counts_and_shifts():
    assert abs(w2(np.array([0.0]), np.array([0.0, 3.0, 3.0])) - math.sqrt(6)) < 1e-12
    cloud = np.random.default_rng(0).normal(size=(40, 2))
    assert abs(w2(cloud, cloud + np.array([3.0, 4.0])) - 5.0) < 1e-9


def test_composed_coupling_and_chained_draws_agree():
    pi0 = np.array([[0.4, 0.1], [0.1, 0.4]])
    pi1 = np.array([[0.3, 0.2], [0.1, 0.4]])
    composed = compose_couplings([pi0, pi1], [np.array([0.5, 0.5])])
    np.testing.assert_allclose(composed, [[0.26, 0.24], [0.14, 0.36]], atol=1e-12)
    rng = np.random.default_rng(0)
    draws = 100_000
    start = rng.choice(2, size=draws, p=[0.5, 0.5])
    middle = SBIRR._conditional(pi0, start, rng)
    end = SBIRR._conditional(pi1, middle, rng)
    joint = np.histogram2d(start, end, bins=[2, 2], range=[[-0.5, 1.5], [-0.5, 1.5]])[0] / draws
    np.testing.assert_allclose(joint, composed, atol=0.01)
    # Starting in the middle snapshot: backward through pi0, forward through pi1.
    middle = rng.choice(2, size=draws, p=[0.5, 0.5])
    back = SBIRR._conditional(pi0.T, middle, rng)
    fore = SBIRR._conditional(pi1, middle, rng)
    joint = np.histogram2d(back, fore, bins=[2, 2], range=[[-0.5, 1.5], [-0.5, 1.5]])[0] / draws
    np.testing.assert_allclose(joint, composed, atol=0.01)
