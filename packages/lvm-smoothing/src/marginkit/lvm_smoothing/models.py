"""Small base models for the 8x8 digits, and the layers whose Lipschitz bound is known.

``lipschitz_mlp`` is Lipschitz by design: orthogonal linear layers
(``torch.nn.utils.parametrizations.orthogonal``, spectral norm exactly 1), ReLU, and a fixed
output scale ``s``, so its logits are ``s``-Lipschitz and the Lipschitz-margin radius applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrizations

DIGITS_SHAPE = (64,)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel (axis 1), kept inside the model so inputs stay raw."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        std_tensor = torch.as_tensor(std, dtype=torch.float32)
        if (std_tensor <= 0).any():
            raise ValueError(f"std must be > 0, got {list(std)}")
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", std_tensor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)


class Residual(nn.Module):
    """``x + body(x)``."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Scale(nn.Module):
    """Multiply by a fixed ``factor`` (a buffer, not trained)."""

    factor: torch.Tensor

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.register_buffer("factor", torch.tensor(float(factor)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def digits_mlp(num_classes: int = 10, hidden: int = 256) -> nn.Sequential:
    """64-256-256-10 ReLU MLP on flattened 8x8 digits."""
    return nn.Sequential(
        nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )  # fmt: skip


def digits_cnn(num_classes: int = 10) -> nn.Sequential:
    """A small CNN on flattened 8x8 digits: two 3x3 convolutions then two linear layers."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 128), nn.ReLU(),
        nn.Linear(128, num_classes),
    )  # fmt: skip


def lipschitz_mlp(
    num_classes: int = 10,
    hidden: int = 256,
    depth: int = 3,
    scale: float = 4.0,
    layer: str = "orthogonal",
) -> nn.Sequential:
    """An MLP whose logits are at most about ``scale``-Lipschitz by construction.

    ``layer="orthogonal"``: every weight has spectral norm exactly 1. ``"spectral"``: weights
    divided by a power-iteration estimate of their norm (close to 1, not guaranteed; use
    :func:`marginkit.lvm_smoothing.lipschitz.upper_bound`, which reads the exact norm).
    """
    if depth < 1 or scale <= 0:
        raise ValueError(f"need depth >= 1 and scale > 0, got {depth}, {scale}")
    wrappers: dict[str, Callable[[nn.Module], nn.Module]] = {
        "orthogonal": parametrizations.orthogonal,
        "spectral": parametrizations.spectral_norm,
    }
    if layer not in wrappers:
        raise ValueError(f"layer must be 'orthogonal' or 'spectral', got {layer!r}")
    widths = [64] + [hidden] * (depth - 1) + [num_classes]
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(wrappers[layer](nn.Linear(width_in, width_out)))
        if index < depth - 1:
            layers.append(nn.ReLU())
    layers.append(Scale(scale))
    return nn.Sequential(*layers)


ARCHITECTURES: dict[str, Callable[..., nn.Sequential]] = {
    "digits_mlp": digits_mlp,
    "digits_cnn": digits_cnn,
    "lipschitz_mlp": lipschitz_mlp,
}


def build_model(name: str, **settings: Any) -> nn.Sequential:
    """One of :data:`ARCHITECTURES` by name (``settings`` go to its factory)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name](**settings)
