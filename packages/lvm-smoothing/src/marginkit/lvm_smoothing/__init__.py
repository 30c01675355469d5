"""Randomized-smoothing certificates with the Lipschitz-variance-margin trade-off.

``Smooth`` wraps any PyTorch module that returns logits into a Gaussian-smoothed classifier.
Its ``certify`` returns a class (or abstains) and an l2 radius certified with probability at
least ``1 - alpha`` over the sampling: Cohen's hard-vote certificate, hard votes with a
separate runner-up bound, or LVM (softmax / sparsemax outputs at a temperature chosen on
separate samples, bounded by empirical Bernstein, plus a Lipschitz-margin radius).
"""

from marginkit.lvm_smoothing.certificates import (
    ABSTAIN,
    Certificate,
    certify_from_statistics,
    predict_from_statistics,
)
from marginkit.lvm_smoothing.maps import HARDMAX, Candidate, candidate_grid, temperature_grid
from marginkit.lvm_smoothing.sampling import SampleStatistics, sample_statistics
from marginkit.lvm_smoothing.smooth import Smooth

__version__ = "0.1.0"

__all__ = [
    "ABSTAIN",
    "HARDMAX",
    "Candidate",
    "Certificate",
    "SampleStatistics",
    "Smooth",
    "candidate_grid",
    "certify_from_statistics",
    "predict_from_statistics",
    "sample_statistics",
    "temperature_grid",
]
