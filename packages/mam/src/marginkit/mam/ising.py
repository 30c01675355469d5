"""The periodic 2-D Ising model as an unnormalised target, with exact log Z.

For an ``n x n`` lattice with spins ``s = 2x - 1`` in ``{-1, +1}`` (``x`` in ``{0, 1}``)

.. math:: \\log f(x) = s^\\top J s + b^\\top s, \\qquad J = \\sigma_J A,

where ``A`` is the periodic 4-neighbour adjacency matrix. ``s^T J s`` counts every edge
twice, so one bond contributes ``2 sigma_J s_i s_j``. The all-ones 4x4 lattice therefore has
``log f = 0.1 * 64 + 0.2 * 16 = 9.6`` at the defaults.

Exact values: enumeration for ``n <= 4`` and a row transfer matrix for ``n <= 12``.
"""

from __future__ import annotations

import torch

from marginkit.mam.encoding import check_values


def periodic_adjacency(n: int) -> torch.Tensor:
    """The ``(n*n, n*n)`` 0/1 adjacency of the periodic ``n x n`` 4-neighbour lattice."""
    if n < 3:
        raise ValueError(f"n must be >= 3 (n=2 makes left and right neighbours coincide), got {n}")
    adjacency = torch.zeros(n * n, n * n)
    for row in range(n):
        for col in range(n):
            site = row * n + col
            for neighbour in (((row + 1) % n) * n + col, row * n + (col + 1) % n):
                adjacency[site, neighbour] = 1.0
                adjacency[neighbour, site] = 1.0
    return adjacency


class IsingLattice:
    """Periodic ``n x n`` Ising model, ``log f = s^T J s + b^T s`` in nats.

    Parameters
    ----------
    n:
        Side length (``D = n * n`` variables, ``K = 2``).
    sigma_j:
        Coupling scale; ``J = sigma_j * A``.
    bias:
        Uniform field ``b_i``.
    """

    num_categories = 2

    def __init__(self, n: int = 10, sigma_j: float = 0.1, bias: float = 0.2) -> None:
        self.n = n
        self.sigma_j = float(sigma_j)
        self.bias = float(bias)
        self.coupling = self.sigma_j * periodic_adjacency(n)
        self.num_variables = n * n

    def log_f(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised log-density of int codes ``(batch, D)`` -> ``(batch,)`` float."""
        x = check_values(x, 2, self.num_variables, name="Ising configurations")
        spins = 2.0 * x.to(self.coupling.dtype) - 1.0
        coupling = self.coupling.to(x.device)
        return ((spins @ coupling) * spins).sum(-1) + self.bias * spins.sum(-1)

    __call__ = log_f

    def local_field(self, spins: torch.Tensor) -> torch.Tensor:
        """``log f(s_i=+1) - log f(s_i=-1)`` for every site, ``(batch, D)``."""
        return 2.0 * (2.0 * spins @ self.coupling.to(spins.device) + self.bias)

    def enumerate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All ``2^D`` states ``(2^D, D)`` and their exact ``log p`` (only for ``n <= 4``)."""
        if self.num_variables > 20:
            raise ValueError(f"enumeration needs D <= 20, this lattice has D={self.num_variables}")
        states = all_states(self.num_variables, 2)
        log_f = self.log_f(states)
        return states, log_f - torch.logsumexp(log_f.double(), 0).float()

    def log_partition(self, bias: float | None = None, scale: float = 1.0) -> float:
        """Exact ``log Z`` of ``f^scale`` by the row transfer matrix (``n <= 12``)."""
        n = self.n
        if n > 12:
            raise ValueError(f"the transfer matrix has 2^n rows; n={n} > 12 is too large")
        bias = self.bias if bias is None else bias
        bond = 2.0 * self.sigma_j * scale
        rows = 2.0 * all_states(n, 2).double() - 1.0  # (2^n, n)
        within = bond * (rows * rows.roll(1, dims=1)).sum(-1) + bias * scale * rows.sum(-1)
        between = bond * rows @ rows.T
        log_transfer = 0.5 * within[:, None] + 0.5 * within[None, :] + between
        shift = log_transfer.max()
        eigenvalues = torch.linalg.eigvalsh(torch.exp(log_transfer - shift))
        # Z = trace(T^n) = sum of eigenvalue^n; eigenvalues may be negative.
        top = eigenvalues.abs().max()
        trace = ((eigenvalues / top) ** n).sum()
        return float(n * (shift + torch.log(top)) + torch.log(trace))

    def entropy(self) -> float:
        """Exact entropy in nats: ``log Z - E[log f]`` with ``E[log f] = d log Z(f^t)/dt``."""
        step = 1e-4
        mean_log_f = (self.log_partition(scale=1 + step) - self.log_partition(scale=1 - step)) / (
            2 * step
        )
        return self.log_partition() - mean_log_f

    def mean_magnetisation(self) -> float:
        """Exact ``P(x_i = 1)`` from ``E[s_i] = d log Z / d b / D``."""
        step = 1e-4
        derivative = (
            self.log_partition(bias=self.bias + step) - self.log_partition(bias=self.bias - step)
        ) / (2 * step)
        return 0.5 * (1.0 + derivative / self.num_variables)

    def gibbs_samples(
        self, num_chains: int, sweeps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Heat-bath Gibbs reference samples ``(num_chains, D)`` after ``sweeps`` sweeps.

        One sweep updates every site once, in checkerboard order (the two colours are each
        conditionally independent given the other, so a colour is updated at once).
        """
        n = self.n
        grid = torch.arange(n)
        colour = ((grid[:, None] + grid[None, :]) % 2).reshape(-1)
        if n % 2 == 1:
            # An odd periodic lattice has no two-colouring: update one site at a time.
            colour = torch.arange(self.num_variables)
        spins = 2.0 * torch.randint(0, 2, (num_chains, self.num_variables), generator=generator) - 1
        for _ in range(sweeps):
            for value in colour.unique():
                sites = colour == value
                probability = torch.sigmoid(self.local_field(spins)[:, sites])
                draw = torch.rand(probability.shape, generator=generator) < probability
                spins[:, sites] = 2.0 * draw.float() - 1.0
        return ((spins + 1) / 2).long()


def all_states(num_variables: int, num_categories: int) -> torch.Tensor:
    """Every configuration ``(K^D, D)`` in lexicographic order (first variable slowest)."""
    count = num_categories**num_variables
    if count > 2**22:
        raise ValueError(f"K^D = {count} states is too many to enumerate")
    index = torch.arange(count)
    powers = num_categories ** torch.arange(num_variables - 1, -1, -1)
    return (index[:, None] // powers) % num_categories
