"""Snapshot readers, writers, splits and the errors bad input gets."""

import numpy as np
import pytest

from marginkit.mmsb import Snapshots, simulate


def _clouds(k=3, n=5, d=2):
    rng = np.random.default_rng(0)
    return [rng.normal(size=(n + i, d)) for i in range(k)]


def test_one_snapshot_is_rejected():
    with pytest.raises(ValueError, match="at least 2 snapshots"):
        Snapshots([0.0], _clouds(1))


def test_nan_is_rejected_with_its_snapshot_and_particle():
    clouds = _clouds()
    clouds[1][3, 0] = np.nan
    with pytest.raises(ValueError, match="snapshot 1 .* particle 3"):
        Snapshots([0, 1, 2], clouds)


def test_mismatched_dimensions_are_rejected():
    clouds = _clouds()
    clouds[2] = np.zeros((4, 3))
    with pytest.raises(ValueError, match="one dimension"):
        Snapshots([0, 1, 2], clouds)


@pytest.mark.parametrize("times", [[0, 2, 1], [0, 1, 1]])
def test_non_increasing_times_are_rejected(times):
    with pytest.raises(ValueError, match="strictly increasing"):
        Snapshots(times, _clouds())


def test_zero_weights_and_count_mismatch_are_rejected():
    clouds = _clouds(2)
    with pytest.raises(ValueError, match="positive"):
        Snapshots([0, 1], clouds, [np.ones(5), np.r_[np.ones(5), 0.0]])
    with pytest.raises(ValueError, match="4 weights for 5"):
        Snapshots([0, 1], clouds, [np.ones(4), np.ones(6)])
    with pytest.raises(ValueError, match="2 times but 3"):
        Snapshots([0, 1], _clouds(3))


def test_npz_round_trip_keeps_unequal_counts_and_weights(tmp_path):
    clouds = _clouds()
    snaps = Snapshots([0.0, 0.4, 1.5], clouds, [np.arange(1, len(c) + 1) for c in clouds])
    snaps.to_npz(tmp_path / "s.npz")
    back = Snapshots.from_npz(tmp_path / "s.npz")
    assert back.counts == (5, 6, 7)
    np.testing.assert_array_equal(back.times, [0.0, 0.4, 1.5])
    np.testing.assert_allclose(back.weights[0], np.arange(1, 6) / 15)


def test_benchmark_npz_reads_dts_as_absolute_times_or_gaps(tmp_path):
    xs = np.zeros((3, 4, 2), dtype=np.float32)
    np.savez(tmp_path / "b.npz", Xs=xs, dts=np.array([0, 0.8, 1.6], dtype=np.float32), N_steps=3)
    assert Snapshots.from_npz(tmp_path / "b.npz").times.tolist() == [0.0, 0.8, 1.6]
    np.savez(tmp_path / "g.npz", Xs=xs, dts=np.array([0.0, 1.0, 2.0]), N_steps=3)
    assert Snapshots.from_npz(tmp_path / "g.npz", times_are="gaps").times.tolist() == [0, 1, 3]
    np.savez(tmp_path / "w.npz", Xs=xs, dts=np.array([0.0, 1.0, 2.0]), N_steps=4)
    with pytest.raises(ValueError, match="N_steps"):
        Snapshots.from_npz(tmp_path / "w.npz")


def test_npz_with_unknown_keys_lists_expected_and_found(tmp_path):
    np.savez(tmp_path / "x.npz", data=np.zeros(3))
    with pytest.raises(
        ValueError, match=r"expected keys \['Xs', 'dts', 'N_steps'\].*found \['data'\]"
    ):
        Snapshots.from_npz(tmp_path / "x.npz")


def test_csv_long_format_groups_by_time_and_ignores_ids(tmp_path):
    path = tmp_path / "cells.csv"
    path.write_text("cell,time,g1,g2\na,0,1.0,2.0\nb,0,1.5,2.5\nc,1.5,3.0,4.0\n")
    snaps = Snapshots.from_csv(path, id_columns=["cell"])
    assert snaps.times.tolist() == [0.0, 1.5] and snaps.counts == (2, 1)
    np.testing.assert_array_equal(snaps.particles[0], [[1.0, 2.0], [1.5, 2.5]])


def test_csv_empty_cell_names_its_line_and_missing_time_column_lists_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("time,g1\n0,1.0\n1,\n")
    with pytest.raises(ValueError, match="line 3"):
        Snapshots.from_csv(path)
    with pytest.raises(ValueError, match=r"no time column 'day'.*\['time', 'g1'\]"):
        Snapshots.from_csv(path, time_column="day")


def test_split_alternate_and_split_by_value_on_irregular_times():
    snaps = Snapshots([0, 0.4, 1.5, 1.7, 3], _clouds(5))
    train, held = snaps.split_alternate()
    assert train.times.tolist() == [0, 1.5, 3] and held.times.tolist() == [0.4, 1.7]
    train, held = snaps.split(heldout_times=[1.7])
    assert train.times.tolist() == [0, 0.4, 1.5, 3] and held.times.tolist() == [1.7]
    with pytest.raises(ValueError, match="not one of"):
        snaps.split(heldout_times=[2.0])


def test_simulators_are_seeded():
    first = simulate.vortex(n=20, seed=3)
    second = simulate.vortex(n=20, seed=3)
    np.testing.assert_array_equal(first.particles[4], second.particles[4])
    assert len(simulate.linear(n=[5, 6, 7], times=[0, 1, 2]).counts) == 3


class _Table(dict):
    @property
    def columns(self):
        return list(self)


def _fake_anndata(obs, obsm):
    import types

    module = types.ModuleType("anndata")
    module.read_h5ad = lambda path: types.SimpleNamespace(obs=_Table(obs), obsm=obsm)
    return module


def test_h5ad_reader_groups_cells_by_parsed_day_and_keeps_components(monkeypatch):
    embedding = np.arange(15, dtype=float).reshape(5, 3)
    obs = {"day": ["day2", "day0", "day2", "day0", "day5"]}
    monkeypatch.setitem(
        __import__("sys").modules, "anndata", _fake_anndata(obs, {"X_pca": embedding})
    )
    snaps = Snapshots.from_h5ad(
        "cells.h5ad", time_key="day", n_components=2, time_parser=lambda label: float(label[3:])
    )
    assert snaps.times.tolist() == [0.0, 2.0, 5.0] and snaps.counts == (2, 2, 1)
    np.testing.assert_array_equal(snaps.particles[0], [[3.0, 4.0], [9.0, 10.0]])


def test_h5ad_missing_keys_list_the_available_ones(monkeypatch):
    fake = _fake_anndata({"time": [0, 1]}, {"X_umap": np.zeros((2, 2))})
    monkeypatch.setitem(__import__("sys").modules, "anndata", fake)
    with pytest.raises(KeyError, match=r"obsm has no 'X_pca'.*X_umap"):
        Snapshots.from_h5ad("cells.h5ad")
    with pytest.raises(KeyError, match=r"obs has no 'day'.*\['time'\]"):
        Snapshots.from_h5ad("cells.h5ad", time_key="day")
