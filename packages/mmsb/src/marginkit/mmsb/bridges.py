"""Transition costs, bridge paths and bridge marginals for Gaussian transitions.

Write the (possibly linearised) reference as ``X_s = m(s) + Z_s`` with ``Z_0 = 0`` and
``Z_{s'} = Phi(s', s) Z_s + noise``. Conditioning on ``X_D = y`` (Matheron's rule):

    X_s = m(s) + Z_s + Sigma(s) Phi(D, s)^T Sigma(D)^-1 (y - m(D) - Z_D),

with ``Phi(D, s) = Phi(D) Phi(s)^-1``. The bridge marginal at ``s`` is Gaussian with mean
``m(s) + K (y - m(D))`` and covariance ``Sigma(s) - K Phi(D, s) Sigma(s)``,
``K = Sigma(s) Phi(D, s)^T Sigma(D)^-1``. Exact for linear references, LNA otherwise.
"""

from __future__ import annotations

import math

import numpy as np

from .transitions import Transition


def psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """A square root ``L`` with ``L L^T = cov`` for ``(..., d, d)`` PSD matrices (eigh, clipped)."""
    values, vectors = np.linalg.eigh(0.5 * (cov + np.swapaxes(cov, -1, -2)))
    return vectors * np.sqrt(np.clip(values, 0.0, None))[..., None, :]


def transition_cost(
    means: np.ndarray, cov: np.ndarray, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``C_ij = 1/2 (y_j - m_i)^T Sigma_i^-1 (y_j - m_i)`` and ``1/2 log det Sigma_i``.

    Parameters
    ----------
    means: ``(n, d)`` transition means ``m_i(D)``.
    cov: ``(n, d, d)`` or ``(1, d, d)`` transition covariances ``Sigma_i(D)``.
    targets: ``(m, d)`` end points ``y_j``.

    Returns
    -------
    ``(n, m)`` cost and ``(n,)`` half log-determinants (row-only, kept out of the plan).
    """
    chol = np.linalg.cholesky(cov)
    half_logdet = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    half_logdet = np.broadcast_to(half_logdet, (means.shape[0],)).copy()
    if cov.shape[0] == 1:
        inverse = np.linalg.inv(chol[0])
        white_x, white_y = means @ inverse.T, targets @ inverse.T
        sq = (white_x**2).sum(1)[:, None] + (white_y**2).sum(1)[None, :] - 2 * white_x @ white_y.T
        return 0.5 * np.maximum(sq, 0.0), half_logdet
    precision = np.linalg.inv(cov)
    outer = np.einsum("ja,jb->jab", targets, targets)
    quad_y = np.einsum("iab,jab->ij", precision, outer)
    cross = np.einsum("ia,iab,jb->ij", means, precision, targets)
    quad_m = np.einsum("ia,iab,ib->i", means, precision, means)
    return 0.5 * np.maximum(quad_y - 2 * cross + quad_m[:, None], 0.0), half_logdet


def brownian_cost(sources: np.ndarray, targets: np.ndarray, sigma: float, gap: float) -> np.ndarray:
    """``||y_j - x_i||^2 / (2 sigma^2 D)`` ``(n, m)``: the Brownian case of the cost above."""
    sq = (sources**2).sum(1)[:, None] + (targets**2).sum(1)[None, :] - 2 * sources @ targets.T
    return np.maximum(sq, 0.0) / (2 * sigma**2 * gap)


def _gains(transition: Transition) -> np.ndarray:
    """``G_m = Sigma(s_m) Phi(D, s_m)^T Sigma(D)^-1`` ``(M + 1, P or 1, d, d)``."""
    phi_end = transition.phi[-1]
    to_end = phi_end[None] @ np.linalg.inv(transition.phi)
    inverse_end = np.linalg.inv(transition.cov[-1])
    gains = transition.cov @ np.swapaxes(to_end, -1, -2) @ inverse_end[None]
    gains[-1] = np.eye(phi_end.shape[-1])
    gains[0] = 0.0
    return gains


def sample_bridges(
    transition: Transition, targets: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Bridge paths ``(P, M + 1, d)`` from each source to its target ``(P, d)``.

    ``transition`` holds the ``P`` sources (see :meth:`Transition.select`); the free process
    ``Z`` is sampled with the exact one-step laws and then conditioned on ``X_D = y``.
    """
    steps, pairs, d = transition.means.shape[0] - 1, targets.shape[0], targets.shape[1]
    roots = psd_sqrt(transition.step_cov)
    z = np.zeros((steps + 1, pairs, d))
    noise = rng.standard_normal((steps, pairs, d))
    for m in range(steps):
        z[m + 1] = np.einsum(
            "pab,pb->pa", np.broadcast_to(transition.step_phi[m], (pairs, d, d)), z[m]
        )
        z[m + 1] += np.einsum("pab,pb->pa", np.broadcast_to(roots[m], (pairs, d, d)), noise[m])
    residual = targets - transition.means[-1] - z[-1]
    gains = np.broadcast_to(_gains(transition), (steps + 1, pairs, d, d))
    paths = transition.means + z + np.einsum("mpab,pb->mpa", gains, residual)
    paths[-1] = targets
    return np.swapaxes(paths, 0, 1)


def bridge_marginal(
    transition: Transition, index: int, targets: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Draws ``(P, d)`` of the bridge marginal at grid node ``index`` for each source/target."""
    pairs, d = targets.shape
    phi_end, phi_s = transition.phi[-1], transition.phi[index]
    to_end = phi_end @ np.linalg.inv(phi_s)
    cov_s, cov_end = transition.cov[index], transition.cov[-1]
    gain = cov_s @ np.swapaxes(to_end, -1, -2) @ np.linalg.inv(cov_end)
    mean = transition.means[index] + np.einsum(
        "pab,pb->pa", np.broadcast_to(gain, (pairs, d, d)), targets - transition.means[-1]
    )
    cov = cov_s - gain @ to_end @ cov_s
    root = np.broadcast_to(psd_sqrt(cov), (pairs, d, d))
    return mean + np.einsum("pab,pb->pa", root, rng.standard_normal((pairs, d)))


def gaussian_log_norm(dim: int) -> float:
    """``(d / 2) log 2 pi``."""
    return 0.5 * dim * math.log(2 * math.pi)
