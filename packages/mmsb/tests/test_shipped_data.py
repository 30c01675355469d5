"""The four shipped benchmark files load, match the simulators' laws and fit."""

import numpy as np
import pytest

from marginkit.mmsb import (
    SBIRR,
    LotkaVolterra,
    Repressilator,
    Rotation,
    SBIRRConfig,
    Snapshots,
    simulate,
)
from marginkit.mmsb.metrics import noise_floor, relative_errors, w2

FILES = {
    "LV_data.npz": 2,
    "Repressilatormrna_data.npz": 3,
    "Repressilatormrnaprotein_data.npz": 3,
    "GoM_data.npz": 2,
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_file_loads_as_float64_with_absolute_times(data_dir, name):
    snaps = Snapshots.from_npz(data_dir / name)
    assert len(snaps) == 11 and snaps.counts == (200,) * 11 and snaps.dim == FILES[name]
    assert snaps.particles[0].dtype == np.float64
    last = 8.0 if name.startswith("GoM") else 10.0
    np.testing.assert_allclose(snaps.times, np.linspace(0, last, 11), atol=1e-12)


@pytest.mark.parametrize(
    ("name", "simulator"),
    [
        ("LV_data.npz", simulate.lotka_volterra),
        ("Repressilatormrna_data.npz", simulate.repressilator),
    ],
)
def test_simulator_reproduces_the_file_law(data_dir, name, simulator):
    snaps = Snapshots.from_npz(data_dir / name)
    ours = simulator(times=snaps.times[[2, 6, 10]], seed=5)
    rng = np.random.default_rng(0)
    for cloud, theirs in zip(ours.particles, snaps.particles[2::4], strict=True):
        floor = noise_floor(theirs, rng)
        assert w2(cloud, theirs) <= 2 * floor + 0.02


def test_lotka_volterra_file_fits_near_the_true_parameters(data_dir):
    snaps = Snapshots.from_npz(data_dir / "LV_data.npz").subset([0, 2, 4])
    model = SBIRR(LotkaVolterra(), SBIRRConfig(n_outer=4, tol=0.0)).fit(snaps)
    errors = relative_errors(model.reference.parameters(), simulate.LV_TRUTH)
    assert max(errors.values()) < 0.15, errors


@pytest.mark.parametrize(
    "name", ["Repressilatormrna_data.npz", "Repressilatormrnaprotein_data.npz"]
)
def test_repressilator_files_fit_with_converged_couplings(data_dir, name):
    snaps = Snapshots.from_npz(data_dir / name).subset([0, 1])
    rng = np.random.default_rng(0)
    keep = [rng.choice(200, 80, replace=False) for _ in range(2)]
    small = Snapshots(snaps.times, [c[i] for c, i in zip(snaps.particles, keep, strict=True)])
    model = SBIRR(Repressilator(), SBIRRConfig(n_outer=1, dt_max=0.05)).fit(small)
    assert all(np.isfinite(v) and v > 0 for v in model.reference.parameters().values())
    assert all(c.converged for c in model.couplings)
    assert model.history["objective/V"][-1] < model.history["objective/V"][0]


def test_gulf_of_mexico_rotation_fit_finds_the_eddy(data_dir):
    snaps = Snapshots.from_npz(data_dir / "GoM_data.npz").subset([0, 2, 4, 6, 8, 10])
    snaps = Snapshots(snaps.times, [cloud[:100] for cloud in snaps.particles])
    model = SBIRR(Rotation(centre=(0.0, -0.3)), SBIRRConfig(n_outer=2)).fit(snaps)
    fitted = model.reference.parameters()
    # The data were made from a clockwise eddy: expect s of order 0.7 near (0, -0.3).
    assert 0.4 < fitted["scale"] < 1.0
    assert abs(fitted["c2"] + 0.3) < 0.15 and abs(fitted["c1"]) < 0.15
