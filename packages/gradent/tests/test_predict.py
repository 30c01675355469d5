"""Predicted first-order changes and cases on constructed gradient vectors."""

import pytest
import torch

from marginkit.gradent.losses import preference_loss
from marginkit.gradent.predict import TIE, case_fractions, grad_conditions, predict_changes

DT = torch.float64


def _predict(g_w, g_l, w_w, w_l, lr=1.0):
    g_w, g_l = torch.tensor(g_w, dtype=DT), torch.tensor(g_l, dtype=DT)
    t = lambda v: torch.tensor([v], dtype=DT)  # noqa: E731
    return predict_changes(
        t(float(g_w @ g_l)), t(float(g_w @ g_w)), t(float(g_l @ g_l)), t(w_w), t(w_l), lr
    )


@pytest.mark.parametrize(
    "g_w,g_l,weights,expected_w,expected_l,case",
    [
        ((1, 0), (2, 1), (1, 1), -1.0, -3.0, 2),  # ip 2 between n_w^2 1 and n_l^2 5: both down
        ((2, 1), (1, 0), (1, 1), 3.0, 1.0, 3),  # swapped: both up
        ((1, 0), (0, 1), (1, 1), 1.0, -1.0, 1),  # orthogonal: the intended case
        ((1, 0), (2, 1), (1, 0.25), 0.5, 0.75, 3),  # SimPO-like weights 1/|y|
        ((1, 0), (2, 1), (51, 1), 49.0, 97.0, 3),  # DPOP below its reference
        ((1, 0), (2, 1), (3, 1), 1.0, 1.0, 3),  # NLL adds 2 to the chosen weight
    ],
)
def test_predicted_changes_on_two_dimensional_vectors(
    g_w, g_l, weights, expected_w, expected_l, case
):
    out = _predict(g_w, g_l, *weights)
    assert out.delta_chosen.item() == pytest.approx(expected_w, abs=1e-12)
    assert out.delta_rejected.item() == pytest.approx(expected_l, abs=1e-12)
    assert out.case.item() == case


def test_margin_change_is_squared_norm_of_gradient_difference():
    out = _predict((1, 0), (2, 1), 1, 1)
    assert out.delta_margin.item() == pytest.approx(2.0, abs=1e-12)  # ||(1,0) - (2,1)||^2


def test_zero_weights_are_inactive_and_exact_zero_change_is_a_tie():
    assert _predict((1, 0), (2, 1), 0, 0).case.item() == 0
    # ip = n_w^2: the chosen change is exactly 0 with unit weights.
    assert _predict((1, 0), (1, 1), 1, 1).case.item() == TIE


def test_grad_condition_official_differs_from_intended_on_swapped_vectors():
    ip, nw2, nl2 = (torch.tensor([v], dtype=DT) for v in (2.0, 5.0, 1.0))
    conditions = grad_conditions(ip, nw2, nl2)
    assert conditions["grad_condition_official"] == pytest.approx(0.4)
    assert conditions["grad_condition"] == pytest.approx(2.0)


def test_random_vectors_with_positive_weights_never_give_case_four():
    generator = torch.Generator().manual_seed(0)
    g_w = torch.randn(10_000, 5, dtype=DT, generator=generator)
    g_l = torch.randn(10_000, 5, dtype=DT, generator=generator) * 3 + g_w
    w_w = torch.rand(10_000, dtype=DT, generator=generator) + 1e-3
    w_l = torch.rand(10_000, dtype=DT, generator=generator) + 1e-3
    # With m' = -1 the h' factors equal the weights: Delta z = eta ||w_w g_w - w_l g_l||^2.
    out = predict_changes(
        (g_w * g_l).sum(1), (g_w * g_w).sum(1), (g_l * g_l).sum(1), w_w, w_l, 0.3, w_w, w_l
    )
    assert not bool((out.case == 4).any())
    assert bool((out.delta_margin >= -1e-12).all())
    assert case_fractions(out.case)["case/chosen_down_rejected_up"] == 0.0


@pytest.mark.parametrize("name", ["dpo", "simpo"])
def test_dpo_and_simpo_cases_do_not_depend_on_step_size_or_beta(name):
    generator = torch.Generator().manual_seed(1)
    ip = torch.randn(200, dtype=DT, generator=generator) * 4
    nw2 = torch.rand(200, dtype=DT, generator=generator) * 8 + 0.1
    nl2 = torch.rand(200, dtype=DT, generator=generator) * 8 + 0.1
    u_w = -torch.rand(200, dtype=DT, generator=generator) * 10 - 1
    u_l = -torch.rand(200, dtype=DT, generator=generator) * 10 - 1
    kwargs = dict(
        reference_chosen_logps=u_w + 0.5,
        reference_rejected_logps=u_l - 0.5,
        chosen_lengths=torch.randint(1, 9, (200,), generator=generator),
        rejected_lengths=torch.randint(1, 9, (200,), generator=generator),
    )
    cases = []
    for beta, lr in ((0.1, 1.0), (2.0, 1e-3)):
        out = preference_loss(name, u_w, u_l, beta=beta, **kwargs)
        cases.append(predict_changes(ip, nw2, nl2, out.chosen_weight, out.rejected_weight, lr).case)
    assert torch.equal(cases[0], cases[1])
