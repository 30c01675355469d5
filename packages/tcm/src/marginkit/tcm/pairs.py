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
BYTES_PER_PAIR = 40  # fp32 score, fp64 copy, int64 bins and keys, boolean masks


def tile_size_for(memory_budget_mb: float, count: int) -> int:
    """Rows per tile so that one ``tile x tile`` block of pair work fits the budget."""
    if memory_budget_mb <= 0:
        raise ValueError(f"memory_budget_mb must be > 0, got {memory_budget_mb}")
    side = int(math.sqrt(memory_budget_mb * 2**20 / BYTES_PER_PAIR))
    return max(1, min(count, side))


@dataclasses.dataclass
class PairTile:
    """One ``(rows, cols)`` block of the similarity matrix and which of its pairs count.

    ``valid`` is ``None`` for a block above the diagonal (every pair ``i < j``) and the
    strict upper-triangle mask for a diagonal block.
    """

    scores: torch.Tensor  # (rows, cols)
    row_index: torch.Tensor  # (rows,) sample index i
    col_index: torch.Tensor  # (cols,) sample index j
    valid: torch.Tensor | None  # (rows, cols) bool, or None when all count

    def pairs(self, mask: torch.Tensor) -> torch.Tensor:
        """``mask`` restricted to the pairs that count."""
        return mask if self.valid is None else mask & self.valid


def iter_pair_tiles(unit: torch.Tensor, tile: int) -> Iterator[PairTile]:
    """Yield blocks covering every unordered pair ``i < j`` of ``unit`` (``(N, dim)``) once."""
    count = unit.shape[0]
    for row_start in range(0, count, tile):
        rows = unit[row_start : row_start + tile]
        row_index = torch.arange(row_start, row_start + rows.shape[0], device=unit.device)
        for col_start in range(row_start, count, tile):
            cols = unit[col_start : col_start + tile]
            col_index = torch.arange(col_start, col_start + cols.shape[0], device=unit.device)
            valid = None
            if col_start == row_start:
                valid = row_index[:, None] < col_index[None, :]
            yield PairTile(cosine_matrix(rows, cols), row_index, col_index, valid)


def negative_mask(tile: PairTile, labels: torch.Tensor, in_set: torch.Tensor) -> torch.Tensor:
    """Pairs of different labels with at least one member in the class set."""
    left, right = labels[tile.row_index], labels[tile.col_index]
    member = in_set[tile.row_index][:, None] | in_set[tile.col_index][None, :]
    return tile.pairs((left[:, None] != right[None, :]) & member)


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
    histogram = torch.zeros(HISTOGRAM_BINS + 1, dtype=torch.int64, device=unit.device)
    for pairs in iter_pair_tiles(unit, tile):
        # Pairs that are not negatives go to one extra bin that is dropped afterwards.
        keys = torch.where(
            negative_mask(pairs, labels, in_set), _histogram_bin(pairs.scores), HISTOGRAM_BINS
        )
        histogram += torch.bincount(keys.view(-1), minlength=HISTOGRAM_BINS + 1)
    histogram = histogram[:HISTOGRAM_BINS]
    cumulative = histogram.cumsum(0).cpu().numpy()
    total = int(cumulative[-1])
    ranks = np.asarray(ranks, dtype=np.int64)
    if total == 0:
        return np.empty(0), 0
    if (ranks < 0).any() or (ranks >= total).any():
        raise ValueError(f"ranks {ranks.tolist()} outside 0..{total - 1}")
    # The bin of rank r is the first whose cumulative count exceeds r.
    bins = np.searchsorted(cumulative, ranks, side="right")
    wanted = torch.zeros(HISTOGRAM_BINS, dtype=torch.bool, device=unit.device)
    wanted[torch.as_tensor(np.unique(bins), device=unit.device)] = True
    kept = []
    for pairs in iter_pair_tiles(unit, tile):
        keep = negative_mask(pairs, labels, in_set) & wanted[_histogram_bin(pairs.scores)]
        kept.append(pairs.scores[keep].double().cpu())
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
    """Bin of ``s`` among 2^16 equal bins on [-1, 1]; monotone in ``s``, the same every pass."""
    # s + 1 >= 0, so truncation toward zero is the floor.
    position = ((scores + 1.0) * (HISTOGRAM_BINS / 2.0)).long()
    return position.clamp_(0, HISTOGRAM_BINS - 1)


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
    size = num_classes * width
    all_in_set = bool((class_index >= 0).all())
    # Keys: positives of a class at [0, size), negatives at [size, 2 size) from the left
    # member and again from the right member; anything that does not count goes to 2 size.
    hist = torch.zeros(2 * size + 1, dtype=torch.int64, device=device)
    pooled = torch.zeros(width + 1, dtype=torch.int64, device=device)
    for pairs in iter_pair_tiles(unit, tile):
        bins = torch.searchsorted(grid, pairs.scores.double().contiguous(), right=True)
        left, right = class_index[pairs.row_index], class_index[pairs.col_index]
        row_labels, col_labels = labels[pairs.row_index], labels[pairs.col_index]
        different = row_labels[:, None] != col_labels[None, :]
        left_in, right_in = (left >= 0)[:, None], (right >= 0)[None, :]
        left_keys = (different.long() * num_classes + left[:, None]) * width + bins
        hist += _bincount(torch.where(pairs.pairs(left_in), left_keys, 2 * size), 2 * size + 1)
        right_keys = (right[None, :] + num_classes) * width + bins
        negative_right = pairs.pairs(different & right_in)
        hist += _bincount(torch.where(negative_right, right_keys, 2 * size), 2 * size + 1)
        if not all_in_set:
            counted = pairs.pairs(different & (left_in | right_in))
            pooled += _bincount(torch.where(counted, bins, width), width + 1)
    pos_hist, neg_hist = hist[:size], hist[size : 2 * size]
    if all_in_set:
        # Every negative pair was counted once for each of its two classes.
        pooled = neg_hist.view(num_classes, width).sum(dim=0) // 2
    else:
        pooled = pooled[:width]
    pos_ge = _suffix_counts(pos_hist.view(num_classes, width))
    neg_ge = _suffix_counts(neg_hist.view(num_classes, width))
    pooled_ge = _suffix_counts(pooled.view(1, width))[0]
    return ThresholdCounts(pos_ge, neg_ge, pooled_ge, int(pooled.sum()))


def _bincount(keys: torch.Tensor, size: int) -> torch.Tensor:
    return torch.bincount(keys.reshape(-1), minlength=size)


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
        row_labels, col_labels = labels[pairs.row_index], labels[pairs.col_index]
        same = pairs.pairs(row_labels[:, None] == col_labels[None, :])
        different = pairs.pairs(row_labels[:, None] != col_labels[None, :])
        positives += int(same.sum())
        negatives += int(different.sum())
        hard_pos += int((same & (pairs.scores <= margin_pos)).sum())
        hard_neg += int((different & (pairs.scores >= margin_neg)).sum())
    return hard_pos / max(positives, 1), hard_neg / max(negatives, 1)
