"""Token masks on the tokens where chosen and rejected responses differ.

A mask ``mu`` turns a response log-prob into ``u~ = sum_t mu_t l_t``; the masked margin
``z = u~_w - u~_l`` (minus the same masked sums of the reference) then goes into any loss of
:mod:`marginkit.gradent.losses`. Shared tokens, whose gradients are alike on both sides and
entangle them, are left out. :func:`diff_mask` is deterministic; :class:`LearnedTokenMask`
learns ``mu_t = sigmoid(v . h_t + b)`` from detached hidden states with an L1 penalty.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor

from marginkit.gradent.logprobs import SideBatch

logger = logging.getLogger(__name__)


def _prefix_suffix(chosen: Sequence[int], rejected: Sequence[int]) -> tuple[list[int], list[int]]:
    prefix = 0
    while prefix < min(len(chosen), len(rejected)) and chosen[prefix] == rejected[prefix]:
        prefix += 1
    suffix = 0
    limit = min(len(chosen), len(rejected)) - prefix
    while suffix < limit and chosen[-1 - suffix] == rejected[-1 - suffix]:
        suffix += 1
    masks = []
    for tokens in (chosen, rejected):
        masks.append([int(prefix <= t < len(tokens) - suffix) for t in range(len(tokens))])
    return masks[0], masks[1]


def _lcs(chosen: Sequence[int], rejected: Sequence[int]) -> tuple[list[int], list[int]]:
    rows, cols = len(chosen), len(rejected)
    table = [[0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(rows - 1, -1, -1):
        for j in range(cols - 1, -1, -1):
            if chosen[i] == rejected[j]:
                table[i][j] = 1 + table[i + 1][j + 1]
            else:
                table[i][j] = max(table[i + 1][j], table[i][j + 1])
    mask_w, mask_l = [1] * rows, [1] * cols
    i = j = 0
    while i < rows and j < cols:
        if chosen[i] == rejected[j] and table[i][j] == 1 + table[i + 1][j + 1]:
            mask_w[i] = mask_l[j] = 0
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return mask_w, mask_l


def diff_mask(
    chosen: Sequence[int],
    rejected: Sequence[int],
    mode: str = "prefix_suffix",
    keep_eos: bool = False,
) -> tuple[list[int], list[int]]:
    """0/1 masks over the response tokens of one pair, 1 where the responses differ.

    Parameters
    ----------
    chosen, rejected:
        Response token ids (EOS included when the model scores it).
    mode:
        ``"prefix_suffix"``: 1 outside the longest common prefix and suffix (the suffix
        limited to ``min(|y|) - prefix``); ``"lcs"``: 1 outside one longest common
        subsequence (ties resolved to the earliest match in ``chosen``).
    keep_eos:
        Keep the last token of each response (the EOS) even when shared.

    Examples
    --------
    >>> diff_mask([7, 4, 9, 9, 3], [7, 5, 9, 9, 3])
    ([0, 1, 0, 0, 0], [0, 1, 0, 0, 0])
    """
    if mode == "prefix_suffix":
        mask_w, mask_l = _prefix_suffix(chosen, rejected)
    elif mode == "lcs":
        mask_w, mask_l = _lcs(chosen, rejected)
    else:
        raise ValueError(f"unknown mode {mode!r}; choose 'prefix_suffix' or 'lcs'")
    if keep_eos:
        if mask_w:
            mask_w[-1] = 1
        if mask_l:
            mask_l[-1] = 1
    return mask_w, mask_l


def position_masks(
    side: SideBatch, masks: Sequence[Sequence[int]], dtype: torch.dtype = torch.float32
) -> Tensor:
    """Place per-response masks on the ``(batch, seq - 1)`` grid of per-token log-probs."""
    grid = torch.zeros(side.input_ids.shape[0], side.input_ids.shape[1] - 1, dtype=dtype)
    for row, mask in enumerate(masks):
        positions = torch.nonzero(side.response_mask[row, 1:]).flatten()
        if len(positions) != len(mask):
            raise ValueError(
                f"pair {row}: mask of {len(mask)} tokens for a response of {len(positions)}"
            )
        grid[row, positions] = torch.tensor(mask, dtype=dtype)
    return grid


def batch_diff_masks(
    chosen: Sequence[Sequence[int]],
    rejected: Sequence[Sequence[int]],
    mode: str = "prefix_suffix",
    keep_eos: bool = False,
) -> tuple[list[list[int]], list[list[int]]]:
    """:func:`diff_mask` over a batch; identical pairs get empty masks and a warning."""
    masks_w, masks_l, identical = [], [], []
    for index, (answer_w, answer_l) in enumerate(zip(chosen, rejected, strict=True)):
        mask_w, mask_l = diff_mask(answer_w, answer_l, mode, keep_eos)
        if list(answer_w) == list(answer_l):
            identical.append(index)
            mask_w, mask_l = [0] * len(answer_w), [0] * len(answer_l)
        masks_w.append(mask_w)
        masks_l.append(mask_l)
    if identical:
        logger.warning("pairs %s have identical responses; their masks are empty", identical)
    return masks_w, masks_l


class LearnedTokenMask(torch.nn.Module):
    """``mu_t = sigmoid(v . h_t + b)`` on detached hidden states ``h`` ``(batch, seq, hidden)``.

    :meth:`penalty` is the sparsity term ``lam (sum_t mu^w_t / |y_w| + sum_t mu^l_t / |y_l|)``
    averaged over pairs. ``init_bias`` starts the mask near 1 (``sigmoid(2) = 0.88``);
    both it and ``sparsity`` are package choices.
    """

    def __init__(self, hidden_size: int, init_bias: float = 2.0, sparsity: float = 0.01) -> None:
        super().__init__()
        self.scorer = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.scorer.weight)
        torch.nn.init.constant_(self.scorer.bias, init_bias)
        self.sparsity = sparsity

    def forward(self, hidden_states: Tensor) -> Tensor:
        return torch.sigmoid(self.scorer(hidden_states.detach()).squeeze(-1))

    def penalty(
        self, mask_w: Tensor, response_w: Tensor, mask_l: Tensor, response_l: Tensor
    ) -> Tensor:
        """L1 sparsity over response positions (masks and response masks ``(batch, seq)``)."""
        rw, rl = response_w.to(mask_w.dtype), response_l.to(mask_l.dtype)
        per_pair = (mask_w * rw).sum(1) / rw.sum(1) + (mask_l * rl).sum(1) / rl.sum(1)
        return self.sparsity * per_pair.mean()
