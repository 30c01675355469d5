import numpy as np
import pytest

pytest.importorskip("faiss", reason="faiss-cpu is part of the test extra; install it to run")

from marginkit.shared.faiss_index import build_index, knn_search  # noqa: E402


def _brute_force(database, queries, k, metric, exclude_self):
    if metric == "cosine":
        database = database / np.linalg.norm(database, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        scores = queries @ database.T
        key = -scores
    else:
        scores = ((queries[:, None, :] - database[None, :, :]) ** 2).sum(-1)
        key = scores.copy()
    if exclude_self:
        np.fill_diagonal(key, np.inf)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_knn_matches_brute_force(metric, exclude_self):
    rng = np.random.default_rng(0)
    database = rng.normal(size=(300, 16)).astype(np.float32)
    queries = database if exclude_self else rng.normal(size=(50, 16)).astype(np.float32)
    index = build_index(database, metric=metric, use_gpu=False)
    scores, indices = knn_search(index, queries, k=7, chunk_size=32, exclude_self=exclude_self)
    expected_scores, expected_indices = _brute_force(database, queries, 7, metric, exclude_self)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-4, atol=1e-4)
    if exclude_self:
        assert not (indices == np.arange(len(database))[:, None]).any()


def test_exclude_self_keeps_other_exact_duplicates_and_orders_ties_by_index():
    database = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    index = build_index(database, metric="cosine", use_gpu=False)
    scores, indices = knn_search(index, database, k=2, exclude_self=True)
    assert indices.tolist() == [[1, 2], [0, 2], [0, 1], [0, 1]]
    np.testing.assert_allclose(scores[:3], 1.0, atol=1e-6)
    np.testing.assert_allclose(scores[3], 0.0, atol=1e-6)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="NaN"):
        build_index(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="all-zero rows"):
        build_index(np.zeros((2, 3)))
    index = build_index(np.eye(3), metric="l2", use_gpu=False)
    with pytest.raises(ValueError, match="dim 2 but the index has dim 3"):
        knn_search(index, np.ones((1, 2)), k=1)
    with pytest.raises(ValueError, match="exceeds"):
        knn_search(index, np.eye(3), k=3, exclude_self=True)
