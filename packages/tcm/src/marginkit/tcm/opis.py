"""OPIS and epsilon-OPIS: how much a global threshold's utility varies across classes.

For thresholds ``d_1..d_K`` spread over the range where the pooled false-accept rate goes
from ``f_hi`` to ``f_lo``, with the per-class utility ``U_c(d) = F_beta(TPR_c, TNR_c)``,

    OPIS = (1/K) sum_k (1/T) sum_c (U_c(d_k) - Ubar(d_k))^2
    eps-OPIS = (1/K) sum_k (B_k - W_k)^2,

``Ubar`` the pooled utility (``overall="pooled"``) or the mean class utility (``"mean"``),
``W_k``/``B_k`` the means of the ``max(1, ceil(eps T))`` lowest/highest ``U_c(d_k)``.
Lower is better. From Zhang et al., "Threshold-Consistent Margin Loss for Open-World Deep
Metric Learning", ICLR 2024; the conventions the paper leaves open are settings here and
are recorded in every :class:`OPISResult`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np
import torch

from marginkit.tcm.config import OPISConfig
from marginkit.tcm.pairs import count_at_thresholds, negative_order_statistics, tile_size_for
from marginkit.tcm.similarity import unit_rows
from marginkit.tcm.utility import _checked_range, f_beta_utility

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class OPISResult:
    """OPIS, eps-OPIS and everything needed to read or redo them."""

    opis: float
    eps_opis: float
    thresholds: np.ndarray  # (K,)
    d_min: float
    d_max: float
    utilities: np.ndarray  # (T, K) U_c(d_k)
    overall_utility: np.ndarray  # (K,) Ubar(d_k)
    class_ids: np.ndarray  # (T,) original labels of the class set
    num_classes: int  # T
    min_class_size: int
    num_positives: int
    num_negatives: int
    num_dropped_classes: int
    config: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """Flat numbers and settings, for a table or a JSON line."""
        return {
            "opis": self.opis,
            "eps_opis": self.eps_opis,
            "d_min": self.d_min,
            "d_max": self.d_max,
            "num_classes": self.num_classes,
            "min_class_size": self.min_class_size,
            "num_positives": self.num_positives,
            "num_negatives": self.num_negatives,
            **{f"config/{key}": value for key, value in self.config.items()},
        }


def threshold_grid(d_min: float, d_max: float, count: int, grid: str = "cosine") -> np.ndarray:
    """``count`` thresholds from ``d_min`` to ``d_max``, even in cosine or in L2 distance.

    For ``grid="l2"`` the points are even in ``r = sqrt(2 - 2s)`` from ``r(d_max)`` to
    ``r(d_min)`` and mapped back by ``s = 1 - r^2 / 2`` (returned in increasing order).
    """
    if grid == "cosine":
        return np.linspace(d_min, d_max, count)
    if grid == "l2":
        radii = np.linspace(math.sqrt(2 - 2 * d_max), math.sqrt(2 - 2 * d_min), count)
        return np.sort(1.0 - radii**2 / 2.0)
    raise ValueError(f"grid must be 'cosine' or 'l2', got {grid!r}")


def opis_from_rates(
    tpr: np.ndarray,
    tnr: np.ndarray,
    pooled_tpr: np.ndarray,
    pooled_tnr: np.ndarray,
    config: OPISConfig,
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """OPIS and eps-OPIS from ``(T, K)`` class rates and ``(K,)`` pooled rates.

    Returns ``(opis, eps_opis, utilities (T, K), overall_utility (K,))``.
    """
    utilities = f_beta_utility(tpr, tnr, config.beta)
    if config.overall == "pooled":
        overall = f_beta_utility(pooled_tpr, pooled_tnr, config.beta)
    else:
        overall = utilities.mean(axis=0)
    opis = float(((utilities - overall[None, :]) ** 2).mean())
    return opis, eps_opis(utilities, config.eps, config.eps_rank), utilities, overall


def eps_opis(utilities: np.ndarray, eps: float = 0.05, rank: str = "per_threshold") -> float:
    """``(1/K) sum_k (B_k - W_k)^2`` over ``(T, K)`` class utilities.

    ``W_k``/``B_k`` average the ``max(1, ceil(eps T))`` lowest/highest classes, ranked at
    each threshold (``rank="per_threshold"``) or once by mean utility (``"global"``).
    """
    count = utilities.shape[0]
    group = max(1, math.ceil(eps * count - 1e-12))
    if rank == "per_threshold":
        ordered = np.sort(utilities, axis=0)
        worst, best = ordered[:group].mean(axis=0), ordered[-group:].mean(axis=0)
    elif rank == "global":
        order = np.argsort(utilities.mean(axis=1), kind="stable")
        worst = utilities[order[:group]].mean(axis=0)
        best = utilities[order[-group:]].mean(axis=0)
    else:
        raise ValueError(f"rank must be 'per_threshold' or 'global', got {rank!r}")
    return float(((best - worst) ** 2).mean())


def _class_set(labels: np.ndarray, min_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer labels, the class-set index of each sample (-1 outside), the kept class ids."""
    class_ids, codes, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    kept = sizes >= min_size
    position = np.full(len(class_ids), -1, dtype=np.int64)
    position[kept] = np.arange(int(kept.sum()))
    dropped = int((~kept).sum())
    if int(kept.sum()) < 2:
        raise ValueError(
            f"OPIS needs at least two classes with >= {min_size} samples; found "
            f"{int(kept.sum())} among {len(class_ids)} classes"
        )
    if dropped:
        logger.warning(
            "%d of %d classes have fewer than %d samples: they are negatives only",
            dropped,
            len(class_ids),
            min_size,
        )
    return codes.astype(np.int64), position[codes], class_ids[kept]


def compute_opis(
    embeddings: torch.Tensor | np.ndarray,
    labels: Any,
    config: OPISConfig | None = None,
    device: str | torch.device | None = None,
    tile_size: int | None = None,
) -> OPISResult:
    """OPIS and eps-OPIS of ``(N, dim)`` embeddings over all their unordered pairs, blocked.

    Parameters
    ----------
    embeddings:
        ``(N, dim)`` tensor or array; rows are L2-normalised (a zero or NaN row is an error).
    labels:
        ``(N,)`` labels of any sortable hashable type (ints, strings).
    config:
        :class:`OPISConfig`.
    device:
        Where the sweeps run; the embeddings' device when ``None``.
    tile_size:
        Rows per tile; from ``config.memory_budget_mb`` when ``None``.

    Examples
    --------
    >>> angles = np.radians([0.0, 10.0, 90.0, 150.0])
    >>> points = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    >>> result = compute_opis(points, [0, 0, 1, 1], OPISConfig(thresholds=(0.3, 0.4, 0.6, 0.7)))
    >>> round(result.opis, 6), result.eps_opis
    (0.138889, 0.5)
    """
    config = config or OPISConfig()
    tensor = torch.as_tensor(
        np.asarray(embeddings) if not torch.is_tensor(embeddings) else embeddings
    )
    if device is not None:
        tensor = tensor.to(device)
    unit = unit_rows(tensor)
    label_array = np.asarray(labels.cpu() if torch.is_tensor(labels) else labels)
    if label_array.ndim != 1 or len(label_array) != unit.shape[0]:
        raise ValueError(
            f"labels has shape {label_array.shape} but embeddings have {unit.shape[0]} rows"
        )
    codes, position, class_ids = _class_set(label_array, config.min_class_size)
    tile = tile_size or tile_size_for(config.memory_budget_mb, unit.shape[0])
    codes_t = torch.as_tensor(codes, device=unit.device)
    index_t = torch.as_tensor(position, device=unit.device)
    in_set = index_t >= 0

    if config.thresholds is not None:
        thresholds = np.asarray(config.thresholds, dtype=np.float64)
        d_min, d_max = float(thresholds[0]), float(thresholds[-1])
    else:
        d_min, d_max = _far_range_thresholds(unit, codes_t, in_set, config, tile)
        thresholds = threshold_grid(d_min, d_max, config.num_thresholds, config.grid)

    counts = count_at_thresholds(unit, index_t, codes_t, len(class_ids), thresholds, tile)
    sizes = np.bincount(position[position >= 0], minlength=len(class_ids)).astype(np.int64)
    pos_total = sizes * (sizes - 1) // 2
    neg_total = sizes * (len(codes) - sizes)  # pairs with exactly one member in the class
    tpr = counts.pos_ge / pos_total[:, None]
    tnr = 1.0 - counts.neg_ge / neg_total[:, None]
    pooled_tpr = counts.pos_ge.sum(axis=0) / pos_total.sum()
    pooled_tnr = 1.0 - counts.pooled_neg_ge / max(counts.pooled_neg_total, 1)
    opis, eps_value, utilities, overall = opis_from_rates(tpr, tnr, pooled_tpr, pooled_tnr, config)
    return OPISResult(
        opis=opis,
        eps_opis=eps_value,
        thresholds=thresholds,
        d_min=d_min,
        d_max=d_max,
        utilities=utilities,
        overall_utility=overall,
        class_ids=class_ids,
        num_classes=len(class_ids),
        min_class_size=config.min_class_size,
        num_positives=int(pos_total.sum()),
        num_negatives=counts.pooled_neg_total,
        num_dropped_classes=int((np.unique(codes).size) - len(class_ids)),
        config=_record(config),
    )


def _record(config: OPISConfig) -> dict[str, Any]:
    record = dataclasses.asdict(config)
    record["far_range"] = list(config.far_range)
    if config.thresholds is not None:
        record["thresholds"] = list(config.thresholds)
    return record


def _far_range_thresholds(
    unit: torch.Tensor, codes: torch.Tensor, in_set: torch.Tensor, config: OPISConfig, tile: int
) -> tuple[float, float]:
    f_lo, f_hi = config.far_range
    if config.range_estimate == "sampled":
        scores = _sampled_negatives(unit, codes, in_set, config)
        d_min, d_max = np.quantile(scores, [1.0 - f_hi, 1.0 - f_lo], method="linear")
        return _checked_range(float(d_min), float(d_max), config.far_range, scores.size)
    quantiles, total = negative_quantiles(unit, codes, in_set, [1.0 - f_hi, 1.0 - f_lo], tile)
    return _checked_range(quantiles[0], quantiles[1], config.far_range, total)


def negative_quantiles(
    unit: torch.Tensor,
    codes: torch.Tensor,
    in_set: torch.Tensor,
    levels: list[float],
    tile: int,
) -> tuple[list[float], int]:
    """Exact numpy-"linear" quantiles of all negative-pair similarities, by blocked sweeps.

    The linear quantile at ``q`` of ``n`` sorted values interpolates the values of ranks
    ``floor(h)`` and ``floor(h) + 1`` with ``h = (n - 1) q``; a histogram sweep finds ``n``,
    a second one picks the needed ranks. Returns ``(quantiles, n)``.
    """
    _, total = negative_order_statistics(unit, codes, in_set, np.zeros(0, dtype=np.int64), tile)
    if total == 0:
        raise ValueError("the embeddings have no negative pair; OPIS needs two classes")
    positions = [(total - 1) * level for level in levels]
    ranks = sorted(
        {min(int(math.floor(h)) + step, total - 1) for h in positions for step in (0, 1)}
    )
    values, _ = negative_order_statistics(unit, codes, in_set, np.asarray(ranks), tile)
    by_rank = dict(zip(ranks, values))
    quantiles = []
    for h in positions:
        low = int(math.floor(h))
        high = min(low + 1, total - 1)
        quantiles.append(float(by_rank[low] + (h - low) * (by_rank[high] - by_rank[low])))
    return quantiles, total


def _sampled_negatives(
    unit: torch.Tensor, codes: torch.Tensor, in_set: torch.Tensor, config: OPISConfig
) -> np.ndarray:
    """Similarities of up to ``num_sampled_negatives`` seeded random negative pairs."""
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    count = unit.shape[0]
    wanted = config.num_sampled_negatives
    kept: list[torch.Tensor] = []
    have = 0
    for _ in range(100):
        draw = min(max(2 * (wanted - have), 1024), 2**22)
        i = torch.randint(count, (draw,), generator=generator).to(unit.device)
        j = torch.randint(count, (draw,), generator=generator).to(unit.device)
        negative = (codes[i] != codes[j]) & (in_set[i] | in_set[j])
        i, j = i[negative], j[negative]
        scores = (unit[i] * unit[j]).sum(dim=1).clamp(-1.0, 1.0)
        kept.append(scores[: wanted - have].double().cpu())
        have += kept[-1].numel()
        if have >= wanted:
            break
    if have == 0:
        raise ValueError("no negative pair found by sampling; OPIS needs two classes")
    return torch.cat(kept).numpy()


def opis_from_scores(
    pos_by_class: dict[Any, np.ndarray],
    neg_by_class: dict[Any, np.ndarray],
    negatives: np.ndarray | None = None,
    config: OPISConfig | None = None,
) -> OPISResult:
    """OPIS from per-class similarity arrays instead of embeddings.

    Parameters
    ----------
    pos_by_class:
        ``{class: (|P_c|,) similarities of the class's positive pairs}``.
    neg_by_class:
        ``{class: (|N_c|,) similarities of pairs with exactly one member in the class}``.
    negatives:
        Every negative pair once, for the pooled rates and the FAR range; when ``None``
        the class arrays are concatenated, which counts a pair between two listed
        classes twice.
    config:
        :class:`OPISConfig`; ``min_class_size`` does not apply (the caller chose classes).
    """
    config = config or OPISConfig()
    classes = list(pos_by_class)
    if set(classes) != set(neg_by_class):
        raise ValueError("pos_by_class and neg_by_class must have the same classes")
    if len(classes) < 2:
        raise ValueError(f"OPIS needs at least two classes, got {len(classes)}")
    positives = [np.sort(np.asarray(pos_by_class[c], dtype=np.float64)) for c in classes]
    negs = [np.sort(np.asarray(neg_by_class[c], dtype=np.float64)) for c in classes]
    for name, arrays in (("positive", positives), ("negative", negs)):
        for cls, values in zip(classes, arrays):
            if values.size == 0:
                raise ValueError(f"class {cls!r} has no {name} pair")
            if not np.isfinite(values).all():
                raise ValueError(f"class {cls!r} has NaN or infinite {name} scores")
    pooled_neg = np.sort(
        np.concatenate(negs) if negatives is None else np.asarray(negatives, float)
    )
    if config.thresholds is not None:
        thresholds = np.asarray(config.thresholds, dtype=np.float64)
        d_min, d_max = float(thresholds[0]), float(thresholds[-1])
    else:
        f_lo, f_hi = config.far_range
        low, high = np.quantile(pooled_neg, [1.0 - f_hi, 1.0 - f_lo], method="linear")
        d_min, d_max = _checked_range(float(low), float(high), config.far_range, pooled_neg.size)
        thresholds = threshold_grid(d_min, d_max, config.num_thresholds, config.grid)

    def at_or_above(sorted_values: np.ndarray) -> np.ndarray:
        return sorted_values.size - np.searchsorted(sorted_values, thresholds, side="left")

    pos_ge = np.stack([at_or_above(values) for values in positives])
    neg_ge = np.stack([at_or_above(values) for values in negs])
    pos_total = np.array([values.size for values in positives])
    neg_total = np.array([values.size for values in negs])
    opis, eps_value, utilities, overall = opis_from_rates(
        pos_ge / pos_total[:, None],
        1.0 - neg_ge / neg_total[:, None],
        pos_ge.sum(axis=0) / pos_total.sum(),
        1.0 - at_or_above(pooled_neg) / pooled_neg.size,
        config,
    )
    return OPISResult(
        opis=opis,
        eps_opis=eps_value,
        thresholds=thresholds,
        d_min=d_min,
        d_max=d_max,
        utilities=utilities,
        overall_utility=overall,
        class_ids=np.asarray(classes),
        num_classes=len(classes),
        min_class_size=config.min_class_size,
        num_positives=int(pos_total.sum()),
        num_negatives=int(pooled_neg.size),
        num_dropped_classes=0,
        config=_record(config),
    )
