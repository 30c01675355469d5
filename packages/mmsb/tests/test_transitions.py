"""Exact Gaussian transitions (Van Loan), the LNA and time rescaling."""

import math

import numpy as np
import torch

from marginkit.mmsb import Linear, Parametric, Rotation
from marginkit.mmsb.transitions import interval_grid, propagate, van_loan


def test_van_loan_matches_one_dimensional_ou_closed_form():
    F, g, cov = van_loan(np.array([[-0.5]]), np.array([1.0]), 0.1, 2.0)
    assert abs(F[0, 0] - math.exp(-1)) < 1e-12
    assert abs(cov[0, 0] - 0.01 * (1 - math.exp(-2))) < 1e-12
    assert abs(g[0] - 2 * (1 - math.exp(-1))) < 1e-12


def test_van_loan_matches_damped_rotation_closed_form():
    A = np.array([[-0.2, -1.0], [1.0, -0.2]])
    F, _, cov = van_loan(A, np.zeros(2), 0.1, 1.0)
    rotation = math.exp(-0.2) * np.array([[math.cos(1), -math.sin(1)], [math.sin(1), math.cos(1)]])
    np.testing.assert_allclose(F, rotation, atol=1e-10)
    # sigma^2 (1 - e^{-0.4}) / 0.4 on the diagonal because the rotation part is orthogonal.
    np.testing.assert_allclose(cov, 0.01 * (1 - math.exp(-0.4)) / 0.4 * np.eye(2), atol=1e-10)
    np.testing.assert_allclose(cov[0, 0], 0.0082419988, atol=1e-10)


def test_quarter_turn_rotation_has_isotropic_noise():
    A = (math.pi / 2) * np.array([[0.0, -1.0], [1.0, 0.0]])
    F, _, cov = van_loan(A, np.zeros(2), 0.1, 1.0)
    np.testing.assert_allclose(F, [[0, -1], [1, 0]], atol=1e-12)
    np.testing.assert_allclose(cov, 0.01 * np.eye(2), atol=1e-12)


def test_elliptic_rotation_reference_returns_after_a_full_period():
    reference = Rotation(scale=1.0, log_ratio=math.log(4.0))
    A, c = reference.linear_coefficients()
    # Angular frequency s e^{-l/2} = 1/2, so the period is 4 pi.
    F_full, _, _ = van_loan(A, c, 0.1, 4 * math.pi)
    F_half, _, _ = van_loan(A, c, 0.1, 2 * math.pi)
    np.testing.assert_allclose(F_full, np.eye(2), atol=1e-9)
    np.testing.assert_allclose(F_half, -np.eye(2), atol=1e-9)
    _, _, cov = van_loan(A, c, 0.1, 1.0)
    np.testing.assert_allclose(
        cov, [[0.0094055162, -0.0034477327], [-0.0034477327, 0.0123779352]], atol=1e-9
    )


def test_time_rescaling_leaves_transition_unchanged():
    A, c, sigma, gap, kappa = (
        np.array([[-0.3, 0.7], [-0.4, -0.1]]),
        np.array([0.2, -0.1]),
        0.2,
        0.7,
        3.5,
    )
    F1, g1, S1 = van_loan(A, c, sigma, gap)
    F2, g2, S2 = van_loan(A / kappa, c / kappa, sigma / math.sqrt(kappa), kappa * gap)
    for left, right in ((F1, F2), (g1, g2), (S1, S2)):
        np.testing.assert_allclose(left, right, atol=1e-10)


def test_lna_on_a_linear_drift_equals_van_loan():
    A = np.array([[-0.2, -1.0], [1.0, -0.2]])
    c = np.array([0.3, -0.1])
    module = torch.nn.Linear(2, 2).double()
    with torch.no_grad():
        module.weight.copy_(torch.as_tensor(A))
        module.bias.copy_(torch.as_tensor(c))
    sources = np.array([[2.0, 0.0], [1.0, -1.0]])
    grid = interval_grid(1.0, 0.02)
    lna = propagate(Parametric(module), sources, 0.0, grid, 0.1)
    exact = propagate(Linear(2, A=A, c=c), sources, 0.0, grid, 0.1)
    np.testing.assert_allclose(lna.means, exact.means, atol=1e-8)
    np.testing.assert_allclose(lna.cov[:, 0], exact.cov[:, 0], atol=1e-8)
    np.testing.assert_allclose(lna.phi[:, 1], exact.phi[:, 0], atol=1e-8)
    np.testing.assert_allclose(lna.step_cov[:, 0], exact.step_cov[:, 0], atol=1e-8)


def test_interval_grid_never_overshoots_the_gap():
    grid = interval_grid(0.37, 0.02)
    assert grid[-1] == 0.37 and grid.size - 1 == 20
    assert interval_grid(1.7, 0.02).size - 1 == 85
