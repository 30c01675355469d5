"""Files and settings a user brings: CSV corner cases, bad labels, wrong shapes, resumes."""

import numpy as np
import pytest
import torch

from marginkit.lvm_smoothing import Smooth
from marginkit.lvm_smoothing.cli import main
from marginkit.lvm_smoothing.data import load_examples
from marginkit.lvm_smoothing.models import digits_mlp
from marginkit.lvm_smoothing.train import fit_noise_augmented


def test_csv_with_one_row_or_without_header_keeps_every_example(tmp_path):
    (tmp_path / "one.csv").write_text("label,pixel0,pixel1\n2,0,255\n")
    inputs, labels = load_examples(tmp_path / "one.csv", scale=1 / 255)
    assert labels.tolist() == [2] and inputs.tolist() == [[0.0, 1.0]]
    (tmp_path / "bare.csv").write_text("1,0,255\n0,255,0\n")
    inputs, labels = load_examples(tmp_path / "bare.csv", scale=1 / 255)
    assert labels.tolist() == [1, 0] and inputs.tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_unreadable_csv_names_the_file(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("label,pixel0\n1,0\nseven,0\n")
    with pytest.raises(ValueError, match="mine.csv: not a numeric CSV"):
        load_examples(path)


def test_fractional_or_text_labels_raise_instead_of_truncating():
    x = np.full((2, 3), 0.5)
    with pytest.raises(ValueError, match="integer class indices"):
        load_examples(x, [0.5, 1.0])
    with pytest.raises(ValueError, match="integer class indices"):
        load_examples(x, np.array(["a", "b"]))
    assert load_examples(x, [[1.0], [0.0]])[1].tolist() == [1, 0]  # a label column is fine


class _Linear2(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.linear(x)


def test_input_of_the_wrong_shape_is_named_in_the_error():
    smooth = Smooth(_Linear2(), num_classes=2, sigma=0.25)
    with pytest.raises(ValueError, match=r"one input of shape \(5,\)"):
        smooth.certify(torch.full((5,), 0.5), n0=10, n=20)


def _model():
    return _Linear2()


def test_cli_rejects_labels_beyond_the_models_classes_and_wrong_widths(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.full((3, 4), 0.5, np.float32), y=np.array([0, 1, 2]))
    common = ["--model", f"{__name__}:_model", "--n0", "10", "--n", "20"]
    with pytest.raises(ValueError, match="label 2 but the model has 2 classes"):
        main(["certify", *common, "--data", str(data), "--out", str(tmp_path / "c.tsv")])
    wide = tmp_path / "wide.npz"
    np.savez(wide, x=np.full((3, 6), 0.5, np.float32), y=np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"inputs of shape \(6,\)"):
        main(["predict", *common, "--data", str(wide), "--out", str(tmp_path / "p.tsv")])


def test_resuming_into_a_folder_of_another_run_raises(tmp_path):
    inputs, labels = torch.full((8, 64), 0.5), torch.arange(8) % 2
    settings = {"arch": "digits_mlp"}
    fit_noise_augmented(digits_mlp(num_classes=2, hidden=8), inputs, labels, 0.25, epochs=1,
                        checkpoint_dir=tmp_path, config=settings)  # fmt: skip
    with pytest.raises(ValueError, match="another run"):
        fit_noise_augmented(digits_mlp(num_classes=2, hidden=8), inputs, labels, 0.5, epochs=2,
                            checkpoint_dir=tmp_path, config=settings)  # fmt: skip
    with pytest.raises(ValueError, match="another run"):
        fit_noise_augmented(digits_mlp(num_classes=2, hidden=8), inputs, labels, 0.25, epochs=2,
                            checkpoint_dir=tmp_path, config={"arch": "digits_cnn"})  # fmt: skip
