"""One-sided confidence bounds on a mean: Clopper-Pearson and empirical Bernstein.

Every function takes ``level``, the probability that its one bound fails (one-sided). A
Clopper-Pearson bound at ``level`` equals one end of the two-sided "beta" interval at
``2 * level``. All arithmetic is float64 NumPy; inputs broadcast.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats


def check_level(level: float, name: str = "alpha") -> float:
    """Return ``level`` as a float, or raise when it is not strictly between 0 and 1."""
    value = float(level)
    if not (0.0 < value < 1.0) or math.isnan(value):
        raise ValueError(f"{name} must be strictly between 0 and 1, got {level!r}")
    return value


def _check_counts(successes: np.ndarray, trials: int) -> None:
    if trials < 1:
        raise ValueError(f"the number of samples must be >= 1, got {trials}")
    if np.any(successes < 0) or np.any(successes > trials) or np.any(np.isnan(successes)):
        raise ValueError(f"counts must lie in [0, {trials}], got {successes}")


def clopper_pearson_lower(successes: ArrayLike, trials: int, level: float) -> np.ndarray:
    """Lower bound ``Beta.ppf(level; k, n - k + 1)`` (0 when ``k = 0``).

    ``P(p < lower) <= level`` for ``k ~ Binomial(n, p)``. Fractional ``k`` is accepted (the
    selection step predicts bounds from a rescaled count).

    Examples
    --------
    >>> round(float(clopper_pearson_lower(100, 100, 0.001)), 6)  # = 0.001 ** (1 / 100)
    0.933254
    """
    level = check_level(level, "level")
    k = np.asarray(successes, dtype=np.float64)
    _check_counts(k, trials)
    safe = np.where(k > 0, k, 1.0)
    bound = stats.beta.ppf(level, safe, trials - safe + 1.0)
    return np.where(k > 0, bound, 0.0)


def clopper_pearson_upper(successes: ArrayLike, trials: int, level: float) -> np.ndarray:
    """Upper bound ``Beta.ppf(1 - level; k + 1, n - k)`` (1 when ``k = n``)."""
    level = check_level(level, "level")
    k = np.asarray(successes, dtype=np.float64)
    _check_counts(k, trials)
    safe = np.where(k < trials, k, trials - 1.0)
    bound = stats.beta.ppf(1.0 - level, safe + 1.0, trials - safe)
    return np.where(k < trials, bound, 1.0)


def bernstein_half_width(
    variance: ArrayLike, samples: int, level: float, width: float = 1.0
) -> np.ndarray:
    """Maurer-Pontil empirical Bernstein half-width for variables of range ``width``.

    ``sqrt(2 V t / n) + 7 w t / (3 (n - 1))`` with ``t = ln(2 / level)`` and ``V`` the unbiased
    sample variance of all ``n`` values (in data units).
    """
    level = check_level(level, "level")
    if samples < 2:
        raise ValueError(f"empirical Bernstein needs at least 2 samples, got {samples}")
    if width <= 0:
        raise ValueError(f"the range width must be > 0, got {width}")
    v = np.asarray(variance, dtype=np.float64)
    if np.any(np.isnan(v)) or np.any(v < -1e-12):
        raise ValueError("the sample variance must be finite and >= 0")
    t = math.log(2.0 / level)
    return np.sqrt(2.0 * np.clip(v, 0.0, None) * t / samples) + 7.0 * width * t / (
        3.0 * (samples - 1)
    )


def bernstein_lower(
    mean: ArrayLike,
    variance: ArrayLike,
    samples: int,
    level: float,
    low: float = 0.0,
    high: float = 1.0,
) -> np.ndarray:
    """Lower bound ``m - half_width`` on the mean of i.i.d. values in ``[low, high]``, clipped.

    Examples
    --------
    >>> round(float(bernstein_lower(0.8, 0.01, 100, 0.01)), 6)
    0.642571
    """
    m = np.asarray(mean, dtype=np.float64)
    bound = m - bernstein_half_width(variance, samples, level, high - low)
    return np.clip(bound, low, high)


def bernstein_upper(
    mean: ArrayLike,
    variance: ArrayLike,
    samples: int,
    level: float,
    low: float = 0.0,
    high: float = 1.0,
) -> np.ndarray:
    """Upper bound ``m + half_width`` on the mean of i.i.d. values in ``[low, high]``, clipped."""
    m = np.asarray(mean, dtype=np.float64)
    bound = m + bernstein_half_width(variance, samples, level, high - low)
    return np.clip(bound, low, high)
