"""Trained weights in diffusers' formats: LoRA files and ``unet/`` folders.

LoRA runs write ``pytorch_lora_weights.safetensors``, which ``pipeline.load_lora_weights``
reads; full runs write ``unet/`` like a hub pipeline, which
``UNet2DConditionModel.from_pretrained(folder, subfolder="unet")`` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marginkit.mapo.models import DiffusionParts

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"


def save_lora(unet: Any, folder: str | Path, sdxl: bool) -> Path:
    """Write the UNet's peft adapters as a diffusers LoRA file and return its path."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    pipeline_class = StableDiffusionXLPipeline if sdxl else StableDiffusionPipeline
    pipeline_class.save_lora_weights(str(folder), unet_lora_layers=layers)
    return Path(folder) / LORA_WEIGHT_NAME


def trained_pipeline(parts: DiffusionParts, folder: str | Path) -> Any:
    """The base pipeline with a run's trained weights (LoRA file or ``unet/``) applied.

    Parameters
    ----------
    parts:
        The base pipeline the run started from.
    folder:
        The run's ``output_dir``.
    """
    folder = Path(folder)
    if (folder / LORA_WEIGHT_NAME).is_file():
        pipeline = parts.pipeline()
        pipeline.load_lora_weights(str(folder), weight_name=LORA_WEIGHT_NAME)
        return pipeline
    if (folder / "unet" / "config.json").is_file():
        from diffusers import UNet2DConditionModel

        return parts.pipeline(unet=UNet2DConditionModel.from_pretrained(str(folder / "unet")))
    raise FileNotFoundError(
        f"{folder} holds neither {LORA_WEIGHT_NAME} (LoRA run) nor unet/ (full run)"
    )
