"""Smooth end to end on models whose smoothed probabilities are known in closed form."""

import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from marginkit.lvm_smoothing import Candidate, Smooth
from marginkit.lvm_smoothing.maps import HARDMAX


class Identity(torch.nn.Module):
    """Logits = the input itself (d = K)."""

    def forward(self, x):
        return x.clone()


def _three_class_probability(a, sigma):
    # P(x1 + d1 > x2 + d2, x1 + d1 > x3 + d3): differences D ~ N(0, sigma^2 [[2, 1], [1, 2]]).
    cov = sigma**2 * np.array([[2.0, 1.0], [1.0, 2.0]])
    return float(stats.multivariate_normal(mean=[0, 0], cov=cov).cdf([a, a]))


def test_three_class_closed_form_values():
    p1 = _three_class_probability(1.0, 1.0)
    assert p1 == pytest.approx(0.633702, abs=1e-5)
    p2 = (1 - p1) / 2
    assert p2 == pytest.approx(0.183149, abs=1e-5)
    assert 0.5 * (special.ndtri(p1) - special.ndtri(p2)) == pytest.approx(0.622552, abs=1e-5)
    assert special.ndtri(p1) == pytest.approx(0.341674, abs=1e-5)
    for a, sigma in ((2.0, 1.0), (0.5, 0.25)):  # the same ratio a / sigma gives the same p
        p1 = _three_class_probability(a, sigma)
        assert p1 == pytest.approx(0.865767, abs=1e-5)
        assert (1 - p1) / 2 == pytest.approx(0.067116, abs=1e-5)
    radius = 0.5 * (special.ndtri(0.865767) - special.ndtri(0.067116))
    assert radius == pytest.approx(1.302110, abs=1e-4)
    assert 0.25 * radius == pytest.approx(0.325527, abs=1e-4)


def test_two_class_identity_cohen_radius_approaches_the_exact_radius_from_below():
    smooth = Smooth(Identity(), 2, sigma=0.5, input_range=None, batch_size=5000)
    x = torch.tensor([1.0, 0.0])
    exact = 0.5 * special.ndtri(special.ndtr(1 / (0.5 * math.sqrt(2))))
    assert exact == pytest.approx(1 / math.sqrt(2))
    cert = smooth.certify(x, n0=100, n=20_000, alpha=0.001, method="cohen")
    assert cert.prediction == 0
    assert exact - 0.04 < cert.radius <= exact


def test_three_class_cp_multi_beats_cohen_and_both_stay_below_their_limits():
    smooth = Smooth(Identity(), 3, sigma=1.0, input_range=None, batch_size=5000)
    x = torch.tensor([1.0, 0.0, 0.0])
    multi = smooth.certify(x, n0=100, n=20_000, method="cp_multi")
    cohen = smooth.certify(x, n0=100, n=20_000, method="cohen")
    assert multi.prediction == cohen.prediction == 0
    assert 0.55 < multi.radius <= 0.622552
    assert 0.28 < cohen.radius <= 0.341674
    assert multi.radius > cohen.radius


def test_lvm_certificate_is_valid_in_repeated_draws_at_alpha_point_one():
    # Coverage of the bounds behind the radius: pA <= F_A and pB' >= max_{k != A} F_k for the
    # chosen candidate, checked against a 400k-sample estimate of F for each candidate.
    candidates = [HARDMAX, Candidate("sparsemax", 1.0), Candidate("softmax", 0.5)]
    sigma, alpha, reps = 1.0, 0.1, 2000
    smooth = Smooth(Identity(), 3, sigma, candidates=candidates, input_range=None)
    x = torch.tensor([1.0, 0.0, 0.0])
    truth = smooth.sample(x, 400_000, smooth.generator(123)).mean
    generator = smooth.generator(7)
    misses = 0
    for _ in range(reps):
        cert = smooth.certify(x, n0=20, n=200, alpha=alpha, generator=generator)
        if cert.abstained:
            continue
        row = [str(c) for c in candidates].index(cert.candidate)
        true_a = truth[row, cert.prediction]
        true_b = np.delete(truth[row], cert.prediction).max()
        misses += int(cert.p_lower > true_a or cert.p_runner_up < true_b)
    assert misses / reps <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)


def test_selection_and_estimation_are_separate_draws_of_n0_and_n():
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return torch.stack([x[:, 0], -x[:, 0]], dim=1)

    smooth = Smooth(Recorder(), 2, sigma=0.5, batch_size=64, input_range=None)
    smooth.certify(torch.zeros(3), n0=10, n=100, method="cp_multi")
    assert [len(batch) for batch in seen] == [10, 64, 36]
    assert not torch.equal(seen[0], seen[1][:10])  # fresh noise for the estimation draw


def test_same_seed_gives_the_same_certificate():
    smooth = Smooth(Identity(), 3, sigma=1.0, input_range=None, candidates=[HARDMAX])
    x = torch.tensor([1.0, 0.0, 0.0])
    first = smooth.certify(x, n=500, generator=smooth.generator(3))
    second = smooth.certify(x, n=500, generator=smooth.generator(3))
    assert first == second


def test_model_mode_is_restored_after_sampling():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    model.train()
    Smooth(model, 2, 0.5).certify(torch.zeros(2), n=100, method="cohen")
    assert model.training


def test_nan_logits_raise():
    class Broken(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 2), float("nan"))

    with pytest.raises(ValueError, match="NaN or infinite logits"):
        Smooth(Broken(), 2, 0.5).certify(torch.zeros(2), n=100)


def test_wrong_output_shape_raises():
    with pytest.raises(ValueError, match=r"expected \(100, 3\) logits"):
        Smooth(Identity(), 3, 0.5, input_range=None).certify(torch.zeros(2), n0=100, n=100)


def test_inputs_outside_the_declared_range_raise():
    with pytest.raises(ValueError, match="outside the declared input_range"):
        Smooth(Identity(), 2, 0.5).certify(torch.tensor([255.0, 0.0]), n=100)
    with pytest.raises(ValueError, match="NaN"):
        Smooth(Identity(), 2, 0.5).certify(torch.tensor([float("nan"), 0.0]), n=100)


def test_bad_alpha_small_n_and_bad_sigma_raise():
    smooth = Smooth(Identity(), 2, 0.5, input_range=None)
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="alpha must be strictly between 0 and 1"):
        smooth.certify(x, n=100, alpha=1.5)
    with pytest.raises(ValueError, match="n must be >= 2"):
        smooth.certify(x, n=1)
    with pytest.raises(ValueError, match="no input can ever be certified"):
        smooth.certify(x, n=9, method="cohen")
    with pytest.raises(ValueError, match="PREDICT would always abstain"):
        smooth.predict(x, n=10, alpha=0.001)
    with pytest.raises(ValueError, match="sigma must be"):
        Smooth(Identity(), 2, -1.0)


def test_predict_returns_the_clear_winner():
    smooth = Smooth(Identity(), 2, 0.25, input_range=None)
    assert smooth.predict(torch.tensor([1.0, 0.0]), n=200) == 0
    assert smooth.predict(torch.tensor([0.0, 0.0]), n=200) == -1


def test_no_certificate_exceeds_the_exact_radius_of_a_linear_classifier_beyond_alpha():
    # Logits (s, -s), s = w.x + b: every map's smoothed classifier has the boundary s = 0, so
    # the exact robust radius of all candidates is |s| / ||w||, and R_lip may use L_g = ||W||.
    from marginkit.lvm_smoothing.lipschitz import upper_bound
    from marginkit.lvm_smoothing.maps import candidate_grid

    layer = torch.nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 1.0, 0, 0], [-3.0, -1.0, 0, 0]]))
        layer.bias.copy_(torch.tensor([-1.5, 1.5]))
    model = torch.nn.Sequential(layer)
    grid = candidate_grid(temperatures=[0.3, 1.0, 3.0, 10.0])
    smooth = Smooth(model, 2, 0.25, candidates=grid, logit_lipschitz=upper_bound(model))
    x = torch.tensor([0.7, 0.2, 0.5, 0.5])
    exact = (3 * 0.7 + 0.2 - 1.5) / math.sqrt(10)
    alpha, reps = 0.1, 300
    generator = smooth.generator(11)
    certs = [smooth.certify(x, 20, 300, alpha, generator=generator) for _ in range(reps)]
    over = sum(c.radius > exact for c in certs)
    assert over / reps <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)
    assert np.mean([c.radius for c in certs]) > 0.5 * exact  # it does certify something
