"""The threshold-consistent margin (TCM) regulariser, added to any base metric loss.

With cosine similarities ``s_ij`` of a batch ``Q`` against a reference set ``R``,

    H+ = {(i, j) positive : s_ij <= m+},   H- = {(i, j) negative : s_ij >= m-}
    L_TCM = lambda+ * sum_{H+} (m+ - s_ij) / |H+|  +  lambda- * sum_{H-} (s_ij - m-) / |H-|
    L = L_base + L_TCM

Without a reference set each unordered pair ``i < j`` of the batch counts once; with one,
every (query, reference) pair counts except those with equal sample ids. All pairs live
in one ``(batch, refs)`` similarity matrix with boolean masks; no per-pair rows are copied.
From Zhang et al., "Threshold-Consistent Margin Loss for Open-World Deep Metric Learning",
ICLR 2024.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import torch

from marginkit.tcm.config import TCMConfig
from marginkit.tcm.similarity import cosine_matrix, unit_rows

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TCMParts:
    """The TCM value with its two terms and the hard-pair counts of one call."""

    tcm: torch.Tensor
    """0-d tensor ``lambda+ * pos + lambda- * neg``."""
    pos: torch.Tensor
    """0-d mean of ``m+ - s`` over H+ (0 when H+ is empty)."""
    neg: torch.Tensor
    """0-d mean of ``s - m-`` over H- (0 when H- is empty)."""
    n_hard_pos: int
    n_hard_neg: int
    n_pos: int
    n_neg: int

    def metrics(self, prefix: str = "tcm/") -> dict[str, float]:
        """Flat ``/``-separated numbers for a metrics file."""
        return {
            f"{prefix}pos": float(self.pos.detach()),
            f"{prefix}neg": float(self.neg.detach()),
            f"{prefix}n_hard_pos": self.n_hard_pos,
            f"{prefix}n_hard_neg": self.n_hard_neg,
            f"{prefix}share_hard_pos": self.n_hard_pos / max(self.n_pos, 1),
            f"{prefix}share_hard_neg": self.n_hard_neg / max(self.n_neg, 1),
        }


def tcm_from_similarities(
    scores: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    config: TCMConfig | None = None,
) -> TCMParts:
    """TCM of a similarity matrix and the masks of the pairs that count.

    Parameters
    ----------
    scores:
        ``(batch, refs)`` cosine similarities.
    positive, negative:
        ``(batch, refs)`` boolean masks of the positive and negative pairs to count.
    config:
        Margins and weights; :class:`TCMConfig` defaults when ``None``.

    Returns
    -------
    TCMParts
        ``∂tcm/∂s_ij`` is ``-lambda+/|H+|`` on H+, ``+lambda-/|H-|`` on H-, 0 elsewhere.
    """
    config = config or TCMConfig()
    if positive.shape != scores.shape or negative.shape != scores.shape:
        raise ValueError(
            f"masks {tuple(positive.shape)}, {tuple(negative.shape)} do not match "
            f"scores {tuple(scores.shape)}"
        )
    hard_pos = positive & (scores <= config.margin_pos)
    hard_neg = negative & (scores >= config.margin_neg)
    pos = _masked_mean(config.margin_pos - scores, hard_pos, config.min_denominator, scores)
    neg = _masked_mean(scores - config.margin_neg, hard_neg, config.min_denominator, scores)
    parts = TCMParts(
        tcm=config.lambda_pos * pos + config.lambda_neg * neg,
        pos=pos,
        neg=neg,
        n_hard_pos=int(hard_pos.sum()),
        n_hard_neg=int(hard_neg.sum()),
        n_pos=int(positive.sum()),
        n_neg=int(negative.sum()),
    )
    logger.debug(
        "tcm pos=%.4g (|H+|=%d) neg=%.4g (|H-|=%d)",
        float(pos.detach()),
        parts.n_hard_pos,
        float(neg.detach()),
        parts.n_hard_neg,
    )
    return parts


def _masked_mean(
    values: torch.Tensor, mask: torch.Tensor, floor: float, scores: torch.Tensor
) -> torch.Tensor:
    count = int(mask.sum())
    if count == 0:
        # An empty term is a 0-d zero that still belongs to the graph.
        return 0.0 * scores.sum()
    return (values * mask).sum() / max(float(count), floor)


def pair_masks(
    labels: torch.Tensor,
    ref_labels: torch.Tensor | None = None,
    ids: torch.Tensor | None = None,
    ref_ids: torch.Tensor | None = None,
    indices_tuple: tuple[torch.Tensor, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean ``(batch, refs)`` masks of the positive and negative pairs that TCM counts.

    Without ``ref_labels`` the reference set is the batch and only ``i < j`` counts. With
    it, every pair counts except equal ``ids``/``ref_ids``. A miner's ``indices_tuple``
    (``(a1, p, a2, n)`` pairs or ``(a, p, n)`` triplets, anchors indexing the batch and
    ``p``/``n`` the references) replaces the label masks; a pair mined twice counts once.
    """
    same_set = ref_labels is None
    refs: torch.Tensor = labels if ref_labels is None else ref_labels
    if indices_tuple is None:
        same = labels[:, None] == refs[None, :]
        positive, negative = same, ~same
    else:
        positive, negative = _mined_masks(indices_tuple, len(labels), len(refs), labels.device)
    if same_set:
        if indices_tuple is not None:
            positive, negative = positive | positive.T, negative | negative.T
        upper = torch.ones_like(positive).triu(diagonal=1)
        positive, negative = positive & upper, negative & upper
    elif ids is not None or ref_ids is not None:
        if ids is None or ref_ids is None:
            raise ValueError("ids and ref_ids must be given together")
        distinct = ids.to(labels.device)[:, None] != ref_ids.to(labels.device)[None, :]
        positive, negative = positive & distinct, negative & distinct
    return positive, negative


def _mined_masks(
    indices_tuple: tuple[torch.Tensor, ...], batch: int, refs: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    if len(indices_tuple) == 3:
        anchors, positives, negatives = indices_tuple
        indices_tuple = (anchors, positives, anchors, negatives)
    if len(indices_tuple) != 4:
        raise ValueError(
            f"indices_tuple must be (a1, p, a2, n) pairs or (a, p, n) triplets, "
            f"got {len(indices_tuple)} tensors"
        )
    masks = []
    for anchors, others in (indices_tuple[:2], indices_tuple[2:]):
        mask = torch.zeros(batch, refs, dtype=torch.bool, device=device)
        mask[anchors.to(device).long(), others.to(device).long()] = True
        masks.append(mask)
    return masks[0], masks[1]


def tcm_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ref_embeddings: torch.Tensor | None = None,
    ref_labels: torch.Tensor | None = None,
    ids: torch.Tensor | None = None,
    ref_ids: torch.Tensor | None = None,
    indices_tuple: tuple[torch.Tensor, ...] | None = None,
    config: TCMConfig | None = None,
) -> TCMParts:
    """TCM of a batch against itself or a reference set.

    Parameters
    ----------
    embeddings:
        ``(batch, dim)``; need not be normalised (rows are L2-normalised here, in fp32).
    labels:
        ``(batch,)`` integer class labels.
    ref_embeddings, ref_labels:
        ``(refs, dim)`` and ``(refs,)`` reference set, or ``None`` for the batch itself.
    ids, ref_ids:
        ``(batch,)`` and ``(refs,)`` sample ids; pairs with equal ids are skipped (a
        reference set holding the batch, as in a cross-batch memory).
    indices_tuple:
        Mined pairs or triplets replacing the label masks.
    config:
        :class:`TCMConfig`.

    Examples
    --------
    >>> emb = torch.tensor([[0.0, 1.0], [0.43, 0.9], [1.0, 0.0], [0.5, 0.5]])
    >>> round(float(tcm_loss(emb, torch.tensor([0, 0, 1, 1])).tcm), 6)
    0.517876
    """
    labels = _check_labels(labels, embeddings, "labels", "embeddings")
    queries = unit_rows(embeddings)
    if (ref_embeddings is None) != (ref_labels is None):
        raise ValueError("ref_embeddings and ref_labels must be given together")
    if ref_embeddings is None or ref_labels is None:
        references = queries
    else:
        ref_labels = _check_labels(ref_labels, ref_embeddings, "ref_labels", "ref_embeddings")
        references = unit_rows(ref_embeddings, "ref_embeddings")
        if references.shape[1] != queries.shape[1]:
            raise ValueError(
                f"ref_embeddings have dim {references.shape[1]}, embeddings {queries.shape[1]}"
            )
    positive, negative = pair_masks(labels, ref_labels, ids, ref_ids, indices_tuple)
    return tcm_from_similarities(cosine_matrix(queries, references), positive, negative, config)


def _check_labels(
    labels: torch.Tensor, embeddings: torch.Tensor, name: str, emb_name: str
) -> torch.Tensor:
    labels = torch.as_tensor(labels, device=embeddings.device)
    if labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"{name} has shape {tuple(labels.shape)} but {emb_name} has "
            f"{embeddings.shape[0]} rows; expected ({embeddings.shape[0]},)"
        )
    return labels


@dataclasses.dataclass
class LossOutput:
    """``loss = base + tcm``, each part kept for logging."""

    loss: torch.Tensor
    base: torch.Tensor
    tcm: TCMParts | None

    def metrics(self) -> dict[str, float]:
        values = {"loss/total": float(self.loss.detach()), "loss/base": float(self.base.detach())}
        if self.tcm is not None:
            values["loss/tcm"] = float(self.tcm.tcm.detach())
            values.update(self.tcm.metrics())
        return values


class TCMLoss(torch.nn.Module):
    """A base metric loss plus the TCM regulariser: ``L = L_base + L_TCM``.

    Parameters
    ----------
    base_loss:
        Any callable: a pytorch-metric-learning loss (called with ``indices_tuple``,
        ``ref_emb``, ``ref_labels``) or a function ``(embeddings, labels) -> loss``;
        ``None`` trains with TCM alone.
    config:
        :class:`TCMConfig`; its defaults when ``None``.
    enabled:
        ``False`` turns TCM off, leaving the base loss alone (the baseline run).

    Examples
    --------
    >>> loss_fn = TCMLoss(base_loss=None)
    >>> emb = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]], requires_grad=True)
    >>> out = loss_fn(emb, torch.tensor([0, 0, 1]))
    >>> out.loss.backward()
    """

    def __init__(
        self,
        base_loss: Callable[..., torch.Tensor] | None = None,
        config: TCMConfig | None = None,
        enabled: bool = True,
    ) -> None:
        super().__init__()
        if base_loss is None and not enabled:
            raise ValueError("TCMLoss with enabled=False needs a base_loss")
        self.base_loss = base_loss
        self.config = (config or TCMConfig()) if enabled else None

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        indices_tuple: tuple[torch.Tensor, ...] | None = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
        ids: torch.Tensor | None = None,
        ref_ids: torch.Tensor | None = None,
    ) -> LossOutput:
        parts = None
        if self.config is not None:
            parts = tcm_loss(
                embeddings, labels, ref_emb, ref_labels, ids, ref_ids, indices_tuple, self.config
            )
        base = self._base(embeddings, labels, indices_tuple, ref_emb, ref_labels)
        if parts is None:
            return LossOutput(loss=base, base=base, tcm=None)
        return LossOutput(loss=base + parts.tcm, base=base, tcm=parts)

    def _base(self, embeddings, labels, indices_tuple, ref_emb, ref_labels) -> torch.Tensor:
        if self.base_loss is None:
            return 0.0 * embeddings.sum()
        if _is_pml_loss(self.base_loss):
            value = self.base_loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)
        else:
            value = self.base_loss(embeddings, labels)
        value = torch.as_tensor(value, device=embeddings.device)
        if value.ndim != 0:
            raise ValueError(f"base_loss must return a scalar, got shape {tuple(value.shape)}")
        return value


def _is_pml_loss(loss: Any) -> bool:
    """A pytorch-metric-learning loss or a subclass of one (without importing the library)."""
    return any(
        klass.__module__.startswith("pytorch_metric_learning.") for klass in type(loss).__mro__
    )
