"""Small device, precision, seeding, runtime, checkpoint, logging and faiss helpers.

Every marginkit method package builds on these so that the same training and evaluation
code runs on a laptop CPU and on many GPUs under ``accelerate launch``.

The names below are loaded on first use, so ``import marginkit.shared`` costs nothing and
a command line's ``--help`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "CheckpointState": "checkpoint",
    "latest_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "skip_seen_batches": "checkpoint",
    "write_text_atomic": "checkpoint",
    "autocast": "device",
    "resolve_dtype": "device",
    "select_device": "device",
    "MetricsWriter": "logging",
    "progress": "logging",
    "setup_logging": "logging",
    "make_accelerator": "runtime",
    "seed_everything": "seeding",
}

__all__ = [
    "CheckpointState",
    "MetricsWriter",
    "autocast",
    "latest_checkpoint",
    "load_checkpoint",
    "make_accelerator",
    "progress",
    "resolve_dtype",
    "save_checkpoint",
    "seed_everything",
    "select_device",
    "setup_logging",
    "skip_seen_batches",
    "write_text_atomic",
]

if TYPE_CHECKING:
    from marginkit.shared.checkpoint import (
        CheckpointState,
        latest_checkpoint,
        load_checkpoint,
        save_checkpoint,
        skip_seen_batches,
        write_text_atomic,
    )
    from marginkit.shared.device import autocast, resolve_dtype, select_device
    from marginkit.shared.logging import MetricsWriter, progress, setup_logging
    from marginkit.shared.runtime import make_accelerator
    from marginkit.shared.seeding import seed_everything


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'marginkit.shared' has no attribute {name!r}")
    module = importlib.import_module(f"marginkit.shared.{_EXPORTS[name]}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
