import itertools
import math

import pytest
import torch

from marginkit.mam.losses import (
    aoarm_loss,
    clean_log_f,
    sc_penalty,
    self_consistency_errors,
    standardized_advantage,
)
from marginkit.mam.model import MarginalizationModel, NetworkConfig


class LinearScore:
    """f(x_S) = a|S| + b and zero logits (uniform conditionals)."""

    def __init__(self, a, b, K):
        self.a, self.b, self.K = a, b, K

    def __call__(self, values, observed, output="logits"):
        if output == "score":
            return self.a * observed.sum(-1).float() + self.b
        return torch.log_softmax(torch.zeros(*values.shape, self.K), -1)


def test_advantage_is_centred_and_divided_by_the_unbiased_std():
    advantage = standardized_advantage(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    expected = torch.tensor([-0.925820, -0.462910, 0.0, 1.388730])
    assert torch.allclose(advantage, expected, atol=1e-6)
    centred = standardized_advantage(torch.tensor([1.0, 2.0, 3.0, 6.0]), mode="center")
    assert centred.tolist() == [-2.0, -1.0, 0.0, 3.0]


def test_advantage_refuses_a_batch_of_one():
    with pytest.raises(ValueError, match="at least 2"):
        standardized_advantage(torch.tensor([1.0]))


@pytest.mark.parametrize("a, b, c", [(0.0, 1.0, 0.0), (0.3, -2.0, 1.5)])
def test_sc_loss_equals_closed_form_for_linear_score_and_uniform_conditionals(a, b, c):
    D, K = 4, 2
    network = LinearScore(a, b, K)
    x = torch.randint(0, K, (32, D))
    errors, empty = self_consistency_errors(network, x, torch.Generator().manual_seed(0))
    loss = sc_penalty([errors], empty, D, c)
    assert torch.allclose(errors, torch.full_like(errors, a + math.log(K)))
    assert loss.item() == pytest.approx(D * (a + math.log(K)) ** 2 + (b - c) ** 2, abs=1e-5)
    if (a, b, c) == (0.0, 1.0, 0.0):
        assert loss.item() == pytest.approx(2.921812, abs=1e-6)


def test_sc_errors_vanish_for_an_exactly_consistent_pair(exact_network, random_target):
    network = exact_network(random_target, 3, 3, slope=0.0)
    x = network.target.sample(64, torch.Generator().manual_seed(0))
    errors, empty = self_consistency_errors(network, x, torch.Generator().manual_seed(1))
    assert errors.abs().max().item() < 1e-5
    assert empty.item() == pytest.approx(0.0, abs=1e-6)


def test_sc_errors_detect_a_consistent_score_with_misaligned_conditionals(
    exact_network, random_target
):
    # Swapping the conditional of variable 0 with variable 1 breaks the pairing of (P, j).
    network = exact_network(random_target, 3, 3)

    def swapped(values, observed, output="logits"):
        out = network(values, observed, output)
        return out if output == "score" else out[:, [1, 0, 2]]

    x = network.target.sample(256, torch.Generator().manual_seed(0))
    errors, _ = self_consistency_errors(swapped, x, torch.Generator().manual_seed(1))
    assert errors.pow(2).mean().item() > 1e-2


def test_aoarm_estimate_of_a_context_free_model_averages_to_its_log_likelihood():
    # p(x_i = 1) = 0.75 independently; x = (1, 1, 0, 1): log p = 3 log .75 + log .25.
    def network(values, observed, output="logits"):
        return torch.log(torch.tensor([0.25, 0.75])).expand(*values.shape, 2)

    x = torch.tensor([[1, 1, 0, 1]]).expand(40000, 4)
    loss, ell = aoarm_loss(network, x, torch.Generator().manual_seed(0))
    assert ell.mean().item() == pytest.approx(-2.249341, abs=0.02)
    assert loss.item() == pytest.approx(-ell.mean().item() / 4, abs=1e-6)


def test_aoarm_estimate_is_unbiased_for_the_order_averaged_likelihood_of_any_network():
    torch.manual_seed(0)
    model = MarginalizationModel(
        NetworkConfig(num_variables=3, num_categories=3, width=16, depth=1)
    )
    x = torch.tensor([[2, 0, 1]])
    exact = []
    with torch.no_grad():
        for order in itertools.permutations(range(3)):
            observed = torch.zeros(1, 3, dtype=torch.bool)
            total = 0.0
            for position in order:
                total += model(x, observed)[0, position, x[0, position]].item()
                observed[0, position] = True
            exact.append(total)
        _, ell = aoarm_loss(model, x.expand(60000, 3), torch.Generator().manual_seed(0))
    assert ell.mean().item() == pytest.approx(sum(exact) / len(exact), abs=0.02)


def test_non_finite_log_f_raises_unless_a_floor_is_given():
    log_f = torch.tensor([0.0, float("-inf"), 1.0])
    with pytest.raises(FloatingPointError, match="log f"):
        clean_log_f(log_f, None, step=3)
    assert clean_log_f(log_f, -50.0).tolist() == [0.0, -50.0, 1.0]
    with pytest.raises(FloatingPointError, match="NaN"):
        clean_log_f(torch.tensor([float("nan"), 0.0]), -50.0)


def test_non_finite_logits_raise_instead_of_training_on_nan():
    def network(values, observed, output="logits"):
        return torch.full((*values.shape, 2), float("nan"))

    with pytest.raises(FloatingPointError, match="conditional log-probabilities"):
        aoarm_loss(network, torch.zeros(4, 3, dtype=torch.long))
