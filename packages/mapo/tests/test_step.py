"""One objective evaluation on a tiny pipeline: pairing, conditioning, gradients, errors."""

import copy
import math

import pytest
import torch

from marginkit.mapo.losses import mapo_preset
from marginkit.mapo.models import encode_images, encode_text, time_ids, tokenize
from marginkit.mapo.step import (
    adapters_disabled,
    compute_objective,
    frozen_reference,
    lora_reference,
    pair_noise,
    prediction_target,
)


class Recorder(torch.nn.Module):
    """Wraps a UNet like DDP does (``.module``) and records every call's inputs."""

    def __init__(self, module):
        super().__init__()
        self.module = module
        self.calls = []

    def forward(self, sample, timestep, encoder_hidden_states, added_cond_kwargs=None):
        self.calls.append((sample, timestep, encoder_hidden_states, added_cond_kwargs))
        return self.module(
            sample, timestep, encoder_hidden_states, added_cond_kwargs=added_cond_kwargs
        )


def _conditioning(parts, captions):
    hidden, pooled = encode_text(parts, tokenize(parts, captions))
    batch = len(captions)
    sizes = torch.tensor([[427, 640], [300, 200], [16, 16]][:batch])
    corners = torch.tensor([[0, 5], [3, 0], [0, 0]][:batch])
    return hidden, pooled, time_ids(sizes, corners, (16, 16))


def test_pair_noise_repeats_each_pair_in_block_order():
    noise, timesteps = pair_noise((3, 4, 2, 2), 1000, torch.Generator().manual_seed(0))
    assert noise.shape == (6, 4, 2, 2) and timesteps.shape == (6,)
    for row in range(3):
        assert torch.equal(noise[row], noise[row + 3])
        assert timesteps[row] == timesteps[row + 3]
    assert not torch.equal(noise[0], noise[1])


def test_both_images_of_a_pair_share_noise_timestep_prompt_and_time_ids(tiny_sdxl):
    parts = tiny_sdxl
    hidden, pooled, ids = _conditioning(parts, ["a", "bb", "ccc"])
    latents = torch.randn(3, 4, 8, 8)
    recorder = Recorder(parts.unet)
    compute_objective(
        "mapo",
        recorder,
        parts.noise_scheduler,
        torch.cat([latents, latents]),  # identical chosen and rejected: noisy rows must match
        hidden,
        torch.Generator().manual_seed(1),
        pooled=pooled,
        micro_conditioning=ids,
    )
    ((sample, timestep, states, added),) = recorder.calls
    assert sample.shape[0] == 6
    for row in range(3):
        assert torch.equal(sample[row], sample[row + 3])
        assert timestep[row] == timestep[row + 3]
        assert torch.equal(states[row], states[row + 3])
        assert torch.equal(added["time_ids"][row], added["time_ids"][row + 3])
        assert torch.equal(added["text_embeds"][row], added["text_embeds"][row + 3])
    assert added["time_ids"][0].tolist() == [427.0, 640.0, 0.0, 5.0, 16.0, 16.0]


def test_sdxl_conditioning_concatenates_both_encoders_and_pools_the_second(tiny_sdxl):
    parts = tiny_sdxl
    ids = tokenize(parts, ["pixel art"])
    hidden, pooled = encode_text(parts, ids)
    assert hidden.shape == (1, 16, 32 + 32)
    second = parts.text_encoders[1](ids[1], output_hidden_states=True)
    assert torch.equal(pooled, second.text_embeds)
    first = parts.text_encoders[0](ids[0], output_hidden_states=True)
    assert torch.equal(hidden[..., :32], first.hidden_states[-2])
    assert parts.unet.config.projection_class_embeddings_input_dim == 6 * 8 + 32


def test_odd_rows_and_mismatched_prompts_are_rejected(tiny_sd15):
    parts = tiny_sd15
    hidden, _ = encode_text(parts, tokenize(parts, ["a", "b"]))
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="2 \\* batch rows"):
        compute_objective(
            "mapo", parts.unet, parts.noise_scheduler, torch.randn(5, 4, 8, 8), hidden, generator
        )
    with pytest.raises(ValueError, match="rows for"):
        compute_objective(
            "mapo", parts.unet, parts.noise_scheduler, torch.randn(6, 4, 8, 8), hidden, generator
        )
    with pytest.raises(ValueError, match="objective"):
        compute_objective(
            "orpo", parts.unet, parts.noise_scheduler, torch.randn(4, 4, 8, 8), hidden, generator
        )


def test_nan_latents_and_nan_images_give_clear_errors(tiny_sd15):
    parts = tiny_sd15
    hidden, _ = encode_text(parts, tokenize(parts, ["a"]))
    latents = torch.randn(2, 4, 8, 8)
    latents[1, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="NaN"):
        compute_objective(
            "sft",
            parts.unet,
            parts.noise_scheduler,
            latents,
            hidden,
            torch.Generator().manual_seed(0),
        )
    pixels = torch.zeros(1, 3, 16, 16)
    pixels[0, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite latents"):
        encode_images(parts.vae, pixels)


def test_v_prediction_target_matches_closed_form(tiny_sd15):
    from marginkit.mapo.tiny import noise_scheduler

    scheduler = noise_scheduler("v_prediction")
    latents, noise = torch.randn(2, 4, 2, 2), torch.randn(2, 4, 2, 2)
    timesteps = torch.tensor([10, 900])
    alpha_bar = scheduler.alphas_cumprod[timesteps].view(2, 1, 1, 1)
    expected = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * latents
    assert torch.allclose(
        prediction_target(scheduler, latents, noise, timesteps), expected, atol=1e-6
    )
    scheduler.register_to_config(prediction_type="sample")
    with pytest.raises(ValueError, match="prediction_type"):
        prediction_target(scheduler, latents, noise, timesteps)


def _gradients(unet):
    return torch.cat([p.grad.flatten() for p in unet.parameters() if p.grad is not None])


def test_identical_pairs_give_zero_dpo_gradient_and_mapo_gradient_equal_to_sft(tiny_sdxl):
    parts = tiny_sdxl
    hidden, pooled, ids = _conditioning(parts, ["a", "bb"])
    latents = torch.randn(2, 4, 8, 8)
    pair = torch.cat([latents, latents])
    reference = frozen_reference(copy.deepcopy(parts.unet).requires_grad_(False))

    def gradient(objective, **kwargs):
        parts.unet.zero_grad(set_to_none=True)
        out = compute_objective(
            objective,
            parts.unet,
            parts.noise_scheduler,
            pair,
            hidden,
            torch.Generator().manual_seed(7),
            pooled=pooled,
            micro_conditioning=ids,
            **kwargs,
        )
        out.loss.loss.backward()
        return out, _gradients(parts.unet)

    mapo_out, mapo_grad = gradient("mapo", loss_kwargs=mapo_preset("official"))
    sft_out, sft_grad = gradient("sft")
    dpo_out, dpo_grad = gradient("dpo", reference=reference, loss_kwargs={"beta": 5000.0})
    assert torch.allclose(mapo_out.mse_chosen, mapo_out.mse_rejected)
    scale = sft_grad.abs().max().item()  # the margin term amplifies rounding by ~25
    assert torch.allclose(mapo_grad, sft_grad, rtol=1e-5, atol=1e-5 * scale)
    # beta / 2 = 2500 amplifies float32 rounding of dL_w - dL_l; distinct pairs give ~1e3x more.
    assert dpo_grad.abs().max().item() < 2e-3 * scale
    assert dpo_out.loss.loss.item() == pytest.approx(math.log(2.0), abs=1e-6)
    pair = torch.cat([latents, torch.randn(2, 4, 8, 8)])
    _, distinct_grad = gradient("dpo", reference=reference, loss_kwargs={"beta": 5000.0})
    assert distinct_grad.abs().max().item() > 0.1 * scale


def test_lora_reference_equals_base_model_and_reenables_adapters_on_wrapped_unet(tiny_sd15):
    from peft import LoraConfig

    parts = tiny_sd15
    base = copy.deepcopy(parts.unet)
    parts.unet.add_adapter(
        LoraConfig(r=2, lora_alpha=2, init_lora_weights=False, target_modules=["to_q", "to_v"])
    )
    wrapped = Recorder(parts.unet)  # has .module like a DDP wrapper
    hidden, _ = encode_text(parts, tokenize(parts, ["a"]))
    sample, timesteps = torch.randn(1, 4, 8, 8), torch.tensor([500])
    with torch.no_grad():
        adapted = parts.unet(sample, timesteps, hidden).sample
        from_reference = lora_reference(wrapped)(sample, timesteps, hidden, None)
        expected = base(sample, timesteps, hidden).sample
        after = parts.unet(sample, timesteps, hidden).sample
    assert torch.allclose(from_reference, expected, atol=1e-6)
    assert not torch.allclose(adapted, expected, atol=1e-4)  # non-zero adapters change outputs
    assert torch.equal(after, adapted)  # adapters are back on

    with pytest.raises(RuntimeError, match="boom"):
        with adapters_disabled(wrapped):
            raise RuntimeError("boom")
    with torch.no_grad():
        assert torch.equal(parts.unet(sample, timesteps, hidden).sample, adapted)
