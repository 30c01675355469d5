"""Preference pairs from scored candidates: chosen = the LOWER loss.

A turn's scored candidates are sorted by ``(loss, index)``; for every ``i < j`` of that
order the pair ``(chosen = y_i, rejected = y_j)`` is emitted iff
``loss_j - loss_i >= epsilon`` (float64, no tolerance), so a turn yields at most C(N, 2)
pairs. Unscored candidates (no positive hit) are dropped (``no_hit="drop"``) or ranked
after every scored one (``no_hit="worst"``), without numeric infinities.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from marginkit.adaqr.reward import ScoredCandidate

NoHit = Literal["drop", "worst"]


@dataclasses.dataclass(frozen=True)
class PreferencePair:
    """One DPO example; losses are ``None`` for an unscored rejected candidate."""

    turn_id: str
    prompt: str
    chosen: str
    rejected: str
    chosen_loss: float | None
    rejected_loss: float | None


def with_question_mark(text: str) -> str:
    """``text`` ending in ``"?"`` (added when missing)."""
    text = text.rstrip()
    return text if text.endswith("?") else text + "?"


def build_pairs(
    turn_id: str,
    prompt: str,
    candidates: Sequence[ScoredCandidate],
    epsilon: float = 0.001,
    no_hit: NoHit = "drop",
) -> list[PreferencePair]:
    """All pairs of one turn whose loss gap is at least ``epsilon``.

    Parameters
    ----------
    candidates:
        The turn's deduplicated, scored candidates, in sampling order.
    epsilon:
        Minimum loss gap (``>=``, compared in float64).
    no_hit:
        ``"drop"`` or ``"worst"`` for unscored candidates; two unscored candidates are
        never paired (they are tied).
    """
    if no_hit not in ("drop", "worst"):
        raise ValueError(f"no_hit must be 'drop' or 'worst', got {no_hit!r}")
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    scored = sorted(
        ((float(c.loss), index, c) for index, c in enumerate(candidates) if c.loss is not None),
        key=lambda item: (item[0], item[1]),
    )
    pairs = []
    for i, (loss_i, _, chosen) in enumerate(scored):
        for loss_j, _, rejected in scored[i + 1 :]:
            if loss_j - loss_i >= epsilon:
                pairs.append(_pair(turn_id, prompt, chosen, rejected))
    if no_hit == "worst":
        unscored = [c for c in candidates if c.loss is None]
        for _, _, chosen in scored:
            for rejected in unscored:
                pairs.append(_pair(turn_id, prompt, chosen, rejected))
    return pairs


def _pair(
    turn_id: str, prompt: str, chosen: ScoredCandidate, rejected: ScoredCandidate
) -> PreferencePair:
    return PreferencePair(
        turn_id,
        prompt,
        with_question_mark(chosen.text),
        with_question_mark(rejected.text),
        chosen.loss,
        rejected.loss,
    )
