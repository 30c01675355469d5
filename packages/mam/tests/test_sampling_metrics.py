import pytest
import torch

from marginkit.mam.metrics import (
    aoarm_log_likelihood,
    correlation_filter,
    exact_metrics,
    mixture_of_orders,
)
from marginkit.mam.sampling import (
    ancestral_sample,
    censor_and_resample,
    inpaint,
    ratio_sample,
)

N = 6000


def _empirical(states_index, count):
    return torch.bincount(states_index, minlength=count).double() / len(states_index)


def _index(x, K):
    powers = K ** torch.arange(x.shape[1] - 1, -1, -1)
    return (x * powers).sum(-1)


def test_ancestral_samples_follow_the_exact_target_and_report_its_log_prob(
    exact_network, random_target
):
    network = exact_network(random_target, 3, 3)
    x, log_q = ancestral_sample(network, N, 3, torch.Generator().manual_seed(0))
    empirical = _empirical(_index(x, 3), 27)
    assert (empirical - random_target.exp()).abs().sum().item() / 2 < 0.04
    assert torch.allclose(log_q, random_target[_index(x, 3)].float(), atol=1e-4)


def test_ratio_sampler_follows_the_marginal_network(exact_network, random_target):
    network = exact_network(random_target, 3, 3, slope=0.7)  # slope cancels in the ratios
    x, log_q = ratio_sample(network, N, 3, 3, torch.Generator().manual_seed(0))
    empirical = _empirical(_index(x, 3), 27)
    assert (empirical - random_target.exp()).abs().sum().item() / 2 < 0.04
    assert torch.allclose(log_q, random_target[_index(x, 3)].float(), atol=1e-4)


def test_inpainting_keeps_evidence_and_samples_the_conditional(exact_network, random_target):
    network = exact_network(random_target, 3, 3)
    values = torch.tensor([[2, 0, 0]]).expand(N, 3)
    observed = torch.tensor([[True, False, False]]).expand(N, 3)
    filled = inpaint(network, values, observed, torch.Generator().manual_seed(0))
    assert (filled[:, 0] == 2).all()
    conditional = random_target.view(3, 9)[2].exp()
    conditional = conditional / conditional.sum()
    empirical = _empirical(_index(filled[:, 1:], 3), 9)
    assert (empirical - conditional).abs().sum().item() / 2 < 0.04


def test_censor_and_resample_leaves_the_target_invariant(exact_network, random_target):
    network = exact_network(random_target, 3, 3)
    start = network.target.sample(N, torch.Generator().manual_seed(0))
    refreshed = censor_and_resample(network, start, 2, torch.Generator().manual_seed(1))
    empirical = _empirical(_index(refreshed, 3), 27)
    assert (empirical - random_target.exp()).abs().sum().item() / 2 < 0.04
    with pytest.raises(ValueError, match="num_resampled"):
        censor_and_resample(network, start, 0)


def test_order_ensemble_mixes_likelihoods_not_log_likelihoods():
    assert mixture_of_orders(torch.tensor([-3.0, -5.0])).item() == pytest.approx(
        -3.566219, abs=1e-6
    )


def test_aoarm_likelihood_of_exact_conditionals_is_the_exact_marginal(exact_network, random_target):
    network = exact_network(random_target, 3, 3)
    values = torch.tensor([[0, 1, 2], [2, 2, 1], [1, 0, 0]])
    observed = torch.tensor([[True, False, True], [True, True, True], [False, True, False]])
    truth = network.target.log_marginal(values, observed).float()
    for orders in (1, 4):
        estimate = aoarm_log_likelihood(network, values, observed, orders)
        assert torch.allclose(estimate, truth, atol=1e-4)


def test_correlation_filter_keeps_items_more_than_tau_apart():
    scores = torch.tensor([0.0, -0.5, -3.0, -6.0, -6.2, -20.0])
    assert scores[correlation_filter(scores, 5.0)].tolist() == [0.0, -6.0, -20.0]


def test_exact_metrics_see_an_unnormalised_but_consistent_score(exact_network, random_target):
    # f = log p*(x_S) + 0.5 |S|: p_hat = p*, log p_theta(x_S) = log p*(x_S) + 0.5 |S|.
    network = exact_network(random_target, 3, 3, slope=0.5)

    class Wrapped:
        num_variables, num_categories = 3, 3
        score = staticmethod(network.score)

        def log_marginal(self, values, observed):
            return network.score(values, observed) - network.score(values[:1], observed[:1] & False)

    generator = torch.Generator().manual_seed(0)
    sizes = []

    def truth(values, observed):
        sizes.append(observed.sum(-1).double())
        return network.target.log_marginal(values, observed)

    results = exact_metrics(Wrapped(), network.states, random_target, truth, 128, generator)
    assert results["exact/kl_model_true"] == pytest.approx(0.0, abs=1e-6)
    assert results["exact/kl_true_model"] == pytest.approx(0.0, abs=1e-6)
    assert results["exact/norm_gap"] == pytest.approx(1.5, abs=1e-5)
    assert results["exact/marg_mae"] == pytest.approx(0.5 * sizes[0].mean().item(), abs=1e-5)


def test_energy_metrics_of_an_exact_model_recover_log_z_and_zero_gap(exact_network):
    from marginkit.mam.ising import IsingLattice
    from marginkit.mam.metrics import energy_metrics

    lattice = IsingLattice(3)
    _, log_p = lattice.enumerate()
    network = exact_network(log_p, 9, 2)
    results = energy_metrics(
        network, lattice.log_f, 64, log_z=7.115373, generator=torch.Generator().manual_seed(0)
    )
    # log p*(x) - log f(x) = -log Z for every sample, so "KL - log Z" is exactly -log Z.
    assert results["eb/kl_minus_log_z"] == pytest.approx(-7.115373, abs=1e-4)
    assert results["eb/kl"] == pytest.approx(0.0, abs=1e-4)
    assert results["eb/log_z_is"] == pytest.approx(7.115373, abs=1e-4)
    assert results["eb/theta_phi_gap"] == pytest.approx(0.0, abs=1e-4)


def test_marginal_error_by_size_is_zero_for_exact_marginals(exact_network, random_target):
    from marginkit.mam.metrics import marginal_error_by_size

    network = exact_network(random_target, 3, 3)
    x = network.target.sample(32, torch.Generator().manual_seed(0))
    errors = marginal_error_by_size(network, x, network.target.log_marginal, [1, 2], num_orders=2)
    assert max(errors.values()) < 1e-4
    assert sorted(errors) == sorted(
        f"marg/abs_err_{kind}@{size}" for kind in ("mam", "aoarm_e") for size in (1, 2)
    )
