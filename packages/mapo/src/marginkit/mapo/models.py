"""The parts of an SDXL- or SD1.5-shaped diffusers pipeline and how the trainer uses them.

:class:`DiffusionParts` holds the UNet, VAE, training noise scheduler, text encoders and
tokenizers. An SDXL-shaped pipeline has two encoders (``CLIPTextModel`` and
``CLIPTextModelWithProjection``) and a UNet with ``text_time`` micro-conditioning; an
SD1.5-shaped one has one encoder and no added conditioning.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from marginkit.mapo.config import TrainConfig

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class DiffusionParts:
    """Pipeline components; ``text_encoders``/``tokenizers`` have one entry per encoder."""

    unet: Any
    vae: Any
    noise_scheduler: Any
    text_encoders: list[Any]
    tokenizers: list[Any]

    @property
    def is_sdxl(self) -> bool:
        """Two text encoders and ``text_time`` conditioning (SDXL) or not (SD1.5)."""
        return len(self.text_encoders) == 2

    @property
    def latent_scale(self) -> float:
        """``vae.config.scaling_factor`` (0.13025 for SDXL, 0.18215 for SD1.5)."""
        return float(self.vae.config.scaling_factor)

    def pipeline(self, unet: Any | None = None, scheduler: Any | None = None) -> Any:
        """A diffusers ``StableDiffusionXLPipeline``/``StableDiffusionPipeline`` of the parts."""
        from diffusers import (
            EulerDiscreteScheduler,
            StableDiffusionPipeline,
            StableDiffusionXLPipeline,
        )

        unet = unet if unet is not None else self.unet
        if scheduler is None:
            scheduler = EulerDiscreteScheduler.from_config(self.noise_scheduler.config)
        if self.is_sdxl:
            return StableDiffusionXLPipeline(
                vae=self.vae,
                text_encoder=self.text_encoders[0],
                text_encoder_2=self.text_encoders[1],
                tokenizer=self.tokenizers[0],
                tokenizer_2=self.tokenizers[1],
                unet=unet,
                scheduler=scheduler,
            )
        return StableDiffusionPipeline(
            vae=self.vae,
            text_encoder=self.text_encoders[0],
            tokenizer=self.tokenizers[0],
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )

    def save(self, folder: str | Path) -> Path:
        """Write the parts as a diffusers pipeline folder that :func:`load_parts` reads."""
        folder = Path(folder)
        self.pipeline().save_pretrained(str(folder))
        return folder


def load_parts(
    pretrained: str | Path,
    revision: str | None = None,
    variant: str | None = None,
    vae: str | Path | None = None,
) -> DiffusionParts:
    """Load the parts of a pipeline by hub id or local folder (diffusers layout).

    The shape (SDXL or SD1.5) is read from ``model_index.json``: a ``text_encoder_2``
    entry means SDXL. ``vae`` optionally names another VAE (e.g. an fp16-safe SDXL VAE).
    """
    from diffusers import AutoencoderKL, DDPMScheduler, DiffusionPipeline, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel, CLIPTextModelWithProjection

    source = str(pretrained)
    index = DiffusionPipeline.load_config(source, revision=revision)
    sdxl = index.get("text_encoder_2") is not None and index["text_encoder_2"][0] is not None
    common = {"revision": revision}
    tokenizers = [AutoTokenizer.from_pretrained(source, subfolder="tokenizer", **common)]
    encoders = [
        CLIPTextModel.from_pretrained(source, subfolder="text_encoder", variant=variant, **common)
    ]
    if sdxl:
        tokenizers.append(AutoTokenizer.from_pretrained(source, subfolder="tokenizer_2", **common))
        encoders.append(
            CLIPTextModelWithProjection.from_pretrained(
                source, subfolder="text_encoder_2", variant=variant, **common
            )
        )
    if vae is not None:
        autoencoder = AutoencoderKL.from_pretrained(str(vae))
    else:
        autoencoder = AutoencoderKL.from_pretrained(
            source, subfolder="vae", variant=variant, **common
        )
    return DiffusionParts(
        unet=UNet2DConditionModel.from_pretrained(
            source, subfolder="unet", variant=variant, **common
        ),
        vae=autoencoder,
        noise_scheduler=DDPMScheduler.from_pretrained(source, subfolder="scheduler", **common),
        text_encoders=encoders,
        tokenizers=tokenizers,
    )


def tokenize(parts: DiffusionParts, captions: Sequence[str]) -> list[torch.Tensor]:
    """Token ids ``(batch, model_max_length)`` per tokenizer (padded and truncated)."""
    ids = []
    for tokenizer in parts.tokenizers:
        encoded = tokenizer(
            list(captions),
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        ids.append(encoded.input_ids)
    return ids


@torch.no_grad()
def encode_text(
    parts: DiffusionParts, token_ids: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Text conditioning of a batch: ``(hidden (batch, tokens, dim), pooled or None)``.

    SDXL: the penultimate hidden states of both encoders concatenated along the feature
    axis (768 + 1280 = 2048 for SDXL) and the pooled ``text_embeds`` of the second encoder
    only (1280). SD1.5: the last hidden state, no pooled embedding.
    """
    if len(token_ids) != len(parts.text_encoders):
        raise ValueError(
            f"got {len(token_ids)} token-id tensors for {len(parts.text_encoders)} text encoders"
        )
    if not parts.is_sdxl:
        encoder = parts.text_encoders[0]
        return encoder(token_ids[0].to(encoder.device))[0], None
    hidden_states = []
    pooled = None
    for index, (encoder, ids) in enumerate(zip(parts.text_encoders, token_ids, strict=True)):
        output = encoder(ids.to(encoder.device), output_hidden_states=True)
        hidden_states.append(output.hidden_states[-2])
        if index == 1:
            pooled = output.text_embeds
    return torch.cat(hidden_states, dim=-1), pooled


@torch.no_grad()
def encode_images(
    vae: Any, pixels: torch.Tensor, chunk_size: int = 8, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Latents ``sf * z``, ``z ~ q(z | x)`` sampled (not the mode), in fp32 chunks.

    Parameters
    ----------
    vae:
        An ``AutoencoderKL`` (kept in fp32: the stock SDXL VAE overflows in fp16).
    pixels:
        ``(rows, 3, height, width)`` images in ``[-1, 1]``.
    chunk_size:
        Rows per encoder call.

    Returns
    -------
    torch.Tensor
        ``(rows, latent_channels, height / f, width / f)`` fp32 latents.
    """
    if chunk_size < 1:
        raise ValueError(f"vae_encode_batch_size must be >= 1, got {chunk_size}")
    scale = float(vae.config.scaling_factor)
    device = next(vae.parameters()).device
    latents = []
    for start in range(0, pixels.shape[0], chunk_size):
        chunk = pixels[start : start + chunk_size].to(device=device, dtype=torch.float32)
        posterior = vae.encode(chunk).latent_dist
        latents.append(posterior.sample(generator=generator) * scale)
    result = torch.cat(latents)
    if not torch.isfinite(result).all():
        raise FloatingPointError(
            "the VAE produced non-finite latents; check the images are finite and in [-1, 1] "
            "and that the VAE runs in fp32"
        )
    return result


def time_ids(
    original_size: torch.Tensor, crop_top_left: torch.Tensor, target_size: tuple[int, int]
) -> torch.Tensor:
    """SDXL micro-conditioning rows ``(orig_h, orig_w, crop_top, crop_left, tgt_h, tgt_w)``.

    Parameters
    ----------
    original_size, crop_top_left:
        ``(batch, 2)`` true source size and crop corner of each image.
    target_size:
        ``(height, width)`` of the training resolution.

    Returns
    -------
    torch.Tensor
        ``(batch, 6)`` float tensor.
    """
    target = torch.tensor(target_size, dtype=torch.float32).expand(original_size.shape[0], 2)
    return torch.cat([original_size.float(), crop_top_left.float(), target], dim=1)


def load_parts_from(config: TrainConfig) -> DiffusionParts:
    """Load the pipeline named in the config (hub id or local folder)."""
    return load_parts(config.pretrained_model, revision=config.revision, vae=config.vae)
