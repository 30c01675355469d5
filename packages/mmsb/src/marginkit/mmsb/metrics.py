"""Scores: exact 2-Wasserstein distance, held-out W2, parameter errors, coupling composition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .model import SBIRR


def w2(
    x: np.ndarray, y: np.ndarray, a: np.ndarray | None = None, b: np.ndarray | None = None
) -> float:
    """``W2(X, Y) = sqrt(min_pi sum pi_ij ||x_i - y_j||^2)`` by ``ot.emd2`` (exact LP).

    Parameters
    ----------
    x, y: ``(n, d)`` and ``(m, d)`` clouds (a 1-D array is one coordinate).
    a, b: optional weights (uniform when omitted).

    Raises
    ------
    RuntimeError when the LP solver reports a warning (for example an iteration cap).

    Examples
    --------
    >>> round(w2(np.array([0.0]), np.array([0.0, 3.0, 3.0])), 6)  # sqrt(6)
    2.44949
    """
    import ot

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"clouds have different dimensions: {x.shape} and {y.shape}")
    a = np.full(len(x), 1.0 / len(x)) if a is None else np.asarray(a, dtype=np.float64)
    b = np.full(len(y), 1.0 / len(y)) if b is None else np.asarray(b, dtype=np.float64)
    cost, log = ot.emd2(a, b, ot.dist(x, y), numItermax=10**7, log=True)
    if log.get("warning"):
        raise RuntimeError(f"ot.emd2 did not solve the transport problem: {log['warning']}")
    return float(np.sqrt(max(float(cost), 0.0)))


def heldout_w2(model: SBIRR, heldout, seed: int = 0) -> dict[float, float]:
    """W2 per held-out time between the snapshot and as many draws of ``predict_marginal``."""
    scores = {}
    for k, (t, cloud) in enumerate(zip(heldout.times, heldout.particles, strict=True)):
        predicted = model.predict_marginal(float(t), len(cloud), seed=seed + k)
        scores[float(t)] = w2(predicted, cloud, b=heldout.weights[k])
    return scores


def relative_errors(estimate: Mapping[str, float], truth: Mapping[str, float]) -> dict[str, float]:
    """``|theta_hat - theta*| / |theta*|`` per parameter named in ``truth``."""
    return {k: abs(estimate[k] - v) / abs(v) for k, v in truth.items()}


def noise_floor(cloud: np.ndarray, rng: np.random.Generator) -> float:
    """W2 between two random halves of one snapshot (a two-sample floor at n / 2)."""
    order = rng.permutation(len(cloud))
    half = len(cloud) // 2
    return w2(cloud[order[:half]], cloud[order[half : 2 * half]])


def compose_couplings(plans: Sequence[np.ndarray], weights: Sequence[np.ndarray]) -> np.ndarray:
    """Chain plans through the intermediate snapshots: ``pi_0 diag(1 / a_1) pi_1 ...``.

    ``weights[i]`` are the marginal weights of the snapshot between ``plans[i]`` and
    ``plans[i + 1]`` (so ``len(weights) == len(plans) - 1``).

    Examples
    --------
    >>> pi0 = np.array([[.4, .1], [.1, .4]]); pi1 = np.array([[.3, .2], [.1, .4]])
    >>> compose_couplings([pi0, pi1], [np.array([.5, .5])]).round(2).tolist()
    [[0.26, 0.24], [0.14, 0.36]]
    """
    if len(weights) != len(plans) - 1:
        raise ValueError(f"{len(plans)} plans need {len(plans) - 1} weight vectors")
    result = np.asarray(plans[0], dtype=np.float64)
    for plan, weight in zip(plans[1:], weights, strict=True):
        result = (result / np.asarray(weight)[None, :]) @ plan
    return result
