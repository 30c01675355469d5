"""Embedded data: scikit-learn's 8x8 digits, binarized or at 17 levels; and a loader that
turns a user's array file into validated training codes."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from marginkit.mam.encoding import as_int_tensor, check_values, load_array


@dataclasses.dataclass
class DiscreteDataset:
    """Train / test codes ``(N, D)`` in ``[0, K)`` plus the image shape when there is one."""

    train: torch.Tensor
    test: torch.Tensor
    num_categories: int
    image_shape: tuple[int, int] | None = None


def load_digits_binary(
    levels: int = 2, threshold: int = 8, num_train: int = 1500, seed: int = 0
) -> DiscreteDataset:
    """The 1797 scikit-learn digits (8x8, values 0..16), split 1500 / 297 by a seeded
    permutation.

    ``levels=2`` gives ``x >= threshold`` (K=2, D=64; about 32% of pixels on, 10 pixels
    off in every image); ``levels=17`` keeps the raw values (K=17).
    """
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.int64)  # (1797, 8, 8)
    if levels == 2:
        codes = (images >= threshold).astype(np.int64)
    elif levels == 17:
        codes = images
    else:
        raise ValueError(f"levels must be 2 or 17, got {levels}")
    flat = torch.from_numpy(codes.reshape(len(codes), -1))
    permutation = torch.randperm(len(flat), generator=torch.Generator().manual_seed(seed))
    flat = flat[permutation]
    return DiscreteDataset(flat[:num_train], flat[num_train:], levels, (8, 8))


# Limitation: only integer arrays are read; CSV / pandas tables with per-column
# vocabularies, text corpora and MNIST .amat files have no loader.
def load_codes(path: str, num_categories: int = 0, test_fraction: float = 0.1, seed: int = 0):
    """A ``.npy`` / ``.npz`` file of codes as a :class:`DiscreteDataset` (seeded split)."""
    array = load_array(path)["x"]
    # Validate NaN and fractions before taking the max, which would fail cryptically on NaN.
    codes = as_int_tensor(array, name=f"data in {path}")
    if codes.dim() > 2:
        codes = codes.reshape(len(codes), -1)
    inferred = int(codes.max()) + 1 if codes.numel() else 0
    num_categories = num_categories or max(inferred, 2)
    codes = check_values(codes, num_categories, name=f"data in {path}")
    permutation = torch.randperm(len(codes), generator=torch.Generator().manual_seed(seed))
    num_test = max(1, int(round(test_fraction * len(codes))))
    shuffled = codes[permutation]
    return DiscreteDataset(shuffled[num_test:], shuffled[:num_test], num_categories)
