"""Pairwise normalised updates and token masks."""

import pytest
import torch

from marginkit.gradent.data import EOS, SentimentPairs, tiny_gpt2
from marginkit.gradent.logprobs import pair_logps, side_logps
from marginkit.gradent.masks import LearnedTokenMask, batch_diff_masks, diff_mask, position_masks
from marginkit.gradent.measure import measure_pairs, select_parameters
from marginkit.gradent.normalized import (
    NormalizedPairwiseStep,
    normalized_pair_loss,
    predict_normalized,
)

DT = torch.float64


def test_normalized_prediction_on_two_dimensional_vectors():
    t = lambda v: torch.tensor([v], dtype=DT)  # noqa: E731
    out = predict_normalized(t(2.0), t(1.0), t(5.0**0.5))  # g_w = (1, 0), g_l = (2, 1)
    assert out.delta_chosen.item() == pytest.approx(0.105573, abs=1e-6)
    assert out.delta_rejected.item() == pytest.approx(-0.236068, abs=1e-6)
    assert out.delta_margin.item() == pytest.approx(0.341641, abs=1e-6)
    assert out.case.item() == 1


def test_normalized_update_never_lowers_chosen_or_raises_rejected_on_random_gradients():
    generator = torch.Generator().manual_seed(0)
    g_w = torch.randn(10_000, 6, dtype=DT, generator=generator)
    g_l = g_w * torch.rand(10_000, 1, dtype=DT, generator=generator) * 4 + torch.randn(
        10_000, 6, dtype=DT, generator=generator
    )
    out = predict_normalized(
        (g_w * g_l).sum(1),
        g_w.norm(dim=1),
        g_l.norm(dim=1),
        torch.rand(10_000, dtype=DT, generator=generator),
        0.5,
    )
    assert bool((out.delta_chosen >= -1e-12).all())
    assert bool((out.delta_rejected <= 1e-12).all())


def test_normalized_loss_gradient_is_minus_mean_of_normalized_directions():
    model = tiny_gpt2(seed=4).double()
    batch = SentimentPairs(suffix_length=2, n=3, seed=2).batch()
    params = list(model.parameters())
    directions = []
    for row in range(3):
        one = batch.select(slice(row, row + 1))
        g_w = torch.autograd.grad(side_logps(model, one.chosen)[0].sum(), params)
        g_l = torch.autograd.grad(side_logps(model, one.rejected)[0].sum(), params)
        flat_w = torch.cat([g.flatten() for g in g_w])
        flat_l = torch.cat([g.flatten() for g in g_l])
        directions.append(flat_w / flat_w.norm() - flat_l / flat_l.norm())
    expected = -torch.stack(directions).mean(0)
    stats = measure_pairs(model, batch, params="all")
    u_w, u_l = pair_logps(model, batch)
    loss = normalized_pair_loss(u_w, u_l, stats.chosen_norm, stats.rejected_norm)
    got = torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_normalized_step_raises_chosen_and_lowers_rejected_on_one_pair():
    model = tiny_gpt2(seed=4).double()
    one = SentimentPairs(suffix_length=8, n=1, seed=2).batch()
    with torch.no_grad():
        before = pair_logps(model, one)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    NormalizedPairwiseStep(model, optimizer, params="all", coefficient="pure").step(one)
    with torch.no_grad():
        after = pair_logps(model, one)
    assert after[0].item() > before[0].item()
    assert after[1].item() < before[1].item()


def test_normalized_step_checks_optimizer_spans_the_norm_set():
    model = tiny_gpt2(seed=4)
    head = select_parameters(model, "lm_head")
    optimizer = torch.optim.SGD(head.values(), lr=0.1)
    with pytest.raises(ValueError, match="different parameter set"):
        NormalizedPairwiseStep(model, optimizer, params="all")


@pytest.mark.parametrize(
    "chosen,rejected,mode,expected_w,expected_l",
    [
        ([7, 4, 9, 9, 3], [7, 5, 9, 9, 3], "prefix_suffix", [0, 1, 0, 0, 0], [0, 1, 0, 0, 0]),
        ([4, 3], [4, 8, 3], "prefix_suffix", [0, 0], [0, 1, 0]),
        ([5, 5], [5, 5, 5], "prefix_suffix", [0, 0], [0, 0, 1]),
        ([1, 2, 3, 4, 5], [1, 9, 3, 4, 8, 5], "prefix_suffix", [0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 0]),
        ([1, 2, 3, 4, 5], [1, 9, 3, 4, 8, 5], "lcs", [0, 1, 0, 0, 0], [0, 1, 0, 0, 1, 0]),
    ],
)
def test_diff_mask_marks_differing_tokens(chosen, rejected, mode, expected_w, expected_l):
    assert diff_mask(chosen, rejected, mode) == (expected_w, expected_l)


def test_diff_mask_keep_eos_and_identical_pairs_warn(caplog):
    assert diff_mask([4, 3], [5, 3], keep_eos=True) == ([1, 1], [1, 1])
    masks_w, _ = batch_diff_masks([[4, 3]], [[4, 3]])
    assert masks_w == [[0, 0]]
    assert "identical" in caplog.text


def test_masked_suffix_pair_keeps_only_the_label_token():
    model = tiny_gpt2(seed=3).double()
    data = SentimentPairs(suffix_length=2, n=2, seed=1)
    batch = data.batch()
    masks_w, _ = batch_diff_masks(
        [c + [EOS] for c in data.chosen], [r + [EOS] for r in data.rejected]
    )
    assert masks_w == [[1, 0, 0, 0], [1, 0, 0, 0]]
    _, tokens = side_logps(model, batch.chosen)
    grid = position_masks(batch.chosen, masks_w, dtype=DT)
    masked = (tokens * grid).sum(1)
    label_position = len(data.prompts[0]) - 1  # logits at the last prompt token score the label
    torch.testing.assert_close(masked, tokens[:, label_position], atol=0, rtol=0)


def test_learned_mask_starts_at_sigmoid_of_bias_and_penalty_is_hand_value():
    mask = LearnedTokenMask(hidden_size=4, init_bias=0.0, sparsity=0.5)
    mu = mask(torch.randn(1, 3, 4))
    torch.testing.assert_close(mu, torch.full((1, 3), 0.5))
    response = torch.tensor([[0, 1, 1]])
    # 0.5 * (mean 0.5 over 2 tokens + mean 0.5 over 2 tokens) = 0.5
    assert mask.penalty(mu, response, mu, response).item() == pytest.approx(0.5)
