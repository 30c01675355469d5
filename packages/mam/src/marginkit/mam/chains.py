"""Targets with exact marginals by dynamic programming, and enumerable targets.

* :class:`PottsChain`: open chain, ``log f = J sum_i 1[x_i = x_{i+1}] + sum_i h[i, x_i]``;
* :class:`HiddenMarkovChain`:
  ``p(x) = sum_z pi(z_0) B(z_0, x_0) prod_i A(z_{i-1}, z_i) B(z_i, x_i)``;
* :class:`EnumeratedTarget`: any distribution given by ``log p`` of all ``K^D`` states.

A marginal ``p(x_S)`` is a forward pass in log space in which an unobserved position
contributes every value (emission 1 for the HMM, a sum over the value for the chain).
"""

from __future__ import annotations

import torch

from marginkit.mam.encoding import check_query, check_values


def _evidence(values: torch.Tensor, observed: torch.Tensor, num_categories: int) -> torch.Tensor:
    """``(batch, D, K)`` log-indicator of the evidence: 0 where allowed, -inf elsewhere."""
    allowed = torch.nn.functional.one_hot(values.clamp(0, num_categories - 1), num_categories)
    allowed = allowed.bool() | ~observed[..., None]
    return torch.where(allowed, 0.0, float("-inf")).double()


class PottsChain:
    """Open Potts chain with coupling ``J`` and fields ``h`` ``(D, K)`` (nats)."""

    def __init__(
        self,
        num_variables: int,
        num_categories: int,
        coupling: float = 1.0,
        field: torch.Tensor | None = None,
    ) -> None:
        if num_variables < 2 or num_categories < 2:
            raise ValueError("a Potts chain needs D >= 2 and K >= 2")
        self.num_variables = num_variables
        self.num_categories = num_categories
        self.coupling = float(coupling)
        self.field = (
            torch.zeros(num_variables, num_categories, dtype=torch.float64)
            if field is None
            else torch.as_tensor(field, dtype=torch.float64)
        )
        if self.field.shape != (num_variables, num_categories):
            raise ValueError(f"field must be (D, K), got {tuple(self.field.shape)}")
        self._pair = self.coupling * torch.eye(num_categories, dtype=torch.float64)

    def log_f(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised log-density ``(batch,)`` of codes ``(batch, D)``."""
        x = check_values(x, self.num_categories, self.num_variables, name="chain states")
        same = (x[:, 1:] == x[:, :-1]).double().sum(-1)
        fields = self.field.gather(1, x.T).T.sum(-1)
        return (self.coupling * same + fields).float()

    __call__ = log_f

    def _forward(self, evidence: torch.Tensor) -> torch.Tensor:
        alpha = self.field[0] + evidence[:, 0]
        for i in range(1, self.num_variables):
            alpha = torch.logsumexp(alpha[:, :, None] + self._pair, dim=1)
            alpha = alpha + self.field[i] + evidence[:, i]
        return torch.logsumexp(alpha, dim=-1)

    def log_partition(self) -> float:
        """Exact ``log Z``."""
        empty = torch.zeros(1, self.num_variables, self.num_categories, dtype=torch.float64)
        return float(self._forward(empty)[0])

    def log_marginal(self, values: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(x_S)`` ``(batch,)`` float64."""
        check_query(values, observed, self.num_categories, self.num_variables)
        evidence = _evidence(values, observed, self.num_categories)
        return self._forward(evidence) - self.log_partition()

    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact samples ``(num_samples, D)`` by backward messages, then forward draws."""
        D, K = self.num_variables, self.num_categories
        beta = torch.zeros(D, K, dtype=torch.float64)  # log sum over x_{>i} given x_i
        for i in range(D - 2, -1, -1):
            beta[i] = torch.logsumexp(self._pair + self.field[i + 1] + beta[i + 1], dim=1)
        x = torch.empty(num_samples, D, dtype=torch.long)
        logits = (self.field[0] + beta[0]).expand(num_samples, K)
        for i in range(D):
            x[:, i] = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
            if i + 1 < D:
                logits = self._pair[x[:, i]] + self.field[i + 1] + beta[i + 1]
        return x


class HiddenMarkovChain:
    """Discrete HMM with initial ``pi`` ``(H,)``, transitions ``A`` ``(H, H)``, emissions
    ``B`` ``(H, K)`` over ``num_variables`` steps."""

    def __init__(self, pi, transition, emission, num_variables: int) -> None:
        self.pi = torch.as_tensor(pi, dtype=torch.float64)
        self.transition = torch.as_tensor(transition, dtype=torch.float64)
        self.emission = torch.as_tensor(emission, dtype=torch.float64)
        for name, table in (("pi", self.pi), ("A", self.transition), ("B", self.emission)):
            if (table < 0).any() or not torch.allclose(
                table.sum(-1), torch.ones_like(table.sum(-1))
            ):
                raise ValueError(f"{name} rows must be probability vectors")
        self.num_variables = num_variables
        self.num_categories = self.emission.shape[1]

    @classmethod
    def random(
        cls, num_variables: int = 32, num_categories: int = 5, num_hidden: int = 4, seed: int = 0
    ) -> HiddenMarkovChain:
        """An HMM with Dirichlet(1) rows drawn from ``seed``."""
        generator = torch.Generator().manual_seed(seed)

        def rows(count: int, width: int) -> torch.Tensor:
            gamma = -torch.log(torch.rand(count, width, generator=generator, dtype=torch.float64))
            return gamma / gamma.sum(-1, keepdim=True)

        return cls(
            rows(1, num_hidden)[0],
            rows(num_hidden, num_hidden),
            rows(num_hidden, num_categories),
            num_variables,
        )

    def log_marginal(self, values: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(x_S)`` ``(batch,)`` by the forward algorithm (float64)."""
        check_query(values, observed, self.num_categories, self.num_variables)
        log_emission = self.emission.log()
        log_transition = self.transition.log()
        # (batch, D, H): log B(z, x_i) at observed positions, 0 (emission 1) elsewhere.
        emitted = log_emission.T[values.clamp(0, self.num_categories - 1)]
        emitted = torch.where(observed[..., None], emitted, 0.0)
        alpha = self.pi.log() + emitted[:, 0]
        for i in range(1, self.num_variables):
            alpha = torch.logsumexp(alpha[:, :, None] + log_transition, dim=1) + emitted[:, i]
        return torch.logsumexp(alpha, dim=-1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(x)`` of complete sequences."""
        x = check_values(x, self.num_categories, self.num_variables)
        return self.log_marginal(x, torch.ones_like(x, dtype=torch.bool))

    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact ancestral samples ``(num_samples, D)``."""
        hidden = torch.multinomial(self.pi.expand(num_samples, -1), 1, generator=generator)[:, 0]
        x = torch.empty(num_samples, self.num_variables, dtype=torch.long)
        for i in range(self.num_variables):
            if i > 0:
                hidden = torch.multinomial(self.transition[hidden], 1, generator=generator)[:, 0]
            x[:, i] = torch.multinomial(self.emission[hidden], 1, generator=generator)[:, 0]
        return x


class EnumeratedTarget:
    """A distribution over all ``K^D`` states, given their ``log p`` (normalised here).

    Parameters
    ----------
    states:
        ``(K^D, D)`` int codes (e.g. from :func:`marginkit.mam.ising.all_states`).
    log_probs:
        ``(K^D,)`` log-probabilities or unnormalised log-densities.
    """

    def __init__(self, states: torch.Tensor, log_probs: torch.Tensor, num_categories: int) -> None:
        self.states = states
        self.log_probs = log_probs.double() - torch.logsumexp(log_probs.double(), 0)
        self.num_categories = num_categories
        self.num_variables = states.shape[1]

    def log_marginal(self, values: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(x_S)`` ``(batch,)`` by summing the matching states (chunked)."""
        check_query(values, observed, self.num_categories, self.num_variables)
        out = []
        for start in range(0, len(values), 64):
            v, o = values[start : start + 64], observed[start : start + 64]
            mismatch = ((self.states[None] != v[:, None]) & o[:, None]).any(-1)
            masked = torch.where(mismatch, float("-inf"), self.log_probs[None])
            out.append(torch.logsumexp(masked, dim=-1))
        return torch.cat(out)

    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact samples ``(num_samples, D)``."""
        index = torch.multinomial(self.log_probs.exp(), num_samples, True, generator=generator)
        return self.states[index]


def fit_independent(x: torch.Tensor, num_categories: int) -> torch.Tensor:
    """Product-of-categoricals baseline with add-one smoothing: ``log p_i(k)`` ``(D, K)``.

    ``p_i(k) = (count_i(k) + 1) / (N + K)``: the exact one-pass marginal floor.
    """
    x = check_values(x, num_categories)
    counts = torch.nn.functional.one_hot(x, num_categories).sum(0).double() + 1.0
    return (counts / counts.sum(-1, keepdim=True)).log()


def independent_log_marginal(
    log_table: torch.Tensor, values: torch.Tensor, observed: torch.Tensor
) -> torch.Tensor:
    """``log p(x_S) = sum_{i in S} log p_i(x_i)`` under :func:`fit_independent`."""
    positions = torch.arange(log_table.shape[0], device=values.device)
    picked = log_table[positions, values.clamp(0, log_table.shape[1] - 1)]
    return torch.where(observed, picked, 0.0).sum(-1)
