"""Data loading, noise augmentation and a short noise-augmented training run."""

import numpy as np
import pytest
import torch

from marginkit.lvm_smoothing.data import digits01, load_examples
from marginkit.lvm_smoothing.models import digits_mlp
from marginkit.lvm_smoothing.train import fit_noise_augmented, gaussian_augment
from marginkit.shared import load_checkpoint


def test_digits_split_has_the_documented_sizes_and_range():
    data = digits01()
    assert data["x_train"].shape == (1437, 64) and data["x_test"].shape == (360, 64)
    assert float(data["x_train"].max()) == 1.0 and float(data["x_train"].min()) == 0.0
    assert torch.bincount(data["y_test"]).tolist() == [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]


def test_gaussian_augment_draws_fresh_noise_with_the_right_scale():
    generator = torch.Generator().manual_seed(0)
    x = torch.zeros(20000)
    first, second = gaussian_augment(x, 0.5, generator), gaussian_augment(x, 0.5, generator)
    assert not torch.equal(first, second)
    assert float(first.std()) == pytest.approx(0.5, rel=0.03)


def test_loaders_read_npz_csv_dict_rows_and_apply_scale_skip_max(tmp_path):
    x = np.array([[0, 255], [128, 0], [255, 255]], dtype=np.uint8)
    y = np.array([1, 0, 1])
    np.savez(tmp_path / "d.npz", x=x, y=y)
    inputs, labels = load_examples(tmp_path / "d.npz", scale=1 / 255, skip=2)
    assert inputs.tolist() == [[0.0, 1.0], [1.0, 1.0]] and labels.tolist() == [1, 1]
    (tmp_path / "d.csv").write_text("label,pixel0,pixel1\n1,0,255\n0,128,0\n")
    inputs, labels = load_examples(tmp_path / "d.csv", scale=1 / 255, max_examples=1)
    assert labels.tolist() == [1] and inputs.shape == (1, 2)
    rows = [
        {"image": np.array([0.1, 0.2]), "label": 3},
        {"image": np.array([0.3, 0.4]), "label": 1},
    ]
    inputs, labels = load_examples(rows)
    assert labels.tolist() == [3, 1]


def test_unscaled_uint8_and_mismatched_lengths_raise(tmp_path):
    with pytest.raises(ValueError, match="scale=1/255"):
        load_examples(np.array([[0, 255]]), [0])
    with pytest.raises(ValueError, match="2 inputs but 1 labels"):
        load_examples(np.zeros((2, 2)), [0])
    with pytest.raises(ValueError, match="NaN"):
        load_examples(np.array([[np.nan, 0.0]]), [0])


def test_noise_augmented_training_learns_separable_data_and_checkpoints_sigma(tmp_path):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 2
    inputs = labels[:, None].float() * 0.8 + 0.1 + 0.05 * torch.rand(200, 64, generator=generator)
    model = digits_mlp(num_classes=2, hidden=32)
    settings = {"arch": "digits_mlp"}
    fit_noise_augmented(model, inputs, labels, 0.25, epochs=15, batch_size=32,
                        checkpoint_dir=tmp_path / "ckpt", config=settings)  # fmt: skip
    with torch.no_grad():
        accuracy = float((model(inputs).argmax(1) == labels).float().mean())
    assert accuracy == 1.0  # classes are 0.8 apart per pixel; the noise is 0.25
    state = load_checkpoint(tmp_path / "ckpt")
    assert state.step == 15 and state.config["sigma_train"] == 0.25
    # a rerun with the same folder resumes after epoch 15: nothing is left to train
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit_noise_augmented(model, inputs, labels, 0.25, epochs=15, batch_size=32,
                        checkpoint_dir=tmp_path / "ckpt", config=settings)  # fmt: skip
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
