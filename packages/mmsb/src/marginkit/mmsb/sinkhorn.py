"""Static Schrödinger bridge between two weighted clouds: log-domain Sinkhorn in float64.

With the cost ``C_ij = -log q(y_j | x_i)`` (up to terms in ``i`` or ``j`` alone, which the
duals absorb) the static bridge is

    pi = argmin_{pi in Pi(a, b)} sum_ij pi_ij (C_ij + log pi_ij),

solved by ``f_i <- log a_i - LSE_j(g_j - C_ij)``, ``g_j <- log b_j - LSE_i(f_i - C_ij)`` and
``pi_ij = exp(f_i + g_j - C_ij)``. The regularisation is 1 because ``C`` is already in units of
``epsilon``; for a Brownian reference ``C_ij = ||y_j - x_i||^2 / (2 sigma^2 D)``, the same as
POT on ``ot.dist(x, y)`` with ``reg = 2 sigma^2 D``. Never ``exp(-C)``: costs reach 1e4.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import torch

logger = logging.getLogger(__name__)

ANNEALING = (64.0, 16.0, 4.0, 1.0)
MARGINAL_TOLERANCE = 1e-8


class SinkhornConvergenceWarning(RuntimeWarning):
    """Sinkhorn stopped with a marginal error above 1e-8 or a non-finite plan."""


@dataclass
class Coupling:
    """A static bridge plan with its diagnostics.

    Attributes
    ----------
    plan: ``(n, m)`` coupling ``pi``.
    f, g: ``(n,)``, ``(m,)`` dual potentials at reg 1.
    error_source, error_target: ``max |pi 1 - a|``, ``max |pi^T 1 - b|``.
    converged: both errors at most 1e-8 and the plan finite.
    method, interval, gap, sigma: provenance (``"sinkhorn"``/``"emd"``, index ``k``, ``D_k``).
    """

    plan: np.ndarray
    f: np.ndarray
    g: np.ndarray
    error_source: float
    error_target: float
    converged: bool
    method: str = "sinkhorn"
    interval: int = -1
    gap: float = float("nan")
    sigma: float = float("nan")


def _torch_log_sinkhorn(
    log_a: torch.Tensor,
    log_b: torch.Tensor,
    cost: torch.Tensor,
    reg: float,
    f: torch.Tensor,
    g: torch.Tensor,
    max_iter: int,
    tol: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = log_a.exp(), log_b.exp()
    for iteration in range(max_iter):
        f = reg * (log_a - torch.logsumexp((g[None, :] - cost) / reg, dim=1))
        g = reg * (log_b - torch.logsumexp((f[:, None] - cost) / reg, dim=0))
        if iteration % 10 == 0:
            plan = torch.exp((f[:, None] + g[None, :] - cost) / reg)
            if (plan.sum(1) - a).abs().max() <= tol and (plan.sum(0) - b).abs().max() <= tol:
                break
    return f, g


def _run(
    a: np.ndarray,
    b: np.ndarray,
    cost: np.ndarray,
    reg: float,
    backend: str,
    f: np.ndarray,
    g: np.ndarray,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One solve at ``reg``; potentials in cost units (``f`` = reg * log_u)."""
    if backend == "pot":
        import ot

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, log = ot.bregman.sinkhorn_log(
                a,
                b,
                cost,
                reg,
                numItermax=max_iter,
                stopThr=1e-12,
                log=True,
                warmstart=(f / reg, g / reg),
            )
        return reg * np.asarray(log["log_u"]), reg * np.asarray(log["log_v"])
    if backend == "torch":
        ft, gt = _torch_log_sinkhorn(
            torch.as_tensor(np.log(a)),
            torch.as_tensor(np.log(b)),
            torch.as_tensor(cost),
            reg,
            torch.as_tensor(f),
            torch.as_tensor(g),
            max_iter,
            MARGINAL_TOLERANCE / 10,
        )
        return ft.numpy(), gt.numpy()
    raise ValueError(f"unknown Sinkhorn backend {backend!r}; choose 'pot' or 'torch'")


def _plan(f: np.ndarray, g: np.ndarray, cost: np.ndarray) -> np.ndarray:
    return np.exp(f[:, None] + g[None, :] - cost)


def log_sinkhorn(
    a: np.ndarray,
    b: np.ndarray,
    cost: np.ndarray,
    backend: str = "pot",
    max_iter: int = 10_000,
    strict: bool = False,
) -> Coupling:
    """Entropic plan at reg 1 for a cost already in ``epsilon`` units.

    Parameters
    ----------
    a, b: ``(n,)`` and ``(m,)`` positive weights summing to one.
    cost: ``(n, m)`` float64 cost.
    backend: ``"pot"`` (``ot.bregman.sinkhorn_log``) or ``"torch"`` (same updates).
    max_iter: iterations per solve.
    strict: raise instead of warning when the marginals miss 1e-8.

    Returns
    -------
    :class:`Coupling`. When a first solve at reg 1 misses the tolerance the solve is
    repeated with reg annealed over (64, 16, 4, 1), each warm-started from the last.

    Examples
    --------
    >>> c = log_sinkhorn(np.array([.5, .5]), np.array([.5, .5]), np.array([[0., 2.], [2., 0.]]))
    >>> round(float(c.plan[0, 0]), 6)  # e^2 / (2 (1 + e^2))
    0.440399
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    if cost.shape != (a.size, b.size):
        raise ValueError(f"cost has shape {cost.shape}, expected ({a.size}, {b.size})")
    if not np.all(np.isfinite(cost)):
        raise ValueError("cost matrix has non-finite entries")
    if np.any(a <= 0) or np.any(b <= 0):
        raise ValueError("Sinkhorn weights must be positive (zero weights are rejected)")

    def errors(f: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, float, float]:
        plan = _plan(f, g, cost)
        return plan, float(np.abs(plan.sum(1) - a).max()), float(np.abs(plan.sum(0) - b).max())

    f, g = _run(a, b, cost, 1.0, backend, np.zeros(a.size), np.zeros(b.size), max_iter)
    plan, err_a, err_b = errors(f, g)
    ok = np.all(np.isfinite(plan)) and max(err_a, err_b) <= MARGINAL_TOLERANCE
    if not ok:
        logger.info("Sinkhorn missed tolerance (%.2e, %.2e); annealing reg", err_a, err_b)
        f, g = np.zeros(a.size), np.zeros(b.size)
        for reg in ANNEALING:
            f, g = _run(a, b, cost, reg, backend, f, g, max_iter)
        plan, err_a, err_b = errors(f, g)
        ok = np.all(np.isfinite(plan)) and max(err_a, err_b) <= MARGINAL_TOLERANCE
    if not ok:
        message = (
            f"Sinkhorn did not reach marginal error 1e-8: source {err_a:.2e}, target "
            f"{err_b:.2e} after {max_iter} iterations (plan finite: {np.all(np.isfinite(plan))})"
        )
        if strict:
            raise RuntimeError(message)
        warnings.warn(message, SinkhornConvergenceWarning, stacklevel=2)
    return Coupling(plan, f, g, err_a, err_b, bool(ok))


def exact_ot(a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> Coupling:
    """Unregularised plan ``ot.emd`` (the sigma -> 0 limit) wrapped as a :class:`Coupling`."""
    import ot

    plan, log = ot.emd(a, b, cost, numItermax=10**7, log=True)
    if log.get("warning"):
        raise RuntimeError(f"ot.emd did not reach optimality: {log['warning']}")
    plan = np.asarray(plan)
    err_a = float(np.abs(plan.sum(1) - a).max())
    err_b = float(np.abs(plan.sum(0) - b).max())
    return Coupling(plan, np.zeros(a.size), np.zeros(b.size), err_a, err_b, True, method="emd")
