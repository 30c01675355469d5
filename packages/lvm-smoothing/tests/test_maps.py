"""Simplex maps against their definitions and hand-computed values."""

import numpy as np
import pytest
import torch

from marginkit.lvm_smoothing.maps import Candidate, candidate_grid, hardmax, softmax, sparsemax


def _t(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_sparsemax_hand_values():
    z = _t(1.0, 0.0, -1.0).unsqueeze(0)
    out = sparsemax(z, _t(1.0, 2.0, 100.0))[:, 0]
    assert out[0].tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert out[1].tolist() == pytest.approx([0.75, 0.25, 0.0])
    assert out[2].tolist() == pytest.approx([0.343333, 0.333333, 0.323333], abs=1e-6)


def test_softmax_hand_values():
    out = softmax(_t(1.0, 0.0, -1.0).unsqueeze(0), _t(1.0))[0, 0]
    assert out.tolist() == pytest.approx([0.665241, 0.244728, 0.090031], abs=1e-6)


def test_sparsemax_is_exactly_one_hot_when_the_lead_reaches_the_temperature():
    out = sparsemax(_t(2.0, 1.0, 0.9, -3.0).unsqueeze(0), _t(1.0))[0, 0]
    assert out.tolist() == [1.0, 0.0, 0.0, 0.0]
    # a lead just below T leaves mass on the runner-up
    below = sparsemax(_t(2.0, 1.01, 0.9).unsqueeze(0), _t(1.0))[0, 0]
    assert float(below[1]) > 0


def _bisection_projection(u):
    low, high = u.min() - 1.0, u.max()
    for _ in range(200):
        tau = 0.5 * (low + high)
        if np.clip(u - tau, 0, None).sum() > 1:
            low = tau
        else:
            high = tau
    return np.clip(u - 0.5 * (low + high), 0, None)


def test_sparsemax_equals_a_bisection_projection_onto_the_simplex():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20, 7)) * 3
    temps = np.array([0.3, 1.0, 5.0])
    out = sparsemax(torch.from_numpy(z), torch.from_numpy(temps)).numpy()
    for i, t in enumerate(temps):
        for b in range(z.shape[0]):
            assert out[i, b] == pytest.approx(_bisection_projection(z[b] / t), abs=1e-6)
    assert out.sum(-1) == pytest.approx(np.ones((3, 20)))


def test_sparsemax_is_the_closest_simplex_point():
    rng = np.random.default_rng(1)
    u = rng.normal(size=5)
    projected = sparsemax(torch.from_numpy(u)[None], _t(1.0))[0, 0].numpy()
    others = rng.dirichlet(np.ones(5), size=2000)
    assert np.linalg.norm(u - projected) <= np.linalg.norm(u - others, axis=1).min()


def test_softmax_jacobian_norm_is_at_most_half_over_temperature():
    rng = np.random.default_rng(2)
    for _ in range(20):
        z = torch.from_numpy(rng.normal(size=6) * 4)
        jac = torch.autograd.functional.jacobian(lambda v: softmax(v[None], _t(1.0))[0, 0], z)
        assert torch.linalg.matrix_norm(jac, ord=2) <= 0.5 + 1e-12


def test_hardmax_breaks_ties_at_the_lowest_index():
    assert hardmax(_t(1.0, 3.0, 3.0)).tolist() == [0.0, 1.0, 0.0]


def test_candidate_grid_puts_hardmax_first_then_sparsemax_then_softmax():
    grid = candidate_grid(temperatures=[2.0, 0.5])
    assert [str(c) for c in grid] == [
        "hardmax",
        "sparsemax@0.5",
        "sparsemax@2",
        "softmax@0.5",
        "softmax@2",
    ]
    assert len(candidate_grid()) == 101


def test_candidates_reject_bad_temperatures_and_maps():
    with pytest.raises(ValueError, match="temperature > 0"):
        Candidate("softmax", 0.0)
    with pytest.raises(ValueError, match="unknown simplex map"):
        Candidate("entmax", 1.0)
