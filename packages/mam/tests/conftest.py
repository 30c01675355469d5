import pytest
import torch

from marginkit.mam.chains import EnumeratedTarget
from marginkit.mam.ising import all_states

torch.set_num_threads(1)


class ExactNetwork:
    """A stand-in for a trained model whose f and p_phi are exact for an enumerable target.

    ``score(x_S) = log p*(x_S) + slope * |S|`` and ``p_phi(x_i=k | x_S) = p*(x_S, x_i=k) /
    p*(x_S)``, both by enumeration, so every identity of the method holds exactly.
    """

    def __init__(
        self, log_probs: torch.Tensor, num_variables: int, num_categories: int, slope: float = 0.0
    ):
        self.states = all_states(num_variables, num_categories)
        self.target = EnumeratedTarget(self.states, log_probs, num_categories)
        self.num_variables = num_variables
        self.num_categories = num_categories
        self.slope = slope

    def parameters(self):
        yield torch.zeros(())

    def log_marginal(self, values, observed):
        empty = torch.zeros_like(observed[:1])
        return self.score(values, observed) - self.score(values[:1], empty)

    def score(self, values, observed):
        return (self.target.log_marginal(values, observed) + self.slope * observed.sum(-1)).float()

    def __call__(self, values, observed, output="logits"):
        if output == "score":
            return self.score(values, observed)
        batch, D = values.shape
        K = self.num_categories
        out = torch.empty(batch, D, K)
        base = self.target.log_marginal(values, observed)
        for i in range(D):
            for k in range(K):
                v = values.clone()
                o = observed.clone()
                v[:, i] = k
                o[:, i] = True
                out[:, i, k] = (self.target.log_marginal(v, o) - base).float()
        return torch.where(torch.isfinite(out), out, torch.full_like(out, -1e9))


@pytest.fixture
def exact_network():
    return ExactNetwork


@pytest.fixture
def random_target():
    """A random distribution over {0,1,2}^3 with every state possible."""
    generator = torch.Generator().manual_seed(0)
    return torch.log_softmax(torch.randn(27, generator=generator) * 1.5, 0)
