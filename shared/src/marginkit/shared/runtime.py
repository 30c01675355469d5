"""A thin factory around ``accelerate.Accelerator``.

All marginkit training loops take the ``Accelerator`` this returns, so one process on a
CPU and ``accelerate launch`` over many GPUs and nodes run the same code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accelerate import Accelerator

_MIXED_PRECISION = {"no": "no", "fp32": "no", "fp16": "fp16", "bf16": "bf16", "fp8": "fp8"}


def make_accelerator(
    mixed_precision: str = "no",
    gradient_accumulation_steps: int = 1,
    log_with: str | list[str] | None = None,
    project_dir: str | Path | None = None,
    cpu: bool = False,
    seed: int | None = None,
    **kwargs: Any,
) -> Accelerator:
    """Build an ``accelerate.Accelerator`` with marginkit's conventions.

    Parameters
    ----------
    mixed_precision:
        ``"no"``/``"fp32"``, ``"fp16"``, ``"bf16"`` or ``"fp8"``.
    gradient_accumulation_steps:
        Micro-batches per optimizer step; use ``accelerator.accumulate(model)``.
    log_with:
        Tracker name(s) understood by accelerate (``"tensorboard"``, ``"wandb"``...), or
        ``None`` for no tracker.
    project_dir:
        Where trackers and ``accelerator.save_state`` write.
    cpu:
        Force the CPU even when a GPU is present.
    seed:
        When given, ``accelerate.utils.set_seed`` seeds every process.
    kwargs:
        Passed through to ``Accelerator`` unchanged.
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    key = str(mixed_precision).lower()
    if key not in _MIXED_PRECISION:
        raise ValueError(
            f"mixed_precision={mixed_precision!r} is not one of {sorted(_MIXED_PRECISION)}"
        )
    if gradient_accumulation_steps < 1:
        raise ValueError(
            f"gradient_accumulation_steps must be >= 1, got {gradient_accumulation_steps}"
        )
    project_config = None
    if project_dir is not None:
        project_config = ProjectConfiguration(project_dir=str(project_dir))
    accelerator = Accelerator(
        mixed_precision=_MIXED_PRECISION[key],
        gradient_accumulation_steps=gradient_accumulation_steps,
        log_with=log_with,
        project_config=project_config,
        cpu=cpu,
        **kwargs,
    )
    if seed is not None:
        set_seed(seed)
    return accelerator
