"""Blocked sweeps over all unordered pairs of a set of embeddings.

Similarities are computed tile by tile over the upper triangle of the ``(N, N)`` matrix,
so memory holds the unit embeddings, one tile and small count arrays, never all pairs.
Two sweeps are provided: exact order statistics of the negative-pair similarities (a
histogram pass, then a pass keeping only the values in the bins that hold the wanted
ranks) and per-class counts of pairs at or above each threshold of a grid.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np
import torch

from marginkit.tcm.similarity import cosine_matrix

HISTOGRAM_BINS = 2**16
BYTES_PER_PAIR = 48  # fp32 score, fp64 copy, int64 bins and keys, boolean masks


def tile_size_for(memory_budget_mb: float, count: int) -> int:
    """Rows per tile so that one ``tile x tile`` block of pair work fits the budget."""
    if memory_budget_mb <= 0:
        raise ValueError(f"memory_budget_mb must be > 0, got {memory_budget_mb}")
    side = int(math.sqrt(memory_budget_mb * 2**20 / BYTES_PER_PAIR))
    return max(1, min(count, side))


@dataclasses.dataclass
class PairTile:
    """One tile of unordered pairs ``i < j``: flat similarities and the row/column indices."""

    scores: torch.Tensor  # (pairs,)
    rows: torch.Tensor  # (pairs,) index i
    cols: torch.Tensor  # (pairs,) index j


def iter_pair_tiles(unit: torch.Tensor, tile: int) -> Iterator[PairTile]:
    """Yield every unordered pair ``i < j`` of ``unit`` (``(N, dim)`` unit rows) once."""
    count = unit.shape[0]
    for row_start in range(0, count, tile):
        rows = unit[row_start : row_start + tile]
        for col_start in range(row_start, count, tile):
            cols = unit[col_start : col_start + tile]
            block = cosine_matrix(rows, cols)
            row_index = torch.arange(row_start, row_start + rows.shape[0], device=unit.device)
            col_index = torch.arange(col_start, col_start + cols.shape[0], device=unit.device)
            keep = row_index[:, None] < col_index[None, :]
            i, j = keep.nonzero(as_tuple=True)
            yield PairTile(block[i, j], row_index[i], col_index[j])


def negative_mask(tile: PairTile, labels: torch.Tensor, in_set: torch.Tensor) -> torch.Tensor:
    """Pairs of different labels with at least one member in the class set."""
    left, right = labels[tile.rows], labels[tile.cols]
    return (left != right) & (in_set[tile.rows] | in_set[tile.cols])


def negative_order_statistics(
    unit: torch.Tensor,
    labels: torch.Tensor,
    in_set: torch.Tensor,
    ranks: np.ndarray,
    tile: int,
) -> tuple[np.ndarray, int]:
    """Exact ascending order statistics of the negative-pair similarities.

    Parameters
    ----------
    unit:
        ``(N, dim)`` unit rows.
    labels:
        ``(N,)`` integer labels.
    in_set:
        ``(N,)`` boolean, the sample's class is in the class set.
    ranks:
        0-based ranks wanted (``0`` is the smallest), all below the number of negatives.
    tile:
        Rows per tile.

    Returns
    -------
    (values, num_negatives)
        ``values[r]`` is the ``ranks[r]``-th smallest negative similarity (float64).
    """
    histogram = torch.zeros(HISTOGRAM_BINS, dtype=torch.int64, device=unit.device)
    for pairs in iter_pair_tiles(unit, tile):
        scores = pairs.scores[negative_mask(pairs, labels, in_set)]
        histogram += torch.bincount(_histogram_bin(scores), minlength=HISTOGRAM_BINS)
    cumulative = histogram.cumsum(0).cpu().numpy()
    total = int(cumulative[-1])
    ranks = np.asarray(ranks, dtype=np.int64)
    if total == 0:
        return np.empty(0), 0
    if (ranks < 0).any() or (ranks >= total).any():
        raise ValueError(f"ranks {ranks.tolist()} outside 0..{total - 1}")
    # The bin of rank r is the first whose cumulative count exceeds r.
    bins = np.searchsorted(cumulative, ranks, side="right")
    wanted = torch.as_tensor(np.unique(bins), device=unit.device)
    kept = []
    for pairs in iter_pair_tiles(unit, tile):
        scores = pairs.scores[negative_mask(pairs, labels, in_set)]
        kept.append(scores[torch.isin(_histogram_bin(scores), wanted)].double().cpu())
    values = torch.cat(kept).sort().values.numpy()
    # Values of the kept bins, in order; rank r sits at r minus the count below the first.
    below = {int(b): int(cumulative[b - 1]) if b > 0 else 0 for b in np.unique(bins)}
    offsets = {}
    position = 0
    for b in sorted(below):
        offsets[b] = position
        position += int(histogram[b])
    picked = [values[offsets[int(b)] + int(r) - below[int(b)]] for r, b in zip(ranks, bins)]
    return np.asarray(picked, dtype=np.float64), total


def _histogram_bin(scores: torch.Tensor) -> torch.Tensor:
    position = ((scores.double() + 1.0) * (HISTOGRAM_BINS / 2.0)).floor().long()
    return position.clamp(0, HISTOGRAM_BINS - 1)


@dataclasses.dataclass
class ThresholdCounts:
    """Pairs with similarity >= each threshold, per class and pooled.

    ``pos_ge[c, k]`` counts same-class pairs of class ``c`` with ``s >= d_k``;
    ``neg_ge[c, k]`` pairs with exactly one member in ``c``; ``pooled_neg_ge[k]`` each
    negative pair with a member in the class set once.
    """

    pos_ge: np.ndarray  # (T, K) int64
    neg_ge: np.ndarray  # (T, K) int64
    pooled_neg_ge: np.ndarray  # (K,) int64
    pooled_neg_total: int


def count_at_thresholds(
    unit: torch.Tensor,
    class_index: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    thresholds: np.ndarray,
    tile: int,
) -> ThresholdCounts:
    """Per-class counts of pairs at or above each threshold, by one blocked sweep.

    A pair's bin is ``searchsorted(thresholds, s, right=True)`` in ``0..K``, the number of
    thresholds ``<= s``; it is accepted at ``d_k`` exactly when its bin is above ``k``.
    Bins are counted with one ``bincount`` on ``class * (K + 1) + bin``, and suffix sums
    turn the histograms into ``#{s >= d_k}``.

    Parameters
    ----------
    unit:
        ``(N, dim)`` unit rows.
    class_index:
        ``(N,)`` index ``0..T-1`` in the class set, ``-1`` for samples outside it.
    labels:
        ``(N,)`` integer labels of every sample (outside samples are negatives only).
    num_classes:
        ``T``.
    thresholds:
        ``(K,)`` increasing thresholds.
    tile:
        Rows per tile.
    """
    device = unit.device
    width = len(thresholds) + 1
    grid = torch.as_tensor(thresholds, dtype=torch.float64, device=device)
    pos_hist = torch.zeros(num_classes * width, dtype=torch.int64, device=device)
    neg_hist = torch.zeros(num_classes * width, dtype=torch.int64, device=device)
    pooled = torch.zeros(width, dtype=torch.int64, device=device)
    for pairs in iter_pair_tiles(unit, tile):
        bins = torch.searchsorted(grid, pairs.scores.double().contiguous(), right=True)
        left, right = class_index[pairs.rows], class_index[pairs.cols]
        same = labels[pairs.rows] == labels[pairs.cols]
        positive = same & (left >= 0)
        pos_hist += _bincount(left[positive] * width + bins[positive], pos_hist.numel())
        for side in (left, right):
            chosen = ~same & (side >= 0)
            neg_hist += _bincount(side[chosen] * width + bins[chosen], neg_hist.numel())
        chosen = ~same & ((left >= 0) | (right >= 0))
        pooled += _bincount(bins[chosen], width)
    pos_ge = _suffix_counts(pos_hist.view(num_classes, width))
    neg_ge = _suffix_counts(neg_hist.view(num_classes, width))
    pooled_ge = _suffix_counts(pooled.view(1, width))[0]
    return ThresholdCounts(pos_ge, neg_ge, pooled_ge, int(pooled.sum()))


def _bincount(keys: torch.Tensor, size: int) -> torch.Tensor:
    return torch.bincount(keys, minlength=size)


def _suffix_counts(histogram: torch.Tensor) -> np.ndarray:
    """``(T, K + 1)`` bin counts -> ``(T, K)`` counts of bins strictly above ``k``."""
    counts = histogram.cpu().numpy()
    suffix = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]
    return np.ascontiguousarray(suffix[:, 1:])


def hard_pair_shares(
    unit: torch.Tensor, labels: torch.Tensor, margin_pos: float, margin_neg: float, tile: int
) -> tuple[float, float]:
    """Shares of positive pairs with ``s <= m+`` and negative pairs with ``s >= m-``.

    Parameters
    ----------
    unit:
        ``(N, dim)`` unit rows.
    labels:
        ``(N,)`` integer labels; every unordered pair counts once.
    """
    hard_pos = hard_neg = positives = negatives = 0
    for pairs in iter_pair_tiles(unit, tile):
        same = labels[pairs.rows] == labels[pairs.cols]
        positives += int(same.sum())
        negatives += int((~same).sum())
        hard_pos += int((same & (pairs.scores <= margin_pos)).sum())
        hard_neg += int((~same & (pairs.scores >= margin_neg)).sum())
    return hard_pos / max(positives, 1), hard_neg / max(negatives, 1)
