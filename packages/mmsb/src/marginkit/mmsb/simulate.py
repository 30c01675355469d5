"""Seeded, offline simulators of the synthetic systems (each snapshot a fresh cohort from 0).

``linear`` is exact (Van Loan); ``lotka_volterra``, ``repressilator`` and ``vortex`` use
Euler-Maruyama with step 1e-3 and the noise laws of the benchmark files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .data import Snapshots
from .transitions import van_loan

DEFAULT_A = np.array([[-0.2, -1.0], [1.0, -0.2]])
LV_TRUTH = {"alpha": 1.0, "beta": 0.4, "gamma": 0.4, "delta": 0.1}
REPRESSILATOR_TRUTH = {"beta": 10.0, "hill": 3.0, "k": 1.0, "gamma": 1.0}


def linear(
    A: np.ndarray | None = None,
    c: np.ndarray | None = None,
    sigma: float = 0.1,
    x0_mean: Sequence[float] = (2.0, 0.0),
    x0_std: float = 0.1,
    times: Sequence[float] = tuple(np.arange(9) * 0.5),
    n: int | Sequence[int] = 200,
    seed: int = 0,
) -> Snapshots:
    """Exact snapshots of ``dX = (A X + c) dt + sigma dW``, ``X_0 ~ N(x0_mean, x0_std^2 I)``.

    Defaults: ``A* = [[-0.2, -1], [1, -0.2]]``, ``c = 0``, ``sigma = 0.1``, times 0, 0.5, ..., 4,
    200 particles. ``n`` may list one count per time.
    """
    A = DEFAULT_A if A is None else np.asarray(A, dtype=np.float64)
    d = A.shape[0]
    c = np.zeros(d) if c is None else np.asarray(c, dtype=np.float64)
    mean0 = np.asarray(x0_mean, dtype=np.float64)
    counts = [n] * len(times) if isinstance(n, int) else [int(v) for v in n]
    rng = np.random.default_rng(seed)
    clouds = []
    for t, count in zip(times, counts, strict=True):
        start = mean0 + x0_std * rng.standard_normal((count, d))
        if t == 0:
            clouds.append(start)
            continue
        F, g, cov = van_loan(A, c, sigma, float(t))
        noise = rng.standard_normal((count, d)) @ np.linalg.cholesky(cov).T
        clouds.append(start @ F.T + g + noise)
    return Snapshots(times, clouds)


def euler_cohorts(
    drift: Callable[[np.ndarray], np.ndarray],
    noise: Callable[[np.ndarray], np.ndarray],
    sample_start: Callable[[np.random.Generator, int], np.ndarray],
    times: Sequence[float],
    n: int,
    seed: int,
    step: float = 1e-3,
) -> Snapshots:
    """Euler-Maruyama with a fresh cohort of ``n`` particles per snapshot time.

    ``drift(x)`` and ``noise(x)`` (the per-coordinate diffusion) act on ``(N, d)`` arrays.
    """
    rng = np.random.default_rng(seed)
    stamps = np.asarray(times, dtype=np.float64)
    x = np.concatenate([sample_start(rng, n) for _ in stamps])
    cohort = np.repeat(np.arange(stamps.size), n)
    clouds: list[np.ndarray | None] = [None] * stamps.size
    clock, done = 0.0, 0
    while done < stamps.size:
        while done < stamps.size and stamps[done] <= clock + 1e-9:
            clouds[done] = x[cohort == done].copy()
            done += 1
        alive = cohort >= done
        if not alive.any():
            break
        live = x[alive]
        h = step
        kick = noise(live) * np.sqrt(h) * rng.standard_normal(live.shape)
        x[alive] = live + drift(live) * h + kick
        clock += h
    return Snapshots(stamps, clouds)


def lotka_volterra(
    alpha: float = 1.0,
    beta: float = 0.4,
    gamma: float = 0.4,
    delta: float = 0.1,
    times: Sequence[float] = tuple(range(11)),
    n: int = 200,
    noise: float = 0.02,
    seed: int = 0,
) -> Snapshots:
    """Lotka-Volterra with noise ``noise * max(x, 0)`` per coordinate,
    ``X_0 ~ U([5, 5.1] x [4, 4.1])`` (the law of the benchmark file)."""

    def drift(x: np.ndarray) -> np.ndarray:
        y = np.maximum(x, 0.0)
        return np.stack(
            [
                alpha * y[:, 0] - beta * y[:, 0] * y[:, 1],
                delta * y[:, 0] * y[:, 1] - gamma * y[:, 1],
            ],
            axis=1,
        )

    def start(rng: np.random.Generator, count: int) -> np.ndarray:
        return rng.uniform([5.0, 4.0], [5.1, 4.1], size=(count, 2))

    return euler_cohorts(drift, lambda x: noise * np.maximum(x, 0.0), start, times, n, seed)


def repressilator(
    beta: float = 10.0,
    hill: float = 3.0,
    k: float = 1.0,
    gamma: float = 1.0,
    times: Sequence[float] = tuple(range(11)),
    n: int = 200,
    noise: float = 0.02,
    seed: int = 0,
) -> Snapshots:
    """Three-gene repressilator ``b_i = beta / (1 + (x_{i-1} / k)^n) - gamma x_i``, noise
    ``noise * max(x, 0)``, ``X_0 ~ U([1, 1.1] x [1, 1.1] x [2, 2.1])``."""

    def drift(x: np.ndarray) -> np.ndarray:
        y = np.maximum(x, 0.0)
        return beta / (1 + (np.roll(y, 1, axis=1) / k) ** hill) - gamma * y

    def start(rng: np.random.Generator, count: int) -> np.ndarray:
        return rng.uniform([1.0, 1.0, 2.0], [1.1, 1.1, 2.1], size=(count, 3))

    return euler_cohorts(drift, lambda x: noise * np.maximum(x, 0.0), start, times, n, seed)


def vortex(
    scale: float = 0.7,
    log_ratio: float = 0.0,
    centre: Sequence[float] = (0.0, -0.3),
    times: Sequence[float] = tuple(np.arange(11) * 0.8),
    n: int = 200,
    noise: float = 0.01,
    seed: int = 0,
) -> Snapshots:
    """Clockwise linear eddy ``b = s((x_2 - c_2) e^{-l}, -(x_1 - c_1))``, a stand-in for the
    Gulf of Mexico drifters, ``X_0 ~ U([-0.05, 0.05] x [-0.8, -0.7])``."""
    ratio = np.exp(-log_ratio)

    def drift(x: np.ndarray) -> np.ndarray:
        return scale * np.stack([(x[:, 1] - centre[1]) * ratio, -(x[:, 0] - centre[0])], axis=1)

    def start(rng: np.random.Generator, count: int) -> np.ndarray:
        return rng.uniform([-0.05, -0.8], [0.05, -0.7], size=(count, 2))

    return euler_cohorts(drift, lambda x: np.full_like(x, noise), start, times, n, seed)
