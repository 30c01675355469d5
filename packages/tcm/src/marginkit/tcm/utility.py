"""The per-class utility of a threshold and the threshold range set by a false-accept rate.

The utility of a threshold ``d`` for a class is an F-beta score of its true-positive rate
and its true-negative rate,

    U(t, n) = (1 + beta^2) * t * n / (beta^2 * t + n),    U = 0 when beta^2 * t + n = 0,

so ``beta > 1`` weighs the true-negative rate ``n`` more (the role recall plays in the
classical F-beta score), ``beta < 1`` the true-positive rate ``t``.
"""

from __future__ import annotations

import numpy as np


def f_beta_utility(
    tpr: np.ndarray | float, tnr: np.ndarray | float, beta: float = 1.0
) -> np.ndarray:
    """F-beta utility of true-positive and true-negative rates, elementwise.

    Parameters
    ----------
    tpr, tnr:
        Rates in [0, 1], broadcastable arrays of any shape.
    beta:
        Positive weight; ``beta^2`` multiplies ``tpr`` in the denominator, so larger
        ``beta`` up-weights the true-negative rate.

    Returns
    -------
    numpy.ndarray
        ``(1 + beta^2) t n / (beta^2 t + n)`` in float64, 0 where the denominator is 0.

    Examples
    --------
    >>> float(f_beta_utility(0.5, 1.0))
    0.6666666666666666
    """
    if not beta > 0 or not np.isfinite(beta):
        raise ValueError(f"beta must be a positive finite number, got {beta!r}")
    t = np.asarray(tpr, dtype=np.float64)
    n = np.asarray(tnr, dtype=np.float64)
    if np.isnan(t).any() or np.isnan(n).any():
        raise ValueError("rates passed to f_beta_utility contain NaN")
    beta2 = beta * beta
    denominator = beta2 * t + n
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, (1.0 + beta2) * t * n / safe, 0.0)


def calibration_range(
    negative_scores: np.ndarray, far_range: tuple[float, float] = (1e-2, 1e-1)
) -> tuple[float, float]:
    """Thresholds ``(d_min, d_max)`` where the pooled false-accept rate is ``f_hi`` and ``f_lo``.

    ``d_min = Q(1 - f_hi)`` and ``d_max = Q(1 - f_lo)``, with ``Q`` numpy's "linear"
    quantile of all negative-pair similarities.

    Parameters
    ----------
    negative_scores:
        ``(num_negatives,)`` cosine similarities of negative pairs.
    far_range:
        ``(f_lo, f_hi)`` with ``0 <= f_lo < f_hi <= 1``.

    Examples
    --------
    >>> calibration_range(np.arange(100) / 100, (0.01, 0.1))
    (0.891, 0.9801)
    """
    f_lo, f_hi = _check_far_range(far_range)
    scores = np.asarray(negative_scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError("calibration_range needs at least one negative-pair score")
    if not np.isfinite(scores).all():
        raise ValueError("negative_scores contain NaN or infinite values")
    d_min, d_max = np.quantile(scores, [1.0 - f_hi, 1.0 - f_lo], method="linear")
    return _checked_range(float(d_min), float(d_max), far_range, scores.size)


def _check_far_range(far_range: tuple[float, float]) -> tuple[float, float]:
    f_lo, f_hi = (float(value) for value in far_range)
    if not 0.0 <= f_lo < f_hi <= 1.0:
        raise ValueError(f"far_range must satisfy 0 <= f_lo < f_hi <= 1, got {far_range!r}")
    return f_lo, f_hi


def _checked_range(
    d_min: float, d_max: float, far_range: tuple[float, float], num_negatives: int
) -> tuple[float, float]:
    if not d_min < d_max:
        raise ValueError(
            f"the FAR range {tuple(far_range)} gives d_min={d_min:.6g} >= d_max={d_max:.6g} "
            f"over {num_negatives} negative pairs; widen far_range or use more negatives"
        )
    return round(d_min, 12), round(d_max, 12)
