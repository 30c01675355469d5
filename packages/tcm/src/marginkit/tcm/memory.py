"""A cross-batch memory of past embeddings that TCM (or any pair loss) can use as references."""

from __future__ import annotations

import torch

from marginkit.tcm.losses import TCMConfig, TCMParts, tcm_loss


class TCMMemory:
    """A ring buffer of the last ``size`` detached embeddings, labels and sample ids.

    Each call enqueues the batch, then scores the batch against the whole buffer; pairs of
    a sample with its own stored copy are skipped by id, never by position or by s = 1.

    Parameters
    ----------
    size:
        Number of embeddings kept.
    dim:
        Embedding dimension.
    config:
        :class:`TCMConfig` for the loss computed against the memory.

    Examples
    --------
    >>> memory = TCMMemory(size=8, dim=2)
    >>> parts = memory(torch.tensor([[1.0, 0.0], [0.8, 0.6]]), torch.tensor([0, 0]))
    >>> parts.n_pos  # the pair counted both ways, the self pairs skipped
    2
    """

    def __init__(self, size: int, dim: int, config: TCMConfig | None = None) -> None:
        if size < 1 or dim < 1:
            raise ValueError(f"size and dim must be >= 1, got size={size}, dim={dim}")
        self.size = size
        self.config = config or TCMConfig()
        self.embeddings = torch.zeros(size, dim)
        self.labels = torch.zeros(size, dtype=torch.long)
        self.ids = torch.full((size,), -1, dtype=torch.long)
        self.filled = 0
        self._next = 0
        self._next_id = 0

    def enqueue(
        self, embeddings: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Store a batch, overwriting the oldest rows, and return its ids.

        Ids are counted up from 0 over all calls when not given.
        """
        count = embeddings.shape[0]
        if count > self.size:
            raise ValueError(f"a batch of {count} does not fit a memory of size {self.size}")
        if ids is None:
            ids = torch.arange(self._next_id, self._next_id + count)
            self._next_id += count
        if self.embeddings.device != embeddings.device:
            self.embeddings = self.embeddings.to(embeddings.device)
            self.labels = self.labels.to(embeddings.device)
            self.ids = self.ids.to(embeddings.device)
        slots = (torch.arange(count, device=embeddings.device) + self._next) % self.size
        self.embeddings[slots] = embeddings.detach().to(self.embeddings.dtype)
        self.labels[slots] = labels.to(embeddings.device).long()
        self.ids[slots] = ids.to(embeddings.device).long()
        self._next = (self._next + count) % self.size
        self.filled = min(self.filled + count, self.size)
        return ids

    def __call__(
        self, embeddings: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor | None = None
    ) -> TCMParts:
        """Enqueue the batch and return its TCM against the memory's contents."""
        ids = self.enqueue(embeddings, labels, ids)
        held = slice(0, self.filled)
        return tcm_loss(
            embeddings,
            labels,
            ref_embeddings=self.embeddings[held],
            ref_labels=self.labels[held],
            ids=ids.to(embeddings.device),
            ref_ids=self.ids[held],
            config=self.config,
        )
