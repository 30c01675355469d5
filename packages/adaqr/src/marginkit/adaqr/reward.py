"""The AdaQR reward: how well the passages a rewrite retrieves explain the known answer.

For a candidate rewrite ``y`` with top-K hits of scores ``s_1..s_K``, the retrieval
posterior at temperature ``tau`` is

.. math:: \\log w_k = (s_k - s_{max})/\\tau - \\operatorname{logsumexp}_j((s_j - s_{max})/\\tau),

and with the reader's per-token answer NLL for each passage, ``NLL_k``, the loss (lower is
better; logs show the reward ``r = -loss``) is either

* ``expected_nll``: :math:`\\ell(y) = \\sum_k w_k\\, NLL_k` (the official code), or
* ``log_marginal``: :math:`\\ell_M(y) = -\\frac{1}{|a|}\\operatorname{logsumexp}_k
  (\\log w_k - |a|\\, NLL_k)`, the per-token negative log marginal answer probability
  (the paper's quantity). By Jensen :math:`\\ell_M \\le \\ell`.

A candidate whose hits all score <= 0 (or that has none) is *unscored* (loss ``None``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from marginkit.adaqr.data import Turn
from marginkit.adaqr.readers import Reader
from marginkit.adaqr.retrieval import Hit, Retriever

logger = logging.getLogger(__name__)

Aggregation = Literal["expected_nll", "log_marginal"]


def posterior_log_weights(scores: Sequence[float], tau: float) -> np.ndarray:
    """Log of the softmax of ``scores / tau``, shape ``(K,)``, max-subtracted for stability.

    Examples
    --------
    >>> np.round(np.exp(posterior_log_weights([18.2, 16.9, 16.5, 15.0, 14.8], 1.0)), 4)
    array([0.6539, 0.1782, 0.1195, 0.0267, 0.0218])
    """
    if tau <= 0 or not math.isfinite(tau):
        raise ValueError(f"tau must be a positive finite number, got {tau}")
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D sequence, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("scores contain NaN or infinite values")
    shifted = (values - values.max()) / tau
    return shifted - np.logaddexp.reduce(shifted)


def aggregate_loss(
    log_weights: Sequence[float],
    nll: Sequence[float],
    answer_length: int,
    aggregation: Aggregation = "expected_nll",
) -> float:
    """Combine per-passage answer NLLs into one loss (lower is better).

    Parameters
    ----------
    log_weights:
        ``(K,)`` log posterior weights from :func:`posterior_log_weights`.
    nll:
        ``(K,)`` per-token answer NLL of the reader given each passage.
    answer_length:
        ``|a|``, the number of scored answer tokens (used by ``log_marginal``).
    aggregation:
        ``"expected_nll"`` or ``"log_marginal"``.
    """
    log_w = np.asarray(log_weights, dtype=np.float64)
    values = np.asarray(nll, dtype=np.float64)
    if log_w.shape != values.shape or log_w.ndim != 1 or log_w.size == 0:
        raise ValueError(f"log_weights {log_w.shape} and nll {values.shape} must match, 1-D")
    if not np.isfinite(values).all():
        raise ValueError("reader NLL contains NaN or infinite values")
    if answer_length < 1:
        raise ValueError(f"answer_length must be >= 1, got {answer_length}")
    if aggregation == "expected_nll":
        return float(np.sum(np.exp(log_w) * values))
    if aggregation == "log_marginal":
        return float(-np.logaddexp.reduce(log_w - answer_length * values) / answer_length)
    raise ValueError(f"aggregation must be 'expected_nll' or 'log_marginal', got {aggregation!r}")


@dataclasses.dataclass
class ScoredCandidate:
    """A candidate rewrite with its hits and loss (``None`` when unscored)."""

    text: str
    loss: float | None
    hits: list[Hit]

    @property
    def reward(self) -> float | None:
        return None if self.loss is None else -self.loss

    def to_json(self) -> dict[str, object]:
        return {
            "text": self.text,
            "loss": self.loss,
            "reward": self.reward,
            "hits": [[hit.passage_id, hit.score] for hit in self.hits],
        }


def deduplicate(candidates: Sequence[str]) -> list[str]:
    """Drop repeated candidates (after stripping) and those of one character or fewer."""
    seen: set[str] = set()
    kept = []
    for candidate in candidates:
        text = " ".join(candidate.split())
        if len(text) <= 1 or text in seen:
            continue
        seen.add(text)
        kept.append(text)
    return kept


class RewardScorer:
    """Scores candidate rewrites of a turn; caches reader NLL by (turn, passage, reader).

    Parameters
    ----------
    retriever:
        Any :class:`~marginkit.adaqr.retrieval.Retriever`.
    reader:
        Any :class:`~marginkit.adaqr.readers.Reader`.
    k:
        Passages per candidate (clamped to the collection size by the retriever).
    tau:
        Posterior temperature; ``None`` takes the retriever's own default.
    aggregation:
        ``"expected_nll"`` (default) or ``"log_marginal"``.
    """

    def __init__(
        self,
        retriever: Retriever,
        reader: Reader,
        k: int = 5,
        tau: float | None = None,
        aggregation: Aggregation = "expected_nll",
    ) -> None:
        self.retriever, self.reader, self.k = retriever, reader, k
        self.tau = retriever.tau if tau is None else tau
        self.aggregation = aggregation
        self._cache: dict[tuple[str, str, str], tuple[float, int]] = {}

    def score_turn(self, turn: Turn, candidates: Sequence[str]) -> list[ScoredCandidate]:
        """Score each (already deduplicated) candidate of ``turn``."""
        if not turn.answer:
            raise ValueError(f"turn {turn.id} has no answer; the reward needs one")
        hits_per_candidate = self.retriever.search(list(candidates), self.k)
        needed = sorted(
            {
                hit.passage_id
                for hits in hits_per_candidate
                for hit in hits
                if (turn.id, hit.passage_id, self.reader.fingerprint) not in self._cache
            }
        )
        if needed:
            outputs = self.reader.answer_nll(turn, needed)
            for passage_id, value in zip(needed, outputs, strict=True):
                self._cache[(turn.id, passage_id, self.reader.fingerprint)] = value
        scored = []
        for text, hits in zip(candidates, hits_per_candidate, strict=True):
            if not hits or all(hit.score <= 0 for hit in hits):
                scored.append(ScoredCandidate(text, None, hits))
                continue
            cached = [
                self._cache[(turn.id, hit.passage_id, self.reader.fingerprint)] for hit in hits
            ]
            log_w = posterior_log_weights([hit.score for hit in hits], self.tau)
            loss = aggregate_loss(log_w, [nll for nll, _ in cached], cached[0][1], self.aggregation)
            scored.append(ScoredCandidate(text, loss, hits))
        return scored


def scored_from_json(records: Sequence[Mapping[str, object]]) -> list[ScoredCandidate]:
    """Inverse of :meth:`ScoredCandidate.to_json` for a list of records."""
    return [
        ScoredCandidate(
            str(record["text"]),
            None if record["loss"] is None else float(record["loss"]),  # type: ignore[arg-type]
            [Hit(str(pid), float(score)) for pid, score in record["hits"]],  # type: ignore[union-attr]
        )
        for record in records
    ]
