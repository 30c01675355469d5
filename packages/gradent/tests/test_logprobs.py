"""Response log-probs: prompt masking and right padding handled exactly."""

import math

import pytest
import torch

from marginkit.gradent.logprobs import build_pair_batch, pair_logps


class _UniformLM(torch.nn.Module):
    """Equal logits over a vocabulary of 4: every token has log-prob -ln 4."""

    def forward(self, input_ids, attention_mask=None):
        logits = torch.zeros(*input_ids.shape, 4, dtype=torch.float64)
        return type("Out", (), {"logits": logits})()


def test_three_tokens_plus_eos_sum_to_four_log_quarters_with_pad_equal_to_eos():
    eos = 3
    batch = build_pair_batch(
        prompts=[[0], [0, 1, 2]],
        chosen=[[1, 2, 1], [2, 2, 1]],
        rejected=[[1, 2, 1], [1]],  # a shorter rejected side forces right padding
        pad_token_id=eos,
        eos_token_id=eos,
    )
    chosen, rejected = pair_logps(_UniformLM(), batch)
    # 3 response tokens + EOS, each -ln 4; a pad-id mask would drop the EOS (-3 ln 4).
    assert chosen.tolist() == pytest.approx([-4 * math.log(4)] * 2, abs=1e-12)
    assert rejected.tolist() == pytest.approx([-4 * math.log(4), -2 * math.log(4)], abs=1e-12)
    assert batch.chosen.lengths.tolist() == [4, 4]


def test_response_mask_marks_only_response_positions():
    batch = build_pair_batch([[7, 8], [9]], [[5], [4]], [[6, 6], [6]], pad_token_id=0)
    assert batch.chosen.response_mask.tolist() == [[0, 0, 1], [0, 1, 0]]
    assert batch.rejected.response_mask.tolist() == [[0, 0, 1, 1], [0, 1, 0, 0]]
    assert batch.chosen.input_ids.tolist() == [[7, 8, 5], [9, 4, 0]]


def test_empty_response_and_mismatched_counts_raise():
    with pytest.raises(ValueError, match="empty rejected response at pair"):
        build_pair_batch([[1]], [[2]], [[]], pad_token_id=0)
    with pytest.raises(ValueError, match="pair up one to one"):
        build_pair_batch([[1], [1]], [[2]], [[3]], pad_token_id=0)
    with pytest.raises(ValueError, match="empty prompt"):
        build_pair_batch([[]], [[2]], [[3]], pad_token_id=0)
