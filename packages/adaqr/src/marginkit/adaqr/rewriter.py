"""The rewriter model: loading, the tiny offline GPT-2, sampling and sequence log-probs.

``log_prob(model, tokenizer, prompt, completion)`` is
:math:`\\log \\pi(y \\mid x) = \\sum_j \\log \\pi(y_j \\mid x, y_{<j})` over the completion
tokens ``" " + y`` and EOS, the same quantity DPO compares.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from marginkit.adaqr.prompts import completion_text

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "bos_token": "[BOS]",
    "eos_token": "[EOS]",
}


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4000) -> Any:
    """A lower-casing WordLevel tokenizer (words and single punctuation marks), offline.

    Returns a ``transformers.PreTrainedTokenizerFast`` with [PAD] [UNK] [BOS] [EOS]
    (pad distinct from EOS).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("isolated")]
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS.values()), min_frequency=1
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)


def tiny_gpt2(
    tokenizer: Any, width: int = 128, layers: int = 2, heads: int = 4, positions: int = 256
) -> Any:
    """A GPT-2 built from config (dropout 0) for the tokenizer's vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=positions,
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def check_special_tokens(tokenizer: Any) -> None:
    """Fail early on the pad/EOS setups that make generation never stop or training NaN."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the rewriter tokenizer has no EOS token; completions could never end")
    if tokenizer.pad_token_id is None:
        raise ValueError("the rewriter tokenizer has no pad token; set one distinct from EOS")
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError(
            "the rewriter tokenizer's pad token equals its EOS token: training would mask every "
            "EOS and generation would never learn to stop; add a distinct [PAD] token"
        )


def log_prob(model: Any, tokenizer: Any, prompt: str, completion: str) -> float:
    """Sum of completion-token log-probs (``" " + completion`` and EOS) given ``prompt``."""
    return log_probs(model, tokenizer, [(prompt, completion)])[0]


def log_probs(
    model: Any, tokenizer: Any, items: Sequence[tuple[str, str]], batch_size: int = 16
) -> list[float]:
    """``log_prob`` for many ``(prompt, completion)`` pairs, right-padded batches."""
    import torch

    device = next(model.parameters()).device
    results: list[float] = []
    was_training = model.training
    model.eval()
    for start in range(0, len(items), batch_size):
        rows, spans = [], []
        for prompt, completion in items[start : start + batch_size]:
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            full = tokenizer(prompt + completion_text(completion), add_special_tokens=False)
            ids = list(full["input_ids"]) + [tokenizer.eos_token_id]
            rows.append(ids)
            spans.append((len(prompt_ids), len(ids)))
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
        token_logp = torch.log_softmax(logits.float()[:, :-1], -1).gather(
            -1, input_ids[:, 1:].to(device).unsqueeze(-1)
        )[..., 0]
        for i, (begin, end) in enumerate(spans):
            results.append(float(token_logp[i, begin - 1 : end - 1].sum()))
    model.train(was_training)
    return results


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    num_return_sequences: int = 1,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 50,
    top_p: float = 1.0,
    min_new_tokens: int = 6,
    max_new_tokens: int = 256,
    batch_size: int = 8,
) -> list[list[str]]:
    """Rewrites for each prompt (greedy, or ``num_return_sequences`` samples), stripped.

    Generation stops at EOS; prompts are left-padded. The model's maximum positions cap
    ``max_new_tokens``.
    """
    import torch

    check_special_tokens(tokenizer)
    device = next(model.parameters()).device
    limit = getattr(model.config, "n_positions", None) or getattr(
        model.config, "max_position_embeddings", 10**9
    )
    was_training = model.training
    model.eval()
    outputs: list[list[str]] = []
    tokenizer.padding_side = "left"
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        encoded = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        room = max(1, min(max_new_tokens, limit - encoded["input_ids"].shape[1]))
        kwargs: dict[str, Any] = {
            "max_new_tokens": room,
            "min_new_tokens": min(min_new_tokens, room),
            "num_return_sequences": num_return_sequences,
            "do_sample": do_sample,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
        if do_sample:
            kwargs.update(temperature=temperature, top_k=top_k, top_p=top_p)
        with torch.no_grad():
            generated = model.generate(**{k: v.to(device) for k, v in encoded.items()}, **kwargs)
        new_tokens = generated[:, encoded["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        for i in range(len(chunk)):
            group = texts[i * num_return_sequences : (i + 1) * num_return_sequences]
            outputs.append([" ".join(text.split()) for text in group])
    tokenizer.padding_side = "right"
    model.train(was_training)
    return outputs
