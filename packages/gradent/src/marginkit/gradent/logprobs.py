"""Response log-probs of a causal LM with exact prompt masking and padding.

``u = log pi(y | x) = sum_t log_softmax(logits_{t-1})[y_t]`` over the response tokens only,
chosen by a response mask (never by testing token ids, so ``pad = EOS`` keeps the real EOS).
Prompt and response are tokenised separately and their ids joined, so no BPE merge crosses
the boundary. Works with any ``transformers`` causal LM (any module returning ``.logits``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


@dataclasses.dataclass
class SideBatch:
    """One side (chosen or rejected) of a batch of pairs, right-padded.

    ``input_ids``/``attention_mask``/``response_mask`` are ``(batch, seq)``; the response
    mask is 1 on response tokens (the targets whose log-probs are summed).
    """

    input_ids: Tensor
    attention_mask: Tensor
    response_mask: Tensor

    @property
    def lengths(self) -> Tensor:
        """Response token counts ``|y|``, ``(batch,)``."""
        return self.response_mask.sum(dim=1)

    def select(self, index: Tensor | slice) -> SideBatch:
        return SideBatch(
            self.input_ids[index], self.attention_mask[index], self.response_mask[index]
        )

    def to(self, device: torch.device | str) -> SideBatch:
        return SideBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.response_mask.to(device),
        )


@dataclasses.dataclass
class PairBatch:
    """A batch of preference pairs: ``chosen`` and ``rejected`` sides and extra model inputs.

    ``model_kwargs`` (e.g. ``pixel_values`` of a vision-language model) are passed to the
    model unchanged on both sides.
    """

    chosen: SideBatch
    rejected: SideBatch
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.chosen.input_ids.shape[0])

    def select(self, index: Tensor | slice) -> PairBatch:
        kwargs = {
            key: value[index] if isinstance(value, Tensor) else value
            for key, value in self.model_kwargs.items()
        }
        return PairBatch(self.chosen.select(index), self.rejected.select(index), kwargs)

    def to(self, device: torch.device | str) -> PairBatch:
        kwargs = {
            key: value.to(device) if isinstance(value, Tensor) else value
            for key, value in self.model_kwargs.items()
        }
        return PairBatch(self.chosen.to(device), self.rejected.to(device), kwargs)


def _side(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_token_id: int
) -> SideBatch:
    width = max(len(p) + len(r) for p, r in zip(prompts, responses, strict=True))
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    response = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, (prompt, answer) in enumerate(zip(prompts, responses, strict=True)):
        joined = list(prompt) + list(answer)
        ids[row, : len(joined)] = torch.tensor(joined, dtype=torch.long)
        attention[row, : len(joined)] = 1
        response[row, len(prompt) : len(joined)] = 1
    return SideBatch(ids, attention, response)


def build_pair_batch(
    prompts: Sequence[Sequence[int]],
    chosen: Sequence[Sequence[int]],
    rejected: Sequence[Sequence[int]],
    pad_token_id: int,
    eos_token_id: int | None = None,
) -> PairBatch:
    """Join prompt and response ids per side, right-pad, and mark the response tokens.

    Parameters
    ----------
    prompts, chosen, rejected:
        Token ids per pair (lists of ints); ``eos_token_id``, when given, is appended to
        each response (and counts in ``|y|``).
    pad_token_id:
        Filler id for padding; it may equal the EOS id, since masks decide what counts.
    """
    if not (len(prompts) == len(chosen) == len(rejected)):
        raise ValueError(
            f"got {len(prompts)} prompts, {len(chosen)} chosen and {len(rejected)} rejected "
            "responses; they must pair up one to one"
        )
    if not prompts:
        raise ValueError("no pairs given")
    for index, prompt in enumerate(prompts):
        if len(prompt) == 0:
            raise ValueError(
                f"pair {index}: empty prompt (the first response token has no context)"
            )
    suffix = [] if eos_token_id is None else [eos_token_id]
    sides = []
    for name, responses in (("chosen", chosen), ("rejected", rejected)):
        full = [list(r) + suffix for r in responses]
        empty = [i for i, r in enumerate(full) if len(r) == 0]
        if empty:
            raise ValueError(f"empty {name} response at pair(s) {empty}")
        sides.append(_side(prompts, full, pad_token_id))
    return PairBatch(chosen=sides[0], rejected=sides[1])


def tokenize_pairs(
    tokenizer: Any,
    rows: Sequence[Mapping[str, str]],
    append_eos: bool = True,
    max_length: int | None = None,
) -> PairBatch:
    """Tokenise ``{"prompt", "chosen", "rejected"}`` rows with a transformers tokenizer.

    Prompt and responses are encoded separately without special tokens (no second BOS)
    and joined by :func:`build_pair_batch`; the pad id falls back to the EOS id.
    ``max_length`` (the model's position limit, e.g. ``config.max_position_embeddings``)
    refuses any pair whose prompt + response (+ EOS) is longer, naming it.
    """
    for index, row in enumerate(rows):
        missing = [key for key in ("prompt", "chosen", "rejected") if key not in row]
        if missing:
            raise ValueError(
                f"row {index} lacks column(s) {missing}; expected prompt/chosen/rejected"
            )
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(row[key], str):
                raise ValueError(
                    f"row {index} column {key!r} is {type(row[key]).__name__} "
                    f"({row[key]!r}), expected text"
                )

    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad nor an EOS token; set pad_token_id")
    prompts = [encode(row["prompt"]) for row in rows]
    chosen = [encode(row["chosen"]) for row in rows]
    rejected = [encode(row["rejected"]) for row in rows]
    if max_length is not None:
        extra = int(append_eos and tokenizer.eos_token_id is not None)
        for name, responses in (("chosen", chosen), ("rejected", rejected)):
            for index, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
                length = len(prompt) + len(response) + extra
                if length > max_length:
                    raise ValueError(
                        f"pair {index}: prompt + {name} is {length} tokens, longer than the "
                        f"model's {max_length} positions; shorten or drop it"
                    )
    return build_pair_batch(
        prompts,
        chosen,
        rejected,
        pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id if append_eos else None,
    )


def token_logps_from_logits(logits: Tensor, input_ids: Tensor, response_mask: Tensor) -> Tensor:
    """Per-token response log-probs ``(batch, seq - 1)``, zero outside the response.

    Position ``t`` of the output scores token ``t + 1`` with the logits at ``t``; computed in
    at least float32.
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    log_probs = torch.log_softmax(logits[:, :-1].to(dtype), dim=-1)
    targets = input_ids[:, 1:].unsqueeze(-1)
    token = torch.gather(log_probs, -1, targets).squeeze(-1)
    return token * response_mask[:, 1:].to(dtype)


def side_logps(
    model: torch.nn.Module, side: SideBatch, **model_kwargs: Any
) -> tuple[Tensor, Tensor]:
    """Summed response log-probs ``(batch,)`` and per-token log-probs ``(batch, seq - 1)``."""
    if bool((side.response_mask[:, 0] != 0).any()):
        raise ValueError("a response starts at position 0: it needs at least one prompt token")
    logits = model(
        input_ids=side.input_ids, attention_mask=side.attention_mask, **model_kwargs
    ).logits
    token = token_logps_from_logits(logits, side.input_ids, side.response_mask)
    return token.sum(dim=-1), token


def pair_logps(model: torch.nn.Module, batch: PairBatch) -> tuple[Tensor, Tensor]:
    """``(u_w, u_l)``, each ``(batch,)``, with autograd history through ``model``."""
    chosen, _ = side_logps(model, batch.chosen, **batch.model_kwargs)
    rejected, _ = side_logps(model, batch.rejected, **batch.model_kwargs)
    return chosen, rejected
