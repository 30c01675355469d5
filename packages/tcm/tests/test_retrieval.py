"""Retrieval metrics on hand-built neighbour lists, with ties and self matches."""

import numpy as np
import pytest

from marginkit.tcm.retrieval import retrieval_metrics
from marginkit.tcm.synthetic import make_sphere_clusters


def _circle(degrees):
    angles = np.radians(degrees)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


# A at 0, 20, 50 degrees; B at 30, 105, 120. Neighbour lists by angle distance (self removed):
#   0: 20A 30B 50A . . ; 20: 30B 0A 50A ; 50: 30B 20A 0A ; 30: 20A 50A 0A ;
#   105: 120B 50A 30B ; 120: 105B 50A 30B.   R_q = 2 for every query.
CIRCLE = _circle([0.0, 20.0, 50.0, 30.0, 105.0, 120.0])
CIRCLE_LABELS = ["A", "A", "A", "B", "B", "B"]


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_circle_recall_rprecision_and_map_at_r(backend):
    result = retrieval_metrics(CIRCLE, CIRCLE_LABELS, ks=(1, 2, 3, 4), backend=backend)
    # R@1: hits for 0, 105, 120. R@2: also 20, 50. R@4: 30 finds 0... no, 30 finds B at 4th?
    assert result.recall_at[1] == pytest.approx(1 / 2)
    assert result.recall_at[2] == pytest.approx(5 / 6)
    assert result.recall_at[3] == pytest.approx(5 / 6)
    assert result.recall_at[4] == pytest.approx(1.0)
    # R-precision (top 2): 1/2, 1/2, 1/2, 0, 1/2, 1/2 -> 5/12.
    assert result.r_precision == pytest.approx(5 / 12)
    # AP@R: 0 -> 1/2; 20 -> (1/2)/2; 50 -> (1/2)/2; 30 -> 0; 105 -> 1/2; 120 -> 1/2 -> 1/3.
    assert result.map_at_r == pytest.approx(1 / 3)
    assert result.num_queries == 6 and result.num_dropped_queries == 0


# p0 = (1, 0) A, p1 = (0.6, 0.8) B, p2 = (0.6, 0.8) A, p3 = (-0.6, 0.8) B.
TWINS = np.array([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8], [-0.6, 0.8]])
TWIN_LABELS = [0, 1, 0, 1]


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_ties_by_index_give_one_hit_in_four(backend):
    # p0 -> p1 or p2 tie at 0.6, index order picks p1 (B): miss. p1 -> p2 (A, s=1): miss.
    # p2 -> p1 (B, s=1): miss. p3 -> p1 and p2 tie at 0.28, p1 (B) first: hit.
    result = retrieval_metrics(TWINS, TWIN_LABELS, ks=(1,), backend=backend)
    assert result.recall_at[1] == pytest.approx(1 / 4)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_pessimistic_ties_put_matches_last(backend):
    # p0's tie now ranks p1 (non-match) first anyway; p3's tie ranks p2 (A) first: no hit.
    result = retrieval_metrics(TWINS, TWIN_LABELS, ks=(1,), ties="pessimistic", backend=backend)
    assert result.recall_at[1] == 0.0


def test_own_index_is_dropped_not_the_first_column():
    # p1 and p2 are identical; dropping column 0 could remove the twin instead of self.
    result = retrieval_metrics(TWINS[1:3], [1, 1], ks=(1,), backend="torch")
    assert result.recall_at[1] == 1.0


def test_query_without_gallery_match_is_dropped_and_counted():
    result = retrieval_metrics(CIRCLE[:4], ["A", "A", "A", "B"], ks=(1,), backend="torch")
    assert result.num_dropped_queries == 1 and result.num_queries == 3
    # Queries 0, 20, 50 deg: 0 -> 20 A hit; 20 -> 30 B miss; 50 -> 30 B miss.
    assert result.recall_at[1] == pytest.approx(1 / 3)


def test_separate_queries_keep_every_gallery_item():
    gallery = _circle([0.0, 90.0])
    queries = _circle([10.0, 80.0, 0.0])
    # 10 deg (0) -> 0 deg (0) hit; 80 deg (0) -> 90 deg (1) miss; 0 deg (1) -> 0 deg (0) miss.
    # The exact copy of a gallery item is a genuine neighbour, not a self match.
    result = retrieval_metrics(gallery, [0, 1], queries, [0, 0, 1], ks=(1,), backend="torch")
    assert result.recall_at[1] == pytest.approx(1 / 3)


def test_faiss_equals_torch_brute_force_on_clusters():
    points, labels = make_sphere_clusters(6, 15, dim=8, spreads=(0.3, 1.2), seed=5)
    faiss_result = retrieval_metrics(points, labels, backend="faiss", chunk_size=16)
    torch_result = retrieval_metrics(points, labels, backend="torch", chunk_size=7)
    assert faiss_result.recall_at == pytest.approx(torch_result.recall_at)
    assert faiss_result.map_at_r == pytest.approx(torch_result.map_at_r, abs=1e-12)
    assert faiss_result.r_precision == pytest.approx(torch_result.r_precision, abs=1e-12)


def test_matches_pytorch_metric_learning_accuracy_calculator():
    accuracy = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    torch = pytest.importorskip("torch")
    points, labels = make_sphere_clusters(5, 12, dim=6, spreads=(0.4, 1.2), seed=6)
    calculator = accuracy.AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"), k=None
    )
    emb = torch.as_tensor(points)
    lab = torch.as_tensor(labels)
    pml = calculator.get_accuracy(emb, lab, emb, lab, ref_includes_query=True)
    ours = retrieval_metrics(points, labels, backend="torch")
    assert ours.recall_at[1] == pytest.approx(pml["precision_at_1"], abs=1e-6)
    assert ours.r_precision == pytest.approx(pml["r_precision"], abs=1e-6)
    assert ours.map_at_r == pytest.approx(pml["mean_average_precision_at_r"], abs=1e-6)


def test_class_balanced_average_weights_each_class_equally():
    # Same circle: class A per-query R@1 hits 1,0,0 -> 1/3; class B 0,1,1 -> 2/3; mean 1/2.
    result = retrieval_metrics(CIRCLE, CIRCLE_LABELS, ks=(1,), class_balanced=True)
    assert result.recall_at[1] == pytest.approx(1 / 2)


def test_zero_row_is_an_error():
    with pytest.raises(ValueError, match="row 0 is all zeros"):
        retrieval_metrics(np.zeros((3, 2)), [0, 0, 1])
