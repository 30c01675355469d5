"""MaPO, Diffusion-DPO and SFT-on-chosen for text-to-image diffusion models.

The losses are pure functions of per-pair denoising errors (:mod:`marginkit.mapo.losses`);
:class:`Trainer` runs them on SDXL- or SD1.5-shaped diffusers pipelines under accelerate.
diffusers, transformers and peft are imported only when a model is built or loaded.
"""

from marginkit.mapo.config import DemoConfig, SampleConfig, TrainConfig
from marginkit.mapo.data import FolderPairs, JsonlPairs, PairDataset, PickapicPairs
from marginkit.mapo.losses import (
    LossOutput,
    dpo_loss,
    implicit_accuracy,
    mapo_link,
    mapo_loss,
    mapo_preset,
    sft_loss,
)
from marginkit.mapo.train import Trainer, TrainResult

__version__ = "0.1.0"

__all__ = [
    "DemoConfig",
    "FolderPairs",
    "JsonlPairs",
    "LossOutput",
    "PairDataset",
    "PickapicPairs",
    "SampleConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "dpo_loss",
    "implicit_accuracy",
    "mapo_link",
    "mapo_loss",
    "mapo_preset",
    "sft_loss",
]
