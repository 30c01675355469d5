"""Per-pair gradient measurement on a tiny GPT-2 (float64) against independent computations."""

import pytest
import torch

from marginkit.gradent.data import SentimentPairs, tiny_gpt2
from marginkit.gradent.logprobs import pair_logps
from marginkit.gradent.losses import preference_loss
from marginkit.gradent.measure import measure_pairs, select_parameters


@pytest.fixture(scope="module")
def model():
    return tiny_gpt2(seed=1).double()


@pytest.fixture(scope="module")
def batch():
    return SentimentPairs(suffix_length=2, n=5, seed=3).batch()


def _naive_grads(model, side, row):
    """The plain way: one backward per response, flattened .grad of every parameter."""
    from marginkit.gradent.logprobs import side_logps

    model.zero_grad()
    u, _ = side_logps(model, side.select(slice(row, row + 1)))
    u.sum().backward()
    flat = torch.cat([p.grad.flatten() for p in model.parameters()])
    model.zero_grad()
    return flat


def test_loop_matches_naive_backward_passes(model, batch):
    stats = measure_pairs(model, batch, params="all", strategy="loop")
    for row in range(len(batch)):
        g_w = _naive_grads(model, batch.chosen, row)
        g_l = _naive_grads(model, batch.rejected, row)
        assert stats.inner_product[row].item() == pytest.approx((g_w @ g_l).item(), rel=1e-10)
        assert stats.chosen_norm[row].item() == pytest.approx(g_w.norm().item(), rel=1e-10)
        assert stats.rejected_norm[row].item() == pytest.approx(g_l.norm().item(), rel=1e-10)


@pytest.mark.parametrize("chunk_size", [1, 3, None])
def test_vmap_in_chunks_equals_loop(model, batch, chunk_size):
    loop = measure_pairs(model, batch, params="all", strategy="loop")
    vmapped = measure_pairs(model, batch, params="all", strategy="vmap", chunk_size=chunk_size)
    torch.testing.assert_close(vmapped.inner_product, loop.inner_product, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(vmapped.chosen_norm, loop.chosen_norm, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(vmapped.chosen_logps, loop.chosen_logps, rtol=1e-12, atol=1e-12)
    assert (loop.strategy_used, vmapped.strategy_used) == ("loop", "vmap")


def test_measurement_leaves_grads_mode_and_rng_untouched(model, batch):
    model.train()
    state = torch.random.get_rng_state()
    measure_pairs(model, batch, strategy="loop")
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.random.get_rng_state(), state)


def test_tied_embedding_counts_once_and_lm_head_selects_it(model):
    names = list(select_parameters(model, "all"))
    assert len(names) == len(set(names))
    head = select_parameters(model, "lm_head")
    assert list(head.values())[0] is model.get_output_embeddings().weight


def test_lora_selection_without_adapters_raises(model):
    with pytest.raises(ValueError, match="lora"):
        select_parameters(model, "lora")


def test_first_order_prediction_error_halves_with_step_size(model, batch):
    one = batch.select(slice(0, 1))
    with torch.no_grad():
        ref_w, ref_l = pair_logps(model, one)
    ref_w, ref_l = ref_w - 1.0, ref_l + 1.0  # a reference off the policy: z != 0
    stats = measure_pairs(model, one, params="all", loss="dpo", reference=(ref_w, ref_l))
    errors = []
    for lr in (0.005, 0.0025):
        trained = tiny_gpt2(seed=1).double()
        u_w, u_l = pair_logps(trained, one)
        loss = preference_loss(
            "dpo", u_w, u_l, reference_chosen_logps=ref_w, reference_rejected_logps=ref_l
        ).loss
        grads = torch.autograd.grad(loss, list(trained.parameters()))
        with torch.no_grad():
            for p, g in zip(trained.parameters(), grads):
                p -= lr * g
            new_w, _ = pair_logps(trained, one)
        actual = (new_w - u_w.detach()).item()
        predicted = lr * stats.predicted.delta_chosen.item()
        errors.append(abs(actual - predicted) / abs(predicted))
    assert 1.7 <= errors[0] / errors[1] <= 2.3
