"""Exact k-nearest-neighbour search with faiss, on a GPU when one is usable.

faiss-gpu wheels install on machines without a GPU, and then every GPU call fails; the
GPU path is therefore chosen only when faiss reports at least one GPU *and* torch sees
CUDA. Install ``faiss-cpu`` (the ``faiss`` extra) or a ``faiss-gpu-*`` wheel yourself.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Literal

import numpy as np

logger = logging.getLogger(__name__)

Metric = Literal["cosine", "l2", "inner_product"]


@dataclasses.dataclass
class KnnIndex:
    """A faiss index with the metric it was built for and where it lives."""

    index: Any
    metric: Metric
    on_gpu: bool

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "faiss is not installed: `pip install marginkit-shared[faiss]` (CPU) or a "
            "faiss-gpu wheel matching your CUDA"
        ) from error
    return faiss


def faiss_gpu_available() -> bool:
    """True when the installed faiss has GPU support and a GPU can actually be used."""
    faiss = _faiss()
    get_num_gpus = getattr(faiss, "get_num_gpus", None)
    if get_num_gpus is None:
        return False
    try:
        import torch

        if not torch.cuda.is_available():
            return False
        return int(get_num_gpus()) > 0
    except Exception as error:  # a faiss-gpu build without a driver raises here
        logger.debug("faiss GPU probe failed: %s", error)
        return False


def _as_float32(name: str, array: Any) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    matrix = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    if matrix.ndim != 2:
        raise ValueError(f"{name} must have shape (count, dim), got {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return matrix


def _normalize(matrix: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"{name} has all-zero rows; cosine similarity is undefined for them")
    return matrix / norms


def build_index(
    embeddings: Any, metric: Metric = "cosine", use_gpu: bool | None = None
) -> KnnIndex:
    """An exact (flat) faiss index over ``embeddings`` of shape ``(count, dim)``.

    ``metric="cosine"`` L2-normalizes the rows and searches by inner product, so the
    returned scores are cosine similarities. ``use_gpu=None`` picks the GPU when
    :func:`faiss_gpu_available`; ``True`` insists on it.
    """
    faiss = _faiss()
    matrix = _as_float32("embeddings", embeddings)
    if metric == "cosine":
        matrix = _normalize(matrix, "embeddings")
        index = faiss.IndexFlatIP(matrix.shape[1])
    elif metric == "inner_product":
        index = faiss.IndexFlatIP(matrix.shape[1])
    elif metric == "l2":
        index = faiss.IndexFlatL2(matrix.shape[1])
    else:
        raise ValueError(f"metric must be 'cosine', 'l2' or 'inner_product', got {metric!r}")

    gpu = faiss_gpu_available() if use_gpu is None else use_gpu
    if gpu:
        if not faiss_gpu_available():
            raise RuntimeError("use_gpu=True but faiss has no usable GPU on this machine")
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(matrix)
    return KnnIndex(index=index, metric=metric, on_gpu=bool(gpu))


def knn_search(
    index: KnnIndex,
    queries: Any,
    k: int,
    chunk_size: int = 4096,
    exclude_self: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Search the ``k`` nearest neighbours of each query, ``chunk_size`` queries at a time.

    Returns ``(scores, indices)``, both ``(num_queries, k)``: similarities (larger is
    closer) for cosine and inner product, squared distances (smaller is closer) for l2.
    Ties are broken by the smaller database index, so results are deterministic.

    ``exclude_self=True`` is for queries that are the database itself, in the same
    order: query ``i``'s own row ``i`` is removed from its result list (other rows with
    identical vectors are kept; they are genuine neighbours).
    """
    if not isinstance(index, KnnIndex):
        raise TypeError("index must come from marginkit.shared.faiss_index.build_index")
    metric = index.metric
    matrix = _as_float32("queries", queries)
    if metric == "cosine":
        matrix = _normalize(matrix, "queries")
    if matrix.shape[1] != index.dim:
        raise ValueError(f"queries have dim {matrix.shape[1]} but the index has dim {index.dim}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    available = index.size - (1 if exclude_self else 0)
    if k > available:
        raise ValueError(f"k={k} exceeds the {available} searchable database rows")
    if exclude_self and matrix.shape[0] != index.size:
        raise ValueError("exclude_self=True needs the queries to be the indexed rows, in order")

    # Ask for a few extra neighbours so that ties at the k-th place can be ordered by index.
    fetch = min(index.size, k + 1 + (1 if exclude_self else 0))
    larger_is_closer = metric != "l2"
    all_scores = np.empty((matrix.shape[0], k), dtype=np.float32)
    all_indices = np.empty((matrix.shape[0], k), dtype=np.int64)
    for start in range(0, matrix.shape[0], chunk_size):
        chunk = matrix[start : start + chunk_size]
        scores, indices = index.index.search(chunk, fetch)
        if exclude_self:
            own = np.arange(start, start + chunk.shape[0])[:, None]
            keep = indices != own
            # Drop exactly one entry per row: its own, or the last when it was not returned.
            missing = keep.all(axis=1)
            keep[missing, -1] = False
            scores = scores[keep].reshape(chunk.shape[0], fetch - 1)
            indices = indices[keep].reshape(chunk.shape[0], fetch - 1)
        key = -scores if larger_is_closer else scores
        order = np.lexsort((indices, key), axis=-1)
        scores = np.take_along_axis(scores, order, axis=1)[:, :k]
        indices = np.take_along_axis(indices, order, axis=1)[:, :k]
        all_scores[start : start + chunk.shape[0]] = scores
        all_indices[start : start + chunk.shape[0]] = indices
    return all_scores, all_indices
