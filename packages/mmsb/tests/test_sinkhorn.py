"""Static bridges: log-domain Sinkhorn against closed-form Brownian couplings."""

import math
import warnings

import numpy as np
import ot
import pytest
from scipy.stats import norm

from marginkit.mmsb import Brownian, Linear, SinkhornConvergenceWarning, log_sinkhorn
from marginkit.mmsb.bridges import brownian_cost, transition_cost
from marginkit.mmsb.transitions import interval_grid, propagate

HALF = np.array([0.5, 0.5])


@pytest.mark.parametrize("backend", ["pot", "torch"])
def test_two_point_brownian_coupling_matches_closed_form(backend):
    cost = brownian_cost(np.array([[0.0], [1.0]]), np.array([[0.0], [1.0]]), 1.0, 0.5)
    plan = log_sinkhorn(HALF, HALF, cost, backend=backend).plan
    p = math.e / (2 * (1 + math.e))
    np.testing.assert_allclose(plan, [[p, 0.5 - p], [0.5 - p, p]], atol=1e-9)


@pytest.mark.parametrize("backend", ["pot", "torch"])
def test_log_domain_survives_kernel_underflow(backend):
    cost = brownian_cost(np.array([[0.0], [1.0]]), np.array([[10.0], [11.0]]), 1.0, 0.05)
    assert cost.min() >= 810 - 1e-9  # exp(-C) is 0 in float64 for every entry
    coupling = log_sinkhorn(HALF, HALF, cost, backend=backend, max_iter=2000)
    p = math.exp(10) / (2 * (1 + math.exp(10)))
    assert coupling.converged
    assert abs(coupling.plan[0, 0] - p) < 1e-9 and abs(p - 0.4999773011) < 1e-10


def test_pot_and_torch_backends_agree_and_match_pot_on_squared_distances():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 2)), rng.normal(1.0, 1.0, size=(25, 2))
    a, b = np.full(30, 1 / 30), np.full(25, 1 / 25)
    sigma, gap = 0.7, 0.6
    cost = brownian_cost(x, y, sigma, gap)
    np.testing.assert_allclose(cost, ot.dist(x, y) / (2 * sigma**2 * gap), atol=1e-10)
    transition = propagate(Brownian(2), x, 0.0, interval_grid(gap, 0.02), sigma)
    exact_cost, _ = transition_cost(transition.means[-1], transition.cov[-1], y)
    np.testing.assert_allclose(exact_cost, cost, atol=1e-10)
    ours = log_sinkhorn(a, b, cost, backend="pot").plan
    theirs = log_sinkhorn(a, b, cost, backend="torch").plan
    reference = ot.sinkhorn(
        a,
        b,
        ot.dist(x, y),
        2 * sigma**2 * gap,
        method="sinkhorn_log",
        numItermax=10_000,
        stopThr=1e-12,
    )
    np.testing.assert_allclose(ours, theirs, atol=1e-8)
    np.testing.assert_allclose(ours, reference, atol=1e-8)


def _quantile_cloud(n):
    return norm.ppf((np.arange(1, n + 1) - 0.5) / n)[:, None]


@pytest.mark.parametrize(
    ("sigma", "gap", "expected"), [(1.0, 1.0, 0.6180339887), (1.0, 0.5, 0.7807764064)]
)
def test_gaussian_to_gaussian_bridge_has_closed_form_cross_covariance(sigma, gap, expected):
    # Static SB between N(0,1) and N(0,1) at epsilon = sigma^2 D: (-eps + sqrt(eps^2 + 4)) / 2.
    eps = sigma**2 * gap
    assert abs((-eps + math.sqrt(eps**2 + 4)) / 2 - expected) < 1e-9
    x = _quantile_cloud(1000)
    a = np.full(1000, 1e-3)
    plan = log_sinkhorn(a, a, brownian_cost(x, x, sigma, gap)).plan
    assert abs(float(x[:, 0] @ plan @ x[:, 0]) - expected) < 0.002


def test_stationary_ou_reference_couples_with_its_autocorrelation():
    x = _quantile_cloud(1000)
    a = np.full(1000, 1e-3)
    transition = propagate(Linear(1, A=np.array([[-0.5]])), x, 0.0, interval_grid(1.0, 0.02), 1.0)
    cost, _ = transition_cost(transition.means[-1], transition.cov[-1], x)
    plan = log_sinkhorn(a, a, cost).plan
    assert abs(float(x[:, 0] @ plan @ x[:, 0]) - math.exp(-0.5)) < 0.002


def test_unconverged_sinkhorn_warns_or_raises_when_strict():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    a = np.full(20, 0.05)
    hard = brownian_cost(x, y, 0.05, 1.0)
    with pytest.warns(SinkhornConvergenceWarning):
        log_sinkhorn(a, a, hard, max_iter=2)
    with pytest.raises(RuntimeError, match="marginal error"):
        log_sinkhorn(a, a, hard, max_iter=2, strict=True)
    cost = brownian_cost(x, y, 0.5, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coupling = log_sinkhorn(a, a, cost)
    assert max(coupling.error_source, coupling.error_target) <= 1e-8


def test_sinkhorn_rejects_zero_weights_and_bad_costs():
    with pytest.raises(ValueError, match="positive"):
        log_sinkhorn(np.array([1.0, 0.0]), HALF, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        log_sinkhorn(HALF, HALF, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        log_sinkhorn(HALF, HALF, np.array([[0.0, np.nan], [0.0, 0.0]]))
