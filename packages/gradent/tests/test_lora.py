"""Measurement over peft LoRA parameters only, against naive per-response backward passes."""

import pytest
import torch

from marginkit.gradent.data import SentimentPairs, tiny_gpt2
from marginkit.gradent.logprobs import side_logps
from marginkit.gradent.measure import measure_pairs, select_parameters


def _lora_model(init_lora_weights=True):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["c_attn"],
        fan_in_fan_out=True,  # GPT-2's Conv1D stores weights transposed
        init_lora_weights=init_lora_weights,
    )
    with torch.random.fork_rng():
        torch.manual_seed(3)
        return get_peft_model(tiny_gpt2(seed=5).double(), config)


@pytest.fixture(scope="module")
def batch():
    return SentimentPairs(suffix_length=2, n=3, seed=4).batch()


def _naive_lora_grads(model, side, row):
    """One backward of u on one response; .grad lives only on the (trainable) adapters."""
    model.zero_grad()
    u, _ = side_logps(model, side.select(slice(row, row + 1)))
    u.sum().backward()
    grads = [p.grad.flatten() for n, p in model.named_parameters() if "lora_" in n]
    assert all(p.grad is None for n, p in model.named_parameters() if "lora_" not in n)
    model.zero_grad(set_to_none=True)
    return torch.cat(grads)


def test_trainable_set_under_peft_is_exactly_the_adapters():
    model = _lora_model()
    trainable = select_parameters(model, "trainable")
    assert set(trainable) == set(select_parameters(model, "lora"))
    assert len(trainable) == 4  # lora_A and lora_B of c_attn in two blocks
    assert all("lora_" in name for name in trainable)


def test_lora_a_gradients_are_zero_at_init_because_lora_b_starts_at_zero(batch):
    model = _lora_model()
    stats = measure_pairs(model, batch, params=r"lora_A", strategy="loop")
    assert torch.all(stats.chosen_norm == 0) and torch.all(stats.rejected_norm == 0)
    assert torch.isnan(stats.cosine).all()
    on_b = measure_pairs(model, batch, params=r"lora_B", strategy="loop")
    assert torch.all(on_b.chosen_norm > 0)


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_lora_measurement_matches_naive_backward_on_the_adapters(batch, strategy):
    model = _lora_model(init_lora_weights=False)  # random A and B: every gradient is nonzero
    stats = measure_pairs(model, batch, params="lora", strategy=strategy)
    for row in range(len(batch)):
        g_w = _naive_lora_grads(model, batch.chosen, row)
        g_l = _naive_lora_grads(model, batch.rejected, row)
        assert stats.inner_product[row].item() == pytest.approx((g_w @ g_l).item(), rel=1e-10)
        assert stats.chosen_norm[row].item() == pytest.approx(g_w.norm().item(), rel=1e-10)
        assert stats.rejected_norm[row].item() == pytest.approx(g_l.norm().item(), rel=1e-10)
