"""``Smooth``: a Gaussian-smoothed classifier around any PyTorch module returning logits."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch

from marginkit.lvm_smoothing.certificates import (
    ABSTAIN,
    Certificate,
    certify_from_statistics,
    check_can_certify,
    predict_from_statistics,
)
from marginkit.lvm_smoothing.maps import HARDMAX, Candidate, candidate_grid
from marginkit.lvm_smoothing.sampling import SampleStatistics, sample_statistics

logger = logging.getLogger(__name__)


def check_input(x: torch.Tensor, input_range: tuple[float, float] | None) -> None:
    """Raise when ``x`` is not a finite tensor inside ``input_range``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.numel() == 0:
        raise ValueError("x is empty")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    if input_range is not None:
        low, high = input_range
        if float(x.min()) < low or float(x.max()) > high:
            raise ValueError(
                f"x has values in [{float(x.min()):.4g}, {float(x.max()):.4g}] outside the "
                f"declared input_range {input_range}; feed raw inputs (e.g. images in [0, 1], "
                "uint8 scaled by 1/255) and keep normalization inside the model"
            )


class Smooth:
    """Gaussian smoothing ``F(x) = E s_T(g(x + delta))``, ``delta ~ N(0, sigma^2 I)``.

    Parameters
    ----------
    model:
        ``g``: maps ``(batch, *input_shape)`` inputs to ``(batch, num_classes)`` logits.
        Normalization belongs inside the model; inputs stay in ``input_range``.
    num_classes:
        ``K``.
    sigma:
        Noise standard deviation in the input scale (e.g. 0.25 for images in [0, 1]).
    candidates:
        The (map, T) pairs searched by ``method="lvm"``; default: hardmax, and sparsemax and
        softmax at 50 log-spaced temperatures in [0.01, 50].
    logit_lipschitz:
        An upper bound on the l2 Lipschitz constant of the logits (e.g. from
        :func:`marginkit.lvm_smoothing.lipschitz.upper_bound`); enables the Lipschitz radius.
    noise:
        ``"input"`` (the package adds the noise) or ``"model"`` (the model adds its own noise of
        standard deviation ``sigma`` in the input scale, as denoiser pipelines do).
    input_range:
        Allowed input values, checked on every call; ``None`` disables the check.
    batch_size:
        Noisy copies per forward pass.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        num_classes: int,
        sigma: float,
        candidates: Sequence[Candidate] | None = None,
        logit_lipschitz: float | None = None,
        noise: str = "input",
        input_range: tuple[float, float] | None = (0.0, 1.0),
        batch_size: int = 1000,
    ) -> None:
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if logit_lipschitz is not None and not logit_lipschitz > 0:
            raise ValueError(f"logit_lipschitz must be > 0 or None, got {logit_lipschitz}")
        if noise not in ("input", "model"):
            raise ValueError(f"noise must be 'input' or 'model', got {noise!r}")
        self.model = model
        self.num_classes = int(num_classes)
        self.sigma = float(sigma)
        self.candidates = list(candidates) if candidates is not None else candidate_grid()
        self.logit_lipschitz = logit_lipschitz
        self.noise = noise
        self.input_range = input_range
        self.batch_size = int(batch_size)

    @property
    def device(self) -> torch.device:
        parameter = next(self.model.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    def generator(self, seed: int = 0) -> torch.Generator:
        """A ``torch.Generator`` on the model's device seeded with ``seed``."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(int(seed))
        return generator

    def sample(
        self,
        x: torch.Tensor,
        num_samples: int,
        generator: torch.Generator,
        candidates: Sequence[Candidate] | None = None,
    ) -> SampleStatistics:
        """Running statistics of ``num_samples`` noisy evaluations of every candidate."""
        check_input(x, self.input_range)
        return sample_statistics(
            self.model,
            x.to(self.device, torch.float32),
            self.sigma,
            num_samples,
            list(candidates) if candidates is not None else self.candidates,
            self.num_classes,
            generator,
            self.batch_size,
            self.noise,
        )

    def certify(
        self,
        x: torch.Tensor,
        n0: int = 100,
        n: int = 100_000,
        alpha: float = 0.001,
        method: str = "lvm",
        selection: str = "n0",
        candidate: Candidate | None = None,
        generator: torch.Generator | None = None,
    ) -> Certificate:
        """Certify ``x``: with probability >= ``1 - alpha`` over this call's noise, a
        non-abstaining answer equals the smoothed classifier of the reported candidate at ``x``
        and that classifier is constant on the l2 ball of the reported radius.

        The n0 selection samples (class and candidate) and the n estimation samples (bounds)
        are independent draws. ``method`` is ``"lvm"``, ``"cohen"`` or ``"cp_multi"``;
        ``selection`` is ``"n0"`` (per input), ``"fixed"`` (``candidate``, the same for every
        input) or ``"union"`` (every candidate at ``alpha / (K |C|)``).
        """
        if n0 < 1:
            raise ValueError(f"n0 must be >= 1, got {n0}")
        if n < 2:
            raise ValueError(f"n must be >= 2, got {n}")
        searched = self._candidates_for(method, selection, candidate)
        check_can_certify(n, alpha, self.num_classes, method, searched)
        generator = generator if generator is not None else self.generator()
        chosen = self.sample(x, n0, generator, searched)
        estimated = self.sample(x, n, generator, searched)
        return certify_from_statistics(
            chosen, estimated, self.sigma, alpha, method, selection, candidate, self.logit_lipschitz
        )

    def predict(
        self,
        x: torch.Tensor,
        n: int = 100_000,
        alpha: float = 0.001,
        candidate: Candidate = HARDMAX,
        generator: torch.Generator | None = None,
    ) -> int:
        """A class that differs from the smoothed classifier ``G_candidate(x)`` with probability
        at most ``alpha`` over this call's noise, or -1 (abstain)."""
        if n < 2:
            raise ValueError(f"n must be >= 2, got {n}")
        if candidate.map == "hardmax" and 2.0 * 0.5**n > alpha:
            raise ValueError(
                f"with n={n} at alpha={alpha} even unanimous votes fail the binomial test "
                f"(p-value {2.0 * 0.5**n:.4g}); PREDICT would always abstain, increase n"
            )
        generator = generator if generator is not None else self.generator()
        statistics = self.sample(x, n, generator, [candidate])
        return predict_from_statistics(statistics, alpha, candidate)

    def _candidates_for(
        self, method: str, selection: str, candidate: Candidate | None
    ) -> list[Candidate]:
        if method in ("cohen", "cp_multi"):
            return [HARDMAX]
        if selection == "fixed":
            if candidate is None:
                raise ValueError("selection='fixed' needs a candidate (see calibrate())")
            return [candidate]
        return self.candidates


__all__ = ["ABSTAIN", "Smooth", "check_input"]
