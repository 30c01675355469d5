"""Pixel-art scores of images: block energy ``E_k`` and grid-edge score ``G_k``.

For an image ``x`` in ``[0, 1]^{H x W x 3}`` and a ``k x k`` grid anchored at the origin,
``B_k(x)`` sets every block to its mean. ``B_k`` is an orthogonal projection, so

.. math:: E_k = 1 - \\frac{\\lVert x - B_k x \\rVert^2}{\\lVert x - \\bar{x} \\rVert^2} \\in [0, 1]

(``\\bar{x}`` the per-channel mean) is 1 exactly when the image is constant on the grid.
The grid-edge score ``G_k = b / (a + b)`` compares the mean squared difference of
neighbouring pixels inside blocks (``a``) with the one across block boundaries (``b``):
1 for pixel art, 0.5 for isotropic texture, and insensitive to blur and contrast. Flat
images (``||x - mean||^2 < 1e-6 * H * W * 3``) get ``E_k = 1``, ``G_k = 0.5`` and are
counted in ``flat_fraction``.
"""

from __future__ import annotations

import numpy as np

FLAT_TOLERANCE = 1e-6


def _as_images(images: np.ndarray) -> np.ndarray:
    array = np.asarray(images, dtype=np.float64)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3) or (H, W, 3), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("images contain NaN or inf")
    return array


def block_energy(image: np.ndarray, k: int = 4) -> tuple[float, bool]:
    """``(E_k, is_flat)`` of one ``(H, W, 3)`` image; ``H`` and ``W`` multiples of ``k``."""
    height, width, _ = image.shape
    if height % k or width % k:
        raise ValueError(f"image size {height}x{width} is not a multiple of k={k}")
    centred = image - image.mean(axis=(0, 1), keepdims=True)
    total = float((centred**2).sum())
    if total < FLAT_TOLERANCE * height * width * 3:
        return 1.0, True
    blocks = image.reshape(height // k, k, width // k, k, 3)
    means = blocks.mean(axis=(1, 3), keepdims=True)
    residual = float(((blocks - means) ** 2).sum())
    return 1.0 - residual / total, False


def grid_edge_score(image: np.ndarray, k: int = 4) -> float:
    """``G_k = b / (a + b)`` of one ``(H, W, 3)`` image (0.5 when both are zero)."""
    horizontal = ((image[:, 1:] - image[:, :-1]) ** 2).mean(axis=(0, 2))  # (W - 1,)
    vertical = ((image[1:] - image[:-1]) ** 2).mean(axis=(1, 2))  # (H - 1,)
    across_h = (np.arange(1, image.shape[1]) % k) == 0
    across_v = (np.arange(1, image.shape[0]) % k) == 0
    inside = np.concatenate([horizontal[~across_h], vertical[~across_v]])
    across = np.concatenate([horizontal[across_h], vertical[across_v]])
    a = float(inside.mean()) if inside.size else 0.0
    b = float(across.mean()) if across.size else 0.0
    if a + b <= 0.0:
        return 0.5
    return b / (a + b)


def pixel_art_scores(images: np.ndarray, k: int = 4) -> dict[str, float]:
    """Mean ``E_k``, mean ``G_k``, pixel std and flat fraction over a set of images.

    Parameters
    ----------
    images:
        ``(N, H, W, 3)`` (or one ``(H, W, 3)``) array with values in ``[0, 1]``.
    k:
        Block size of the pixel grid.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.tile(np.linspace(0, 1, 32)[None, :, None], (32, 1, 3))
    >>> round(pixel_art_scores(ramp)["E"], 6)  # 1 - 15/1023
    0.985337
    """
    array = _as_images(images)
    energies, edges, flats = [], [], []
    for image in array:
        energy, flat = block_energy(image, k)
        energies.append(energy)
        edges.append(0.5 if flat else grid_edge_score(image, k))
        flats.append(flat)
    return {
        "E": float(np.mean(energies)),
        "G": float(np.mean(edges)),
        "pixel_std": float(array.std(axis=(1, 2, 3)).mean()),
        "flat_fraction": float(np.mean(flats)),
    }
