"""Certificates and predictions computed from sample statistics (no network needed).

``certify_from_statistics`` implements four certificates on the same two independent draws
(``selection``: n0 samples, ``estimation``: n samples):

- ``cohen``: class from the n0 votes, ``pA`` = Clopper-Pearson lower bound at ``alpha``, abstain
  when ``pA <= 1/2``, ``R = sigma Phi^-1(pA)`` (runner-up bound ``1 - pA``).
- ``cp_multi``: same class, K Clopper-Pearson bounds at ``alpha / K`` and the multi-class radius.
- ``lvm``: a candidate (map, T) and its class are chosen on the n0 samples by the radius they
  predict, and only that candidate is bounded on the n fresh samples (``selection="n0"``); or one
  candidate is fixed for all inputs (``"fixed"``); or every candidate is bounded at
  ``alpha / (K |C|)`` and the largest radius kept (``"union"``).

Guarantee, per call and over the sampling only: with probability at least ``1 - alpha`` a
non-abstaining answer equals the smoothed classifier ``G_c(x)`` of the reported candidate ``c``,
and ``G_c`` is constant on the l2 ball of the reported radius around ``x``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats as scipy_stats

from marginkit.lvm_smoothing.bounds import (
    bernstein_lower,
    bernstein_upper,
    check_level,
    clopper_pearson_lower,
    clopper_pearson_upper,
)
from marginkit.lvm_smoothing.maps import HARDMAX, Candidate
from marginkit.lvm_smoothing.radii import FORMULAS, all_radii, probability_lipschitz, radius_mono
from marginkit.lvm_smoothing.sampling import SampleStatistics

ABSTAIN = -1
METHODS = ("cohen", "cp_multi", "lvm")
SELECTIONS = ("n0", "fixed", "union")


@dataclasses.dataclass(frozen=True)
class Certificate:
    """The answer of one certification: a class and a radius, or ``prediction = -1``."""

    prediction: int
    radius: float
    p_lower: float
    p_runner_up: float
    candidate: str
    formula: str
    radii: dict[str, float]
    method: str
    selection: str
    valid: bool = True

    @property
    def abstained(self) -> bool:
        return self.prediction == ABSTAIN


@dataclasses.dataclass(frozen=True)
class CandidateBounds:
    """Per-candidate bounds: ``p_lower``, ``p_runner_up`` ``(C,)`` and ``radii`` ``(3, C)``."""

    classes: np.ndarray
    p_lower: np.ndarray
    p_runner_up: np.ndarray
    radii: np.ndarray


def top_class(values: np.ndarray) -> np.ndarray:
    """Argmax over the last axis, ties broken by the lowest index."""
    return np.argmax(values, axis=-1)


def candidate_bounds(
    statistics: SampleStatistics,
    classes: np.ndarray,
    level: float,
    sigma: float,
    logit_lipschitz: float | None = None,
    assumed_samples: int | None = None,
) -> CandidateBounds:
    """Bounds and radii of every candidate for its class ``classes[c]``, all at ``level`` each.

    ``pA = lo_A`` and ``pB = max_{k != A} up_k``; hardmax uses Clopper-Pearson on its votes,
    soft maps empirical Bernstein on [0, 1]. With ``assumed_samples = n`` the bounds are the ones
    ``n`` samples with these statistics would give (the selection step's prediction).
    """
    count = statistics.num_samples if assumed_samples is None else int(assumed_samples)
    num_candidates, num_classes = statistics.mean.shape
    lower = np.empty((num_candidates, num_classes))
    upper = np.empty((num_candidates, num_classes))
    soft = [i for i, c in enumerate(statistics.candidates) if c.map != "hardmax"]
    for index, candidate in enumerate(statistics.candidates):
        if candidate.map == "hardmax":
            if assumed_samples is None:
                votes = statistics.votes.astype(np.float64)
            else:
                votes = np.clip(statistics.mean[index] * count, 0.0, count)
            lower[index] = clopper_pearson_lower(votes, count, level)
            upper[index] = clopper_pearson_upper(votes, count, level)
    if soft:
        variance = statistics.variance[soft]
        lower[soft] = bernstein_lower(statistics.mean[soft], variance, count, level)
        upper[soft] = bernstein_upper(statistics.mean[soft], variance, count, level)

    rows = np.arange(num_candidates)
    p_lower = lower[rows, classes]
    others = upper.copy()
    others[rows, classes] = -np.inf
    p_upper = others.max(axis=1) if num_classes > 1 else np.zeros(num_candidates)
    radii = np.stack(
        [
            all_radii(
                p_lower[i],
                p_upper[i],
                sigma,
                probability_lipschitz(c.map, c.temperature, logit_lipschitz),
            )
            for i, c in enumerate(statistics.candidates)
        ],
        axis=1,
    )
    return CandidateBounds(classes, p_lower, np.minimum(p_upper, 1.0 - p_lower), radii)


def _abstain(method: str, selection: str, candidate: str, p_lower: float, p_b: float, radii):
    return Certificate(ABSTAIN, 0.0, p_lower, p_b, candidate, "abstain", radii, method, selection)


def _from_bounds(bounds: CandidateBounds, row: int, candidate: Candidate, method: str, selection):
    radii = {name: float(bounds.radii[i, row]) for i, name in enumerate(FORMULAS)}
    p_lower, p_b = float(bounds.p_lower[row]), float(bounds.p_runner_up[row])
    best = int(np.argmax(bounds.radii[:, row]))
    radius = float(bounds.radii[best, row])
    if p_lower <= p_b or radius <= 0:
        return _abstain(method, selection, str(candidate), p_lower, p_b, radii)
    return Certificate(
        int(bounds.classes[row]),
        radius,
        p_lower,
        p_b,
        str(candidate),
        FORMULAS[best],
        radii,
        method,
        selection,
    )


def _check_pair(selection: SampleStatistics, estimation: SampleStatistics) -> None:
    if selection.num_samples < 1 or estimation.num_samples < 2:
        raise ValueError(
            f"need n0 >= 1 selection and n >= 2 estimation samples, got "
            f"{selection.num_samples} and {estimation.num_samples}"
        )


def certify_from_statistics(
    selection: SampleStatistics,
    estimation: SampleStatistics,
    sigma: float,
    alpha: float = 0.001,
    method: str = "lvm",
    selection_mode: str = "n0",
    candidate: Candidate | None = None,
    logit_lipschitz: float | None = None,
) -> Certificate:
    """Certify one input from two independent draws of statistics (see the module docstring).

    Parameters
    ----------
    selection, estimation:
        Statistics of the n0 and n samples; for ``lvm`` both hold the candidates searched.
    sigma:
        Noise standard deviation in the model's input scale.
    alpha:
        Total failure probability of the certificate.
    candidate:
        The fixed candidate for ``selection_mode="fixed"``.
    logit_lipschitz:
        An upper bound on the l2 Lipschitz constant of the logits, enabling ``R_lip`` with
        ``L_f = L_g / (2T)`` (softmax) or ``L_g / T`` (sparsemax).
    """
    alpha = check_level(alpha)
    _check_pair(selection, estimation)
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    num_classes = selection.votes.shape[0]
    guess = int(top_class(selection.votes))

    if method == "cohen":
        p_lower = float(
            clopper_pearson_lower(estimation.votes[guess], estimation.num_samples, alpha)
        )
        radius = float(radius_mono(p_lower, sigma))
        radii = {"multi": 0.0, "mono": radius, "lipschitz": 0.0}
        if p_lower <= 0.5:
            return _abstain(method, "n0", "hardmax", p_lower, 1.0 - p_lower, radii)
        return Certificate(
            guess, radius, p_lower, 1.0 - p_lower, "hardmax", "mono", radii, method, "n0"
        )

    if method == "cp_multi":
        hard = _only(estimation, HARDMAX)
        bounds = candidate_bounds(hard, np.array([guess]), alpha / num_classes, sigma)
        bounds = dataclasses.replace(bounds, radii=bounds.radii * np.array([[1.0], [0.0], [0.0]]))
        return _from_bounds(bounds, 0, HARDMAX, method, "n0")

    if selection_mode not in SELECTIONS:
        raise ValueError(f"unknown selection {selection_mode!r}; choose one of {SELECTIONS}")
    if selection_mode == "fixed":
        if candidate is None:
            raise ValueError("selection='fixed' needs a candidate (see calibrate())")
        chosen = _only(selection, candidate)
        classes = top_class(chosen.mean)
        bounds = candidate_bounds(
            _only(estimation, candidate), classes, alpha / num_classes, sigma, logit_lipschitz
        )
        return _from_bounds(bounds, 0, candidate, method, "fixed")

    classes = top_class(selection.mean)
    if selection_mode == "union":
        _check_same(selection, estimation)
        level = alpha / (num_classes * len(estimation.candidates))
        bounds = candidate_bounds(estimation, classes, level, sigma, logit_lipschitz)
        row = int(np.argmax(bounds.radii.max(axis=0)))
        return _from_bounds(bounds, row, estimation.candidates[row], method, "union")

    predicted = candidate_bounds(
        selection,
        classes,
        alpha / num_classes,
        sigma,
        logit_lipschitz,
        assumed_samples=estimation.num_samples,
    )
    row = int(np.argmax(predicted.radii.max(axis=0)))
    winner = selection.candidates[row]
    bounds = candidate_bounds(
        _only(estimation, winner),
        classes[row : row + 1],
        alpha / num_classes,
        sigma,
        logit_lipschitz,
    )
    return _from_bounds(bounds, 0, winner, method, "n0")


def _only(statistics: SampleStatistics, candidate: Candidate) -> SampleStatistics:
    if candidate not in statistics.candidates:
        raise ValueError(
            f"candidate {candidate} was not sampled; sampled: "
            f"{[str(c) for c in statistics.candidates[:5]]}..."
        )
    row = statistics.candidates.index(candidate)
    return SampleStatistics(
        [candidate],
        statistics.num_samples,
        statistics.mean[row : row + 1],
        statistics.m2[row : row + 1],
        statistics.votes,
    )


def _check_same(selection: SampleStatistics, estimation: SampleStatistics) -> None:
    if selection.candidates != estimation.candidates:
        raise ValueError("selection and estimation statistics must hold the same candidates")


def predict_from_statistics(
    statistics: SampleStatistics, alpha: float = 0.001, candidate: Candidate = HARDMAX
) -> int:
    """A class, or -1, that differs from the smoothed classifier with probability <= ``alpha``.

    Hardmax: the top two vote counts ``nA, nB`` pass a two-sided binomial test at ``alpha``
    (Cohen's PREDICT). Soft maps: the top mean's lower bound exceeds every other class's upper
    bound, each bound at ``alpha / (2K)`` (empirical Bernstein).
    """
    alpha = check_level(alpha)
    chosen = _only(statistics, candidate)
    if candidate.map == "hardmax":
        order = np.argsort(-chosen.votes, kind="stable")
        n_a = int(chosen.votes[order[0]])
        n_b = int(chosen.votes[order[1]]) if len(order) > 1 else 0
        p_value = scipy_stats.binomtest(n_a, n_a + n_b, 0.5).pvalue
        return int(order[0]) if p_value <= alpha else ABSTAIN
    num_classes = chosen.mean.shape[1]
    level = alpha / (2 * num_classes)
    mean, variance = chosen.mean[0], chosen.variance[0]
    best = int(top_class(mean))
    lower = bernstein_lower(mean[best], variance[best], chosen.num_samples, level)
    upper = np.delete(bernstein_upper(mean, variance, chosen.num_samples, level), best)
    return best if upper.size == 0 or float(lower) > float(upper.max()) else ABSTAIN


def unanimous_statistics(
    candidates: list[Candidate], num_classes: int, num_samples: int
) -> SampleStatistics:
    """Statistics of ``num_samples`` identical outputs that all put mass 1 on class 0."""
    stats = SampleStatistics.empty(candidates, num_classes)
    stats.mean[:, 0] = 1.0
    stats.votes[0] = num_samples
    stats.num_samples = num_samples
    return stats


def check_can_certify(
    n: int, alpha: float, num_classes: int, method: str, candidates: list[Candidate]
) -> None:
    """Raise when even unanimous samples cannot give a certificate at this ``(n, alpha)``."""
    unanimous = unanimous_statistics(candidates, num_classes, n)
    chosen = candidates[0] if method == "lvm" else HARDMAX
    result = certify_from_statistics(
        unanimous, unanimous, 1.0, alpha, method, "fixed", candidate=chosen
    )
    if result.abstained:
        raise ValueError(
            f"with n={n} samples at alpha={alpha} no input can ever be certified by {method!r} "
            f"(even unanimous samples give pA={result.p_lower:.4g}); increase n"
        )


def minimum_certifiable_samples(alpha: float) -> int:
    """Smallest n for which unanimous votes certify with Cohen's bound: ``alpha^(1/n) > 1/2``."""
    alpha = check_level(alpha)
    return math.floor(math.log(alpha) / math.log(0.5)) + 1
