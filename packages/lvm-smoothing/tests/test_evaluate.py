"""Dataset evaluation: same samples for every certificate, calibration of the fixed candidate."""

from pathlib import Path

import numpy as np
import pytest
import torch

from marginkit.lvm_smoothing.bounds import clopper_pearson_lower
from marginkit.lvm_smoothing.config import DemoConfig
from marginkit.lvm_smoothing.demo import run_demo
from marginkit.lvm_smoothing.evaluate import Draws, calibrate, certify_draws
from marginkit.lvm_smoothing.maps import HARDMAX, Candidate
from marginkit.lvm_smoothing.results import read_certify_tsv
from marginkit.lvm_smoothing.sampling import SampleStatistics

SOFT = Candidate("softmax", 1.0)


def _point(label, hard_share, soft_mean, n=1000):
    stats = SampleStatistics.empty([HARDMAX, SOFT], 2)
    stats.num_samples = n
    stats.votes = np.array([round(hard_share * n), n - round(hard_share * n)])
    if label == 1:
        stats.votes = stats.votes[::-1].copy()
    share = stats.votes / n
    stats.mean[0], stats.m2[0] = share, n * share * (1 - share)
    soft = (
        np.array([soft_mean, 1 - soft_mean]) if label == 0 else np.array([1 - soft_mean, soft_mean])
    )
    stats.mean[1], stats.m2[1] = soft, np.zeros(2)  # noiseless soft outputs
    return stats


def test_calibration_picks_the_candidate_with_the_larger_average_radius():
    # Soft outputs without variance at 0.97 beat votes split 0.8 / 0.2 on every point ...
    points = [_point(label, 0.8, 0.97) for label in (0, 1, 0)]
    draws = Draws([0, 1, 2], [0, 1, 0], points, points, [0.0] * 3)
    assert calibrate(draws, sigma=0.5, alpha=0.001) == SOFT
    # ... and unanimous votes beat soft outputs at 0.6.
    points = [_point(label, 1.0, 0.6) for label in (0, 1)]
    draws = Draws([0, 1], [0, 1], points, points, [0.0] * 2)
    assert calibrate(draws, sigma=0.5, alpha=0.001) == HARDMAX


def test_every_certificate_reads_the_same_draws():
    points = [_point(0, 0.9, 0.9)]
    draws = Draws([0], [0], points, points, [0.0])
    cohen, multi = (certify_draws(draws, 0.5, 0.001, name)[0] for name in ("cohen", "cp_multi"))
    assert cohen.prediction == multi.prediction == 0
    assert cohen.p_lower == pytest.approx(float(clopper_pearson_lower(900, 1000, 0.001)))
    assert multi.p_lower == pytest.approx(float(clopper_pearson_lower(900, 1000, 0.001 / 2)))


def test_model_side_noise_passes_clean_copies():
    seen = []

    class NoisyInside(torch.nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return torch.stack([x[:, 0], -x[:, 0]], 1)

    from marginkit.lvm_smoothing import Smooth

    Smooth(NoisyInside(), 2, 0.5, noise="model").certify(
        torch.full((2,), 0.5), n=50, method="cohen"
    )
    assert all(torch.all(batch == 0.5) for batch in seen)


def test_tiny_demo_writes_consistent_cohen_tsvs(tmp_path):
    config = DemoConfig(
        sigmas=(0.5,),
        n0=20,
        n=100,
        epochs=1,
        max_test=6,
        calibration_points=4,
        num_temperatures=2,
        lipschitz_variant=False,
        out_dir=Path(tmp_path),
    )
    run_demo(config)
    for name in ("cohen", "cp_multi", "softmax_t1", "lvm", "lvm_fixed", "lvm_union"):
        table = read_certify_tsv(tmp_path / "cnn_sigma0.5" / f"{name}.tsv")
        assert len(table["idx"]) == 6
        assert np.array_equal(table["correct"], (table["predict"] == table["label"]).astype(int))
        assert np.all(table["radius"][table["predict"] == -1] == 0)
