"""Seeded clusters on the unit sphere, whose classes differ in spread (tests, benchmarks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def make_sphere_clusters(
    n_classes: int,
    n_per_class: int | Sequence[int],
    dim: int,
    spreads: float | Sequence[float] = (0.2, 0.6),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters around random unit centres, projected onto the unit sphere.

    Parameters
    ----------
    n_classes:
        Number of classes.
    n_per_class:
        Samples per class, one number or one per class.
    dim:
        Embedding dimension.
    spreads:
        Noise scale per class; a pair ``(low, high)`` with ``n_classes != 2`` is spread
        evenly between them, so classes get different similarity curves.
    seed:
        Seed of the generator.

    Returns
    -------
    (embeddings, labels)
        ``(N, dim)`` float32 unit rows and ``(N,)`` int64 labels ``0..n_classes-1``.
    """
    if n_classes < 1 or dim < 1:
        raise ValueError(f"n_classes and dim must be >= 1, got {n_classes}, {dim}")
    sizes = np.broadcast_to(np.asarray(n_per_class, dtype=np.int64), (n_classes,))
    if (sizes < 1).any():
        raise ValueError("every class needs at least one sample")
    spread_values = np.asarray(spreads, dtype=np.float64)
    if spread_values.ndim == 0:
        spread_values = np.full(n_classes, float(spread_values))
    elif spread_values.size == 2 and n_classes != 2:
        spread_values = np.linspace(spread_values[0], spread_values[1], n_classes)
    if spread_values.shape != (n_classes,):
        raise ValueError(f"spreads must be one value, (low, high) or {n_classes} values")
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_classes), sizes)
    points = centres[labels] + rng.normal(size=(labels.size, dim)) * spread_values[labels, None]
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32), labels.astype(np.int64)
