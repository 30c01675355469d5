"""Certificates from statistics: hand values, caps, the selection/estimation split, PREDICT."""

import numpy as np
import pytest
from scipy import special

from marginkit.lvm_smoothing.certificates import (
    ABSTAIN,
    certify_from_statistics,
    check_can_certify,
    minimum_certifiable_samples,
    predict_from_statistics,
    unanimous_statistics,
)
from marginkit.lvm_smoothing.maps import HARDMAX, Candidate
from marginkit.lvm_smoothing.sampling import SampleStatistics

SOFT = Candidate("sparsemax", 1.0)


def _votes(counts, candidates=(HARDMAX,)):
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    stats = SampleStatistics.empty(list(candidates), len(counts))
    stats.num_samples = n
    stats.votes = counts.copy()
    share = counts / n
    for row in range(len(candidates)):
        stats.mean[row] = share
        stats.m2[row] = n * share * (1 - share)  # Bernoulli columns: sum of squared deviations
    return stats


@pytest.mark.parametrize(("n", "cap"), [(1_000, 2.4633), (10_000, 3.1986), (100_000, 3.8115)])
def test_cohen_unanimous_radius_is_probit_of_alpha_root(n, cap):
    stats = unanimous_statistics([HARDMAX], 10, n)
    cert = certify_from_statistics(stats, stats, sigma=1.0, alpha=0.001, method="cohen")
    assert cert.radius == pytest.approx(cap, abs=1e-4)
    assert cert.radius == pytest.approx(special.ndtri(0.001 ** (1 / n)))


def test_cohen_unanimous_radius_at_sigma_quarter():
    stats = unanimous_statistics([HARDMAX], 10, 100_000)
    cert = certify_from_statistics(stats, stats, sigma=0.25, alpha=0.001, method="cohen")
    assert cert.radius == pytest.approx(0.952864, abs=1e-6)


def test_cohen_abstains_up_to_nine_unanimous_samples_and_certifies_ten():
    for n in range(2, 10):
        stats = unanimous_statistics([HARDMAX], 3, n)
        assert certify_from_statistics(stats, stats, 1.0, 0.001, "cohen").abstained
    stats = unanimous_statistics([HARDMAX], 3, 10)
    cert = certify_from_statistics(stats, stats, 1.0, 0.001, "cohen")
    assert cert.p_lower == pytest.approx(0.501187, abs=1e-6)
    assert cert.radius == pytest.approx(0.002976, abs=1e-6)
    assert minimum_certifiable_samples(0.001) == 10
    assert minimum_certifiable_samples(1e-4) == 14


@pytest.mark.parametrize(
    ("n", "caps"),
    [
        (1_000, (2.103, 1.993, 1.827)),
        (10_000, (2.916, 2.832, 2.708)),
        (100_000, (3.572, 3.502, 3.399)),
    ],
)
def test_bernstein_caps_on_unanimous_soft_outputs(n, caps):
    # a = alpha / K: K = 1 (mono formula alone), 10, 1000 classes.
    expected_one = caps[0]
    half = 7 * np.log(2 / 0.001) / (3 * (n - 1))
    assert special.ndtri(1 - half) == pytest.approx(expected_one, abs=1e-3)
    for classes, cap in ((10, caps[1]), (1000, caps[2])):
        stats = unanimous_statistics([SOFT], classes, n)
        cert = certify_from_statistics(stats, stats, 1.0, 0.001, "lvm", "fixed", candidate=SOFT)
        assert cert.radius == pytest.approx(cap, abs=1e-3)


def test_cp_multi_uses_a_separate_runner_up_bound():
    stats = _votes([700, 200, 100])
    cert = certify_from_statistics(stats, stats, 1.0, 0.001, "cp_multi")
    from marginkit.lvm_smoothing.bounds import clopper_pearson_lower, clopper_pearson_upper

    p_a = float(clopper_pearson_lower(700, 1000, 0.001 / 3))
    p_b = float(clopper_pearson_upper(200, 1000, 0.001 / 3))
    assert cert.p_lower == pytest.approx(p_a)
    assert cert.p_runner_up == pytest.approx(p_b)
    assert cert.radius == pytest.approx(0.5 * (special.ndtri(p_a) - special.ndtri(p_b)))
    assert cert.formula == "multi"


def test_class_is_chosen_on_selection_samples_not_on_estimation_samples():
    selection = _votes([10, 90, 0])
    estimation = _votes([1000, 0, 0])
    for method in ("cohen", "cp_multi"):
        cert = certify_from_statistics(selection, estimation, 1.0, 0.001, method)
        assert cert.prediction == ABSTAIN  # class 1 was chosen and has no estimation votes
    agree = certify_from_statistics(_votes([90, 10, 0]), estimation, 1.0, 0.001, "cohen")
    assert agree.prediction == 0


def test_lvm_candidate_is_chosen_on_selection_samples():
    # Selection: hardmax votes split, sparsemax outputs unanimous -> sparsemax predicted best.
    candidates = [HARDMAX, SOFT]
    selection = _votes([60, 40], candidates)
    selection.mean[1] = [1.0, 0.0]
    selection.m2[1] = 0.0
    estimation = _votes([1000, 0], candidates)
    estimation.mean[1] = [0.5, 0.5]  # the chosen candidate is bad on the fresh samples
    estimation.m2[1] = 0.0
    cert = certify_from_statistics(selection, estimation, 1.0, 0.001, "lvm", "n0")
    assert cert.candidate == str(SOFT)
    assert cert.prediction == ABSTAIN


def test_union_keeps_the_best_candidate_at_the_corrected_level():
    candidates = [HARDMAX, SOFT]
    stats = _votes([900, 100], candidates)
    cert = certify_from_statistics(stats, stats, 1.0, 0.001, "lvm", "union")
    from marginkit.lvm_smoothing.bounds import clopper_pearson_lower, clopper_pearson_upper

    level = 0.001 / (2 * 2)
    p_a = float(clopper_pearson_lower(900, 1000, level))
    p_b = float(clopper_pearson_upper(100, 1000, level))
    assert cert.candidate == "hardmax"  # CP is tighter than EB on 0/1 data
    assert cert.radius == pytest.approx(0.5 * (special.ndtri(p_a) - special.ndtri(p_b)))


@pytest.mark.parametrize(
    ("n_a", "n_b", "p_value", "predicted"),
    [
        (10, 0, 0.001953, False),
        (11, 0, 0.000977, True),
        (60, 40, 0.056888, False),
        (65, 35, 0.003518, False),
    ],
)
def test_predict_binomial_test_at_hand_p_values(n_a, n_b, p_value, predicted):
    from scipy import stats

    assert stats.binomtest(n_a, n_a + n_b, 0.5).pvalue == pytest.approx(p_value, rel=1e-3)
    votes = _votes([n_b, n_a])  # top class at index 1
    expected = 1 if p_value <= 0.001 else ABSTAIN
    assert predict_from_statistics(votes, 0.001) == expected
    assert (expected == 1) == predicted
    assert predict_from_statistics(_votes([n_b, n_a]), 0.01) == (1 if p_value <= 0.01 else -1)


def test_soft_predict_needs_separated_bernstein_bounds():
    stats = _votes([990, 10], [SOFT])
    assert predict_from_statistics(stats, 0.001, SOFT) == 0
    close = _votes([520, 480], [SOFT])
    assert predict_from_statistics(close, 0.001, SOFT) == ABSTAIN


def test_impossible_sample_sizes_are_rejected_with_a_clear_error():
    with pytest.raises(ValueError, match="no input can ever be certified"):
        check_can_certify(9, 0.001, 10, "cohen", [HARDMAX])
    check_can_certify(10, 0.001, 10, "cohen", [HARDMAX])


def test_bad_alpha_is_rejected():
    stats = _votes([5, 5])
    for alpha in (0.0, 1.0, 2.0):
        with pytest.raises(ValueError, match="alpha must be strictly between"):
            certify_from_statistics(stats, stats, 1.0, alpha, "cohen")


def test_chan_merge_equals_whole_sample_statistics():
    rng = np.random.default_rng(0)
    values = rng.uniform(size=(37, 4))
    parts = np.split(values, [1, 11, 30])  # includes a batch of one
    merged = SampleStatistics.empty([SOFT], 4)
    for part in parts:
        piece = SampleStatistics(
            [SOFT],
            len(part),
            part.mean(0)[None],
            ((part - part.mean(0)) ** 2).sum(0)[None],
            np.zeros(4, dtype=np.int64),
        )
        merged = merged.merge(piece)
    assert merged.num_samples == 37
    assert merged.mean[0] == pytest.approx(values.mean(0))
    assert merged.variance[0] == pytest.approx(values.var(0, ddof=1))
