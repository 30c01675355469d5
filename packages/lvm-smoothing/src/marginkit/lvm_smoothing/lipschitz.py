"""Lipschitz constants (l2 to l2) of a base model's logits.

``upper_bound`` multiplies guaranteed per-layer bounds over (nested) ``nn.Sequential`` models
and raises on any layer it does not know, since mapping an unknown layer to 1 is no bound.
``lower_bound`` is a diagnostic: the largest local Jacobian norm found at given inputs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import torch
from torch import nn

from marginkit.lvm_smoothing.models import Normalize, Residual, Scale

logger = logging.getLogger(__name__)

_ONE_LIPSCHITZ = (
    nn.ReLU, nn.Tanh, nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.ELU, nn.Hardtanh,
)  # fmt: skip


def spectral_norm(matrix: torch.Tensor) -> float:
    """Exact largest singular value of a 2-D matrix, computed in float64."""
    return float(torch.linalg.matrix_norm(matrix.detach().double(), ord=2))


def conv2d_bound(layer: nn.Conv2d) -> float:
    """``max_g ||W_g||_2 sqrt(ceil(kh/sh) ceil(kw/sw))`` with ``W_g`` of shape
    ``(c_out/g, c_in/g * kh * kw)``: each output pixel sees each input pixel at most
    ``ceil(kh/sh) ceil(kw/sw)`` times. Needs dilation 1; any padding."""
    if tuple(layer.dilation) != (1, 1):
        raise ValueError(f"conv bound needs dilation 1, got {layer.dilation} in {layer}")
    weight = layer.weight.detach()
    groups = layer.groups
    per_group = weight.shape[0] // groups
    kh, kw = weight.shape[-2:]
    sh, sw = layer.stride
    overlap = math.sqrt(math.ceil(kh / sh) * math.ceil(kw / sw))
    norms = [
        spectral_norm(weight[g * per_group : (g + 1) * per_group].reshape(per_group, -1))
        for g in range(groups)
    ]
    return max(norms) * overlap


def layer_bound(module: nn.Module) -> float:
    """A guaranteed upper bound on the Lipschitz constant of one layer (or a composite)."""
    if isinstance(module, nn.Sequential):
        bound = 1.0
        for child in module:
            bound *= layer_bound(child)
        return bound
    if isinstance(module, Residual):
        return 1.0 + layer_bound(module.body)
    if isinstance(module, nn.Linear):
        return spectral_norm(module.weight)
    if isinstance(module, nn.Conv2d):
        return conv2d_bound(module)
    if isinstance(module, nn.LeakyReLU):
        return max(1.0, abs(module.negative_slope))
    if isinstance(module, nn.Sigmoid):
        return 0.25
    if isinstance(module, _ONE_LIPSCHITZ):
        return 1.0
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kernel, stride = module.kernel_size, module.stride
        if kernel != stride:
            raise ValueError(
                f"only non-overlapping pooling is bounded (kernel == stride): {module}"
            )
        return 1.0
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if module.running_var is None:
            raise ValueError(f"{module} keeps no running statistics; cannot bound it")
        gamma = module.weight.detach().abs() if module.weight is not None else torch.ones(1)
        return float((gamma.double() / torch.sqrt(module.running_var.double() + module.eps)).max())
    if isinstance(module, Normalize):
        return float(1.0 / module.std.min())
    if isinstance(module, Scale):
        return abs(float(module.factor))
    raise TypeError(
        f"no Lipschitz bound is known for layer {type(module).__name__}; build the model from "
        "nn.Sequential, Linear, Conv2d, 1-Lipschitz activations, BatchNorm, Normalize, Residual"
    )


def upper_bound(model: nn.Module) -> float:
    """An upper bound on ``sup ||g(x) - g(y)|| / ||x - y||`` for the model's logits ``g``.

    Linear layers use the exact float64 spectral norm (parametrized weights, such as
    ``torch.nn.utils.parametrizations.orthogonal``, are read as the effective weight).

    Examples
    --------
    >>> upper_bound(nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU()))  # doctest: +SKIP
    """
    return layer_bound(model)


def lower_bound(model: nn.Module, inputs: Iterable[torch.Tensor], iterations: int = 30) -> float:
    """Largest local Jacobian spectral norm at ``inputs`` (each without a batch axis).

    Power iteration on ``J^T J`` with ``torch.func.jvp``/``vjp``; a lower bound on the global
    constant (and itself an underestimate of each local norm), for diagnostics only.
    """
    was_training = model.training
    model.eval()
    best = 0.0
    generator = torch.Generator().manual_seed(0)
    try:
        for x in inputs:

            def function(point: torch.Tensor) -> torch.Tensor:
                return model(point.unsqueeze(0)).squeeze(0)

            direction = torch.randn(x.shape, generator=generator).to(x)
            direction /= direction.norm()
            norm = 0.0
            for _ in range(iterations):
                forward = torch.func.jvp(function, (x,), (direction,))[1]
                pullback = torch.func.vjp(function, x)[1]
                (back,) = pullback(forward.detach())
                norm = float(forward.detach().norm())
                length = back.norm()
                if length == 0:
                    break
                direction = (back / length).detach()
            best = max(best, norm)
    finally:
        model.train(was_training)
    return best
