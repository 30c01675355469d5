"""SBIRR: a multi-marginal Schrödinger bridge whose reference drift is refined from its paths.

Coordinate descent on ``min_{theta, P: P_{t_k} = mu_k} KL(P || Q_theta)``. P-step: for a Markov
reference the multi-marginal bridge glues the static bridges of consecutive snapshots with
reference bridges inside. Theta-step: maximum likelihood of the drift on paths from P. The
first P-step uses a zero drift (the vanilla bridge) unless ``init_bridge="reference"``.

Monitored objective (exact for linear references, LNA otherwise):

    V(theta) = sum_k sum_ij pi_ij [log pi_ij - log a_i b_j + C_ij + 1/2 log det Sigma_i
               + (d / 2) log 2 pi].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .bridges import bridge_marginal, gaussian_log_norm, sample_bridges, transition_cost
from .config import SBIRRConfig
from .data import Snapshots
from .gp_ipf import GPBridge, euler_maruyama, gp_ipf_interval
from .references import Brownian, Reference
from .refine import PathBatch
from .sinkhorn import Coupling, exact_ot, log_sinkhorn
from .transitions import Transition, interval_grid, propagate

logger = logging.getLogger(__name__)


@dataclass
class _Interval:
    coupling: Coupling | None
    transition: Transition | None
    gp: GPBridge | None


class SBIRR:
    """Fit a reference family to snapshots with a multi-marginal Schrödinger bridge.

    Parameters
    ----------
    reference: the drift family with its initial parameters (refined in place).
    config: settings (:class:`SBIRRConfig`).

    Examples
    --------
    >>> from marginkit.mmsb import simulate, Linear
    >>> snaps = simulate.linear(n=60, times=[0, 1, 2], seed=0)
    >>> model = SBIRR(Linear(dim=2), SBIRRConfig(n_outer=2)).fit(snaps)
    >>> model.predict_marginal(0.5, 10, seed=0).shape
    (10, 2)
    """

    def __init__(self, reference: Reference, config: SBIRRConfig | None = None) -> None:
        self.reference = reference
        self.config = config or SBIRRConfig()
        self.history: dict[str, list[float]] = {}
        self.snapshots: Snapshots | None = None
        self._intervals: list[_Interval] = []
        self._bridge_reference: Reference = reference

    # ------------------------------------------------------------------ fitting

    def fit(self, snapshots: Snapshots) -> SBIRR:
        """Alternate bridge steps and theta-steps until theta stops moving or ``n_outer``."""
        cfg = self.config
        self.snapshots = snapshots
        d = snapshots.dim
        if min(snapshots.counts) < 10 * d:
            logger.warning("min n_k = %d < 10 d: couplings are noisy", min(snapshots.counts))
        rng = np.random.default_rng(cfg.seed)
        self.history = {}
        zero = Brownian(d) if cfg.init_bridge == "zero_drift" else self.reference
        self._bridge_step(zero, rng)
        self._record(0, float("nan"))
        for iteration in range(1, cfg.n_outer + 1):
            paths = self._theta_paths(rng)
            previous = self.reference.vector()
            self.reference.fit(paths, cfg.sigma)
            if cfg.damping < 1:
                self.reference.set_vector(
                    (1 - cfg.damping) * previous + cfg.damping * self.reference.vector()
                )
            current = self.reference.vector()
            change = float(
                np.linalg.norm(current - previous) / max(float(np.linalg.norm(previous)), 1e-12)
            )
            self._bridge_step(self.reference, rng)
            self._record(iteration, change)
            logger.info(
                "iteration %d: %s (change %.2e)", iteration, self.reference.describe(), change
            )
            if change < cfg.tol:
                logger.info("theta changed by %.2e < tol %.2e: stopping", change, cfg.tol)
                break
        return self

    @property
    def _snaps(self) -> Snapshots:
        if self.snapshots is None:
            raise RuntimeError("call fit(snapshots) first")
        return self.snapshots

    def _coupling(self, k: int) -> Coupling:
        coupling = self._intervals[k].coupling
        if coupling is None:
            raise RuntimeError(f"interval {k} has no coupling under bridge={self.config.bridge!r}")
        return coupling

    def _gp(self, k: int) -> GPBridge:
        gp = self._intervals[k].gp
        if gp is None:
            raise RuntimeError(f"interval {k} has no GP drift under bridge={self.config.bridge!r}")
        return gp

    def _gap(self, k: int) -> float:
        return float(self._snaps.times[k + 1] - self._snaps.times[k])

    def _grid(self, k: int) -> np.ndarray:
        return interval_grid(self._gap(k), self.config.dt_max, self.config.min_steps)

    def _bridge_step(self, reference: Reference, rng: np.random.Generator) -> None:
        cfg, snaps = self.config, self._snaps
        self._bridge_reference = reference.copy()
        self._intervals, objective = [], 0.0
        for k in range(len(snaps) - 1):
            x, y = snaps.particles[k], snaps.particles[k + 1]
            a, b = snaps.weights[k], snaps.weights[k + 1]
            grid = self._grid(k)
            if cfg.bridge == "gp_ipf":
                start_time = float(snaps.times[k])

                def local_drift(z: np.ndarray, s: float, t0: float = start_time) -> np.ndarray:
                    return reference.drift(z, t0 + s)

                gp = gp_ipf_interval(
                    x,
                    y,
                    local_drift,
                    grid,
                    cfg.sigma,
                    cfg.ipf_iter,
                    cfg.gp_lengthscale,
                    cfg.gp_max_points,
                    rng,
                    cfg.sigma_anneal,
                )
                self._intervals.append(_Interval(None, None, gp))
                self.history.setdefault(f"gp/end_w2/{k}", []).append(gp.end_w2)
                continue
            if cfg.bridge == "exact_ot":
                sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
                coupling = exact_ot(a, b, sq)
                self._intervals.append(_Interval(coupling, None, None))
                continue
            transition = propagate(
                reference, x, float(snaps.times[k]), grid, cfg.sigma, cfg.lna_substeps
            )
            cost, half_logdet = transition_cost(transition.means[-1], transition.cov[-1], y)
            coupling = log_sinkhorn(a, b, cost, backend=cfg.backend, strict=cfg.strict)
            coupling.interval, coupling.gap, coupling.sigma = k, self._gap(k), cfg.sigma
            plan = coupling.plan
            with np.errstate(divide="ignore"):
                log_ratio = np.where(plan > 0, np.log(plan) - np.log(np.outer(a, b)), 0.0)
            objective += float(
                (
                    plan * (log_ratio + cost + half_logdet[:, None] + gaussian_log_norm(y.shape[1]))
                ).sum()
            )
            self.history.setdefault(f"coupling/marginal_error/{k}", []).append(
                max(coupling.error_source, coupling.error_target)
            )
            self._intervals.append(_Interval(coupling, transition, None))
        if cfg.bridge == "sinkhorn":
            self.history.setdefault("objective/V", []).append(objective)

    def _record(self, iteration: int, change: float) -> None:
        self.history.setdefault("iteration", []).append(float(iteration))
        self.history.setdefault("theta/change", []).append(change)
        for name, value in self.reference.parameters().items():
            self.history.setdefault(f"theta/{name}", []).append(value)

    # ------------------------------------------------------------------ paths

    def _draw_pairs(self, k: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        plan = self._coupling(k).plan
        flat = plan.reshape(-1) / plan.sum()
        chosen = rng.choice(flat.size, size=count, p=flat)
        return np.unravel_index(chosen, plan.shape)

    def _interval_paths(
        self,
        k: int,
        sources: np.ndarray,
        targets: np.ndarray,
        rng: np.random.Generator,
        source_index: np.ndarray | None = None,
    ) -> np.ndarray:
        """Bridge paths ``(P, M + 1, d)`` from ``sources`` to ``targets`` in interval ``k``."""
        interval = self._intervals[k]
        if self.config.bridge == "exact_ot":
            grid = self._grid(k)
            weight = (grid / grid[-1])[None, :, None]
            return (1 - weight) * sources[:, None] + weight * targets[:, None]
        transition = interval.transition
        if source_index is not None and transition is not None:
            transition = transition.select(source_index)
        else:
            transition = propagate(
                self._bridge_reference,
                sources,
                float(self._snaps.times[k]),
                self._grid(k),
                self.config.sigma,
                self.config.lna_substeps,
            )
        return sample_bridges(transition, targets, rng)

    def _theta_paths(self, rng: np.random.Generator) -> list[PathBatch]:
        snaps, cfg = self._snaps, self.config
        batches = []
        for k in range(len(snaps) - 1):
            count = cfg.paths_factor * max(snaps.counts[k], snaps.counts[k + 1])
            times = snaps.times[k] + self._grid(k)
            if cfg.bridge == "gp_ipf":
                start = snaps.particles[k][rng.choice(snaps.counts[k], count, p=snaps.weights[k])]
                states = euler_maruyama(self._gp(k).forward, start, self._grid(k), cfg.sigma, rng)
            else:
                i, j = self._draw_pairs(k, count, rng)
                states = self._interval_paths(
                    k, snaps.particles[k][i], snaps.particles[k + 1][j], rng, source_index=i
                )
            batches.append(PathBatch(states, times))
        return batches

    # ------------------------------------------------------------------ prediction

    def _check_fitted(self) -> Snapshots:
        if self.snapshots is None:
            raise RuntimeError("call fit(snapshots) first")
        return self.snapshots

    def predict_marginal(self, t: float, n: int, seed: int = 0) -> np.ndarray:
        """``n`` draws ``(n, d)`` from the fitted bridge's marginal at time ``t``.

        ``t`` must lie in ``[t_0, t_K]`` (no extrapolation). At a snapshot time the draws
        are resampled from that snapshot.
        """
        snaps = self._check_fitted()
        rng = np.random.default_rng(seed)
        t = float(t)
        if not snaps.times[0] <= t <= snaps.times[-1]:
            raise ValueError(
                f"t = {t} lies outside the fitted range [{snaps.times[0]}, {snaps.times[-1]}]"
            )
        exact = np.flatnonzero(np.abs(snaps.times - t) <= 1e-12)
        if exact.size:
            k = int(exact[0])
            return snaps.particles[k][rng.choice(snaps.counts[k], n, p=snaps.weights[k])]
        k = int(np.searchsorted(snaps.times, t) - 1)
        s, gap, cfg = t - snaps.times[k], self._gap(k), self.config
        if cfg.bridge == "gp_ipf":
            steps = max(1, int(round(s / (gap / (self._grid(k).size - 1)))))
            grid = np.linspace(0.0, s, steps + 1)
            start = snaps.particles[k][rng.choice(snaps.counts[k], n, p=snaps.weights[k])]
            return euler_maruyama(self._gp(k).forward, start, grid, cfg.sigma, rng)[:, -1]
        i, j = self._draw_pairs(k, n, rng)
        x, y = snaps.particles[k][i], snaps.particles[k + 1][j]
        if cfg.bridge == "exact_ot":
            return x + (s / gap) * (y - x)
        first = max(cfg.min_steps // 2, int(np.ceil(s / cfg.dt_max)))
        second = max(cfg.min_steps // 2, int(np.ceil((gap - s) / cfg.dt_max)))
        grid = np.concatenate([np.linspace(0, s, first + 1), np.linspace(s, gap, second + 1)[1:]])
        transition = propagate(
            self._bridge_reference, x, float(snaps.times[k]), grid, cfg.sigma, cfg.lna_substeps
        )
        return bridge_marginal(transition, first, y, rng)

    def sample_trajectories(
        self, n_paths: int | None = None, start: int = 0, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Whole trajectories through every snapshot, started from snapshot ``start``.

        From particle ``i`` of snapshot ``k`` the next particle is drawn from
        ``pi_k(i, .) / sum`` and the previous one from ``pi_{k-1}(., i) / sum``; bridges join
        them. One path per particle of ``start`` when ``n_paths`` is None.

        Returns
        -------
        ``times`` ``(T,)`` and ``paths`` ``(P, T, d)``.
        """
        snaps = self._check_fitted()
        if self.config.bridge == "gp_ipf":
            raise NotImplementedError("trajectories are implemented for the sinkhorn bridge")
        if not 0 <= start < len(snaps):
            raise ValueError(f"start must index a snapshot (0..{len(snaps) - 1}), got {start}")
        rng = np.random.default_rng(seed)
        count = snaps.counts[start]
        if n_paths is None:
            index = {start: np.arange(count)}
        else:
            index = {start: rng.choice(count, size=n_paths, p=snaps.weights[start])}
        for k in range(start, len(snaps) - 1):
            index[k + 1] = self._conditional(self._coupling(k).plan, index[k], rng)
        for k in range(start - 1, -1, -1):
            index[k] = self._conditional(self._coupling(k).plan.T, index[k + 1], rng)
        segments, times = [], []
        for k in range(len(snaps) - 1):
            x, y = snaps.particles[k][index[k]], snaps.particles[k + 1][index[k + 1]]
            segment = self._interval_paths(k, x, y, rng, source_index=index[k])
            segments.append(segment if k == 0 else segment[:, 1:])
            grid = snaps.times[k] + self._grid(k)
            times.append(grid if k == 0 else grid[1:])
        return np.concatenate(times), np.concatenate(segments, axis=1)

    @staticmethod
    def _conditional(plan: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        conditional = plan[rows]
        conditional = conditional / conditional.sum(1, keepdims=True)
        cumulative = np.cumsum(conditional, axis=1)
        draws = rng.random((len(rows), 1))
        return np.minimum((cumulative < draws).sum(1), plan.shape[1] - 1)

    @property
    def couplings(self) -> list[Coupling]:
        """The static plans of the last bridge step (sinkhorn/exact_ot bridges)."""
        return [interval.coupling for interval in self._intervals if interval.coupling]
