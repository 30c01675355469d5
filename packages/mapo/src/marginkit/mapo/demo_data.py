"""Embedded preference pairs: pixel-art renderings (chosen) of real photographs (rejected).

The two photographs shipped with scikit-learn (``china.jpg``, ``flower.jpg``, 427x640)
are cut into 96x96 windows at stride 48 (7 x 12 = 84 per photo), each box-filtered to
32x32. The rejected image is the realistic crop; the chosen one its pixel-art rendering:
``k x k`` block means (k = 4), each channel quantised to ``Q = 4`` levels with
``level = floor(mean * (Q - 1) / 255 + 1/2)`` (float64, half rounds up), value
``level * 255 / (Q - 1)``, upsampled by repetition. Every fourth crop is held out.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from marginkit.mapo.data import Pair

WINDOW, STRIDE, CROP = 96, 48, 32


def sample_photos() -> dict[str, np.ndarray]:
    """The photographs shipped in scikit-learn, by file stem (``uint8 (427, 640, 3)``)."""
    from sklearn.datasets import load_sample_images

    bundle = load_sample_images()
    names = [
        str(name).replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
        for name in bundle.filenames
    ]
    return dict(zip(names, bundle.images, strict=True))


def photo_crops(photo: np.ndarray) -> list[np.ndarray]:
    """``96 x 96`` windows at stride 48, each box-filtered (3 x 3 means) to ``uint8 32 x 32``."""
    height, width, _ = photo.shape
    factor = WINDOW // CROP
    crops = []
    for top in range(0, height - WINDOW + 1, STRIDE):
        for left in range(0, width - WINDOW + 1, STRIDE):
            window = photo[top : top + WINDOW, left : left + WINDOW].astype(np.float64)
            small = window.reshape(CROP, factor, CROP, factor, 3).mean(axis=(1, 3))
            crops.append(np.clip(np.floor(small + 0.5), 0, 255).astype(np.uint8))
    return crops


def pixel_art(image: np.ndarray, k: int = 4, levels: int = 4) -> np.ndarray:
    """Pixel-art rendering of a ``uint8 (H, W, 3)`` image (``H``, ``W`` multiples of ``k``).

    Idempotent and exactly constant on the ``k``-grid; values in ``{level * 255/(Q-1)}``.

    Examples
    --------
    >>> import numpy as np
    >>> block = np.array([212] * 8 + [213] * 8, dtype=np.uint8).reshape(4, 4, 1).repeat(3, 2)
    >>> int(pixel_art(block)[0, 0, 0])  # mean 212.5 -> level 2.5 rounds up to 3
    255
    """
    height, width, channels = image.shape
    if height % k or width % k:
        raise ValueError(f"image size {height}x{width} is not a multiple of k={k}")
    blocks = image.astype(np.float64).reshape(height // k, k, width // k, k, channels)
    means = blocks.mean(axis=(1, 3))
    level = np.floor(means * (levels - 1) / 255.0 + 0.5)
    values = np.round(level * 255.0 / (levels - 1)).astype(np.uint8)
    return values.repeat(k, axis=0).repeat(k, axis=1)


def demo_pairs() -> tuple[list[Pair], list[np.ndarray], list[np.ndarray]]:
    """Training pairs and the held-out realistic and pixel-art crops (index % 4 == 0)."""
    pairs: list[Pair] = []
    held_real: list[np.ndarray] = []
    held_art: list[np.ndarray] = []
    for name, photo in sorted(sample_photos().items()):
        for index, crop in enumerate(photo_crops(photo)):
            art = pixel_art(crop)
            if index % 4 == 0:
                held_real.append(crop)
                held_art.append(art)
                continue
            pairs.append(
                Pair(
                    caption=name,
                    chosen=lambda a=art: Image.fromarray(a),
                    rejected=lambda c=crop: Image.fromarray(c),
                    name=f"{name}-{index}",
                )
            )
    return pairs, held_real, held_art
