"""The one prompt renderer used for SFT, sampling, DPO and inference.

``render_prompt`` writes an instruction, the conversation (``Q: <q_i> A: <a_i>`` lines,
with "?" / "." added when missing), the question and ``### Rewrite:`` with no trailing
whitespace; the completion is ``" " + rewrite`` followed by EOS. Because the prompt ends
in a non-space character and the completion starts with a space, tokenizing the prompt
gives a prefix of tokenizing prompt + completion (no token merges across the boundary).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

INSTRUCTION = (
    "Rewrite the last question of the conversation into a self-contained query: resolve "
    "pronouns and ellipsis from the conversation, keep the meaning, be informative, and do "
    "not repeat earlier questions."
)


def _ending(text: str, mark: str) -> str:
    text = " ".join(text.split())
    return text if not text or text[-1] in ".?!" else text + mark


def render_prompt(history: Sequence[tuple[str, str]], question: str) -> str:
    """The rewriter prompt for ``question`` after ``history`` (oldest turn first)."""
    lines = [f"Q: {_ending(q, '?')} A: {_ending(a, '.')}" for q, a in history]
    conversation = "\n".join(lines)
    return (
        f"{INSTRUCTION}\n\n### Conversation:\n{conversation}\n\n"
        f"### Question:\n{_ending(question, '?')}\n\n### Rewrite:"
    )


def completion_text(rewrite: str) -> str:
    """The completion a rewrite is trained on, without EOS (TRL appends it)."""
    return " " + " ".join(rewrite.split())


def fit_prompt(
    tokenizer: Any,
    history: Sequence[tuple[str, str]],
    question: str,
    completion: str = "",
    max_length: int = 1024,
) -> str:
    """Drop the oldest turns until prompt + completion + EOS fit ``max_length`` tokens.

    Raises when even the prompt without history does not fit.
    """
    history = list(history)
    while True:
        prompt = render_prompt(history, question)
        length = len(tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]) + 1
        if length <= max_length:
            return prompt
        if not history:
            raise ValueError(
                f"the prompt for question {question!r} needs {length} tokens even without "
                f"history; raise max_length above {max_length}"
            )
        history.pop(0)
