"""Partial assignments of discrete data: validation, the "?" state and network inputs.

A configuration has ``D`` variables, each in ``{0, ..., K-1}`` (the paper's value ``k`` is
stored as ``k - 1``). A partial assignment ``x_S`` is a pair of tensors:

* ``values``: int64 ``(batch, D)``; entries outside ``S`` are ignored (any value);
* ``observed``: bool ``(batch, D)``; ``True`` on ``S``.

At the boundary (files, user arrays) ``-1`` means "?" (unobserved). Networks see "?" as an
extra class ``K``, so their one-hot inputs have width ``K + 1`` and no value is shifted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

UNKNOWN = -1


def as_int_tensor(data: Any, name: str = "values") -> torch.Tensor:
    """Turn an array-like of integer codes into an int64 tensor, refusing NaN and fractions.

    Parameters
    ----------
    data:
        numpy array, torch tensor or nested list of integer-valued numbers.
    name:
        What the data is called in error messages.
    """
    tensor = torch.as_tensor(np.asarray(data) if not torch.is_tensor(data) else data)
    if tensor.is_floating_point():
        if torch.isnan(tensor).any():
            row, col = (torch.isnan(tensor).nonzero()[0].tolist() + [None])[:2]
            raise ValueError(f"{name} contains NaN (first at row {row}, column {col})")
        if (tensor != tensor.round()).any():
            bad = tensor[tensor != tensor.round()][0].item()
            raise ValueError(f"{name} must hold integer codes, found the non-integer {bad}")
    if tensor.dtype == torch.bool:
        tensor = tensor.long()
    return tensor.long()


def check_values(
    values: Any,
    num_categories: int,
    num_variables: int | None = None,
    name: str = "values",
) -> torch.Tensor:
    """Validate complete configurations ``(batch, D)`` with codes in ``[0, K)``.

    Raises ``ValueError`` naming the first bad entry: "?" (``-1``) in training data, a
    value outside ``[0, K)``, a wrong number of variables or an empty batch.
    """
    tensor = as_int_tensor(values, name)
    if tensor.dim() != 2:
        raise ValueError(f"{name} must have shape (batch, D), got {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows)")
    if num_variables is not None and tensor.shape[1] != num_variables:
        raise ValueError(
            f"{name} has D={tensor.shape[1]} variables, the model expects {num_variables}"
        )
    unknown = tensor == UNKNOWN
    if unknown.any():
        row, col = unknown.nonzero()[0].tolist()
        raise ValueError(
            f'{name} has "?" (-1) at row {row}, column {col}; training data must be complete'
        )
    bad = (tensor < 0) | (tensor >= num_categories)
    if bad.any():
        row, col = bad.nonzero()[0].tolist()
        raise ValueError(
            f"{name}[{row}, {col}] = {tensor[row, col].item()} is outside [0, {num_categories})"
        )
    return tensor


def split_partial(partial: Any, num_categories: int, num_variables: int | None = None):
    """Split codes with ``-1`` for "?" into ``(values, observed)``.

    Returns
    -------
    values:
        int64 ``(batch, D)``; "?" positions are set to 0.
    observed:
        bool ``(batch, D)``.

    Examples
    --------
    >>> values, observed = split_partial([[1, -1, 0]], num_categories=2)
    >>> values.tolist(), observed.tolist()
    ([[1, 0, 0]], [[True, False, True]])
    """
    tensor = as_int_tensor(partial, "partial assignment")
    if tensor.dim() == 1:
        tensor = tensor[None]
    observed = tensor != UNKNOWN
    check_query(tensor.clamp(min=0), observed, num_categories, num_variables)
    return torch.where(observed, tensor, torch.zeros_like(tensor)), observed


def join_partial(values: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_partial`: ``values`` with ``-1`` where not observed."""
    return torch.where(observed, values, torch.full_like(values, UNKNOWN))


def check_query(
    values: torch.Tensor,
    observed: torch.Tensor,
    num_categories: int,
    num_variables: int | None = None,
) -> None:
    """Validate a partial assignment; unobserved entries are not checked."""
    if values.shape != observed.shape or values.dim() != 2:
        raise ValueError(
            f"values {tuple(values.shape)} and observed {tuple(observed.shape)} must both be "
            "(batch, D)"
        )
    if num_variables is not None and values.shape[1] != num_variables:
        raise ValueError(
            f"query has D={values.shape[1]} variables, the model expects {num_variables}"
        )
    if observed.dtype != torch.bool:
        raise ValueError(f"observed must be a bool tensor, got {observed.dtype}")
    bad = observed & ((values < 0) | (values >= num_categories))
    if bad.any():
        row, col = bad.nonzero()[0].tolist()
        raise ValueError(
            f"observed value [{row}, {col}] = {values[row, col].item()} is outside "
            f"[0, {num_categories})"
        )


def unknown_coded(
    values: torch.Tensor, observed: torch.Tensor, num_categories: int
) -> torch.Tensor:
    """Codes ``(batch, D)`` in ``[0, K]`` where ``K`` stands for "?" (the networks' input)."""
    return torch.where(observed, values, torch.full_like(values, num_categories))


def one_hot_inputs(
    values: torch.Tensor, observed: torch.Tensor, num_categories: int
) -> torch.Tensor:
    """One-hot network input ``(batch, D, K + 1)``; the last class is "?"."""
    codes = unknown_coded(values, observed, num_categories)
    return torch.nn.functional.one_hot(codes, num_categories + 1).float()


def load_array(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``.npy`` (the data) or ``.npz`` with key ``x`` and optional ``observed``, ``log_f``.

    Returns a dict with key ``x`` and whichever optional keys are present.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    if path.suffix == ".npy":
        return {"x": np.load(path)}
    if path.suffix == ".npz":
        with np.load(path) as archive:
            if "x" not in archive:
                raise ValueError(f"{path} has keys {sorted(archive)}; the data must be under 'x'")
            return {key: archive[key] for key in ("x", "observed", "log_f") if key in archive}
    raise ValueError(f"{path}: expected a .npy or .npz file, got {path.suffix!r}")


def binarize_images(images: Any, threshold: float | None = None) -> torch.Tensor:
    """Flatten images ``(N, H, W)`` or ``(N, 1, H, W)`` to ``(N, H*W)`` binary codes.

    The default threshold is 0.5 for floats in [0, 1] and 128 for uint8; pixels
    ``>= threshold`` become 1.
    """
    array = np.asarray(images)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3:
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W), got {array.shape}")
    if np.issubdtype(array.dtype, np.floating) and np.isnan(array).any():
        raise ValueError("images contain NaN")
    if threshold is None:
        threshold = 128 if array.dtype == np.uint8 else 0.5
    return torch.from_numpy((array >= threshold).reshape(len(array), -1).astype(np.int64))
