"""Certified l2 radii from a lower bound ``pA`` and a runner-up upper bound ``pB``.

All three radii use the same pair of bounds, so their maximum holds on the same confidence
event. Inputs broadcast; arithmetic is float64.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

FORMULAS = ("multi", "mono", "lipschitz")


def smoothed_lipschitz(lipschitz: float, width: float, sigma: float) -> float:
    """Lipschitz constant of ``h * N(0, sigma^2 I)`` for an ``L``-Lipschitz ``h`` of range ``w``.

    ``L erf(w / (2 sqrt(2) L sigma))``; tight for a ramp, and ``w / (sigma sqrt(2 pi))`` in the
    limit ``L -> inf`` (``lipschitz=math.inf``), the bound for any bounded ``h``.

    Examples
    --------
    >>> round(smoothed_lipschitz(1.0, 1.0, 0.5), 6)
    0.682689
    """
    if sigma <= 0 or width <= 0 or not lipschitz > 0:
        raise ValueError(f"need sigma, width, lipschitz > 0; got {sigma}, {width}, {lipschitz}")
    if math.isinf(lipschitz):
        return width / (sigma * math.sqrt(2.0 * math.pi))
    return lipschitz * math.erf(width / (2.0 * math.sqrt(2.0) * lipschitz * sigma))


def runner_up_bound(p_lower: ArrayLike, p_upper: ArrayLike) -> np.ndarray:
    """``pB' = min(pB, 1 - pA)``: valid because the class probabilities sum to one."""
    return np.minimum(np.asarray(p_upper, dtype=np.float64), 1.0 - np.asarray(p_lower, float))


def radius_multi(p_lower: ArrayLike, p_upper: ArrayLike, sigma: float) -> np.ndarray:
    """``sigma / 2 (Phi^-1(pA) - Phi^-1(pB'))``; 0 where ``pA <= pB'`` (no certificate)."""
    p_a = np.asarray(p_lower, dtype=np.float64)
    p_b = runner_up_bound(p_a, p_upper)
    with np.errstate(invalid="ignore"):
        radius = 0.5 * sigma * (special.ndtri(p_a) - special.ndtri(p_b))
    return np.where(p_a > p_b, radius, 0.0)


def radius_mono(p_lower: ArrayLike, sigma: float) -> np.ndarray:
    """``sigma Phi^-1(pA)`` where ``pA > 1/2``, else 0 (Cohen's one-sided radius)."""
    p_a = np.asarray(p_lower, dtype=np.float64)
    return np.where(p_a > 0.5, sigma * special.ndtri(np.clip(p_a, 0.5, 1.0)), 0.0)


def margin_lipschitz(sigma: float, probability_lipschitz: float | None = None) -> float:
    """``L~``, the Lipschitz constant of the smoothed margin ``F_A - F_B``.

    ``L_AB = sqrt(2) L_f`` and ``L~ = L_AB erf(1 / (sqrt(2) L_AB sigma))`` (range width 2);
    ``L_f = None`` (unknown, or hardmax) gives ``sqrt(2 / pi) / sigma``.
    """
    if probability_lipschitz is None:
        return smoothed_lipschitz(math.inf, 2.0, sigma)
    return smoothed_lipschitz(math.sqrt(2.0) * probability_lipschitz, 2.0, sigma)


def radius_lipschitz(
    p_lower: ArrayLike,
    p_upper: ArrayLike,
    sigma: float,
    probability_lipschitz: float | None = None,
) -> np.ndarray:
    """``(pA - pB') / L~`` (Lipschitz-margin radius); 0 where ``pA <= pB'``."""
    p_a = np.asarray(p_lower, dtype=np.float64)
    p_b = runner_up_bound(p_a, p_upper)
    radius = (p_a - p_b) / margin_lipschitz(sigma, probability_lipschitz)
    return np.where(p_a > p_b, radius, 0.0)


def all_radii(
    p_lower: ArrayLike,
    p_upper: ArrayLike,
    sigma: float,
    probability_lipschitz: float | None = None,
) -> np.ndarray:
    """Stack of ``(R_multi, R_mono, R_lip)``, shape ``(3, *broadcast shape)``."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    return np.stack(
        [
            radius_multi(p_lower, p_upper, sigma),
            radius_mono(p_lower, sigma),
            radius_lipschitz(p_lower, p_upper, sigma, probability_lipschitz),
        ]
    )


def probability_lipschitz(map_name: str, temperature: float, logit_lipschitz: float | None):
    """``L_f`` of the probability vector: ``L_g / (2T)`` softmax, ``L_g / T`` sparsemax.

    Hardmax has none, and an unknown ``L_g`` gives none (``None``).
    """
    if logit_lipschitz is None or map_name == "hardmax":
        return None
    if map_name == "softmax":
        return logit_lipschitz / (2.0 * temperature)
    if map_name == "sparsemax":
        return logit_lipschitz / temperature
    raise ValueError(f"unknown simplex map {map_name!r}")
