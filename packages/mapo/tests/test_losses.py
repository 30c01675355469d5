"""Loss values against closed forms and hand-computed cases."""

import math

import pytest
import torch

from marginkit.mapo.losses import (
    dpo_loss,
    implicit_accuracy,
    loss_metrics,
    mapo_link,
    mapo_loss,
    mapo_preset,
    per_row_mse,
    sft_loss,
)

OFFICIAL = mapo_preset("official")
PAPER_V2_PREFERENCE = mapo_preset("paper_v2", task="preference")


def _link_derivative(u: float) -> float:
    point = torch.tensor([u], requires_grad=True)
    mapo_link(point).sum().backward()
    return point.grad.item()


def test_link_is_exactly_one_at_zero_error():
    assert mapo_link(torch.zeros(3)).tolist() == [1.0, 1.0, 1.0]


def test_link_matches_closed_form_values():
    points = torch.tensor([1e-8, math.log(2.0), 1.0, 2.0, 10.0, 1000.0])
    expected = [
        1.0,
        math.log(2.0),  # ln2 / (2 - 1)
        1.0 / (math.e - 1.0),
        2.0 / (math.e**2 - 1.0),
        10.0 / (math.exp(10.0) - 1.0),
        0.0,
    ]
    values = mapo_link(points)
    assert torch.isfinite(values).all()
    assert abs(values[0].item() - 1.0) < 1e-7
    for value, target in zip(values.tolist()[1:], expected[1:], strict=True):
        assert value == pytest.approx(target, rel=1e-5, abs=1e-12)
    assert values[4].item() == pytest.approx(4.54020e-4, rel=1e-5)


@pytest.mark.parametrize(
    ("u", "expected"),
    [
        (0.0, -0.5),
        (math.log(2.0), 1.0 - 2.0 * math.log(2.0)),
        (1.0, -1.0 / (math.e - 1.0) ** 2),
        (2.0, -0.205513),
    ],
)
def test_link_derivative_matches_closed_form(u, expected):
    assert _link_derivative(u) == pytest.approx(expected, abs=2e-6)


@pytest.mark.parametrize("u", [0.0, 1e-8, 100.0, 1000.0])
def test_link_gradient_is_finite_at_zero_and_huge_error(u):
    assert math.isfinite(_link_derivative(u))


def test_link_stays_in_unit_interval_and_fp32_for_half_inputs():
    values = mapo_link(torch.linspace(0, 20, 101).half())
    assert values.dtype == torch.float32
    assert (values <= 1.0).all() and (values > 0).all()
    assert (values[1:] < values[:-1]).all()  # strictly decreasing


def test_mapo_loss_with_equal_errors_is_mean_plus_weight_times_ln2():
    ones = torch.ones(4)
    official = mapo_loss(ones, ones, **OFFICIAL)
    paper = mapo_loss(ones, ones, **PAPER_V2_PREFERENCE)
    assert official.loss.item() == pytest.approx(1.0693147, abs=1e-6)
    assert paper.loss.item() == pytest.approx(1.0866434, abs=1e-6)
    assert official.margin.tolist() == [0.0] * 4


@pytest.mark.parametrize(
    ("preset", "error", "expected_ratio"),
    [(OFFICIAL, 2.0, 8.467422), (PAPER_V2_PREFERENCE, 1.0, 0.169348)],
)
def test_margin_to_sft_gradient_ratio_at_zero_margin(preset, error, expected_ratio):
    chosen = torch.full((3,), error, requires_grad=True)
    rejected = torch.full((3,), error)
    mapo_loss(chosen, rejected, **preset).loss.backward()
    sft_gradient = 1.0 / 3.0
    ratio = (chosen.grad - sft_gradient) / sft_gradient  # both terms push L_w down
    assert ratio.tolist() == pytest.approx([expected_ratio] * 3, rel=1e-5)


def test_mapo_margin_rises_when_chosen_error_falls_or_rejected_error_rises():
    base = mapo_loss(torch.tensor([0.5]), torch.tensor([0.5]), margin_scale=10.0)
    lower_chosen = mapo_loss(torch.tensor([0.4]), torch.tensor([0.5]), margin_scale=10.0)
    higher_rejected = mapo_loss(torch.tensor([0.5]), torch.tensor([0.6]), margin_scale=10.0)
    assert lower_chosen.margin.item() > base.margin.item() > -1e-12
    assert higher_rejected.margin.item() > base.margin.item()
    assert lower_chosen.loss.item() < base.loss.item()
    assert higher_rejected.loss.item() < base.loss.item()


def test_mapo_loss_prefers_lower_chosen_error_in_gradient_sign():
    chosen = torch.tensor([0.3, 0.8, 0.05], requires_grad=True)
    rejected = torch.tensor([0.4, 0.2, 0.05], requires_grad=True)
    mapo_loss(chosen, rejected, **OFFICIAL).loss.backward()
    assert (chosen.grad > 0).all()  # descending lowers the chosen error
    assert (rejected.grad <= 0).all()  # and raises the rejected one


def test_mapo_margin_is_bounded_antisymmetric_and_loss_is_sandwiched():
    generator = torch.Generator().manual_seed(0)
    chosen = torch.rand(64, generator=generator) * 3
    rejected = torch.rand(64, generator=generator) * 3
    weight, scale = OFFICIAL["margin_weight"], OFFICIAL["margin_scale"]
    forward = mapo_loss(chosen, rejected, **OFFICIAL)
    backward = mapo_loss(rejected, chosen, **OFFICIAL)
    assert (forward.margin.abs() < scale).all()
    assert torch.allclose(forward.margin, -backward.margin)
    softplus_of_scale = scale + math.log1p(math.exp(-scale))
    assert chosen.mean().item() <= forward.loss.item()
    assert forward.loss.item() <= chosen.mean().item() + weight * softplus_of_scale


def test_mapo_loss_is_finite_at_zero_and_huge_errors():
    chosen = torch.tensor([0.0, 1e4, 0.0], requires_grad=True)
    rejected = torch.tensor([1e4, 0.0, 0.0], requires_grad=True)
    out = mapo_loss(chosen, rejected, **OFFICIAL)
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(chosen.grad).all()
    assert torch.isfinite(rejected.grad).all()
    assert out.margin.tolist() == pytest.approx([1000.0, -1000.0, 0.0], abs=1e-3)


def test_dpo_loss_is_ln2_with_half_accuracy_when_model_equals_reference():
    errors_w, errors_l = torch.tensor([0.2, 0.9, 0.4]), torch.tensor([0.5, 0.1, 0.4])
    out = dpo_loss(errors_w, errors_l, errors_w.clone(), errors_l.clone())
    assert out.loss.item() == pytest.approx(math.log(2.0), abs=1e-6)
    assert implicit_accuracy(out.margin).item() == 0.5


def test_dpo_loss_hand_computed_case():
    # delta = (0.1 - 0.2) - (0.3 - 0.3) = -0.1, a = -(10/2) * -0.1 = 0.5
    out = dpo_loss(
        torch.tensor([0.1]), torch.tensor([0.3]), torch.tensor([0.2]), torch.tensor([0.3]), 10.0
    )
    assert out.margin.item() == pytest.approx(0.5, abs=1e-6)
    assert out.loss.item() == pytest.approx(math.log1p(math.exp(-0.5)), abs=1e-6)
    assert implicit_accuracy(out.margin).item() == 1.0


def test_dpo_loss_ignores_a_constant_added_to_model_and_reference_chosen_errors():
    w, rej, rw, rl = (torch.tensor(v) for v in ([0.1, 0.5], [0.3, 0.2], [0.2, 0.4], [0.3, 0.3]))
    shifted = dpo_loss(w + 0.7, rej, rw + 0.7, rl, beta=2000.5)
    plain = dpo_loss(w, rej, rw, rl, beta=2000.5)
    assert shifted.loss.item() == pytest.approx(plain.loss.item(), rel=1e-4)


def test_dpo_loss_falls_when_chosen_error_falls():
    reference = torch.tensor([0.5])
    high = dpo_loss(torch.tensor([0.5]), torch.tensor([0.5]), reference, reference, beta=100.0)
    low = dpo_loss(torch.tensor([0.49]), torch.tensor([0.5]), reference, reference, beta=100.0)
    assert low.loss.item() < high.loss.item()
    assert low.margin.item() == pytest.approx(0.5, abs=1e-5)  # -(100/2) * -0.01


def test_sft_loss_is_mean_chosen_error():
    assert sft_loss(torch.tensor([1.0, 2.0, 6.0])).loss.item() == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("chosen", "rejected", "message"),
    [
        (torch.ones(2, 2), torch.ones(2, 2), "1-D"),
        (torch.ones(3), torch.ones(4), "same shape"),
        (torch.ones(0), torch.ones(0), "non-empty"),
    ],
)
def test_malformed_error_rows_are_rejected(chosen, rejected, message):
    with pytest.raises(ValueError, match=message):
        mapo_loss(chosen, rejected)
    with pytest.raises(ValueError, match=message):
        dpo_loss(chosen, rejected, chosen, rejected)


def test_per_row_mse_averages_over_channels_and_pixels():
    prediction = torch.zeros(2, 1, 2, 2)
    target = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[2.0, 0.0], [0.0, 0.0]]]])
    assert per_row_mse(prediction, target).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="shape"):
        per_row_mse(prediction, target[:, :, :1])


def test_metrics_count_saturated_pairs_and_percentiles():
    out = mapo_loss(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0]), **OFFICIAL)
    metrics = loss_metrics(out, "mapo")
    # pair 0: m = 1000 * (1 - g(0.5)) = 1000 * (1 - 0.770747) > 5; pair 1: m = 0
    assert metrics["margin/saturated_fraction"] == 0.5
    assert metrics["margin/mean"] == pytest.approx(1000 * (1 - 0.5 / math.expm1(0.5)) / 2, rel=1e-5)


def test_presets_follow_official_code_and_paper_table():
    assert mapo_preset("official") == {
        "score_scale": 0.5,
        "margin_scale": 1000.0,
        "margin_weight": 0.1,
    }
    assert mapo_preset("paper_v2", task="personalization")["margin_scale"] == 1024.0
    with pytest.raises(ValueError, match="preset"):
        mapo_preset("orpo")
    with pytest.raises(ValueError, match="task"):
        mapo_preset("paper_v2", task="cooking")
