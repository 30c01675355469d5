"""Frozen readers that score P(answer | conversation, passage) for the reward.

A reader returns, per passage, the per-token answer NLL

.. math:: NLL_k = -\\frac{1}{|a|} \\sum_j \\log P_\\phi(a_j \\mid c(H, q, p_k), a_{<j})

and ``|a|``. The context ``c`` holds an instruction, the passage, the (word-capped)
history and the ORIGINAL question: the candidate rewrite only picks and weights passages.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from marginkit.adaqr.data import Passage, Turn

WORD = re.compile(r"\w+")

READER_INSTRUCTION = "Answer the question of the conversation using the passage.\n\n### Passage:\n"


class Reader(Protocol):
    """``answer_nll(turn, passage_ids)`` -> ``[(nll_per_token, answer_length), ...]``."""

    fingerprint: str

    def answer_nll(self, turn: Turn, passage_ids: Sequence[str]) -> list[tuple[float, int]]: ...


class UnigramReader:
    """A closed-form reader: answer words drawn from a passage/background unigram mixture.

    .. math:: P(w \\mid p) = \\lambda\\,\\frac{tf(w, p)}{|p|} + (1 - \\lambda)\\,P_{bg}(w)

    with ``P_bg`` the add-one smoothed corpus unigram over the vocabulary plus one unknown
    slot (a proper distribution), and lower-cased ``\\w+`` word tokens.

    Parameters
    ----------
    passages:
        The collection; also the source of ``P_bg`` unless ``background`` is given.
    mixture:
        ``lambda``, the weight of the passage model.
    background:
        Optional explicit ``{word: probability}``; words outside it get probability 0 from
        the background (so they must occur in the passage).
    """

    def __init__(
        self,
        passages: Mapping[str, Passage],
        mixture: float = 0.5,
        background: Mapping[str, float] | None = None,
    ) -> None:
        if not 0 < mixture <= 1:
            raise ValueError(f"mixture must be in (0, 1], got {mixture}")
        self.passages, self.mixture = passages, mixture
        self._counts = {pid: Counter(self.words(p.text)) for pid, p in passages.items()}
        if background is None:
            total = Counter[str]()
            for counts in self._counts.values():
                total.update(counts)
            denominator = sum(total.values()) + len(total) + 1
            self._background = {w: (c + 1) / denominator for w, c in total.items()}
            self._unknown = 1 / denominator
        else:
            self._background, self._unknown = dict(background), 0.0
        digest = hashlib.sha256(repr((mixture, sorted(self._background.items()))).encode())
        self.fingerprint = f"unigram-{digest.hexdigest()[:12]}"

    @staticmethod
    def words(text: str) -> list[str]:
        return WORD.findall(text.lower())

    def answer_nll(self, turn: Turn, passage_ids: Sequence[str]) -> list[tuple[float, int]]:
        answer = self.words(turn.answer or "")
        if not answer:
            raise ValueError(f"turn {turn.id}: the answer has no word tokens to score")
        results = []
        for passage_id in passage_ids:
            counts = self._counts[passage_id]
            length = max(sum(counts.values()), 1)
            total = 0.0
            for word in answer:
                probability = self.mixture * counts.get(word, 0) / length + (
                    1 - self.mixture
                ) * self._background.get(word, self._unknown)
                if probability <= 0:
                    raise ValueError(f"answer word {word!r} has probability 0 under the reader")
                total -= math.log(probability)
            results.append((total / len(answer), len(answer)))
        return results


def reader_context(
    turn: Turn,
    passage: Passage,
    tokenizer: Any,
    max_passage_tokens: int = 3000,
    max_history_words: int = 150,
) -> str:
    """The reader prompt: instruction, passage, capped history, then the original question."""
    passage_ids = tokenizer(passage.text, add_special_tokens=False)["input_ids"]
    text = passage.text
    if len(passage_ids) > max_passage_tokens:
        text = tokenizer.decode(passage_ids[:max_passage_tokens])
    lines = [f"Q: {q} A: {a}" for q, a in turn.history]
    while lines and sum(len(line.split()) for line in lines) > max_history_words:
        lines.pop(0)  # oldest first
    history = "\n".join(lines)
    title = f"{passage.title}: " if passage.title else ""
    return (
        f"{READER_INSTRUCTION}{title}{text}\n\n### Conversation:\n{history}\n\n"
        f"### Question:\n{turn.question}\n\n### Answer:"
    )


class CausalLMReader:
    """Any causal LM as reader, several passages per forward pass (right padding).

    Answer ids are those of ``" " + answer`` without special tokens, appended to the
    prompt ids; only they are scored (EOS too when ``score_eos=True``).

    Parameters
    ----------
    model, tokenizer:
        A transformers causal LM and its tokenizer (needs a pad token, or EOS is used).
    batch_size:
        Passages per forward pass (1 reproduces one-passage-at-a-time scoring).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        passages: Mapping[str, Passage],
        batch_size: int = 8,
        max_passage_tokens: int = 3000,
        max_history_words: int = 150,
        score_eos: bool = False,
        name: str | None = None,
    ) -> None:
        self.model, self.tokenizer, self.passages = model.eval(), tokenizer, passages
        self.batch_size, self.score_eos = batch_size, score_eos
        self.max_passage_tokens, self.max_history_words = max_passage_tokens, max_history_words
        label = name or getattr(getattr(model, "config", None), "_name_or_path", "") or "lm"
        self.fingerprint = f"lm-{label}-{sum(p.numel() for p in model.parameters())}-{score_eos}"

    def _answer_ids(self, answer: str) -> list[int]:
        ids = list(self.tokenizer(" " + answer, add_special_tokens=False)["input_ids"])
        if self.score_eos:
            ids.append(self.tokenizer.eos_token_id)
        if not ids:
            raise ValueError("the answer tokenizes to no tokens")
        return ids

    def answer_nll(self, turn: Turn, passage_ids: Sequence[str]) -> list[tuple[float, int]]:
        import torch

        answer = self._answer_ids(turn.answer or "")
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        device = next(self.model.parameters()).device
        results: list[tuple[float, int]] = []
        for start in range(0, len(passage_ids), self.batch_size):
            chunk = passage_ids[start : start + self.batch_size]
            rows, prompt_lengths = [], []
            for passage_id in chunk:
                context = reader_context(
                    turn,
                    self.passages[passage_id],
                    self.tokenizer,
                    self.max_passage_tokens,
                    self.max_history_words,
                )
                prompt = list(self.tokenizer(context, add_special_tokens=False)["input_ids"])
                rows.append(prompt + answer)
                prompt_lengths.append(len(prompt))
            width = max(len(row) for row in rows)
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            attention = torch.zeros((len(rows), width), dtype=torch.long)
            for i, row in enumerate(rows):
                input_ids[i, : len(row)] = torch.tensor(row)
                attention[i, : len(row)] = 1
            with torch.no_grad():
                logits = self.model(
                    input_ids=input_ids.to(device), attention_mask=attention.to(device)
                ).logits.float()
            log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
            targets = input_ids[:, 1:].to(device)
            token_logp = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            for i, prompt_length in enumerate(prompt_lengths):
                span = token_logp[i, prompt_length - 1 : prompt_length - 1 + len(answer)]
                results.append((float(-span.mean()), len(answer)))
        return results
