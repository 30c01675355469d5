"""Bridge marginals and paths against closed forms."""

import math

import numpy as np

from marginkit.mmsb import Brownian, Linear
from marginkit.mmsb.bridges import bridge_marginal, sample_bridges
from marginkit.mmsb.transitions import propagate


def _grid_with_midpoint(gap, s, steps=10):
    return np.concatenate([np.linspace(0, s, steps + 1), np.linspace(s, gap, steps + 1)[1:]])


def test_brownian_bridge_variance_is_sigma2_s_d_minus_s_over_d():
    grid = _grid_with_midpoint(2.0, 1.0)
    transition = propagate(Brownian(1), np.zeros((1, 1)), 0.0, grid, 0.1)
    draws = bridge_marginal(
        transition.select(np.zeros(40_000, dtype=int)),
        10,
        np.full((40_000, 1), 1.0),
        np.random.default_rng(0),
    )
    assert abs(draws.mean() - 0.5) < 0.002
    assert abs(draws.var() - 0.005) < 0.0002


def test_ou_bridge_marginal_matches_closed_form():
    # dX = -0.5 X dt + dW from 0 to 1 over D = 2, at s = 1.
    grid = _grid_with_midpoint(2.0, 1.0)
    reference = Linear(1, A=np.array([[-0.5]]))
    transition = propagate(reference, np.zeros((1, 1)), 0.0, grid, 1.0)
    draws = bridge_marginal(
        transition.select(np.zeros(100_000, dtype=int)),
        10,
        np.ones((100_000, 1)),
        np.random.default_rng(1),
    )
    gain = (1 - math.exp(-1)) * math.exp(-0.5) / (1 - math.exp(-2))
    assert abs(gain - 0.4434094420) < 1e-9
    assert abs(draws.mean() - 0.4434094420) < 0.01
    assert abs(draws.var() - 0.4621171573) < 0.01


def test_sampled_bridge_paths_pin_both_ends_and_match_the_marginal():
    grid = _grid_with_midpoint(2.0, 1.0)
    reference = Linear(1, A=np.array([[-0.5]]))
    transition = propagate(reference, np.zeros((1, 1)), 0.0, grid, 1.0)
    count = 50_000
    paths = sample_bridges(
        transition.select(np.zeros(count, dtype=int)),
        np.ones((count, 1)),
        np.random.default_rng(2),
    )
    assert paths.shape == (count, 21, 1)
    assert np.all(paths[:, 0] == 0.0) and np.all(paths[:, -1] == 1.0)
    assert abs(paths[:, 10, 0].mean() - 0.4434094420) < 0.015
    assert abs(paths[:, 10, 0].var() - 0.4621171573) < 0.015
