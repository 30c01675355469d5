"""One objective evaluation on a batch of pairs: shared noise, per-row errors, the loss.

Rows are in block order ``[chosen_0 .. chosen_{B-1}, rejected_0 .. rejected_{B-1}]``; the
noise ``eps`` and timestep ``t`` of pair ``i`` are drawn once and used for rows ``i`` and
``i + B``, so the error gap of a pair measures the model, not the noise.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch

from marginkit.mapo.losses import LossOutput, dpo_loss, mapo_loss, per_row_mse, sft_loss

OBJECTIVES = ("mapo", "dpo", "sft")

#: ``reference(noisy_latents, timesteps, hidden_states, added_cond_kwargs) -> prediction``.
ReferenceFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, dict | None], torch.Tensor]


@dataclasses.dataclass
class StepOutput:
    """Loss and the per-pair errors it was computed from (all ``(batch,)``, fp32)."""

    loss: LossOutput
    mse_chosen: torch.Tensor
    mse_rejected: torch.Tensor | None
    reference_mse_chosen: torch.Tensor | None = None
    reference_mse_rejected: torch.Tensor | None = None


def unwrap(model: Any) -> Any:
    """The module under DDP/accelerate/``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


@contextlib.contextmanager
def adapters_disabled(model: Any) -> Iterator[Any]:
    """Run the base weights of a peft-adapted diffusers model; adapters come back after.

    The wrapper (DDP, accelerate) is unwrapped first, since only the inner model has
    ``disable_adapters``; adapters are re-enabled in a ``finally`` so that an error in the
    reference forward never leaves training on the base weights.
    """
    inner = unwrap(model)
    inner.disable_adapters()
    try:
        yield inner
    finally:
        inner.enable_adapters()


def pair_noise(
    latent_shape: tuple[int, ...],
    num_train_timesteps: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``eps ~ N(0, I)`` and one ``t ~ U{0..T-1}`` per pair, tiled x2 in block order.

    Parameters
    ----------
    latent_shape:
        ``(batch, channels, height, width)`` of the chosen half.

    Returns
    -------
    tuple
        ``noise (2 * batch, channels, height, width)`` and ``timesteps (2 * batch,)`` with
        row ``i + batch`` equal to row ``i``.
    """
    noise = torch.randn(latent_shape, generator=generator)
    timesteps = torch.randint(0, num_train_timesteps, (latent_shape[0],), generator=generator)
    return torch.cat([noise, noise]), torch.cat([timesteps, timesteps])


def prediction_target(
    scheduler: Any, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """``eps`` (epsilon) or ``v = sqrt(a_t) eps - sqrt(1 - a_t) x`` (v_prediction)."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"prediction_type {kind!r} is not supported; use 'epsilon' or 'v_prediction'")


def _unet_call(
    unet: Any,
    noisy: torch.Tensor,
    timesteps: torch.Tensor,
    hidden_states: torch.Tensor,
    added: dict | None,
) -> torch.Tensor:
    return unet(noisy, timesteps, hidden_states, added_cond_kwargs=added).sample


def compute_objective(
    objective: str,
    unet: Any,
    scheduler: Any,
    latents: torch.Tensor,
    hidden_states: torch.Tensor,
    generator: torch.Generator,
    pooled: torch.Tensor | None = None,
    micro_conditioning: torch.Tensor | None = None,
    reference: ReferenceFn | None = None,
    loss_kwargs: dict[str, float] | None = None,
    noise_and_timesteps: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> StepOutput:
    """Noise the pairs, run the UNet once over ``2B`` rows (``B`` for SFT), apply the loss.

    Parameters
    ----------
    objective:
        ``"mapo"``, ``"dpo"`` or ``"sft"``.
    latents:
        ``(2 * batch, C, H, W)`` scaled latents, chosen rows first (block order).
    hidden_states:
        ``(batch, tokens, dim)`` text states of the pairs (tiled here).
    pooled, micro_conditioning:
        SDXL only: ``(batch, pooled_dim)`` pooled text and ``(batch, 6)`` time ids.
    reference:
        DPO only: the frozen reference's prediction function.
    loss_kwargs:
        Hyper-parameters of the objective (MaPO: ``score_scale``, ``margin_scale``,
        ``margin_weight``; DPO: ``beta``).
    noise_and_timesteps:
        Optional ``(noise, timesteps)`` of ``2B`` rows instead of drawing them.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    rows = latents.shape[0]
    if rows == 0 or rows % 2:
        raise ValueError(
            f"latents need 2 * batch rows in block order [chosen..., rejected...], got {rows}"
        )
    batch = rows // 2
    if hidden_states.shape[0] != batch:
        raise ValueError(f"hidden_states has {hidden_states.shape[0]} rows for {batch} pairs")
    if not torch.isfinite(latents).all():
        raise FloatingPointError("latents contain NaN or inf; check the images and the VAE")
    if objective == "dpo" and reference is None:
        raise ValueError("objective 'dpo' needs a reference model")
    if noise_and_timesteps is None:
        noise, timesteps = pair_noise(
            tuple(latents[:batch].shape), scheduler.config.num_train_timesteps, generator
        )
    else:
        noise, timesteps = noise_and_timesteps
    noise, timesteps = noise.to(latents.device), timesteps.to(latents.device)
    loss_kwargs = dict(loss_kwargs or {})

    def tile(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else torch.cat([tensor, tensor])

    hidden, pooled_rows, ids = tile(hidden_states), tile(pooled), tile(micro_conditioning)
    if objective == "sft":
        latents, noise, timesteps = latents[:batch], noise[:batch], timesteps[:batch]
        hidden, pooled_rows, ids = hidden_states, pooled, micro_conditioning
    added = None
    if pooled_rows is not None:
        added = {"text_embeds": pooled_rows, "time_ids": ids}
    noisy = scheduler.add_noise(latents, noise, timesteps)
    target = prediction_target(scheduler, latents, noise, timesteps)
    errors = per_row_mse(_unet_call(unet, noisy, timesteps, hidden, added), target)

    if objective == "sft":
        return StepOutput(sft_loss(errors), errors, None)
    mse_chosen, mse_rejected = errors.chunk(2)
    if objective == "mapo":
        return StepOutput(mapo_loss(mse_chosen, mse_rejected, **loss_kwargs), *errors.chunk(2))
    assert reference is not None
    with torch.no_grad():
        reference_errors = per_row_mse(reference(noisy, timesteps, hidden, added), target)
    reference_chosen, reference_rejected = reference_errors.chunk(2)
    loss = dpo_loss(mse_chosen, mse_rejected, reference_chosen, reference_rejected, **loss_kwargs)
    return StepOutput(loss, mse_chosen, mse_rejected, reference_chosen, reference_rejected)


def lora_reference(unet: Any) -> ReferenceFn:
    """Reference = the same (possibly wrapped) UNet with its LoRA adapters switched off."""

    def predict(noisy, timesteps, hidden, added):  # type: ignore[no-untyped-def]
        with adapters_disabled(unet) as base:
            return _unet_call(base, noisy, timesteps, hidden, added)

    return predict


def frozen_reference(reference_unet: Any) -> ReferenceFn:
    """Reference = a frozen copy of the UNet made before training."""

    def predict(noisy, timesteps, hidden, added):  # type: ignore[no-untyped-def]
        return _unet_call(reference_unet, noisy, timesteps, hidden, added)

    return predict
