"""The full-batch (Gram) predictor against real SGD steps and naive gradients (float64)."""

import pytest
import torch

from marginkit.gradent.batch import batch_predict, gradient_gram
from marginkit.gradent.data import SentimentPairs, tiny_gpt2
from marginkit.gradent.logprobs import pair_logps, side_logps
from marginkit.gradent.losses import preference_loss
from marginkit.gradent.measure import measure_pairs


@pytest.fixture(scope="module")
def batch():
    return SentimentPairs(suffix_length=2, n=3, seed=3).batch()


def _reference(model, batch):
    with torch.no_grad():
        u_w, u_l = pair_logps(model, batch)
    return u_w - torch.tensor([1.0, 0.5, -0.5]), u_l + torch.tensor([1.0, -0.3, 0.2])


def test_gram_entries_equal_naive_flattened_gradients(batch):
    model = tiny_gpt2(seed=1).double()
    gram, _, _ = gradient_gram(model, batch, params="all")

    def naive(side, row):
        model.zero_grad()
        u, _ = side_logps(model, side.select(slice(row, row + 1)))
        u.sum().backward()
        flat = torch.cat([p.grad.flatten() for p in model.parameters()])
        model.zero_grad(set_to_none=True)
        return flat

    g_w0, g_l2 = naive(batch.chosen, 0), naive(batch.rejected, 2)
    assert gram[0, 5].item() == pytest.approx((g_w0 @ g_l2).item(), rel=1e-10)
    assert gram[0, 0].item() == pytest.approx((g_w0 @ g_w0).item(), rel=1e-10)
    assert all(p.grad is None for p in model.parameters())


def test_one_pair_batch_prediction_equals_the_per_pair_predictor(batch):
    model = tiny_gpt2(seed=1).double()
    one = batch.select(slice(0, 1))
    reference = tuple(r[:1] for r in _reference(model, batch))
    full = batch_predict(model, one, loss="dpo", params="all", reference=reference)
    pair = measure_pairs(model, one, loss="dpo", params="all", reference=reference)
    assert full.delta_chosen.item() == pytest.approx(pair.predicted.delta_chosen.item(), rel=1e-10)
    assert full.delta_rejected.item() == pytest.approx(
        pair.predicted.delta_rejected.item(), rel=1e-10
    )


def test_batch_prediction_error_halves_with_the_step_of_a_real_full_batch_sgd_step(batch):
    reference = _reference(tiny_gpt2(seed=1).double(), batch)
    predicted = batch_predict(
        tiny_gpt2(seed=1).double(), batch, loss="dpo", params="all", reference=reference
    )
    errors = []
    for lr in (0.004, 0.002):
        model = tiny_gpt2(seed=1).double()
        u_w, u_l = pair_logps(model, batch)
        loss = preference_loss(
            "dpo",
            u_w,
            u_l,
            reference_chosen_logps=reference[0],
            reference_rejected_logps=reference[1],
        ).loss  # batch mean
        grads = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= lr * g
            new_w, new_l = pair_logps(model, batch)
        actual = torch.cat([new_w - u_w.detach(), new_l - u_l.detach()])
        expected = lr * torch.cat([predicted.delta_chosen, predicted.delta_rejected])
        errors.append(((actual - expected).norm() / expected.norm()).item())
    assert errors[1] < 0.05
    assert 1.7 <= errors[0] / errors[1] <= 2.3


def test_gram_over_budget_names_the_size(batch):
    with pytest.raises(ValueError, match="memory_budget_mb"):
        gradient_gram(tiny_gpt2(seed=1), batch, params="all", memory_budget_mb=0.01)
