"""Noise-augmented training of a base classifier, so that its smoothed version is accurate.

Training runs under ``accelerate`` (one process here, many with ``accelerate launch``); the
noise is redrawn for every batch of every epoch. Checkpoints record ``sigma_train``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from marginkit.shared import latest_checkpoint, load_checkpoint, make_accelerator, save_checkpoint

logger = logging.getLogger(__name__)


def gaussian_augment(
    x: torch.Tensor, sigma: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x + delta``, ``delta ~ N(0, sigma^2 I)`` drawn afresh on every call."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + sigma * noise


def fit_noise_augmented(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    sigma: float,
    epochs: int = 30,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    config: dict[str, Any] | None = None,
    cpu: bool = False,
) -> nn.Module:
    """Train ``model`` with Adam on cross-entropy of ``model(x + delta)``.

    Parameters
    ----------
    inputs, labels:
        ``(N, *shape)`` float inputs in the model's input scale, ``(N,)`` int64 labels.
    sigma:
        Training noise level (the same input scale as the certification's ``sigma``).
    checkpoint_dir:
        When given, a checkpoint is written after every epoch (``config`` plus
        ``sigma_train``) and a run restarted with the same folder resumes after the last one.
    """
    if inputs.shape[0] != labels.shape[0] or inputs.shape[0] == 0:
        raise ValueError(
            f"need as many labels as inputs (> 0): {inputs.shape[0]}, {labels.shape[0]}"
        )
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"need epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}")
    accelerator = make_accelerator(cpu=cpu)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start_epoch = 0
    record = {**(config or {}), "sigma_train": float(sigma)}
    if checkpoint_dir is not None and latest_checkpoint(checkpoint_dir) is not None:
        state = load_checkpoint(checkpoint_dir)
        saved = {key: state.config.get(key) for key in record}
        if saved != record:
            raise ValueError(
                f"{checkpoint_dir} holds a checkpoint of another run ({saved}); this run is "
                f"{record}. Resume with the same settings or choose another folder"
            )
        model.load_state_dict(state.tensors["model"])
        optimizer.load_state_dict(state.objects["optimizer"])
        start_epoch = state.step
        logger.info("resuming after epoch %d from %s", start_epoch, state.path)

    dataset = torch.utils.data.TensorDataset(inputs, labels)
    shuffle = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=shuffle
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    noise = torch.Generator(device=accelerator.device)
    model.train()
    for epoch in range(start_epoch, epochs):
        shuffle.manual_seed(seed + epoch)
        noise.manual_seed(seed + 1_000_003 * (epoch + 1) + accelerator.process_index)
        total, count = 0.0, 0
        for batch_inputs, batch_labels in loader:
            logits = model(gaussian_augment(batch_inputs, sigma, noise))
            loss = nn.functional.cross_entropy(logits, batch_labels)
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
            total += loss.item() * len(batch_labels)
            count += len(batch_labels)
        logger.debug("epoch %d/%d  loss %.4f", epoch + 1, epochs, total / max(count, 1))
        if checkpoint_dir is not None and accelerator.is_main_process:
            save_checkpoint(
                checkpoint_dir,
                step=epoch + 1,
                tensors={"model": accelerator.unwrap_model(model).state_dict()},
                config=record,
                objects={"optimizer": optimizer.state_dict()},
                keep_last=1,
            )
    model.eval()
    return accelerator.unwrap_model(model)
