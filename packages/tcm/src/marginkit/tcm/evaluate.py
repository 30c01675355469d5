"""One evaluation entry point: retrieval accuracy next to threshold consistency."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from marginkit.tcm.opis import OPISConfig, compute_opis
from marginkit.tcm.pairs import hard_pair_shares, iter_pair_tiles, tile_size_for
from marginkit.tcm.retrieval import retrieval_metrics
from marginkit.tcm.similarity import unit_rows


def evaluate_embeddings(
    embeddings: torch.Tensor | np.ndarray,
    labels: Any,
    opis_config: OPISConfig | None = None,
    ks: tuple[int, ...] = (1, 2, 4, 8),
    ties: str = "index",
    margins: tuple[float, float] = (0.9, 0.5),
    backend: str = "auto",
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """R@k, R-precision, MAP@R, OPIS, eps-OPIS and test hard-pair shares of ``(N, dim)``
    embeddings (query = gallery, own index removed).

    ``margins = (m+, m-)`` sets the diagnostics ``share_pos_below_m_pos`` (positives with
    ``s <= m+``) and ``share_neg_above_m_neg`` (negatives with ``s >= m-``).
    """
    opis_config = opis_config or OPISConfig()
    tensor = embeddings if torch.is_tensor(embeddings) else torch.as_tensor(np.asarray(embeddings))
    if device is not None:
        tensor = tensor.to(device)
    retrieval = retrieval_metrics(tensor, labels, ks=ks, ties=ties, backend=backend)  # type: ignore[arg-type]
    opis = compute_opis(tensor, labels, opis_config)
    unit = unit_rows(tensor)
    _, codes = np.unique(np.asarray(labels), return_inverse=True)
    shares = hard_pair_shares(
        unit,
        torch.as_tensor(codes, device=unit.device),
        margins[0],
        margins[1],
        tile_size_for(opis_config.memory_budget_mb, unit.shape[0]),
    )
    return {
        **retrieval.summary(),
        **opis.summary(),
        "share_pos_below_m_pos": shares[0],
        "share_neg_above_m_neg": shares[1],
    }


def threshold_at_far(
    embeddings: torch.Tensor | np.ndarray,
    labels: Any,
    far: float,
    memory_budget_mb: float = 512.0,
) -> tuple[float, float]:
    """The cosine threshold whose pooled false-accept rate is ``far``, and the TAR there.

    The threshold is the exact linear quantile ``Q(1 - far)`` of all negative-pair
    similarities (every unordered pair once); the true-accept rate is the share of
    positive pairs with ``s >= threshold``.

    Returns
    -------
    (threshold, tar)
    """
    from marginkit.tcm.opis import negative_quantiles

    if not 0.0 < far < 1.0:
        raise ValueError(f"far must be in (0, 1), got {far}")
    tensor = embeddings if torch.is_tensor(embeddings) else torch.as_tensor(np.asarray(embeddings))
    unit = unit_rows(tensor)
    _, codes = np.unique(np.asarray(labels), return_inverse=True)
    if len(codes) != unit.shape[0]:
        raise ValueError(f"{len(codes)} labels for {unit.shape[0]} embeddings")
    codes_t = torch.as_tensor(codes, device=unit.device)
    everyone = torch.ones(len(codes), dtype=torch.bool, device=unit.device)
    tile = tile_size_for(memory_budget_mb, unit.shape[0])
    (threshold,), _ = negative_quantiles(unit, codes_t, everyone, [1.0 - far], tile)
    accepted = total = 0
    for pairs in iter_pair_tiles(unit, tile):
        row_labels, col_labels = codes_t[pairs.row_index], codes_t[pairs.col_index]
        same = pairs.pairs(row_labels[:, None] == col_labels[None, :])
        total += int(same.sum())
        accepted += int((same & (pairs.scores >= threshold)).sum())
    if total == 0:
        raise ValueError("no positive pair: every class has one sample")
    return threshold, accepted / total
