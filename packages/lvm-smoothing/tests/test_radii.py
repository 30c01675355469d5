"""Radii and the Gaussian-smoothing Lipschitz lemma against hand-computed values."""

import math

import numpy as np
import pytest
from scipy import special

from marginkit.lvm_smoothing.radii import (
    all_radii,
    radius_lipschitz,
    radius_mono,
    radius_multi,
    smoothed_lipschitz,
)


@pytest.mark.parametrize(
    ("p_a", "p_b", "multi", "mono", "lip"),
    [
        (0.9, 0.1, 1.281552, 1.281552, 1.002651),
        (0.7, 0.2, 0.683011, 0.524401, 0.626657),
        (0.55, 0.45, 0.125661, 0.125661, 0.125331),
    ],
)
def test_three_radii_at_sigma_one(p_a, p_b, multi, mono, lip):
    radii = all_radii(p_a, p_b, 1.0)
    assert radii == pytest.approx([multi, mono, lip], abs=1e-6)


@pytest.mark.parametrize(
    ("l_f", "sigma", "expected_lip", "expected_multi"),
    [(0.5, 0.25, 1.202082, 0.365801), (0.5, 0.5, 1.207731, 0.731601), (2.0, 0.5, 0.577369, None)],
)
def test_lipschitz_margin_radius_with_known_probability_lipschitz(
    l_f, sigma, expected_lip, expected_multi
):
    assert float(radius_lipschitz(0.9, 0.05, sigma, l_f)) == pytest.approx(expected_lip, abs=1e-6)
    multi = float(radius_multi(0.9, 0.05, sigma))
    if expected_multi is not None:
        assert multi == pytest.approx(expected_multi, abs=1e-6)
    else:
        assert float(radius_lipschitz(0.9, 0.05, sigma, l_f)) < multi


def test_mono_radius_never_exceeds_multi_and_equals_it_when_runner_up_is_complement():
    rng = np.random.default_rng(0)
    p_a = rng.uniform(0.5, 0.999, 200)
    p_b = rng.uniform(0.0, 1 - p_a)
    assert np.all(radius_multi(p_a, p_b, 0.5) >= radius_mono(p_a, 0.5) - 1e-12)
    assert radius_multi(p_a, 1 - p_a, 0.5) == pytest.approx(radius_mono(p_a, 0.5))


def test_unknown_lipschitz_radius_never_exceeds_the_multi_class_radius():
    rng = np.random.default_rng(1)
    p_a = rng.uniform(0.3, 0.999, 500)
    p_b = rng.uniform(0.0, 1 - p_a)
    assert np.all(radius_lipschitz(p_a, p_b, 0.7) <= radius_multi(p_a, p_b, 0.7) + 1e-12)


def test_no_radius_when_lower_bound_does_not_beat_runner_up():
    assert all_radii(0.4, 0.45, 1.0) == pytest.approx([0.0, 0.0, 0.0])


@pytest.mark.parametrize(
    ("lip", "width", "sigma", "expected"),
    [(1.0, 1.0, 0.5, 0.682689), (2.0, 1.0, 0.25, 1.365379), (1e6, 1.0, 0.5, 0.797885)],
)
def test_smoothed_lipschitz_lemma_values(lip, width, sigma, expected):
    assert smoothed_lipschitz(lip, width, sigma) == pytest.approx(expected, abs=1e-6)


def test_smoothed_lipschitz_is_the_slope_of_a_smoothed_ramp():
    # h(x) = clip(2x, 0, 1), sigma = 0.25: E h(x + d) = integral of 2 Phi over the ramp.
    sigma = 0.25

    def smoothed(x):
        def phi_int(u):  # integral of Phi(u / sigma) du
            z = u / sigma
            return u * special.ndtr(z) + sigma * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

        # E clip(2(x + d), 0, 1) = 2 * [I(x) - I(x - 1/2)], I(u) = int_{-inf}^{u} Phi(v/s) dv
        return 2 * (phi_int(x) - phi_int(x - 0.5))

    step = 1e-5
    slope = (smoothed(0.25 + step) - smoothed(0.25 - step)) / (2 * step)
    assert slope == pytest.approx(smoothed_lipschitz(2.0, 1.0, sigma), abs=1e-6)
    assert slope == pytest.approx(1.365379, abs=1e-6)


def test_infinite_lipschitz_limit_is_width_over_sigma_root_two_pi():
    assert smoothed_lipschitz(math.inf, 1.0, 0.5) == pytest.approx(
        1 / (0.5 * math.sqrt(2 * math.pi))
    )
