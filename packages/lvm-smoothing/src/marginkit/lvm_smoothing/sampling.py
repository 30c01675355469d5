"""Monte Carlo sampling of a base classifier under Gaussian noise, as running statistics.

For every candidate (map, T) and class, the sampler keeps the count, mean and sum of squared
deviations (``M2``) of the map's outputs over all samples, in float64, merged batch by batch
with Chan's parallel formula. Hardmax also keeps int64 vote counts. All candidates come from the
same logits: one forward pass per batch.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn.utils import parametrize

from marginkit.lvm_smoothing.maps import Candidate, apply_map

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SampleStatistics:
    """Running statistics of ``num_samples`` noisy evaluations, per candidate and class.

    Attributes
    ----------
    candidates:
        The ``C`` candidates, in the order of the rows below.
    num_samples:
        ``n``, the number of noise draws merged so far.
    mean:
        ``(C, K)`` float64, the sample mean of each candidate's probability vector.
    m2:
        ``(C, K)`` float64, the sum of squared deviations from the mean.
    votes:
        ``(K,)`` int64 hardmax vote counts.
    """

    candidates: list[Candidate]
    num_samples: int
    mean: np.ndarray
    m2: np.ndarray
    votes: np.ndarray

    @classmethod
    def empty(cls, candidates: Sequence[Candidate], num_classes: int) -> SampleStatistics:
        shape = (len(candidates), num_classes)
        return cls(
            list(candidates),
            0,
            np.zeros(shape, dtype=np.float64),
            np.zeros(shape, dtype=np.float64),
            np.zeros(num_classes, dtype=np.int64),
        )

    @property
    def variance(self) -> np.ndarray:
        """``(C, K)`` unbiased sample variance ``M2 / (n - 1)`` (needs ``n >= 2``)."""
        if self.num_samples < 2:
            raise ValueError(f"a sample variance needs n >= 2 samples, got {self.num_samples}")
        return self.m2 / (self.num_samples - 1)

    def merge(self, other: SampleStatistics) -> SampleStatistics:
        """Chan's formula: ``M2 = M2_a + M2_b + delta^2 n_a n_b / n``; a batch of one adds 0."""
        if other.candidates != self.candidates:
            raise ValueError("cannot merge statistics of different candidate sets")
        total = self.num_samples + other.num_samples
        if total == 0:
            return self
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.num_samples / total)
        m2 = self.m2 + other.m2 + delta**2 * (self.num_samples * other.num_samples / total)
        return SampleStatistics(self.candidates, total, mean, m2, self.votes + other.votes)


def batch_statistics(
    logits: torch.Tensor, candidates: Sequence[Candidate], chunk: int = 16
) -> SampleStatistics:
    """Statistics of one batch of logits ``(batch, K)`` for every candidate.

    Outputs are computed as ``(num_temperatures, batch, K)`` tensors, ``chunk`` temperatures at a
    time so that many classes do not exhaust memory.
    """
    batch, num_classes = logits.shape
    by_map: dict[str, list[int]] = {}
    for index, candidate in enumerate(candidates):
        by_map.setdefault(candidate.map, []).append(index)
    means = np.zeros((len(candidates), num_classes))
    m2 = np.zeros((len(candidates), num_classes))
    votes = np.zeros(num_classes, dtype=np.int64)
    for name, indices in by_map.items():
        for start in range(0, len(indices), chunk):
            part = indices[start : start + chunk]
            temperatures = torch.tensor(
                [candidates[i].temperature for i in part], dtype=logits.dtype, device=logits.device
            )
            outputs = apply_map(name, logits, temperatures).double()
            batch_variance, batch_mean = torch.var_mean(outputs, dim=1, correction=0)
            batch_m2 = batch_variance * batch
            del outputs
            means[part] = batch_mean.cpu().numpy()
            m2[part] = batch_m2.cpu().numpy()
    top = logits.argmax(dim=-1)
    votes += torch.bincount(top, minlength=num_classes).cpu().numpy().astype(np.int64)
    return SampleStatistics(list(candidates), batch, means, m2, votes)


def check_logits(logits: torch.Tensor, batch: int, num_classes: int) -> None:
    """Raise when the model's output is not finite logits of shape ``(batch, num_classes)``."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the model must return a tensor of logits, got {type(logits).__name__}")
    if tuple(logits.shape) != (batch, num_classes):
        raise ValueError(
            f"the model returned shape {tuple(logits.shape)} for a batch of {batch}; "
            f"expected ({batch}, {num_classes}) logits"
        )
    if not torch.isfinite(logits).all():
        raise ValueError("the model returned NaN or infinite logits under noise")


def _forward(model: torch.nn.Module, inputs: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``model(inputs)``; a shape error names the input shape the user passed."""
    try:
        return model(inputs)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as error:
        raise ValueError(
            f"the model failed on a batch of shape {tuple(inputs.shape)} built from one input "
            f"of shape {tuple(shape)}; does the input have the shape the model expects "
            f"(no batch axis)? The model said: {error}"
        ) from error


def sample_statistics(
    model: torch.nn.Module,
    x: torch.Tensor,
    sigma: float,
    num_samples: int,
    candidates: Sequence[Candidate],
    num_classes: int,
    generator: torch.Generator,
    batch_size: int = 1000,
    noise: str = "input",
) -> SampleStatistics:
    """Evaluate ``model(x + delta_i)``, ``delta_i ~ N(0, sigma^2 I)``, ``num_samples`` times.

    Parameters
    ----------
    model:
        Maps ``(batch, *x.shape)`` to ``(batch, K)`` logits; run in eval mode without gradients
        (its training mode is restored afterwards).
    x:
        One input, shape ``x.shape`` (no batch axis), on the model's device.
    generator:
        Seeded ``torch.Generator`` on ``x``'s device; fresh noise is drawn for every batch.
    noise:
        ``"input"`` adds the noise here; ``"model"`` passes clean copies to a model that adds
        its own noise of standard deviation ``sigma``.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if noise not in ("input", "model"):
        raise ValueError(f"noise must be 'input' or 'model', got {noise!r}")
    total = SampleStatistics.empty(candidates, num_classes)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), parametrize.cached():
            remaining = num_samples
            while remaining > 0:
                batch = min(batch_size, remaining)
                inputs = x.unsqueeze(0).expand(batch, *x.shape)
                if noise == "input":
                    delta = torch.randn(
                        inputs.shape, generator=generator, device=x.device, dtype=x.dtype
                    )
                    inputs = inputs + sigma * delta
                else:
                    inputs = inputs.clone()
                logits = _forward(model, inputs, x.shape)
                check_logits(logits, batch, num_classes)
                total = total.merge(batch_statistics(logits.float(), candidates))
                remaining -= batch
    finally:
        model.train(was_training)
    return total
