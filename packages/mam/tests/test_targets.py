import math

import pytest
import torch

from marginkit.mam.chains import EnumeratedTarget, HiddenMarkovChain, PottsChain
from marginkit.mam.ising import IsingLattice, all_states


def _partial(D, assignment):
    values = torch.zeros(1, D, dtype=torch.long)
    observed = torch.zeros(1, D, dtype=torch.bool)
    for index, value in assignment.items():
        values[0, index] = value
        observed[0, index] = True
    return values, observed


def test_ising_log_f_matches_hand_values_for_uniform_and_checkerboard_lattices():
    lattice = IsingLattice(4)
    ones = torch.ones(1, 16, dtype=torch.long)
    checker = ((torch.arange(4)[:, None] + torch.arange(4)[None]) % 2).reshape(1, 16)
    assert lattice.log_f(ones).item() == pytest.approx(9.6, abs=1e-5)
    assert lattice.log_f(torch.zeros_like(ones)).item() == pytest.approx(3.2, abs=1e-5)
    assert lattice.log_f(checker).item() == pytest.approx(-6.4, abs=1e-5)
    assert IsingLattice(3).log_f(torch.ones(1, 9, dtype=torch.long)).item() == pytest.approx(5.4)


def test_ising_4x4_enumeration_matches_reference_values():
    lattice = IsingLattice(4)
    states, log_p = lattice.enumerate()
    target = EnumeratedTarget(states, log_p, 2)
    assert torch.logsumexp(lattice.log_f(states).double(), 0).item() == pytest.approx(
        12.598503, abs=1e-5
    )
    assert -(log_p.double().exp() * log_p.double()).sum().item() == pytest.approx(
        8.681267, abs=1e-4
    )
    assert target.log_marginal(*_partial(16, {5: 1})).exp().item() == pytest.approx(
        0.740003, abs=1e-5
    )
    pair = target.log_marginal(*_partial(16, {0: 1, 1: 1})).exp().item()
    assert pair == pytest.approx(0.583019, abs=1e-5)
    row = target.log_marginal(*_partial(16, {0: 1, 1: 1, 2: 1, 3: 1})).item()
    assert row == pytest.approx(-0.960450, abs=1e-5)
    assert log_p[-1].item() == pytest.approx(-2.998503, abs=1e-5)


@pytest.mark.parametrize("n", [3, 4])
def test_transfer_matrix_log_z_equals_enumeration(n):
    lattice = IsingLattice(n)
    states = all_states(n * n, 2)
    exact = torch.logsumexp(lattice.log_f(states).double(), 0).item()
    assert lattice.log_partition() == pytest.approx(exact, abs=1e-6)


def test_transfer_matrix_reproduces_10x10_log_z_entropy_and_magnetisation():
    lattice = IsingLattice(10)
    assert lattice.log_partition() == pytest.approx(78.688056, abs=1e-5)
    assert lattice.entropy() == pytest.approx(54.295826, abs=1e-4)
    assert lattice.mean_magnetisation() == pytest.approx(0.741861, abs=1e-5)
    assert IsingLattice(6).log_partition() == pytest.approx(28.328207, abs=1e-5)
    assert IsingLattice(8).log_partition() == pytest.approx(50.360385, abs=1e-5)
    assert IsingLattice(3).entropy() == pytest.approx(4.875039, abs=1e-4)


def test_gibbs_reference_mean_is_within_three_standard_errors_of_exact():
    lattice = IsingLattice(10)
    samples = lattice.gibbs_samples(200, 300, torch.Generator().manual_seed(0)).float()
    chain_means = samples.mean(-1)
    standard_error = chain_means.std() / math.sqrt(len(chain_means))
    assert abs(chain_means.mean().item() - 0.741861) < 3 * standard_error.item()


def test_potts_chain_matches_closed_form_log_z_and_marginals():
    chain = PottsChain(32, 4, coupling=1.0)
    assert chain.log_partition() == pytest.approx(math.log(4) + 31 * math.log(math.e + 3), abs=1e-6)
    assert chain.log_partition() == pytest.approx(55.440014, abs=1e-5)
    values, observed = _partial(32, {0: 0, 3: 0, 10: 2})
    assert chain.log_marginal(values, observed).exp().item() == pytest.approx(0.016893, abs=1e-6)


def test_potts_chain_marginal_equals_enumeration_at_d6():
    chain = PottsChain(6, 4, coupling=1.0)
    states = all_states(6, 4)
    target = EnumeratedTarget(states, chain.log_f(states), 4)
    values, observed = _partial(6, {0: 0, 3: 0, 5: 2})
    assert target.log_marginal(values, observed).exp().item() == pytest.approx(0.0153711, abs=1e-6)
    assert chain.log_marginal(values, observed).exp().item() == pytest.approx(0.0153711, abs=1e-6)


def test_binary_potts_chain_is_the_ising_chain():
    beta, D = 0.5, 64
    chain = PottsChain(D, 2, coupling=2 * beta)  # beta s s' = 2 beta 1[x = x'] - beta
    assert chain.log_partition() - (D - 1) * beta == pytest.approx(51.928633, abs=1e-5)
    samples = chain.sample(40000, torch.Generator().manual_seed(1))
    spins = 2.0 * samples - 1
    correlation = (spins[:, 0] * spins[:, 5]).mean().item()
    assert correlation == pytest.approx(math.tanh(beta) ** 5, abs=0.015)


def test_potts_chain_samples_follow_the_pair_law():
    chain = PottsChain(8, 3, coupling=1.0)
    lam = (math.e - 1) / (math.e + 2)
    samples = chain.sample(30000, torch.Generator().manual_seed(0))
    same = (samples[:, 2] == samples[:, 4]).float().mean().item()
    assert same == pytest.approx(lam**2 + (1 - lam**2) / 3, abs=0.01)


def test_hmm_marginals_match_hand_computed_values():
    hmm = HiddenMarkovChain(
        [0.6, 0.4], [[0.7, 0.3], [0.2, 0.8]], [[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]], 6
    )
    assert hmm.log_marginal(*_partial(6, {1: 1})).exp().item() == pytest.approx(0.35)
    assert hmm.log_marginal(*_partial(6, {0: 2})).exp().item() == pytest.approx(0.30)
    full = hmm.log_prob(torch.tensor([[0, 1, 2, 2, 0, 1]])).exp().item()
    assert full == pytest.approx(0.0012356473, rel=1e-7)
    joint = hmm.log_marginal(*_partial(6, {0: 2, 2: 2, 5: 0})).exp().item()
    given = hmm.log_marginal(*_partial(6, {0: 2, 2: 2})).exp().item()
    assert joint == pytest.approx(0.031125, abs=1e-6)
    assert joint / given == pytest.approx(0.244118, abs=1e-6)
    assert hmm.log_prob(all_states(6, 3)).exp().sum().item() == pytest.approx(1.0, abs=1e-12)
