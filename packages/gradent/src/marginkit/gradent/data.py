"""Embedded, generated data and a tiny model: sentiment pairs with identical suffixes.

Vocabulary (96 ids): PAD 0, BOS 1, SEP 2, EOS 3, the labels POS 4 and NEG 5, positive words
6-15, negative words 16-25, neutral words 26-47, and four own ids per suffix position
(position ``k`` draws from ``48 + 4k ... 51 + 4k``, up to 12 positions). A prompt is BOS,
a polarity word and two neutral words in random order, SEP; the chosen response is the right
label, a suffix of ``L`` tokens and EOS; the rejected one the wrong label with the *same*
suffix and EOS. With ``L = 0`` the responses differ in one token and share the EOS.
"""

from __future__ import annotations

import dataclasses

import torch

from marginkit.gradent.logprobs import PairBatch, build_pair_batch

PAD, BOS, SEP, EOS, POS, NEG = 0, 1, 2, 3, 4, 5
POSITIVE_WORDS = tuple(range(6, 16))
NEGATIVE_WORDS = tuple(range(16, 26))
NEUTRAL_WORDS = tuple(range(26, 48))
SUFFIX_START, SUFFIX_CHOICES, MAX_SUFFIX = 48, 4, 12
VOCAB_SIZE = 96


@dataclasses.dataclass
class SentimentPairs:
    """``n`` seeded pairs whose responses share a suffix of ``suffix_length`` tokens.

    Attributes
    ----------
    prompts, chosen, rejected:
        Token ids per pair (responses without EOS; :meth:`batch` appends it).
    labels:
        1 for a positive prompt, 0 for a negative one.
    """

    suffix_length: int
    n: int
    seed: int = 0
    prompts: list[list[int]] = dataclasses.field(init=False)
    chosen: list[list[int]] = dataclasses.field(init=False)
    rejected: list[list[int]] = dataclasses.field(init=False)
    labels: list[int] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.suffix_length <= MAX_SUFFIX:
            raise ValueError(
                f"suffix_length must be in [0, {MAX_SUFFIX}], got {self.suffix_length}"
            )
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}")
        generator = torch.Generator().manual_seed(self.seed)

        def pick(options: tuple[int, ...]) -> int:
            return options[int(torch.randint(len(options), (1,), generator=generator))]

        self.prompts, self.chosen, self.rejected, self.labels = [], [], [], []
        for _ in range(self.n):
            positive = bool(torch.randint(2, (1,), generator=generator))
            words = [pick(POSITIVE_WORDS if positive else NEGATIVE_WORDS)]
            words += [pick(NEUTRAL_WORDS), pick(NEUTRAL_WORDS)]
            order = torch.randperm(3, generator=generator).tolist()
            self.prompts.append([BOS] + [words[i] for i in order] + [SEP])
            suffix = [
                SUFFIX_START + SUFFIX_CHOICES * k + int(torch.randint(4, (1,), generator=generator))
                for k in range(self.suffix_length)
            ]
            right, wrong = (POS, NEG) if positive else (NEG, POS)
            self.chosen.append([right] + suffix)
            self.rejected.append([wrong] + suffix)
            self.labels.append(int(positive))

    def batch(self) -> PairBatch:
        """All pairs as one right-padded :class:`PairBatch` (EOS appended to responses)."""
        return build_pair_batch(
            self.prompts, self.chosen, self.rejected, pad_token_id=PAD, eos_token_id=EOS
        )

    def sft_sequences(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(input_ids, attention_mask, response_mask)`` of prompt + chosen + EOS."""
        side = self.batch().chosen
        return side.input_ids, side.attention_mask, side.response_mask


def tiny_gpt2(seed: int = 0, n_positions: int = 32) -> torch.nn.Module:
    """A ~30k-parameter GPT-2 built from a config (vocab 96, 32 wide, 2 layers, 2 heads).

    Dropout is off and attention is the eager implementation (``torch.func.vmap`` friendly).
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=VOCAB_SIZE,
        n_positions=n_positions,
        n_embd=32,
        n_layer=2,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    config._attn_implementation = "eager"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    return model
