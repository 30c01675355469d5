"""GP-IPF: the GP posterior mean by hand and a Gaussian-to-Gaussian bridge."""

import math

import numpy as np
import pytest

from marginkit.mmsb import SBIRR, Linear, SBIRRConfig, simulate
from marginkit.mmsb.gp_ipf import GPDrift, euler_maruyama, gp_ipf_interval
from marginkit.mmsb.metrics import w2
from marginkit.mmsb.transitions import interval_grid


def test_gp_posterior_mean_matches_hand_computation():
    inputs = np.array([[0.0, 0.0], [1.0, 0.0]])
    drift = GPDrift(inputs, np.array([[1.0], [0.0]]), step=0.1, sigma=0.1, lengthscale=1.0)
    # k = 10 exp(-r); K + (0.1 + 1e-6) I solved by hand for the 2 x 2 case.
    gram = 10 * np.array([[1.0, math.exp(-1)], [math.exp(-1), 1.0]]) + (0.1 + 1e-6) * np.eye(2)
    alpha = np.linalg.solve(gram, [1.0, 0.0])
    for (x, s), expected in [
        ((0.0, 0.0), 0.9885844231),
        ((0.5, 0.0), 0.4401913532),
        ((0.0, 1.0), 0.3188650657),
    ]:
        distances = np.hypot(x - inputs[:, 0], s - inputs[:, 1])
        assert abs(10 * np.exp(-distances) @ alpha - expected) < 1e-9
        assert abs(drift(np.array([[x]]), s)[0, 0] - expected) < 1e-9


def test_gp_ipf_bridges_two_gaussians_with_the_entropic_cross_covariance():
    rng = np.random.default_rng(0)
    source, target = rng.standard_normal((200, 1)), 1.0 + rng.standard_normal((200, 1))
    grid = interval_grid(1.0, 0.05)
    bridge = gp_ipf_interval(
        source,
        target,
        lambda x, s: np.zeros_like(x),
        grid,
        sigma=1.0,
        ipf_iter=3,
        lengthscale=1.0,
        max_points=1000,
        rng=rng,
    )
    paths = euler_maruyama(bridge.forward, source, grid, 1.0, rng)
    assert w2(paths[:, -1], target) < 0.25
    cross = np.cov(paths[:, 0, 0], paths[:, -1, 0])[0, 1]
    assert abs(cross - 0.6180339887) < 0.2


def test_gp_ipf_engine_fits_and_predicts_inside_sbirr():
    snaps = simulate.linear(n=40, times=[0.0, 1.0], seed=0)
    config = SBIRRConfig(bridge="gp_ipf", n_outer=1, ipf_iter=2, gp_max_points=500, dt_max=0.05)
    # The first bridge step (zero drift, snapshots ~1.8 apart, sigma sqrt(D) = 0.1) cannot
    # carry the mass across and says so; the refined reference then can.
    with pytest.warns(RuntimeWarning, match="far from the target"):
        model = SBIRR(Linear(2), config).fit(snaps)
    assert np.all(np.isfinite(model.reference.A))
    assert model.predict_marginal(0.5, 25, seed=0).shape == (25, 2)
    assert model.history["gp/end_w2/0"][-1] < 0.5 * w2(*snaps.particles)


def test_gp_memory_guard_names_the_fix():
    with pytest.raises(MemoryError, match="gp_max_points"):
        GPDrift(np.zeros((30_000, 2)), np.zeros((30_000, 1)), 0.1, 0.1, 1.0)
