"""The marginalization model: a marginal network ``f_theta`` and a conditional ``g_phi``.

* ``f_theta(x_S)`` is an unnormalised log-marginal; the model reports
  ``log p_theta(x_S) = f_theta(x_S) - f_theta(empty)`` with ``f_theta(empty)`` computed on
  an all-"?" row appended to the same batch, so ``log p(nothing observed) = 0`` exactly.
* ``log p_phi(x_i = k | x_S) = log_softmax_k g_phi(x_S)[i, k]``, used for ``i`` not in S.

``layout="separate"`` gives two networks; ``layout="head"`` puts ``f_theta`` as a small head
on ``g_phi``'s trunk (train ``g_phi`` first, then only :meth:`marginal_parameters`).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from marginkit.mam import backbones
from marginkit.mam.encoding import check_query

BACKBONES = ("mlp", "transformer", "unet")
LAYOUTS = ("separate", "head")


@dataclasses.dataclass
class NetworkConfig:
    """Shape and architecture of a marginalization model."""

    num_variables: int = 64
    """D, the number of discrete variables."""
    num_categories: int = 2
    """K, the number of values each variable takes (codes 0..K-1)."""
    backbone: str = "mlp"
    """``mlp``, ``transformer`` or ``unet`` (images; needs ``image_shape``)."""
    width: int = 256
    """Hidden width (MLP units, transformer model width, U-Net base channels)."""
    depth: int = 3
    """Residual blocks (MLP) or encoder layers (transformer)."""
    layout: str = "separate"
    """``separate``: two networks; ``head``: f_theta is a head on g_phi's trunk."""
    image_shape: tuple[int, int] | None = None
    """(H, W) for the U-Net; H * W must equal D."""
    num_heads: int = 4
    """Attention heads of the transformer."""
    uniform_offset: bool = False
    """Add -|S| log K to f_theta (not in the paper): starts f near the uniform marginal."""

    def validate(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone={self.backbone!r} is not one of {BACKBONES}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout={self.layout!r} is not one of {LAYOUTS}")
        if self.num_variables < 1 or self.num_categories < 2:
            raise ValueError("need num_variables >= 1 and num_categories >= 2")
        if self.backbone == "unet":
            if self.image_shape is None:
                raise ValueError("backbone='unet' needs image_shape=(H, W)")
            height, width = self.image_shape
            if height * width != self.num_variables:
                raise ValueError(
                    f"image_shape {self.image_shape} has {height * width} pixels, "
                    f"not D={self.num_variables}"
                )


def _trunk(config: NetworkConfig) -> nn.Module:
    if config.backbone == "mlp":
        return backbones.MLPTrunk(
            config.num_variables, config.num_categories, config.width, config.depth
        )
    if config.backbone == "transformer":
        return backbones.TransformerTrunk(
            config.num_variables,
            config.num_categories,
            config.width,
            config.depth,
            config.num_heads,
        )
    return backbones.UNetTrunk(tuple(config.image_shape), config.num_categories, config.width)


def _conditional_head(config: NetworkConfig) -> nn.Module:
    if config.backbone == "mlp":
        return backbones.MLPConditionalHead(
            config.num_variables, config.num_categories, config.width
        )
    if config.backbone == "transformer":
        return backbones.PositionwiseHead(config.width, config.num_categories)
    return backbones.UNetConditionalHead(config.width, config.num_categories)


def _marginal_head(config: NetworkConfig) -> nn.Module:
    if config.backbone == "unet":
        return backbones.UNetMarginalHead(config.width, config.num_variables)
    # A separate MLP already has its own trunk; a head on a shared trunk gets one block.
    blocks = 1 if config.layout == "head" or config.backbone == "transformer" else 0
    return backbones.MLPMarginalHead(config.width, blocks)


class MarginalizationModel(nn.Module):
    """``f_theta`` and ``g_phi`` for data in ``{0..K-1}^D``.

    ``forward(values, observed, output)`` returns the conditional log-probabilities
    ``(batch, D, K)`` for ``output="logits"`` and ``f_theta`` ``(batch,)`` for
    ``output="score"``; the training losses call it so that ``accelerate``'s wrappers see
    every pass.

    Examples
    --------
    >>> model = MarginalizationModel(NetworkConfig(num_variables=3, num_categories=2, width=8))
    >>> values = torch.tensor([[1, 0, 0]]); observed = torch.tensor([[True, False, False]])
    >>> model.log_marginal(values, torch.zeros_like(observed)).tolist()
    [0.0]
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.num_variables = config.num_variables
        self.num_categories = config.num_categories
        self.conditional_trunk = _trunk(config)
        self.conditional_head = _conditional_head(config)
        self.marginal_trunk = _trunk(config) if config.layout == "separate" else None
        self.marginal_head = _marginal_head(config)

    def conditional_parameters(self) -> list[nn.Parameter]:
        """Parameters of ``g_phi`` (stage 1)."""
        return [*self.conditional_trunk.parameters(), *self.conditional_head.parameters()]

    def marginal_parameters(self) -> list[nn.Parameter]:
        """Parameters of ``f_theta`` alone (stage 2; the shared trunk stays frozen)."""
        trunk = [] if self.marginal_trunk is None else list(self.marginal_trunk.parameters())
        return [*trunk, *self.marginal_head.parameters()]

    def forward(
        self, values: torch.Tensor, observed: torch.Tensor, output: str = "logits"
    ) -> torch.Tensor:
        if output == "logits":
            logits = self.conditional_head(self.conditional_trunk(values, observed))
            return torch.log_softmax(logits.float(), dim=-1)
        if output == "score":
            return self.score(values, observed)
        raise ValueError(f"output={output!r} must be 'logits' or 'score'")

    def score(self, values: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Unnormalised log-marginal ``f_theta(x_S)`` ``(batch,)``."""
        trunk = self.marginal_trunk if self.marginal_trunk is not None else self.conditional_trunk
        score = self.marginal_head(trunk(values, observed)).float()
        if self.config.uniform_offset:
            score = score - observed.sum(-1) * math.log(self.num_categories)
        return score

    def log_marginal(self, values: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """``log p_theta(x_S) = f_theta(x_S) - f_theta(empty)`` ``(batch,)``, in one pass.

        Parameters
        ----------
        values, observed:
            ``(batch, D)`` int64 codes and bool mask of ``S``.
        """
        check_query(values, observed, self.num_categories, self.num_variables)
        values = values.to(self._device())
        observed = observed.to(self._device())
        empty = torch.zeros_like(observed[:1])
        scores = self.score(torch.cat([values, values[:1]]), torch.cat([observed, empty]))
        # p(empty) = 1 by definition; rounding between batch rows must not say otherwise.
        return torch.where(observed.any(-1), scores[:-1] - scores[-1], 0.0)

    def log_conditional(
        self, values: torch.Tensor, target: torch.Tensor, given: torch.Tensor
    ) -> torch.Tensor:
        """``log p_theta(x_A | x_B) = f_theta(x_{A u B}) - f_theta(x_B)`` ``(batch,)``.

        ``target`` (A) and ``given`` (B) are bool masks ``(batch, D)``.
        """
        if (target & given).any():
            raise ValueError("target and given sets overlap")
        joint = self.log_marginal(torch.cat([values, values]), torch.cat([target | given, given]))
        return joint[: len(values)] - joint[len(values) :]

    def conditional_log_probs(self, values: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """``log p_phi(x_i = k | x_S)`` ``(batch, D, K)``; rows for ``i`` in S are unused."""
        check_query(values, observed, self.num_categories, self.num_variables)
        return self.forward(values.to(self._device()), observed.to(self._device()))

    def _device(self) -> torch.device:
        return next(self.parameters()).device
