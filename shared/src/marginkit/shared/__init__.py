"""Small device, precision, seeding, runtime, checkpoint, logging and faiss helpers.

Every marginkit method package builds on these so that the same training and evaluation
code runs on a laptop CPU and on many GPUs under ``accelerate launch``.

Heavy optional libraries (faiss, tensorboard, tyro) are imported only inside the function
that needs them, so ``import marginkit.shared`` stays cheap.
"""

from marginkit.shared.checkpoint import (
    CheckpointState,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    skip_seen_batches,
)
from marginkit.shared.device import autocast, resolve_dtype, select_device
from marginkit.shared.logging import MetricsWriter, progress, setup_logging
from marginkit.shared.runtime import make_accelerator
from marginkit.shared.seeding import seed_everything

__version__ = "0.1.0"

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
]
