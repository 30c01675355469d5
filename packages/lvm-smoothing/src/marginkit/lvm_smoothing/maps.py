"""Simplex maps that turn logits into probability vectors, and the candidate grid.

A candidate is a pair (map, temperature). ``hardmax`` gives Cohen's one-hot votes; ``softmax``
and ``sparsemax`` at temperature ``T`` trade margin (small ``T``, close to hardmax) against
variance (large ``T``, close to uniform). All maps are batched over a leading temperature axis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

MAP_NAMES = ("hardmax", "sparsemax", "softmax")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One simplex map at one temperature (``temperature`` is 0.0 for hardmax)."""

    map: str
    temperature: float

    def __post_init__(self) -> None:
        if self.map not in MAP_NAMES:
            raise ValueError(f"unknown simplex map {self.map!r}; choose one of {MAP_NAMES}")
        if self.map == "hardmax":
            if self.temperature != 0.0:
                raise ValueError("hardmax has no temperature; use temperature=0.0")
        elif not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"{self.map} needs a temperature > 0, got {self.temperature!r}")

    def __str__(self) -> str:
        return "hardmax" if self.map == "hardmax" else f"{self.map}@{self.temperature:.4g}"


HARDMAX = Candidate("hardmax", 0.0)


def temperature_grid(count: int = 50, low: float = 0.01, high: float = 50.0) -> list[float]:
    """``count`` log-spaced temperatures from ``low`` to ``high`` (the package default grid)."""
    if count < 1 or not (0 < low <= high):
        raise ValueError(f"need count >= 1 and 0 < low <= high, got {count}, {low}, {high}")
    return [float(t) for t in np.geomspace(low, high, count)]


def candidate_grid(
    maps: Sequence[str] = MAP_NAMES, temperatures: Sequence[float] | None = None
) -> list[Candidate]:
    """Candidates in preference order: hardmax, then sparsemax, then softmax, smaller T first.

    The order is the tie-break of the selection step (the first of equal radii wins).
    """
    unknown = [name for name in maps if name not in MAP_NAMES]
    if unknown:
        raise ValueError(f"unknown simplex maps {unknown}; choose from {MAP_NAMES}")
    grid = sorted(temperature_grid() if temperatures is None else [float(t) for t in temperatures])
    candidates = []
    for name in MAP_NAMES:
        if name not in maps:
            continue
        if name == "hardmax":
            candidates.append(HARDMAX)
        else:
            candidates.extend(Candidate(name, t) for t in grid)
    if not candidates:
        raise ValueError("the candidate set is empty")
    return candidates


def hardmax(logits: torch.Tensor) -> torch.Tensor:
    """One-hot of the argmax (ties: lowest index), shape ``(..., K)`` like ``logits``."""
    index = logits.argmax(dim=-1, keepdim=True)
    return torch.zeros_like(logits).scatter_(-1, index, 1.0)


def softmax(logits: torch.Tensor, temperatures: torch.Tensor) -> torch.Tensor:
    """``exp(u - max u) / sum exp(u - max u)`` with ``u = z / T``.

    Parameters
    ----------
    logits:
        ``(batch, K)``.
    temperatures:
        ``(num_temperatures,)``, all > 0.

    Returns
    -------
    torch.Tensor
        ``(num_temperatures, batch, K)``, clamped to [0, 1].
    """
    scaled = logits.unsqueeze(0) / temperatures.view(-1, 1, 1)
    return torch.softmax(scaled, dim=-1).clamp(0.0, 1.0)


def sparsemax(logits: torch.Tensor, temperatures: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of ``u = z / T`` onto the probability simplex.

    With ``u`` shifted by its maximum and sorted, ``u_(1) >= u_(2) >= ...``, and
    ``c_k = sum_{j<=k} u_(j)``: ``k* = max{k : 1 + k u_(k) > c_k}``, ``tau = (c_{k*} - 1) / k*``
    and the output is ``max(u - tau, 0)``. It is one-hot exactly when the lead of the top logit
    is at least ``T`` (strict inequality in ``k*``).

    Parameters
    ----------
    logits:
        ``(batch, K)``.
    temperatures:
        ``(num_temperatures,)``, all > 0.

    Returns
    -------
    torch.Tensor
        ``(num_temperatures, batch, K)``, clamped to [0, 1].
    """
    # Dividing by T > 0 keeps the order, so the logits are sorted once for all temperatures.
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    inverse = 1.0 / temperatures.view(-1, 1, 1)
    scaled = shifted.unsqueeze(0) * inverse
    ordered = shifted.sort(dim=-1, descending=True).values.unsqueeze(0) * inverse
    cumulative = ordered.cumsum(dim=-1)
    ks = torch.arange(1, logits.shape[-1] + 1, device=logits.device, dtype=logits.dtype)
    support = (1.0 + ks * ordered) > cumulative
    k_star = support.sum(dim=-1, keepdim=True)  # the support is a prefix of the sorted values
    tau = (cumulative.gather(-1, k_star - 1) - 1.0) / k_star.to(logits.dtype)
    return (scaled - tau).clamp(0.0, 1.0)


def apply_map(name: str, logits: torch.Tensor, temperatures: torch.Tensor) -> torch.Tensor:
    """``(num_temperatures, batch, K)`` outputs of map ``name`` (hardmax: one temperature)."""
    if name == "hardmax":
        return hardmax(logits).unsqueeze(0)
    if name == "softmax":
        return softmax(logits, temperatures)
    if name == "sparsemax":
        return sparsemax(logits, temperatures)
    raise ValueError(f"unknown simplex map {name!r}; choose one of {MAP_NAMES}")
