"""OPIS and eps-OPIS against hand-computed cases and an all-pairs enumeration."""

import itertools
import math

import numpy as np
import pytest

from marginkit.tcm.opis import OPISConfig, compute_opis, opis_from_scores, threshold_grid
from marginkit.tcm.synthetic import make_sphere_clusters

ANGLES = np.radians([0.0, 10.0, 90.0, 150.0])
CIRCLE = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1)
CIRCLE_LABELS = [0, 0, 1, 1]
GRID = (0.3, 0.4, 0.6, 0.7)


def test_two_class_circle_mean_convention_is_one_eighth():
    # U_0 = 1,1,1,1 and U_1 = 1,1,0,0 (the 60-degree positive 0.5 fails at 0.6 and 0.7);
    # mean Ubar = 1,1,1/2,1/2 -> squared deviations 1/4 at two of four thresholds.
    result = compute_opis(CIRCLE, CIRCLE_LABELS, OPISConfig(thresholds=GRID, overall="mean"))
    assert result.opis == pytest.approx(0.125, abs=1e-15)
    np.testing.assert_allclose(result.utilities, [[1, 1, 1, 1], [1, 1, 0, 0]], atol=1e-15)


def test_two_class_circle_pooled_convention_is_five_thirty_sixths():
    # Pooled TPR = 1,1,1/2,1/2 with TNR = 1 -> Ubar = 1,1,2/3,2/3;
    # deviations (1/3)^2 and (2/3)^2 average 5/18 at two of four thresholds -> 5/36.
    result = compute_opis(CIRCLE, CIRCLE_LABELS, OPISConfig(thresholds=GRID))
    np.testing.assert_allclose(result.overall_utility, [1, 1, 2 / 3, 2 / 3], atol=1e-15)
    assert result.opis == pytest.approx(5 / 36, abs=1e-15)


@pytest.mark.parametrize("eps", [0.05, 0.25, 0.5])
@pytest.mark.parametrize("rank", ["per_threshold", "global"])
def test_two_class_circle_eps_opis_is_one_half(eps, rank):
    config = OPISConfig(thresholds=GRID, eps=eps, eps_rank=rank)
    assert compute_opis(CIRCLE, CIRCLE_LABELS, config).eps_opis == pytest.approx(0.5, abs=1e-15)


def _brute_force_opis(points, labels, thresholds, overall="pooled", min_size=2):
    """Enumerate every pair in float64 and count rates with plain comparisons."""
    points = points.astype(np.float64)
    points = points / np.linalg.norm(points, axis=1, keepdims=True)
    labels = np.asarray(labels)
    classes = [c for c in np.unique(labels) if (labels == c).sum() >= min_size]
    pos = {c: [] for c in classes}
    neg = {c: [] for c in classes}
    pooled_neg = []
    for i, j in itertools.combinations(range(len(labels)), 2):
        s = min(1.0, max(-1.0, float(points[i] @ points[j])))
        if labels[i] == labels[j]:
            if labels[i] in pos:
                pos[labels[i]].append(s)
        else:
            for member in (labels[i], labels[j]):
                if member in neg:
                    neg[member].append(s)
            if labels[i] in neg or labels[j] in neg:
                pooled_neg.append(s)

    def f1(t, n):
        return 0.0 if t + n == 0 else 2 * t * n / (t + n)

    total = 0.0
    for d in thresholds:
        utilities = []
        for c in classes:
            tpr = sum(s >= d for s in pos[c]) / len(pos[c])
            tnr = sum(s < d for s in neg[c]) / len(neg[c])
            utilities.append(f1(tpr, tnr))
        if overall == "pooled":
            all_pos = [s for c in classes for s in pos[c]]
            bar = f1(
                sum(s >= d for s in all_pos) / len(all_pos),
                sum(s < d for s in pooled_neg) / len(pooled_neg),
            )
        else:
            bar = sum(utilities) / len(utilities)
        total += sum((u - bar) ** 2 for u in utilities) / len(utilities)
    return total / len(thresholds), pooled_neg


@pytest.mark.parametrize("tile", [1, 7, 39])
@pytest.mark.parametrize("overall", ["pooled", "mean"])
def test_blocked_opis_equals_all_pairs_enumeration(tile, overall):
    points, labels = make_sphere_clusters(5, [8, 8, 8, 8, 7], dim=6, spreads=(0.3, 1.0))
    labels[-1] = 9  # a one-sample class: negatives only
    config = OPISConfig(num_thresholds=9, overall=overall)
    result = compute_opis(points.astype(np.float64), labels, config, tile_size=tile)
    expected, pooled_neg = _brute_force_opis(points, labels, result.thresholds, overall)
    # The grid itself comes from the exact linear quantiles of the enumerated negatives.
    low, high = np.quantile(pooled_neg, [0.9, 0.99], method="linear")
    assert (result.d_min, result.d_max) == pytest.approx((low, high), abs=1e-12)
    assert result.opis == pytest.approx(expected, abs=1e-12)
    assert result.num_classes == 5 and result.num_dropped_classes == 1


def test_opis_from_scores_equals_opis_from_embeddings():
    points, labels = make_sphere_clusters(3, 8, dim=4, spreads=(0.4, 0.9), seed=3)
    _, pooled_neg = _brute_force_opis(points, labels, [0.0])
    unit = points.astype(np.float64)
    sims = np.clip(unit @ unit.T, -1, 1)
    upper = np.triu(np.ones_like(sims, dtype=bool), 1)
    pos = {c: sims[upper & (labels[:, None] == c) & (labels[None, :] == c)] for c in range(3)}
    one_in = (labels[:, None] == labels[None, :]) == False  # noqa: E712
    neg = {
        c: sims[upper & one_in & ((labels[:, None] == c) | (labels[None, :] == c))]
        for c in range(3)
    }
    config = OPISConfig(num_thresholds=7)
    direct = opis_from_scores(pos, neg, np.asarray(pooled_neg), config)
    blocked = compute_opis(unit, labels, config, tile_size=5)
    assert direct.opis == pytest.approx(blocked.opis, abs=1e-12)
    assert direct.eps_opis == pytest.approx(blocked.eps_opis, abs=1e-12)


def test_opis_is_invariant_to_permutation_renaming_and_rescaling():
    points, labels = make_sphere_clusters(4, 10, dim=5, spreads=(0.3, 0.9), seed=1)
    points = points.astype(np.float64)
    config = OPISConfig(num_thresholds=11)
    base = compute_opis(points, labels, config)
    order = np.random.default_rng(0).permutation(len(labels))
    names = np.array(["d", "a", "c", "b"])[labels]
    scales = np.random.default_rng(1).uniform(0.5, 3.0, size=(len(labels), 1))
    moved = compute_opis(points[order] * scales[order], names[order], config)
    assert moved.opis == pytest.approx(base.opis, abs=1e-12)
    assert moved.eps_opis == pytest.approx(base.eps_opis, abs=1e-12)


def test_two_threshold_cosine_and_l2_grids_agree():
    np.testing.assert_allclose(threshold_grid(0.2, 0.8, 2, "l2"), [0.2, 0.8], atol=1e-12)


def test_l2_grid_is_even_in_distance():
    # r(0.5) = 1 and r(0) = sqrt(2): five radii a step (sqrt(2) - 1) / 4 apart.
    grid = threshold_grid(0.0, 0.5, 5, "l2")
    radii = np.sqrt(2 - 2 * grid)
    np.testing.assert_allclose(np.diff(radii), -(math.sqrt(2) - 1) / 4 * np.ones(4), atol=1e-12)
    assert grid[0] == pytest.approx(0.0, abs=1e-12) and grid[-1] == pytest.approx(0.5, abs=1e-12)


def test_opis_stays_within_its_bounds():
    points, labels = make_sphere_clusters(6, 6, dim=3, spreads=(0.1, 2.0), seed=2)
    for overall, bound in (("mean", 0.25), ("pooled", 1.0)):
        result = compute_opis(points, labels, OPISConfig(num_thresholds=20, overall=overall))
        assert 0.0 <= result.opis <= bound
        assert 0.0 <= result.eps_opis <= 1.0


def test_sampled_range_estimate_is_close_to_exact_range():
    points, labels = make_sphere_clusters(4, 30, dim=4, spreads=(0.3, 0.9), seed=4)
    exact = compute_opis(points, labels, OPISConfig())
    sampled = compute_opis(points, labels, OPISConfig.reimpl101(num_sampled_negatives=200_000))
    assert sampled.thresholds.size == 101
    assert sampled.d_min == pytest.approx(exact.d_min, abs=0.02)


def test_single_class_is_an_error():
    with pytest.raises(ValueError, match="at least two classes"):
        compute_opis(CIRCLE, [0, 0, 0, 0])


def test_class_of_one_sample_leaves_the_class_set_with_a_warning(caplog):
    # Class 2 (one point at 250 degrees) only adds negatives; class 1 keeps 90 and 100 deg.
    angles = np.radians([0.0, 10.0, 90.0, 100.0, 250.0])
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    result = compute_opis(points, [0, 0, 1, 1, 2], OPISConfig(thresholds=GRID))
    assert "fewer than 2 samples" in caplog.text
    assert result.num_classes == 2 and list(result.class_ids) == [0, 1]
    # Every positive is cos(10 deg) and every negative is at most cos(80 deg) = 0.17 < 0.3,
    # so all utilities are 1 and OPIS is 0; negatives: 2x2 + 2x1 + 2x1 pairs.
    assert result.opis == pytest.approx(0.0, abs=1e-15)
    assert result.num_negatives == 4 + 2 + 2


def test_nan_embedding_is_an_error_naming_the_row():
    points = CIRCLE.copy()
    points[1, 1] = math.nan
    with pytest.raises(ValueError, match="row 1"):
        compute_opis(points, CIRCLE_LABELS)


def test_label_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="labels has shape"):
        compute_opis(CIRCLE, [0, 1, 1])


def test_threshold_at_far_is_the_negative_quantile_and_tar_counts_positives():
    from marginkit.tcm.evaluate import threshold_at_far

    # Negatives of the circle: 0, -0.866, 0.174, -0.766; Q(0.75) linear = 0 + 0.25 * 0.174.
    threshold, tar = threshold_at_far(CIRCLE, CIRCLE_LABELS, far=0.25)
    assert threshold == pytest.approx(0.25 * math.cos(math.radians(80)), abs=1e-12)
    assert tar == 1.0  # positives 0.985 and 0.5 are both above
