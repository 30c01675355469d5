"""Plain-torch backbones: residual MLP, bidirectional transformer and a small U-Net.

Each backbone is a *trunk* that reads a partial assignment ``(values, observed)`` (shapes
``(batch, D)``) and returns features, plus two heads:

* a conditional head, features -> logits ``(batch, D, K)`` (``g_phi``);
* a marginal head, features -> one unnormalised log-marginal ``(batch,)`` (``f_theta``).

No layer mixes rows of a batch (no BatchNorm), so a row's output never depends on the
other rows, which the normalisation ``f(x_S) - f(empty)`` in one batch relies on.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from marginkit.mam.encoding import one_hot_inputs, unknown_coded


def sinusoidal(positions: torch.Tensor, width: int) -> torch.Tensor:
    """Sinusoidal embedding ``(..., width)`` of integer or float positions ``(...)``."""
    half = width // 2
    frequencies = torch.exp(
        -math.log(10_000.0) * torch.arange(half, device=positions.device) / half
    )
    angles = positions.float()[..., None] * frequencies
    embedding = torch.cat([angles.sin(), angles.cos()], dim=-1)
    if width % 2:
        embedding = torch.nn.functional.pad(embedding, (0, 1))
    return embedding


class ResidualStack(nn.Module):
    """``h <- h + LeakyReLU(W h)`` repeated ``depth`` times; no normalisation."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.activation = nn.LeakyReLU()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            hidden = hidden + self.activation(layer(hidden))
        return hidden


class MLPTrunk(nn.Module):
    """One-hot ``(K+1)*D`` -> Linear + LeakyReLU -> residual stack -> ``(batch, width)``."""

    def __init__(self, num_variables: int, num_categories: int, width: int, depth: int) -> None:
        super().__init__()
        self.num_categories = num_categories
        self.input = nn.Linear(num_variables * (num_categories + 1), width)
        self.activation = nn.LeakyReLU()
        self.stack = ResidualStack(width, depth)

    def forward(self, values: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        inputs = one_hot_inputs(values, observed, self.num_categories).flatten(1)
        return self.stack(self.activation(self.input(inputs)))


class MLPConditionalHead(nn.Module):
    def __init__(self, num_variables: int, num_categories: int, width: int) -> None:
        super().__init__()
        self.shape = (num_variables, num_categories)
        self.output = nn.Linear(width, num_variables * num_categories)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(features).view(-1, *self.shape)


class MLPMarginalHead(nn.Module):
    """Pooled features ``(batch, width)`` -> residual block(s) -> scalar ``(batch,)``."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.stack = ResidualStack(width, depth)
        self.output = nn.Linear(width, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() == 3:  # transformer states (batch, D, width): mean-pool
            features = features.mean(1)
        return self.output(self.stack(features))[:, 0]


class TransformerTrunk(nn.Module):
    """(K+1)-symbol embedding + sinusoidal positions -> bidirectional encoder ``(B, D, w)``."""

    def __init__(
        self, num_variables: int, num_categories: int, width: int, depth: int, num_heads: int
    ) -> None:
        super().__init__()
        self.num_categories = num_categories
        self.embedding = nn.Embedding(num_categories + 1, width)
        self.register_buffer("positions", sinusoidal(torch.arange(num_variables), width))
        layer = nn.TransformerEncoderLayer(
            width, num_heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)

    def forward(self, values: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        codes = unknown_coded(values, observed, self.num_categories)
        return self.encoder(self.embedding(codes) + self.positions)


class PositionwiseHead(nn.Module):
    """Per-position MLP ``(B, D, width)`` -> ``(B, D, K)``."""

    def __init__(self, width: int, num_categories: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(width, width), nn.GELU(), nn.Linear(width, num_categories)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, twice, with a timestep (|S|) embedding added in between."""

    def __init__(self, channels_in: int, channels_out: int, time_width: int) -> None:
        super().__init__()
        self.norm_in = nn.GroupNorm(min(8, channels_in), channels_in)
        self.conv_in = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.time = nn.Linear(time_width, channels_out)
        self.norm_out = nn.GroupNorm(min(8, channels_out), channels_out)
        self.conv_out = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.skip = (
            nn.Identity()
            if channels_in == channels_out
            else nn.Conv2d(channels_in, channels_out, 1)
        )

    def forward(self, hidden: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        out = self.conv_in(nn.functional.silu(self.norm_in(hidden)))
        out = out + self.time(time)[:, :, None, None]
        out = self.conv_out(nn.functional.silu(self.norm_out(out)))
        return out + self.skip(hidden)


# Limitation: one resolution level (one downsampling), even height and width only.
class UNetTrunk(nn.Module):
    """Down path of a one-level U-Net over ``(H, W)`` images; returns the skip, the
    bottleneck and the |S| embedding for an up path (a head)."""

    def __init__(self, image_shape: tuple[int, int], num_categories: int, width: int) -> None:
        super().__init__()
        height, image_width = image_shape
        if height % 2 or image_width % 2:
            raise ValueError(f"the U-Net needs even height and width, got {image_shape}")
        self.image_shape = image_shape
        self.num_categories = num_categories
        channels = 2 if num_categories == 2 else num_categories + 1
        self.width = width
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.down_block = ResBlock(width, width, width)
        self.downsample = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.middle = ResBlock(2 * width, 2 * width, width)

    def _inputs(self, values: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        batch = values.shape[0]
        if self.num_categories == 2:
            # Binary images: +-1 for observed pixels, 0 for "?", plus a mask channel.
            signed = torch.where(observed, 2.0 * values.float() - 1.0, 0.0)
            stacked = torch.stack([signed, observed.float()], dim=1)
        else:
            stacked = one_hot_inputs(values, observed, self.num_categories).transpose(1, 2)
        return stacked.reshape(batch, -1, *self.image_shape)

    def forward(self, values: torch.Tensor, observed: torch.Tensor):
        time = self.time(sinusoidal(observed.sum(-1), self.width))
        skip = self.down_block(self.stem(self._inputs(values, observed)), time)
        bottleneck = self.middle(self.downsample(skip), time)
        return skip, bottleneck, time


class UNetUpPath(nn.Module):
    """Upsample the bottleneck, join the skip, one ResBlock, conv to ``channels_out``."""

    def __init__(self, width: int, channels_out: int) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1)
        self.block = ResBlock(2 * width, width, width)
        self.norm = nn.GroupNorm(min(8, width), width)
        self.output = nn.Conv2d(width, channels_out, 3, padding=1)

    def forward(self, features) -> torch.Tensor:
        skip, bottleneck, time = features
        hidden = self.block(torch.cat([skip, self.upsample(bottleneck)], dim=1), time)
        return self.output(nn.functional.silu(self.norm(hidden)))


class UNetConditionalHead(nn.Module):
    def __init__(self, width: int, num_categories: int) -> None:
        super().__init__()
        self.up = UNetUpPath(width, num_categories)

    def forward(self, features) -> torch.Tensor:
        logits = self.up(features)  # (batch, K, H, W)
        return logits.flatten(2).transpose(1, 2)


class UNetMarginalHead(nn.Module):
    """Own up path -> 1-channel map -> MLP over pixels -> scalar."""

    def __init__(self, width: int, num_pixels: int) -> None:
        super().__init__()
        self.up = UNetUpPath(width, 1)
        self.mlp = nn.Sequential(nn.Linear(num_pixels, width), nn.SiLU(), nn.Linear(width, 1))

    def forward(self, features) -> torch.Tensor:
        return self.mlp(self.up(features).flatten(1))[:, 0]
