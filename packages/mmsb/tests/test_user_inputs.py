"""Inputs a user brings: even snapshot counts, one prediction time, other CSV column names."""

import json

import numpy as np
import pytest

from marginkit.mmsb import Snapshots
from marginkit.mmsb.cli import main


def _translating(times, n=40, seed=0):
    """Clouds centred at (t, 0) with spread 0.1: a pure translation along x."""
    rng = np.random.default_rng(seed)
    return [np.array([t, 0.0]) + 0.1 * rng.standard_normal((n, 2)) for t in times]


def test_split_alternate_with_an_even_count_keeps_the_last_snapshot_for_training():
    snaps = Snapshots([0.0, 1.0, 2.5, 3.0], _translating([0, 1, 2.5, 3]))
    train, held = snaps.split_alternate()
    assert train.times.tolist() == [0.0, 2.5, 3.0]
    assert held.times.tolist() == [1.0]


def test_holding_out_an_end_snapshot_is_rejected_before_fitting():
    snaps = Snapshots([0.0, 1.0, 2.0], _translating([0, 1, 2]))
    with pytest.raises(ValueError, match="first or last"):
        snaps.split(heldout_times=[2.0])
    with pytest.raises(ValueError, match="first or last"):
        snaps.split(heldout_times=[0.0])


def test_npz_with_more_clouds_than_times_is_rejected(tmp_path):
    path = tmp_path / "snaps.npz"
    clouds = _translating([0, 1, 2])
    np.savez(path, times=np.array([0.0, 1.0]), X_0=clouds[0], X_1=clouds[1], X_2=clouds[2])
    with pytest.raises(ValueError, match=r"2 entries.*X_2"):
        Snapshots.from_npz(path)


def test_csv_with_day_column_fits_and_predicts_one_time(tmp_path):
    times = [0.0, 1.0, 2.0, 3.0]
    clouds = _translating(times)
    rows = np.vstack([np.column_stack([np.full(len(c), t), c]) for t, c in zip(times, clouds)])
    data = tmp_path / "cells.csv"
    np.savetxt(data, rows, delimiter=",", header="day,g1,g2", comments="", fmt="%.6f")
    out = tmp_path / "fit"
    common = ["--data", str(data), "--time-column", "day"]
    main(["fit", *common, "--reference", "brownian", "--sbirr.n-outer", "0",
                "--no-plot", "--output-dir", str(out)])  # fmt: skip
    fit = json.loads((out / "fit.json").read_text())
    assert set(fit["heldout_w2"]) == {"1.0"}  # 4 snapshots: t=3 trains, t=1 is scored
    target = tmp_path / "pred.npz"
    main(["predict", *common, "--fit-json", str(out / "fit.json"), "--times", "1.5",
          "--n", "400", "--output", str(target)])  # fmt: skip
    with np.load(target) as predicted:
        assert predicted["times"].tolist() == [1.5]
        cloud = predicted["X_0"]
    assert cloud.shape == (400, 2)
    # Brownian bridge between coupled pairs at s = 0.75 of the gap [0, 2]: its mean is
    # 0.25 * mean(cloud at 0) + 0.75 * mean(cloud at 2), whatever the coupling.
    expected = 0.25 * clouds[0].mean(0) + 0.75 * clouds[2].mean(0)
    np.testing.assert_allclose(cloud.mean(0), expected, atol=0.05)
