"""The alternating fit on simulated linear snapshots with a known drift."""

import math

import numpy as np
import pytest

from marginkit.mmsb import SBIRR, Brownian, Linear, SBIRRConfig, Snapshots, simulate
from marginkit.mmsb.metrics import heldout_w2

A_TRUE = simulate.DEFAULT_A


@pytest.fixture(scope="module")
def linear_data():
    return simulate.linear(n=120, seed=0).split_alternate()


@pytest.fixture(scope="module")
def refined(linear_data):
    train, _ = linear_data
    return SBIRR(Linear(2), SBIRRConfig(n_outer=5, tol=0.0)).fit(train)


def test_linear_drift_is_recovered_within_a_tenth(refined):
    assert np.linalg.norm(refined.reference.A - A_TRUE) < 0.1
    assert np.linalg.norm(refined.reference.c) < 0.1


def test_refined_bridge_beats_the_vanilla_bridge_on_heldout_times(linear_data, refined):
    train, held = linear_data
    vanilla = SBIRR(Brownian(2), SBIRRConfig(n_outer=0)).fit(train)
    vanilla_w2 = np.mean(list(heldout_w2(vanilla, held).values()))
    refined_w2 = np.mean(list(heldout_w2(refined, held).values()))
    assert refined_w2 < 0.6 * vanilla_w2


def test_objective_does_not_increase_across_iterations(refined):
    values = refined.history["objective/V"]
    assert values[1] < values[0]
    scale = abs(values[0] - values[-1])
    for earlier, later in zip(values[1:], values[2:]):
        assert later <= earlier + 0.02 * scale


def test_coupling_marginals_hold_to_1e8_and_carry_provenance(refined):
    for k, coupling in enumerate(refined.couplings):
        assert coupling.converged and coupling.interval == k
        assert max(coupling.error_source, coupling.error_target) <= 1e-8
        assert coupling.gap == 1.0 and coupling.sigma == 0.1


def test_starting_at_the_true_drift_stays_there(linear_data):
    train, _ = linear_data
    start = Linear(2, A=A_TRUE.copy())
    model = SBIRR(start, SBIRRConfig(n_outer=3, tol=0.0, init_bridge="reference")).fit(train)
    assert np.linalg.norm(model.reference.A - A_TRUE) < 0.05


def test_irregular_times_with_unequal_counts_recover_the_drift():
    times = [0.0, 0.4, 1.5, 1.7, 2.5]
    snaps = simulate.linear(n=[150, 90, 150, 110, 150], times=times, seed=2)
    model = SBIRR(Linear(2), SBIRRConfig(n_outer=5, tol=0.0)).fit(snaps)
    assert np.linalg.norm(model.reference.A - A_TRUE) < 0.1


def test_rescaled_time_gives_the_same_couplings():
    # t -> kappa t, A -> A / kappa, sigma -> sigma / sqrt(kappa) leaves every coupling unchanged.
    snaps = simulate.linear(n=40, times=[0.0, 0.4, 1.5], seed=3)
    kappa = 2.5
    scaled = Snapshots(kappa * snaps.times, snaps.particles)
    config = SBIRRConfig(n_outer=0, init_bridge="reference", dt_max=0.01)
    base = SBIRR(Linear(2, A=A_TRUE), config).fit(snaps)
    other = SBIRR(
        Linear(2, A=A_TRUE / kappa),
        config.replace(sigma=0.1 / math.sqrt(kappa), dt_max=0.01 * kappa),
    ).fit(scaled)
    for left, right in zip(base.couplings, other.couplings, strict=True):
        np.testing.assert_allclose(left.plan, right.plan, atol=1e-10)


def test_tolerance_stops_the_outer_loop_early(linear_data):
    train, _ = linear_data
    model = SBIRR(Linear(2), SBIRRConfig(n_outer=10, tol=0.05)).fit(train)
    changes = model.history["theta/change"]
    assert len(changes) < 11 and changes[-1] < 0.05
    assert all(change >= 0.05 for change in changes[1:-1])


def test_trajectories_pass_through_snapshot_particles(refined, linear_data):
    train, _ = linear_data
    times, paths = refined.sample_trajectories(n_paths=30, start=2, seed=0)
    assert paths.shape == (30, times.size, 2)
    for k, t in enumerate(train.times):
        column = paths[:, int(np.argmin(np.abs(times - t)))]
        distances = np.abs(column[:, None, :] - train.particles[k][None]).sum(-1).min(1)
        assert distances.max() < 1e-12


def test_prediction_outside_the_fitted_range_is_an_error(refined):
    with pytest.raises(ValueError, match="outside the fitted range"):
        refined.predict_marginal(5.0, 10)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sigma": 0.0}, "sigma must be positive"),
        ({"bridge": "sinkhorn_fast"}, "bridge must be one of"),
        ({"bridge": "exact_ot"}, "without refinement"),
        ({"damping": 0.0}, "damping"),
    ],
)
def test_bad_settings_are_rejected_with_the_field_named(changes, message):
    with pytest.raises(ValueError, match=message):
        SBIRRConfig(**changes)


def test_official_preset_uses_the_gp_bridge_without_stopping_rule():
    config = SBIRRConfig.preset("official")
    assert (config.bridge, config.ipf_iter, config.n_outer, config.tol) == ("gp_ipf", 10, 10, 0.0)
    with pytest.raises(ValueError, match="unknown preset"):
        SBIRRConfig.preset("fast")
