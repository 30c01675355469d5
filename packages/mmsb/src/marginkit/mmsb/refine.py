"""The theta-step: maximum likelihood of the reference drift on sampled bridge paths.

By Girsanov, ``KL(P || Q_theta) = (1 / 2 sigma^2) E_P int ||b_P - b_theta||^2 dt + const``, so on
discretised paths ``X_0, ..., X_M`` with steps ``h_m`` the theta-step minimises

    L(theta) = sum_paths sum_m ||dX_m - b_theta(X_m, t_m) h_m||^2 / (2 sigma^2 h_m).

This module holds the path container, the two closed forms (drift linear in the state, drift
linear in the parameters with an optional non-negativity constraint) and the generic full-batch
L-BFGS fit for any torch drift.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import nnls

logger = logging.getLogger(__name__)


@dataclass
class PathBatch:
    """Paths of one interval: ``states`` ``(P, M + 1, d)`` at absolute ``times`` ``(M + 1,)``."""

    states: np.ndarray
    times: np.ndarray

    def increments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Flattened ``(X_m, t_m, dX_m, h_m)`` with shapes ``(N, d)``, ``(N,)``, ``(N, d)``,
        ``(N,)`` where ``N = P M``."""
        P, steps_plus_one, d = self.states.shape
        starts = self.states[:, :-1].reshape(-1, d)
        deltas = np.diff(self.states, axis=1).reshape(-1, d)
        h = np.tile(np.diff(self.times), P)
        t = np.tile(self.times[:-1], P)
        return starts, t, deltas, h


def stack_increments(
    paths: Sequence[PathBatch],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate :meth:`PathBatch.increments` over intervals."""
    parts = [batch.increments() for batch in paths]
    return tuple(np.concatenate([part[i] for part in parts]) for i in range(4))  # type: ignore


def _solve_normal(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``gram theta = rhs``; add ``lambda = 1e-10 trace / dim`` only if ill-conditioned."""
    if np.linalg.cond(gram) < 1e12:
        return np.linalg.solve(gram, rhs)
    ridge = 1e-10 * float(np.trace(gram)) / gram.shape[0]
    return np.linalg.solve(gram + ridge * np.eye(gram.shape[0]), rhs)


def fit_affine(
    paths: Sequence[PathBatch], mask: np.ndarray | None = None, bias: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form drift ``b(x) = A x + c``: ``[A c] = (sum dX z^T)(sum h z z^T + lambda I)^-1``.

    ``z = (x, 1)``; ``lambda = 1e-10 trace / dim`` is added only when the Gram matrix is
    ill-conditioned. With ``mask`` ``(d, d)`` (True = free entry) or ``bias=False`` each row
    is solved on its free features only; fixed entries are 0.

    Returns
    -------
    ``A`` ``(d, d)`` and ``c`` ``(d,)``.
    """
    x, _, dx, h = stack_increments(paths)
    n, d = x.shape
    z = np.concatenate([x, np.ones((n, 1))], axis=1)
    gram = np.einsum("n,na,nb->ab", h, z, z)
    cross = dx.T @ z
    free = np.ones((d, d + 1), dtype=bool)
    if mask is not None:
        free[:, :d] = np.asarray(mask, dtype=bool)
    free[:, d] = bias
    weights = np.zeros((d, d + 1))
    for row in range(d):
        chosen = np.flatnonzero(free[row])
        if chosen.size == 0:
            continue
        weights[row, chosen] = _solve_normal(gram[np.ix_(chosen, chosen)], cross[row, chosen])
    return weights[:, :d], weights[:, d]


def fit_linear_in_parameters(
    features: np.ndarray, deltas: np.ndarray, steps: np.ndarray, nonnegative: bool = True
) -> np.ndarray:
    """Closed form for ``b = Phi(x) theta``: ``(sum h Phi^T Phi + lambda I)^-1 sum Phi^T dX``.

    Parameters
    ----------
    features: ``(N, d, p)`` ``Phi(X_m)``.
    deltas: ``(N, d)`` increments ``dX_m``.
    steps: ``(N,)`` step sizes ``h_m``.
    nonnegative: when an entry comes out ``<= 0``, solve the ``sqrt(h)``-weighted problem by
        non-negative least squares (``scipy.optimize.nnls``) instead.

    Returns
    -------
    ``(p,)`` parameters.
    """
    gram = np.einsum("n,nap,naq->pq", steps, features, features)
    rhs = np.einsum("nap,na->p", features, deltas)
    theta = _solve_normal(gram, rhs)
    if nonnegative and np.any(theta <= 0):
        root = np.sqrt(steps)[:, None, None]
        design = (root * features).reshape(-1, features.shape[2])
        target = (deltas / np.sqrt(steps)[:, None]).reshape(-1)
        theta, _ = nnls(design, target)
        logger.info("linear-in-theta fit hit the positivity bound; used NNLS: %s", theta)
    return theta


TorchDrift = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def path_loss(
    drift: TorchDrift,
    x: torch.Tensor,
    t: torch.Tensor,
    dx: torch.Tensor,
    h: torch.Tensor,
    sigma: float,
) -> torch.Tensor:
    """Mean over paths-steps of ``||dX - b(X, t) h||^2 / (2 sigma^2 h)``."""
    residual = dx - drift(x, t) * h[:, None]
    return (residual.pow(2).sum(dim=1) / (2 * sigma**2 * h)).mean()


def fit_torch(
    parameters: Sequence[torch.Tensor],
    drift: TorchDrift,
    paths: Sequence[PathBatch],
    sigma: float,
    max_iter: int = 200,
) -> float:
    """Full-batch L-BFGS on :func:`path_loss`, warm-started from ``parameters`` (in place).

    Uses ``scipy.optimize.minimize(method="L-BFGS-B")`` (its line search enforces the strong
    Wolfe conditions) with autograd gradients. Falls back to Adam (lr 0.05, gradient clip
    10, 200 steps) when L-BFGS ends on a non-finite loss. Returns the final loss.
    """
    from scipy.optimize import minimize

    arrays = stack_increments(paths)
    x, t, dx, h = (torch.as_tensor(a, dtype=torch.float64) for a in arrays)
    t = t[:, None]
    params = list(parameters)
    start = torch.nn.utils.parameters_to_vector(params).detach().clone()

    def objective(vector: np.ndarray) -> tuple[float, np.ndarray]:
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(torch.as_tensor(vector), params)
        for p in params:
            p.grad = None
        loss = path_loss(drift, x, t, dx, h, sigma)
        if not torch.isfinite(loss):
            return float("inf"), np.zeros_like(vector)
        grads = torch.autograd.grad(loss, params)
        return float(loss.detach()), torch.cat([g.reshape(-1) for g in grads]).numpy().astype(
            np.float64
        )

    result = minimize(
        objective,
        start.numpy(),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "ftol": 1e-15, "gtol": 1e-10},
    )
    final, _ = objective(result.x)
    if np.isfinite(final):
        return final
    logger.warning("L-BFGS theta-step ended on a non-finite loss; retrying with Adam")
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(start, params)
    adam = torch.optim.Adam(params, lr=0.05)
    for _ in range(200):
        adam.zero_grad()
        loss = path_loss(drift, x, t, dx, h, sigma)
        if not torch.isfinite(loss):
            raise FloatingPointError("theta-step loss is not finite even with Adam")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        adam.step()
    with torch.no_grad():
        return float(path_loss(drift, x, t, dx, h, sigma))
