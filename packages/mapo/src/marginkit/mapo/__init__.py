"""MaPO, Diffusion-DPO and SFT-on-chosen for text-to-image diffusion models.

The losses are pure functions of per-pair denoising errors (:mod:`marginkit.mapo.losses`);
:class:`Trainer` runs them on SDXL- or SD1.5-shaped diffusers pipelines under accelerate.
The names below are loaded on first use, so ``import marginkit.mapo`` (and
``marginkit-mapo --help``) does not import torch; diffusers, transformers and peft are
imported only when a model is built or loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "DemoConfig": "config",
    "SampleConfig": "config",
    "TrainConfig": "config",
    "FolderPairs": "data",
    "JsonlPairs": "data",
    "PairDataset": "data",
    "PickapicPairs": "data",
    "LossOutput": "losses",
    "dpo_loss": "losses",
    "implicit_accuracy": "losses",
    "mapo_link": "losses",
    "mapo_loss": "losses",
    "mapo_preset": "losses",
    "sft_loss": "losses",
    "TrainResult": "train",
    "Trainer": "train",
}

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

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'marginkit.mapo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"marginkit.mapo.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
