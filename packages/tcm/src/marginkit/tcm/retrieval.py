"""Exact retrieval metrics: R@k (a hit rate), R-precision and MAP@R, streamed over queries.

For a query ``q`` with ``R_q`` gallery items of its class, neighbours sorted by decreasing
cosine similarity and ``rel_q(j)`` = 1 when the ``j``-th neighbour shares its label,

    R@k        = mean_q 1[some top-k neighbour shares y_q]      (not IR recall)
    R-precision = mean_q (matches in the top R_q) / R_q
    MAP@R      = mean_q (1/R_q) sum_{j <= R_q} rel_q(j) * (matches in top j) / j

When the gallery is the query set, each query's own index is removed (never "the first
column"). Queries without any gallery match are dropped and counted. Ties in similarity
are broken by the smaller gallery index (``ties="index"``) or put matches last
(``ties="pessimistic"``); similarities are re-scored in fp32 from unit vectors.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch

from marginkit.tcm.similarity import unit_rows

logger = logging.getLogger(__name__)

FAISS_GPU_MAX_K = 2048
TORCH_SEARCH_ELEMENTS = 2**24  # similarities sorted at once by the torch backend


@dataclasses.dataclass
class RetrievalResult:
    """Retrieval metrics and how they were computed."""

    recall_at: dict[int, float]
    r_precision: float
    map_at_r: float
    num_queries: int
    num_dropped_queries: int
    k_searched: int
    backend: str
    ties: str
    class_balanced: bool

    def summary(self) -> dict[str, Any]:
        """Flat numbers (``R@1``, ``MAP@R``...) for a table or a JSON line."""
        values: dict[str, Any] = {f"R@{k}": v for k, v in self.recall_at.items()}
        values.update(
            {
                "R-precision": self.r_precision,
                "MAP@R": self.map_at_r,
                "num_queries": self.num_queries,
                "num_dropped_queries": self.num_dropped_queries,
                "backend": self.backend,
                "ties": self.ties,
            }
        )
        return values


def retrieval_metrics(
    embeddings: torch.Tensor | np.ndarray,
    labels: Any,
    query_embeddings: torch.Tensor | np.ndarray | None = None,
    query_labels: Any = None,
    ks: tuple[int, ...] = (1, 2, 4, 8),
    ties: Literal["index", "pessimistic"] = "index",
    backend: Literal["auto", "faiss", "torch"] = "auto",
    chunk_size: int = 1024,
    class_balanced: bool = False,
    device: str | torch.device | None = None,
) -> RetrievalResult:
    """R@k, R-precision and MAP@R of a gallery searched by queries (the gallery by default).

    Parameters
    ----------
    embeddings, labels:
        ``(N, dim)`` gallery and its ``(N,)`` labels (any hashable, sortable type).
    query_embeddings, query_labels:
        ``(Q, dim)`` separate queries, or ``None`` to search the gallery with itself and
        drop each query's own index.
    ks:
        The ``k`` of each R@k.
    ties:
        ``"index"``: equal similarities ordered by gallery index; ``"pessimistic"``:
        non-matches before matches.
    backend:
        ``"faiss"`` (marginkit-shared's exact index; GPU when usable), ``"torch"``
        (blocked brute force), or ``"auto"``: faiss when installed and ``k`` fits.
    chunk_size:
        Queries per chunk; memory holds one chunk's neighbour lists, never all of them.
    class_balanced:
        Average per class first, then over classes.
    device:
        Device of the torch backend.

    Examples
    --------
    >>> angles = np.radians([0.0, 20.0, 50.0, 30.0, 105.0, 120.0])
    >>> points = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    >>> result = retrieval_metrics(points, list("AAABBB"), ks=(1,), backend="torch")
    >>> result.recall_at[1], round(result.map_at_r, 6)
    (0.5, 0.333333)
    """
    if ties not in ("index", "pessimistic"):
        raise ValueError(f"ties must be 'index' or 'pessimistic', got {ties!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    gallery = unit_rows(_as_tensor(embeddings, device), "embeddings")
    gallery_codes, query_codes = _label_codes(labels, query_labels, gallery.shape[0])
    same_set = query_embeddings is None
    if same_set:
        queries = gallery
        query_codes = gallery_codes
    else:
        queries = unit_rows(_as_tensor(query_embeddings, gallery.device), "query_embeddings")
        if query_codes is None or len(query_codes) != queries.shape[0]:
            raise ValueError("query_labels must be given with one label per query embedding")
        if queries.shape[1] != gallery.shape[1]:
            raise ValueError(f"queries have dim {queries.shape[1]}, gallery {gallery.shape[1]}")
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")

    class_sizes = np.bincount(gallery_codes, minlength=int(query_codes.max()) + 1)
    relevant = class_sizes[query_codes] - (1 if same_set else 0)
    available = gallery.shape[0] - (1 if same_set else 0)
    k = min(max(max(ks), int(relevant.max())), available)
    if k < 1:
        raise ValueError("the gallery has no item to retrieve")
    chosen = _choose_backend(backend, k)
    search: Callable[..., torch.Tensor]
    if chosen == "faiss":
        from marginkit.shared.faiss_index import build_index

        index = build_index(gallery.float().cpu(), metric="cosine")
        search = functools.partial(_faiss_search, index)
    else:
        search = _torch_search
    gallery_labels = torch.as_tensor(gallery_codes, device=gallery.device)

    hits = {kk: np.zeros(len(query_codes)) for kk in ks}
    r_precision = np.zeros(len(query_codes))
    average_precision = np.zeros(len(query_codes))
    for start in range(0, queries.shape[0], chunk_size):
        stop = min(start + chunk_size, queries.shape[0])
        own = torch.arange(start, stop, device=gallery.device) if same_set else None
        neighbours = search(queries[start:stop], gallery, k, own, chunk_size)
        labels_chunk = torch.as_tensor(query_codes[start:stop], device=gallery.device)
        scores = (queries[start:stop, None, :] * gallery[neighbours]).sum(-1).clamp(-1, 1)
        match = gallery_labels[neighbours] == labels_chunk[:, None]
        order = _tie_order(scores, neighbours, match, ties)
        ranked = torch.gather(match, 1, order).cpu().numpy()
        _score_chunk(ranked, relevant[start:stop], hits, r_precision, average_precision, start)

    keep = relevant > 0
    dropped = int((~keep).sum())
    if dropped:
        logger.warning("%d queries have no gallery item of their class and are dropped", dropped)
    if not keep.any():
        raise ValueError("no query has a gallery item of its class; retrieval is undefined")
    weights = _weights(query_codes, keep, class_balanced)
    return RetrievalResult(
        recall_at={kk: float((hits[kk] * weights).sum()) for kk in ks},
        r_precision=float((r_precision * weights).sum()),
        map_at_r=float((average_precision * weights).sum()),
        num_queries=int(keep.sum()),
        num_dropped_queries=dropped,
        k_searched=k,
        backend=chosen,
        ties=ties,
        class_balanced=class_balanced,
    )


def _as_tensor(values: Any, device: str | torch.device | None) -> torch.Tensor:
    tensor = values if torch.is_tensor(values) else torch.as_tensor(np.asarray(values))
    return tensor.detach().to(device) if device is not None else tensor.detach()


def _label_codes(labels: Any, query_labels: Any, count: int) -> tuple[np.ndarray, Any]:
    gallery = np.asarray(labels.cpu() if torch.is_tensor(labels) else labels)
    if gallery.ndim != 1 or len(gallery) != count:
        raise ValueError(f"labels has shape {gallery.shape} but embeddings have {count} rows")
    if query_labels is None:
        _, codes = np.unique(gallery, return_inverse=True)
        return codes.astype(np.int64), None
    query = np.asarray(query_labels.cpu() if torch.is_tensor(query_labels) else query_labels)
    names, codes = np.unique(np.concatenate([gallery, query]), return_inverse=True)
    return codes[: len(gallery)].astype(np.int64), codes[len(gallery) :].astype(np.int64)


def _choose_backend(backend: str, k: int) -> str:
    if backend == "torch":
        return "torch"
    try:
        from marginkit.shared.faiss_index import faiss_gpu_available

        gpu = faiss_gpu_available()
    except ImportError:
        if backend == "faiss":
            raise
        return "torch"
    if gpu and k > FAISS_GPU_MAX_K:
        # Limitation: faiss on a GPU caps k; larger neighbour lists use the torch search.
        logger.info("k=%d exceeds the faiss GPU limit %d; using torch", k, FAISS_GPU_MAX_K)
        return "torch"
    if backend not in ("auto", "faiss"):
        raise ValueError(f"backend must be 'auto', 'faiss' or 'torch', got {backend!r}")
    return "faiss"


def _faiss_search(index, queries, gallery, k, own, chunk_size) -> torch.Tensor:
    from marginkit.shared.faiss_index import knn_search

    # A few extra neighbours so that ties at the k-th place can be re-ordered after re-scoring.
    fetch = min(index.size, k + (1 if own is not None else 0) + 8)
    _, found = knn_search(index, queries.float().cpu(), fetch, chunk_size=chunk_size)
    return _drop_own(torch.as_tensor(found, device=gallery.device), own, k, fetch)


def _torch_search(queries, gallery, k, own, chunk_size) -> torch.Tensor:
    fetch = min(gallery.shape[0], k + (1 if own is not None else 0) + 8)
    rows = max(1, TORCH_SEARCH_ELEMENTS // gallery.shape[0])
    parts = []
    for start in range(0, queries.shape[0], rows):
        scores = queries[start : start + rows].float() @ gallery.float().T
        if own is not None:
            mine = own[start : start + rows]
            scores[torch.arange(len(mine), device=scores.device), mine] = -torch.inf
        # A stable descending sort of every gallery item orders equal scores by index.
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :fetch]
        parts.append(order)
    return _drop_own(torch.cat(parts), own, k, fetch)


def _drop_own(neighbours: torch.Tensor, own, k: int, fetch: int) -> torch.Tensor:
    """Remove each query's own index wherever it appears; keep ``fetch - 1`` columns."""
    if own is None:
        return neighbours
    keep = neighbours != own[:, None]
    missing = keep.all(dim=1)
    keep[missing, -1] = False  # own index not returned: drop the last column instead
    return neighbours[keep].view(neighbours.shape[0], fetch - 1)


def _tie_order(scores, neighbours, match, ties) -> torch.Tensor:
    """Column order: similarity descending, then gallery index (or non-matches) first."""
    order = torch.argsort(neighbours, dim=1, stable=True)
    if ties == "pessimistic":
        secondary = torch.gather(match.long(), 1, order)
        order = torch.gather(order, 1, torch.argsort(secondary, dim=1, stable=True))
    primary = torch.gather(scores, 1, order)
    return torch.gather(order, 1, torch.argsort(primary, dim=1, descending=True, stable=True))


def _score_chunk(match, relevant, hits, r_precision, average_precision, start) -> None:
    stop = start + match.shape[0]
    for k, values in hits.items():
        values[start:stop] = match[:, :k].any(axis=1)
    columns = np.arange(1, match.shape[1] + 1)
    within = columns[None, :] <= relevant[:, None]
    found = np.cumsum(match, axis=1)
    safe = np.maximum(relevant, 1)
    r_precision[start:stop] = (match & within).sum(axis=1) / safe
    precision = found / columns[None, :]
    average_precision[start:stop] = (precision * (match & within)).sum(axis=1) / safe


def _weights(codes: np.ndarray, keep: np.ndarray, class_balanced: bool) -> np.ndarray:
    weights = keep.astype(np.float64)
    if class_balanced:
        per_class = np.bincount(codes[keep], minlength=int(codes.max()) + 1)
        weights = np.where(keep, 1.0 / np.maximum(per_class[codes], 1), 0.0)
        weights /= int((per_class > 0).sum())
        return weights
    return weights / weights.sum()
