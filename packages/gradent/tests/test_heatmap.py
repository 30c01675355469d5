"""Token heat-maps: the output-layer closed form (hand values) and sums on a tiny GPT-2."""

import math
from types import SimpleNamespace

import pytest
import torch

from marginkit.gradent.data import SentimentPairs, tiny_gpt2
from marginkit.gradent.heatmap import masked_products, plot_token_heatmap, token_heatmap
from marginkit.gradent.logprobs import build_pair_batch, side_logps
from marginkit.gradent.measure import measure_pairs


class OutputLayerOnly(torch.nn.Module):
    """Every position has the same fixed hidden state h = (scale, 0); logits = W h.

    W's first column is log(p) / scale, so softmax(W h) = p at every position: one context.
    """

    def __init__(self, probs, scale=1.0):
        super().__init__()
        self.register_buffer("hidden", torch.tensor([scale, 0.0], dtype=torch.float64))
        weight = torch.zeros(len(probs), 2, dtype=torch.float64)
        weight[:, 0] = torch.log(torch.tensor(probs, dtype=torch.float64)) / scale
        self.lm_head = torch.nn.Parameter(weight)

    def forward(self, input_ids, attention_mask=None):
        logits = self.hidden @ self.lm_head.T
        return SimpleNamespace(logits=logits.expand(*input_ids.shape, -1))


def _pair(chosen, rejected):
    return build_pair_batch([[0]], [chosen], [rejected], pad_token_id=0)


def test_output_layer_token_products_match_hand_values():
    # p = (0.5, 0.3, 0.2), ||h|| = 1: <g_a, g_b> = ||p||^2 - p_a - p_b (a != b),
    # ||g_a||^2 = 1 - 2 p_a + ||p||^2.
    model = OutputLayerOnly([0.5, 0.3, 0.2])
    heat = token_heatmap(model, _pair([0, 1], [1, 2]), params="all")
    expected_ip = torch.tensor([[-0.42, -0.32], [0.78, -0.12]], dtype=torch.float64)
    torch.testing.assert_close(heat.inner_product, expected_ip, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        heat.chosen_gram.diagonal(), torch.tensor([0.38, 0.78], dtype=torch.float64)
    )
    torch.testing.assert_close(
        heat.rejected_gram.diagonal(), torch.tensor([0.78, 0.98], dtype=torch.float64)
    )
    assert heat.cosine[0, 0].item() == pytest.approx(-0.771454, abs=1e-6)
    assert heat.cosine[1, 0].item() == pytest.approx(1.0, abs=1e-12)  # the same token
    assert heat.chosen_token_logps.tolist() == pytest.approx([math.log(0.5), math.log(0.3)])


def test_output_layer_contrast_turns_positive_when_neither_token_holds_the_mass():
    heat = token_heatmap(OutputLayerOnly([0.1, 0.1, 0.8]), _pair([0], [1]), params="all")
    assert heat.inner_product.item() == pytest.approx(0.46, abs=1e-12)
    assert heat.cosine.item() == pytest.approx(0.315068, abs=1e-6)


def test_doubling_the_hidden_state_scales_products_by_four_and_keeps_cosines():
    pair = _pair([0, 1], [1, 2])
    one = token_heatmap(OutputLayerOnly([0.5, 0.3, 0.2]), pair, params="all")
    two = token_heatmap(OutputLayerOnly([0.5, 0.3, 0.2], scale=2.0), pair, params="all")
    torch.testing.assert_close(two.inner_product, 4 * one.inner_product, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(two.cosine, one.cosine, rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def gpt2():
    return tiny_gpt2(seed=4).double()


@pytest.fixture(scope="module")
def pair():
    return SentimentPairs(suffix_length=3, n=2, seed=8).batch().select(slice(1, 2))


@pytest.mark.parametrize("token_chunk", [1, 3])
def test_maps_sum_to_the_sequence_inner_product_and_norms(gpt2, pair, token_chunk):
    heat = token_heatmap(gpt2, pair, params="all", token_chunk=token_chunk)
    stats = measure_pairs(gpt2, pair, params="all", strategy="loop")
    assert heat.inner_product.shape == (5, 5)  # label, 3 suffix tokens, EOS
    assert heat.sequence_inner_product.item() == pytest.approx(
        stats.inner_product.item(), rel=1e-10
    )
    n_w, n_l = heat.sequence_norms
    assert n_w.item() == pytest.approx(stats.chosen_norm.item(), rel=1e-10)
    assert n_l.item() == pytest.approx(stats.rejected_norm.item(), rel=1e-10)


def test_one_cell_equals_two_naive_backward_passes(gpt2, pair):
    heat = token_heatmap(gpt2, pair, params="all")

    def token_grad(side, index):
        gpt2.zero_grad()
        _, tokens = side_logps(gpt2, side)
        positions = torch.nonzero(side.response_mask[0, 1:]).flatten()
        tokens[0, positions[index]].backward()
        flat = torch.cat([p.grad.flatten() for p in gpt2.parameters()])
        gpt2.zero_grad(set_to_none=True)
        return flat

    g_w, g_l = token_grad(pair.chosen, 0), token_grad(pair.rejected, 2)
    assert heat.inner_product[0, 2].item() == pytest.approx((g_w @ g_l).item(), rel=1e-10)


def test_heatmap_leaves_mode_grads_and_flags_untouched(gpt2, pair):
    gpt2.train()
    gpt2.transformer.wpe.weight.requires_grad_(False)
    token_heatmap(gpt2, pair, params="all")
    assert gpt2.training
    assert not gpt2.transformer.wpe.weight.requires_grad
    assert all(p.grad is None for p in gpt2.parameters())
    gpt2.transformer.wpe.weight.requires_grad_(True)
    gpt2.eval()


def test_over_budget_and_batches_give_clear_errors(gpt2, pair):
    with pytest.raises(ValueError, match="memory_budget_mb"):
        token_heatmap(gpt2, pair, params="all", memory_budget_mb=0.01)
    two = SentimentPairs(suffix_length=0, n=2, seed=1).batch()
    with pytest.raises(ValueError, match="one pair"):
        token_heatmap(gpt2, two, params="all")


def test_png_writer_writes_an_image_and_checks_labels(tmp_path):
    import matplotlib.image

    heat = token_heatmap(OutputLayerOnly([0.5, 0.3, 0.2]), _pair([0, 1], [1, 2]), params="all")
    path = plot_token_heatmap(heat, tmp_path / "map.png", ["a", "b"], ["b", "c"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(path).ndim == 3
    with pytest.raises(ValueError, match="labels"):
        plot_token_heatmap(heat, tmp_path / "bad.png", ["a"], ["b", "c"])


def test_masked_products_pick_the_differing_tokens_and_all_ones_give_the_sequence(gpt2, pair):
    # Output layer, chosen (0, 1) vs rejected (1, 2): masking the shared token 1 away on both
    # sides leaves <g_0, g_2> = -0.32 with norms^2 0.38 and 0.98.
    heat = token_heatmap(OutputLayerOnly([0.5, 0.3, 0.2]), _pair([0, 1], [1, 2]), params="all")
    inner, n_w, n_l = masked_products(heat, [1, 0], [0, 1])
    assert inner.item() == pytest.approx(-0.32, abs=1e-12)
    assert (n_w.item() ** 2, n_l.item() ** 2) == pytest.approx((0.38, 0.98), abs=1e-12)
    full = token_heatmap(gpt2, pair, params="all")
    ones = torch.ones(5)
    inner, n_w, n_l = masked_products(full, ones, ones)
    assert inner.item() == pytest.approx(full.sequence_inner_product.item(), rel=1e-12)
    with pytest.raises(ValueError, match="masks"):
        masked_products(full, torch.ones(4), ones)
