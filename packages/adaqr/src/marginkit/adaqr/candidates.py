"""Query strategies that need no model: baselines and the deterministic candidate generator.

The generator proposes, for a turn with question ``q``: ``q`` itself, ``q + " " + e`` for
each entity of the history (most recent first; entities from ``meta["history_entities"]``,
else the history questions), and ``q + " " + previous question``; duplicates removed,
capped at ``n``. It gives the reward something to choose from without a trained rewriter.
"""

from __future__ import annotations

from collections.abc import Callable

from marginkit.adaqr.data import Turn
from marginkit.adaqr.reward import deduplicate


def rule_candidates(turn: Turn, n: int = 5) -> list[str]:
    """Up to ``n`` deterministic candidate rewrites of ``turn`` (the question first)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    entities = list(turn.meta.get("history_entities") or [q for q, _ in turn.history])
    proposals = [turn.question]
    proposals += [f"{turn.question} {entity}" for entity in reversed(entities)]
    if turn.history:
        proposals.append(f"{turn.question} {turn.history[-1][0]}")
    return deduplicate(proposals)[:n]


def _original(turn: Turn) -> str:
    return turn.question


def _all_history(turn: Turn) -> str:
    return " ".join([q for q, _ in turn.history] + [turn.question])


def _first_and_question(turn: Turn) -> str:
    return " ".join(([turn.history[0][0]] if turn.history else []) + [turn.question])


def _previous_and_question(turn: Turn) -> str:
    return " ".join(([turn.history[-1][0]] if turn.history else []) + [turn.question])


def _gold(turn: Turn) -> str:
    if not turn.rewrite:
        raise ValueError(f"turn {turn.id} has no gold rewrite for the 'gold' strategy")
    return turn.rewrite


BASELINES: dict[str, Callable[[Turn], str]] = {
    "original": _original,
    "all-history": _all_history,
    "first+q": _first_and_question,
    "previous+q": _previous_and_question,
    "gold-rewrite": _gold,
}
