"""Pixel-art scores against closed forms; the embedded pixel-art pairs."""

import numpy as np
import pytest

from marginkit.mapo.demo_data import demo_pairs, photo_crops, pixel_art, sample_photos
from marginkit.mapo.metrics import pixel_art_scores


def test_ramp_has_closed_form_block_energy_and_isotropic_grid_score():
    ramp = np.tile((np.arange(32) / 31.0)[None, :, None], (32, 1, 3))
    scores = pixel_art_scores(ramp, k=4)
    assert scores["E"] == pytest.approx(1 - 15 / 1023, abs=1e-9)
    assert scores["G"] == pytest.approx(0.5, abs=1e-12)


def test_checkerboard_scores_zero_energy_and_constant_image_is_flat():
    board = np.indices((32, 32)).sum(axis=0) % 2
    board = np.repeat(board[..., None], 3, axis=2).astype(float)
    scores = pixel_art_scores(board)
    assert scores["E"] == pytest.approx(0.0, abs=1e-12)
    assert scores["G"] == pytest.approx(0.5, abs=1e-12)
    flat = pixel_art_scores(np.full((32, 32, 3), 0.3))
    assert (flat["E"], flat["G"], flat["flat_fraction"]) == (1.0, 0.5, 1.0)


def test_pixel_art_rendering_is_idempotent_blocky_and_rounds_half_up():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    art = pixel_art(image)
    assert np.array_equal(pixel_art(art), art)
    assert set(np.unique(art).tolist()) <= {0, 85, 170, 255}
    blocks = art.reshape(8, 4, 8, 4, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()
    half = np.array([212] * 8 + [213] * 8, dtype=np.uint8).reshape(4, 4, 1).repeat(3, axis=2)
    assert (pixel_art(half) == 255).all()  # level 2.5 -> 3, not round-half-even 2
    scores = pixel_art_scores(art / 255.0)
    assert scores["E"] == pytest.approx(1.0, abs=1e-6)
    assert scores["G"] == pytest.approx(1.0, abs=1e-12) or scores["flat_fraction"] == 1.0


def test_embedded_data_counts_match_the_photo_grid():
    photos = sample_photos()
    assert sorted(photos) == ["china", "flower"]
    assert all(photo.shape == (427, 640, 3) for photo in photos.values())
    assert len(photo_crops(photos["china"])) == 7 * 12
    pairs, held_real, held_art = demo_pairs()
    assert len(pairs) == 168 - 42 and len(held_real) == len(held_art) == 42
    assert {pair.caption for pair in pairs} == {"china", "flower"}
    chosen = np.asarray(pairs[0].chosen())
    assert chosen.shape == (32, 32, 3) and np.array_equal(pixel_art(chosen), chosen)


def test_scores_reject_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        pixel_art_scores(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="multiple"):
        pixel_art_scores(np.random.default_rng(0).random((30, 30, 3)))
