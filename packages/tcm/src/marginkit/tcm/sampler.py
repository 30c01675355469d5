"""Batches of ``m`` samples from each of ``batch_size / m`` classes, seeded per epoch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class MPerClassBatchSampler:
    """Yield index batches holding ``m`` samples of each of ``batch_size // m`` classes.

    TCM needs positive pairs in every batch; this guarantees ``m - 1`` per anchor. Classes
    smaller than ``m`` are sampled with replacement. The order depends only on
    ``seed`` and the epoch set by :meth:`set_epoch`, so a resumed run sees the same batches.

    Parameters
    ----------
    labels:
        ``(N,)`` integer labels.
    m:
        Samples per class in a batch.
    batch_size:
        A multiple of ``m``.
    seed:
        Base seed.
    """

    def __init__(
        self, labels: Sequence[int] | np.ndarray, m: int, batch_size: int, seed: int = 0
    ) -> None:
        self.labels = np.asarray(labels)
        if m < 2:
            raise ValueError(f"m must be >= 2 so that every batch has positive pairs, got {m}")
        if batch_size % m != 0:
            raise ValueError(f"batch_size {batch_size} must be a multiple of m={m}")
        self.classes = np.unique(self.labels)
        self.classes_per_batch = batch_size // m
        if self.classes_per_batch > len(self.classes):
            raise ValueError(
                f"batch_size/m = {self.classes_per_batch} classes per batch, but the data has "
                f"only {len(self.classes)} classes"
            )
        self.m, self.batch_size, self.seed, self.epoch = m, batch_size, seed, 0
        self.by_class = {c: np.flatnonzero(self.labels == c) for c in self.classes}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return max(1, len(self.labels) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for _ in range(len(self)):
            chosen = rng.choice(self.classes, size=self.classes_per_batch, replace=False)
            batch = []
            for cls in chosen:
                members = self.by_class[cls]
                batch.extend(rng.choice(members, self.m, replace=len(members) < self.m).tolist())
            yield batch
