"""Gaussian transition laws of the reference SDE ``dX = b(X, t) dt + sigma dW``.

For a linear drift ``b(x) = A x + c`` the transition is exactly Gaussian,
``q(y | x) = N(F x + g, Sigma_D)`` with ``F = exp(A D)``, ``g = int_0^D exp(A s) ds c`` and
``Sigma_D = int_0^D exp(A s) sigma^2 exp(A^T s) ds`` (Van Loan 1978). For a nonlinear drift
the linear-noise approximation (LNA) integrates, per source ``x_i``,

    m' = b(m, t),  Phi' = J Phi,  Sigma' = J Sigma + Sigma J^T + sigma^2 I,  J = db/dx (m),

from ``(x_i, I, 0)`` with RK4; it is exact for linear drifts and approximate otherwise.

:func:`propagate` returns, on a grid of local times ``0 = s_0 < ... < s_M = D``, the means
``m(s_m)``, the state transition ``Phi(s_m)`` and covariance ``Sigma(s_m)`` from time 0, plus the
one-step ``Phi`` and covariance used to sample bridges exactly (linear) or by the LNA.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.linalg import expm

if TYPE_CHECKING:
    from .references import Reference

logger = logging.getLogger(__name__)


class TransitionError(RuntimeError):
    """A transition law came out non-finite (for example a stiff LNA step)."""


def van_loan(
    drift_matrix: np.ndarray, offset: np.ndarray, sigma: float, gap: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact transition ``(F, g, Sigma_D)`` of ``dX = (A X + c) dt + sigma dW`` over ``gap``.

    ``E = expm(D [[-A, sigma^2 I], [0, A^T]])`` gives ``F = E_22^T`` and ``Sigma_D = F E_12``;
    ``expm(D [[A, c], [0, 0]])`` holds ``g`` in its last column.

    Parameters
    ----------
    drift_matrix: ``(d, d)`` matrix ``A``.
    offset: ``(d,)`` vector ``c``.
    sigma: noise scale.
    gap: time gap ``D > 0``.

    Returns
    -------
    ``F`` ``(d, d)``, ``g`` ``(d,)`` and ``Sigma_D`` ``(d, d)`` (symmetrised).

    Examples
    --------
    >>> F, g, S = van_loan(np.array([[-0.5]]), np.array([1.0]), 0.1, 2.0)
    >>> round(float(F[0, 0]), 10), round(float(S[0, 0]), 10)
    (0.3678794412, 0.0086466472)
    """
    A = np.atleast_2d(np.asarray(drift_matrix, dtype=np.float64))
    c = np.asarray(offset, dtype=np.float64).reshape(-1)
    d = A.shape[0]
    block = np.zeros((2 * d, 2 * d))
    block[:d, :d] = -A
    block[:d, d:] = sigma**2 * np.eye(d)
    block[d:, d:] = A.T
    E = expm(gap * block)
    F = E[d:, d:].T
    cov = F @ E[:d, d:]
    cov = 0.5 * (cov + cov.T)
    affine = np.zeros((d + 1, d + 1))
    affine[:d, :d] = A
    affine[:d, d] = c
    g = expm(gap * affine)[:d, d]
    return F, g, cov


@dataclass
class Transition:
    """Transition quantities of one interval on a local-time grid.

    Attributes
    ----------
    grid: ``(M + 1,)`` local times ``s_m`` from 0 to ``D``.
    means: ``(M + 1, n, d)`` ``m_i(s_m)``.
    phi: ``(M + 1, n or 1, d, d)`` ``Phi_i(s_m)`` (``d m(s) / d x``), identity at 0.
    cov: ``(M + 1, n or 1, d, d)`` ``Sigma_i(s_m)``, zero at 0.
    step_phi: ``(M, n or 1, d, d)`` ``Phi(s_{m+1}, s_m)``.
    step_cov: ``(M, n or 1, d, d)`` noise covariance of the step ``s_m -> s_{m+1}``.
    """

    grid: np.ndarray
    means: np.ndarray
    phi: np.ndarray
    cov: np.ndarray
    step_phi: np.ndarray
    step_cov: np.ndarray

    def select(self, index: np.ndarray) -> Transition:
        """The quantities of the sources ``index`` (shared ones are kept as they are)."""

        def pick(array: np.ndarray) -> np.ndarray:
            return array if array.shape[1] == 1 else array[:, index]

        return Transition(
            self.grid,
            self.means[:, index],
            pick(self.phi),
            pick(self.cov),
            pick(self.step_phi),
            pick(self.step_cov),
        )


def interval_grid(gap: float, dt_max: float, min_steps: int = 20) -> np.ndarray:
    """Uniform grid of ``M = max(min_steps, ceil(D / dt_max))`` steps on ``[0, D]``."""
    steps = max(int(min_steps), int(np.ceil(gap / dt_max - 1e-12)))
    return np.linspace(0.0, gap, steps + 1)


def propagate(
    reference: Reference,
    sources: np.ndarray,
    start_time: float,
    grid: np.ndarray,
    sigma: float,
    substeps: int = 1,
) -> Transition:
    """Transition law from ``sources`` ``(n, d)`` at ``start_time`` along ``grid``.

    Exact (Van Loan) when ``reference.is_linear``, otherwise the LNA with ``substeps`` RK4
    steps per grid step.
    """
    x0 = np.asarray(sources, dtype=np.float64)
    if reference.is_linear:
        result = _propagate_linear(reference, x0, start_time, grid, sigma)
    else:
        result = _propagate_lna(reference, x0, start_time, grid, sigma, substeps)
    for name in ("means", "phi", "cov", "step_cov"):
        if not np.all(np.isfinite(getattr(result, name))):
            raise TransitionError(
                f"transition {name} of {reference.name} is not finite (parameters "
                f"{reference.describe()}); the drift is too stiff for the grid step "
                f"{np.diff(grid).max():.3g}: lower dt_max or constrain the parameters"
            )
    return result


def _propagate_linear(
    reference: Reference, x0: np.ndarray, start_time: float, grid: np.ndarray, sigma: float
) -> Transition:
    A, c = reference.linear_coefficients()
    d = x0.shape[1]
    steps = np.diff(grid)
    cache: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    phi = np.empty((grid.size, 1, d, d))
    cov = np.empty((grid.size, 1, d, d))
    offset = np.empty((grid.size, d))
    step_phi = np.empty((steps.size, 1, d, d))
    step_cov = np.empty((steps.size, 1, d, d))
    phi[0, 0], cov[0, 0], offset[0] = np.eye(d), np.zeros((d, d)), np.zeros(d)
    for m, h in enumerate(steps):
        key = round(float(h), 14)
        if key not in cache:
            cache[key] = van_loan(A, c, sigma, float(h))
        F_h, g_h, S_h = cache[key]
        step_phi[m, 0], step_cov[m, 0] = F_h, S_h
        phi[m + 1, 0] = F_h @ phi[m, 0]
        cov[m + 1, 0] = F_h @ cov[m, 0] @ F_h.T + S_h
        offset[m + 1] = F_h @ offset[m] + g_h
    means = np.einsum("mab,nb->mna", phi[:, 0], x0) + offset[:, None, :]
    return Transition(grid, means, phi, cov, step_phi, step_cov)


def _lna_rhs(
    reference: Reference, state: tuple[np.ndarray, ...], time: float, noise: np.ndarray
) -> tuple[np.ndarray, ...]:
    mean, phi, cov = state
    jac = reference.jacobian(mean, time)
    dcov = jac @ cov
    return reference.drift(mean, time), jac @ phi, dcov + dcov.transpose(0, 2, 1) + noise


def _rk4(reference, state, time, h, noise):
    def shifted(k, scale):
        return tuple(s + scale * dk for s, dk in zip(state, k, strict=True))

    k1 = _lna_rhs(reference, state, time, noise)
    k2 = _lna_rhs(reference, shifted(k1, h / 2), time + h / 2, noise)
    k3 = _lna_rhs(reference, shifted(k2, h / 2), time + h / 2, noise)
    k4 = _lna_rhs(reference, shifted(k3, h), time + h, noise)
    return tuple(
        s + (h / 6) * (a + 2 * b + 2 * c + e)
        for s, a, b, c, e in zip(state, k1, k2, k3, k4, strict=True)
    )


def _propagate_lna(
    reference: Reference,
    x0: np.ndarray,
    start_time: float,
    grid: np.ndarray,
    sigma: float,
    substeps: int,
) -> Transition:
    n, d = x0.shape
    noise = sigma**2 * np.eye(d)[None]
    means = np.empty((grid.size, n, d))
    phi = np.empty((grid.size, n, d, d))
    cov = np.empty((grid.size, n, d, d))
    step_phi = np.empty((grid.size - 1, n, d, d))
    step_cov = np.empty((grid.size - 1, n, d, d))
    means[0], phi[0], cov[0] = x0, np.broadcast_to(np.eye(d), (n, d, d)), 0.0
    for m in range(grid.size - 1):
        h = (grid[m + 1] - grid[m]) / substeps
        # The one-step law restarts the same ODE from (m, I, 0) at s_m.
        total = (means[m], phi[m], cov[m])
        local = (means[m], np.broadcast_to(np.eye(d), (n, d, d)).copy(), np.zeros((n, d, d)))
        for sub in range(substeps):
            time = start_time + grid[m] + sub * h
            total = _rk4(reference, total, time, h, noise)
            local = (total[0], *_rk4(reference, local, time, h, noise)[1:])
        means[m + 1], phi[m + 1] = total[0], total[1]
        cov[m + 1] = 0.5 * (total[2] + total[2].transpose(0, 2, 1))
        step_phi[m] = local[1]
        step_cov[m] = 0.5 * (local[2] + local[2].transpose(0, 2, 1))
    return Transition(grid, means, phi, cov, step_phi, step_cov)
