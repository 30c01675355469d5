"""Checked L2 normalisation and cosine-similarity tiles in full precision."""

from __future__ import annotations

import torch


def check_embeddings(embeddings: torch.Tensor, name: str = "embeddings") -> torch.Tensor:
    """Raise a ``ValueError`` naming the first row that is NaN, infinite or all zero.

    Parameters
    ----------
    embeddings:
        ``(count, dim)`` tensor.

    Returns
    -------
    torch.Tensor
        The same tensor, for chaining.
    """
    if not isinstance(embeddings, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(embeddings).__name__}")
    if embeddings.ndim != 2:
        raise ValueError(f"{name} must have shape (count, dim), got {tuple(embeddings.shape)}")
    if embeddings.shape[0] == 0 or embeddings.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(embeddings.shape)}")
    with torch.no_grad():
        finite = torch.isfinite(embeddings).all(dim=1)
        if not bool(finite.all()):
            row = int((~finite).nonzero()[0, 0])
            raise ValueError(f"{name} row {row} contains NaN or infinite values")
        zero = (embeddings == 0).all(dim=1)
        if bool(zero.any()):
            row = int(zero.nonzero()[0, 0])
            raise ValueError(f"{name} row {row} is all zeros; its cosine similarity is undefined")
    return embeddings


def unit_rows(embeddings: torch.Tensor, name: str = "embeddings") -> torch.Tensor:
    """Rows divided by their L2 norm, ``ê_i = x_i / ||x_i||``, in float32 or float64.

    Half-precision input is promoted to float32 first, so that cosines computed from the
    result stay within rounding of [-1, 1].

    Parameters
    ----------
    embeddings:
        ``(count, dim)`` tensor; any row that is zero, NaN or infinite is an error.

    Returns
    -------
    torch.Tensor
        ``(count, dim)`` unit rows, float64 for float64 input, float32 otherwise.
    """
    check_embeddings(embeddings, name)
    dtype = torch.float64 if embeddings.dtype == torch.float64 else torch.float32
    matrix = embeddings.to(dtype)
    return matrix / matrix.norm(dim=1, keepdim=True)


def cosine_matrix(queries: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """``S = clamp(Ê_Q Ê_Rᵀ, -1, 1)`` of already unit rows, autocast disabled.

    Parameters
    ----------
    queries:
        ``(batch, dim)`` unit rows.
    references:
        ``(refs, dim)`` unit rows.

    Returns
    -------
    torch.Tensor
        ``(batch, refs)`` cosine similarities in the dtype of ``queries``.
    """
    with torch.autocast(device_type=queries.device.type, enabled=False):
        scores = queries @ references.to(queries.dtype).T
    return scores.clamp(-1.0, 1.0)
