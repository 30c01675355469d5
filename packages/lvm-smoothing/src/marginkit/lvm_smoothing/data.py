"""Inputs and labels from tensors, arrays, ``.npz``/CSV files or datasets, and bundled digits.

Every loader returns ``(inputs, labels)``: float32 ``(N, *shape)`` in the model's input scale
and int64 ``(N,)``. Values outside ``input_range`` raise (normalization belongs to the model).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch


def check_examples(
    inputs: torch.Tensor, labels: torch.Tensor, input_range: tuple[float, float] | None = (0, 1)
) -> None:
    """Raise on mismatched lengths, NaN, out-of-range inputs or negative labels."""
    if inputs.shape[0] != labels.shape[0]:
        raise ValueError(f"{inputs.shape[0]} inputs but {labels.shape[0]} labels")
    if inputs.shape[0] == 0:
        raise ValueError("no examples")
    if not torch.isfinite(inputs).all():
        raise ValueError("inputs contain NaN or infinite values")
    if (labels < 0).any():
        raise ValueError("labels must be >= 0")
    if input_range is not None:
        low, high = input_range
        if float(inputs.min()) < low or float(inputs.max()) > high:
            raise ValueError(
                f"inputs lie in [{float(inputs.min()):.4g}, {float(inputs.max()):.4g}], outside "
                f"input_range {input_range}; uint8 images need scale=1/255"
            )


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``label,pixel0,...`` rows; a first line that is not all numbers is the header."""
    if not path.is_file():
        raise FileNotFoundError(f"no CSV file at {path}")
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
    try:
        [float(cell) for cell in first.strip().split(",")]
        header = 0
    except ValueError:
        header = 1
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=header, ndmin=2)
    except ValueError as error:
        raise ValueError(f"{path}: not a numeric CSV of rows label,pixel0,... ({error})") from error
    if table.shape[1] < 2:
        raise ValueError(f"{path}: need a label column and at least one pixel column")
    return table[:, 0], table[:, 1:]


def _integer_labels(labels: Any) -> torch.Tensor:
    """``(N,)`` int64 labels; fractional, non-numeric or multi-column labels raise."""
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"labels must be one class index per example, got shape {array.shape}")
    if array.dtype.kind not in "iub":
        if array.dtype.kind != "f":
            raise ValueError(f"labels must be integer class indices, got dtype {array.dtype}")
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError("labels must be integer class indices; found fractional or NaN ones")
    return torch.as_tensor(array.astype(np.int64))


def _row(item: Any) -> tuple[Any, Any]:
    if isinstance(item, Mapping):
        for key in ("img", "image", "x"):
            if key in item:
                return item[key], item["label"]
        raise ValueError(f"a dict row needs an 'img', 'image' or 'x' key, got {sorted(item)}")
    x, label = item
    return x, label


def load_examples(
    source: Any,
    labels: Any = None,
    scale: float | None = None,
    input_range: tuple[float, float] | None = (0.0, 1.0),
    skip: int = 1,
    max_examples: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and labels from many kinds of source.

    Parameters
    ----------
    source:
        A tensor or array of inputs (then ``labels`` is required); a ``.npz`` path with keys
        ``x`` and ``y``; a CSV path ``label,pixel0,...`` (Kaggle MNIST style); or an iterable
        of ``(x, label)`` pairs or dict rows with ``img``/``image`` and ``label``.
    scale:
        Multiplies the inputs (``1/255`` for uint8 images).
    skip, max_examples:
        Keep every ``skip``-th example, at most ``max_examples`` of them (as Cohen's scripts).
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix == ".npz":
            with np.load(path) as data:
                missing = {"x", "y"} - set(data.files)
                if missing:
                    raise ValueError(f"{path} lacks the keys {sorted(missing)}")
                inputs, labels = data["x"], data["y"]
        elif path.suffix == ".csv":
            labels, inputs = _read_csv(path)
        else:
            raise ValueError(f"unsupported file {path}; use .npz (x, y) or .csv (label first)")
    elif isinstance(source, (torch.Tensor, np.ndarray)):
        if labels is None:
            raise ValueError("labels are required when the inputs are a tensor or array")
        inputs = source
    elif isinstance(source, Iterable):
        rows = [_row(item) for item in source]
        inputs = torch.stack([torch.as_tensor(np.asarray(x)) for x, _ in rows])
        labels = [int(label) for _, label in rows]
    else:
        raise TypeError(f"cannot read examples from {type(source).__name__}")

    inputs = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
    labels = _integer_labels(labels)
    if scale is not None:
        inputs = inputs * float(scale)
    if skip < 1:
        raise ValueError(f"skip must be >= 1, got {skip}")
    inputs, labels = inputs[::skip], labels[::skip]
    if max_examples is not None:
        inputs, labels = inputs[:max_examples], labels[:max_examples]
    check_examples(inputs, labels, input_range)
    return inputs, labels


def digits01(seed: int = 0, test_size: float = 0.2) -> dict[str, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits, values 0-16 divided by 16, flattened to 64.

    A stratified split: 1437 train and 360 test images for ``test_size=0.2``. Needs the
    ``demo`` extra (scikit-learn); nothing is downloaded.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError(
            "the digits data needs scikit-learn: pip install 'marginkit-lvm-smoothing[demo]'"
        ) from error
    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    return {
        "x_train": torch.from_numpy(x_train),
        "y_train": torch.from_numpy(y_train),
        "x_test": torch.from_numpy(x_test),
        "y_test": torch.from_numpy(y_test),
    }
