"""Loading evaluation embeddings from files, and the embedded digits open-world split."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np


@dataclasses.dataclass
class EmbeddingSet:
    """Embeddings with labels mapped to ``0..T-1`` and the mapping back."""

    embeddings: np.ndarray  # (N, D) float32
    labels: np.ndarray  # (N,) int64 codes
    label_names: np.ndarray  # (T,) original labels; label_names[code]
    ids: np.ndarray | None = None  # (N,)
    is_query: np.ndarray | None = None  # (N,) bool


def encode_labels(labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels of any sortable hashable type -> ``(codes 0..T-1, names)``."""
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {array.shape}")
    names, codes = np.unique(array, return_inverse=True)
    return codes.astype(np.int64), names


def make_embedding_set(
    embeddings: Any, labels: Any, ids: Any = None, is_query: Any = None, source: str = "input"
) -> EmbeddingSet:
    """Check shapes and values and encode labels; errors name ``source`` and the problem."""
    matrix = np.asarray(embeddings, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"{source}: embeddings must have shape (N, D), got {matrix.shape}")
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        raise ValueError(f"{source}: embeddings row {int(np.argmax(bad))} is NaN or infinite")
    codes, names = encode_labels(labels)
    if len(codes) != matrix.shape[0]:
        raise ValueError(
            f"{source}: {len(codes)} labels for {matrix.shape[0]} embeddings; they must match"
        )
    for name, values in (("ids", ids), ("is_query", is_query)):
        if values is not None and len(values) != matrix.shape[0]:
            raise ValueError(f"{source}: {name} has {len(values)} entries, expected {len(codes)}")
    query = None if is_query is None else np.asarray(is_query).astype(bool)
    return EmbeddingSet(matrix, codes, names, None if ids is None else np.asarray(ids), query)


def load_embeddings(path: str | Path, labels_path: str | Path | None = None) -> EmbeddingSet:
    """Read embeddings and labels from ``.npz``, ``.npy`` (+ labels ``.npy``), ``.pt``,
    ``.csv`` or ``.parquet``.

    ``.npz``/``.pt`` hold ``embeddings`` (N, D), ``labels`` (N,), optional ``ids`` and
    ``is_query``. Tables hold ``label``, and either a list column ``embedding`` or
    columns ``emb_0 .. emb_{D-1}``, optional ``id`` and ``split`` (``query``/``gallery``).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"embedding file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if labels_path is None:
            raise ValueError(f"{path} is a .npy file: pass the labels .npy as well")
        return make_embedding_set(np.load(path), np.load(labels_path), source=str(path))
    if suffix in (".npz", ".pt"):
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                record = {key: archive[key] for key in archive.files}
        else:
            import torch

            record = {
                key: value.numpy() if hasattr(value, "numpy") else value
                for key, value in torch.load(path, weights_only=True).items()
            }
        for key in ("embeddings", "labels"):
            if key not in record:
                raise ValueError(f"{path} has no {key!r} entry (found {sorted(record)})")
        return make_embedding_set(
            record["embeddings"],
            record["labels"],
            record.get("ids"),
            record.get("is_query"),
            source=str(path),
        )
    if suffix in (".csv", ".parquet"):
        return _load_table(path)
    raise ValueError(f"unsupported embedding file type {suffix!r}: use .npz .npy .pt .csv .parquet")


def _load_table(path: Path) -> EmbeddingSet:
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as error:
            raise ImportError("reading .parquet needs pyarrow: pip install pyarrow") from error
        columns = pq.read_table(path).to_pydict()
    else:
        import csv

        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        columns = {key: [row[key] for row in rows] for key in (rows[0] if rows else {})}
    if "label" not in columns:
        raise ValueError(f"{path} has no 'label' column (columns: {sorted(columns)})")
    if "embedding" in columns:
        matrix = np.asarray([_as_vector(value) for value in columns["embedding"]], np.float32)
    else:
        names = sorted((c for c in columns if c.startswith("emb_")), key=lambda c: int(c[4:]))
        if not names:
            raise ValueError(f"{path} needs an 'embedding' column or emb_0..emb_{{D-1}} columns")
        matrix = np.asarray([columns[name] for name in names], dtype=np.float32).T
    is_query = None
    if "split" in columns:
        split = np.asarray(columns["split"], dtype=str)
        unknown = set(split) - {"query", "gallery"}
        if unknown:
            raise ValueError(f"{path}: split must be 'query' or 'gallery', found {sorted(unknown)}")
        is_query = split == "query"
    return make_embedding_set(matrix, columns["label"], columns.get("id"), is_query, str(path))


def _as_vector(value: Any) -> list[float]:
    if isinstance(value, str):
        return [float(part) for part in value.strip("[]").replace(",", " ").split()]
    return list(value)


def digits_open_world(
    train_classes: tuple[int, ...] = (0, 1, 2, 3, 4),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits split by class: ``(x_train, y_train, x_test, y_test)``.

    Pixels (0-16) are scaled by 1/16; images are flattened to 64 features. Train classes are
    0-4 (901 images) and test classes 5-9 (896), so the test classes are unseen.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    features = (digits.data / 16.0).astype(np.float32)
    target = digits.target.astype(np.int64)
    train = np.isin(target, train_classes)
    return features[train], target[train], features[~train], target[~train]
