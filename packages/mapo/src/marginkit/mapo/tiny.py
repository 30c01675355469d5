"""Tiny SDXL- and SD1.5-shaped pipelines built from configs, with an offline tokenizer.

Nothing here downloads: the tokenizer is a byte-level BPE with no merges (every byte is a
token), the text encoders, UNet and VAE are random (seeded) models a few thousand
parameters large. Tests, the demo and the benchmark use these; real runs load a pipeline
with :func:`marginkit.mapo.models.load_parts`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from marginkit.mapo.models import DiffusionParts

#: Token length of the tiny tokenizer (real CLIP tokenizers use 77).
TINY_MAX_LENGTH = 16
TINY_HIDDEN = 32
TINY_TIME_EMBED = 8


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for the bytes 0..255, in byte order.

    Printable Latin-1 bytes stand for themselves; the others are shifted to code points
    from 256 upwards, so every byte has a visible, whitespace-free symbol.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    symbols = {}
    shift = 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + shift)
            shift += 1
    return [symbols[byte] for byte in range(256)]


def write_tiny_tokenizer(folder: str | Path, max_length: int = TINY_MAX_LENGTH) -> Path:
    """Write ``vocab.json``, ``merges.txt`` and a tokenizer config for an offline CLIP BPE.

    Vocabulary: the 256 byte symbols, their end-of-word forms (``"a</w>"``), then
    ``<|startoftext|>`` (512) and ``<|endoftext|>`` (513): 514 entries. The merges file
    holds only its version header, so every byte stays one token.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = byte_symbols()
    tokens = symbols + [symbol + "</w>" for symbol in symbols]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    config = {"model_max_length": max_length, "tokenizer_class": "CLIPTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def load_tokenizer(folder: str | Path) -> Any:
    """A ``CLIPTokenizer`` from a folder with ``vocab.json`` and ``merges.txt``.

    ``from_pretrained`` on a folder reads the same files under transformers 4.x (slow
    Python tokenizer) and 5.x (tokenizers backend), so one factory serves both.
    """
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(folder))


def tiny_tokenizer(max_length: int = TINY_MAX_LENGTH) -> Any:
    """Build the offline tokenizer in a fresh temporary folder and load it."""
    folder = Path(tempfile.mkdtemp(prefix="marginkit-mapo-tokenizer-"))
    return load_tokenizer(write_tiny_tokenizer(folder, max_length))


def _text_config(tokenizer: Any, max_length: int) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TINY_HIDDEN,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=TINY_HIDDEN,
        max_position_embeddings=max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_act="gelu",
    )


def tiny_unet(
    sdxl: bool = True, channels: tuple[int, int] = (16, 32), sample_size: int = 16
) -> Any:
    """A two-block UNet2DConditionModel; SDXL-shaped uses ``text_time`` micro-conditioning.

    SDXL shape: cross attention ``32 + 32 = 64`` (two encoders concatenated) and an
    add-embedding input ``6 * 8 + 32 = 80`` (six time ids of width 8 plus the pooled text).
    """
    from diffusers import UNet2DConditionModel

    extra: dict[str, Any] = {}
    if sdxl:
        extra = {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": TINY_TIME_EMBED,
            "projection_class_embeddings_input_dim": 6 * TINY_TIME_EMBED + TINY_HIDDEN,
        }
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=channels,
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        cross_attention_dim=2 * TINY_HIDDEN if sdxl else TINY_HIDDEN,
        **extra,
    )


def tiny_vae(channels: tuple[int, int] = (16, 32), scaling_factor: float = 1.0) -> Any:
    """AutoencoderKL with 4 latent channels, one 2x downsampling and no mid-block attention."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels),
        block_out_channels=channels,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        mid_block_add_attention=False,
        scaling_factor=scaling_factor,
    )


def noise_scheduler(prediction_type: str = "epsilon") -> Any:
    """The SD/SDXL training schedule: DDPM, 1000 steps, scaled-linear betas."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type=prediction_type,
    )


def tiny_parts(
    sdxl: bool = True,
    seed: int = 0,
    prediction_type: str = "epsilon",
    unet_channels: tuple[int, int] = (16, 32),
    vae_channels: tuple[int, int] = (16, 32),
    max_length: int = TINY_MAX_LENGTH,
) -> DiffusionParts:
    """A seeded tiny SDXL-shaped (two encoders) or SD1.5-shaped (one encoder) pipeline.

    Examples
    --------
    >>> parts = tiny_parts(sdxl=True)
    >>> parts.unet.config.projection_class_embeddings_input_dim
    80
    """
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer(max_length)
    encoders: list[Any] = [CLIPTextModel(_text_config(tokenizer, max_length))]
    tokenizers = [tokenizer]
    if sdxl:
        encoders.append(CLIPTextModelWithProjection(_text_config(tokenizer, max_length)))
        tokenizers.append(tokenizer)
    return DiffusionParts(
        unet=tiny_unet(sdxl, unet_channels),
        vae=tiny_vae(vae_channels),
        noise_scheduler=noise_scheduler(prediction_type),
        text_encoders=encoders,
        tokenizers=tokenizers,
    )
