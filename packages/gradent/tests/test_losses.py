"""Each loss against hand-computed values, and its closed-form weights against autograd.

Reference case (worked out by hand, float64): u_w = -10, u_l = -12, r_w = r_l = -11,
|y_w| = 5, |y_l| = 4, beta = 0.1. Then rho_w = 1, rho_l = -1, z = 2, mean log-probs
-2 and -3.
"""

import math

import pytest
import torch

from marginkit.gradent.losses import LOSS_NAMES, preference_loss

DT = torch.float64


def _softplus(x):
    return math.log1p(math.exp(x))


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _case(u_w=-10.0, u_l=-12.0):
    return dict(
        chosen_logps=torch.tensor([u_w], dtype=DT),
        rejected_logps=torch.tensor([u_l], dtype=DT),
        reference_chosen_logps=torch.tensor([-11.0], dtype=DT),
        reference_rejected_logps=torch.tensor([-11.0], dtype=DT),
        chosen_lengths=torch.tensor([5]),
        rejected_lengths=torch.tensor([4]),
    )


def _run(name, u_w=-10.0, u_l=-12.0, **kw):
    case = _case(u_w, u_l)
    return preference_loss(name, case.pop("chosen_logps"), case.pop("rejected_logps"), **case, **kw)


# (loss, hyperparameters, (u_w, u_l), expected loss, expected w_w, expected w_l)
HAND_VALUES = [
    ("dpo", {}, (-10, -12), _softplus(-0.2), 0.1 * _sigmoid(-0.2), 0.1 * _sigmoid(-0.2)),
    ("dpo", {"label_smoothing": 0.1}, (-10, -12), 0.618139, None, None),
    ("ipo", {}, (-10, -12), 9.0, 6.0, 6.0),
    ("ipo", {"average": True}, (-10, -12), 20.7025, 1.82, 2.275),
    ("hinge", {}, (-10, -12), 0.8, 0.1, 0.1),
    ("hinge", {"slic": True}, (-10, -12), 0.0, 0.0, 0.0),
    ("rdpo", {}, (-10, -12), math.log(2), 0.05, 0.05),
    ("rdpo", {"length_sign": -1.0}, (-10, -12), _softplus(-0.4), None, None),
    ("simpo", {}, (-10, -12), 0.913015, 0.011974, 0.014967),
    ("simpo", {"beta": 2.0, "gamma": 1.0}, (-10, -12), 0.313262, None, None),
    ("dpop", {}, (-10, -12), _softplus(-0.2), None, None),
    ("dpop", {}, (-12, -12), 5.006715, 5.065866, 0.099331),
    ("cpo", {}, (-10, -12), 2.598139, 0.245017, 0.045017),
    ("orpo", {}, (-10, -12), 2.028875, 0.205801, 0.006599),
    ("rrhf", {}, (-10, -12), 2.0, 0.2, 0.0),
    ("rrhf", {}, (-15, -8), 4.0, 1 / 5 + 1 / 5, 1 / 4),
    ("kto_pair", {"z0": 0.0}, (-10, -12), 0.950042, 0.024938, 0.024938),
]


@pytest.mark.parametrize(
    "name,hyper,logps,expected,w_w,w_l", HAND_VALUES, ids=[f"{c[0]}-{c[1]}" for c in HAND_VALUES]
)
def test_loss_matches_hand_computed_value(name, hyper, logps, expected, w_w, w_l):
    out = _run(name, *map(float, logps), **hyper)
    assert out.loss.item() == pytest.approx(expected, abs=1e-6)
    if w_w is not None:
        assert out.chosen_weight.item() == pytest.approx(w_w, abs=1e-6)
        assert out.rejected_weight.item() == pytest.approx(w_l, abs=1e-6)


def test_orpo_log_odds_match_hand_values():
    out = _run("orpo")
    assert out.decomposition.h_chosen.item() == pytest.approx(-1.854587, abs=1e-6)
    assert out.decomposition.h_rejected.item() == pytest.approx(-2.948931, abs=1e-6)


def test_dpo_margin_is_difference_of_reference_log_ratios():
    assert _run("dpo").margin.item() == pytest.approx(2.0, abs=1e-12)


def _random_batch(generator, batch=6):
    u_w = -torch.rand(batch, dtype=DT, generator=generator) * 20 - 1
    u_l = -torch.rand(batch, dtype=DT, generator=generator) * 20 - 1
    r_w = u_w + torch.randn(batch, dtype=DT, generator=generator) * 3
    r_l = u_l + torch.randn(batch, dtype=DT, generator=generator) * 3
    len_w = torch.randint(1, 12, (batch,), generator=generator)
    len_l = torch.randint(1, 12, (batch,), generator=generator)
    return u_w, u_l, r_w, r_l, len_w, len_l


AUTOGRAD_CASES = [(name, {}, None) for name in LOSS_NAMES] + [
    ("dpo", {"label_smoothing": 0.2}, None),
    ("ipo", {"average": True}, None),
    ("hinge", {"slic": True}, None),
    ("dpo", {}, 1.0),
    ("simpo", {}, 0.5),
    ("kto_pair", {"z0": 0.3}, None),
]


@pytest.mark.parametrize("nll_reduction", ["seq_mean", "seq_sum", "batch_token_mean"])
@pytest.mark.parametrize("name,hyper,nll_weight", AUTOGRAD_CASES)
def test_closed_form_weights_equal_autograd(name, hyper, nll_weight, nll_reduction):
    generator = torch.Generator().manual_seed(3)
    u_w, u_l, r_w, r_l, len_w, len_l = _random_batch(generator)
    u_w.requires_grad_(True)
    u_l.requires_grad_(True)
    out = preference_loss(
        name,
        u_w,
        u_l,
        reference_chosen_logps=r_w,
        reference_rejected_logps=r_l,
        chosen_lengths=len_w,
        rejected_lengths=len_l,
        nll_weight=nll_weight,
        nll_reduction=nll_reduction,
        **hyper,
    )
    grad_w, grad_l = torch.autograd.grad(out.per_pair_loss.sum(), (u_w, u_l))
    torch.testing.assert_close(out.chosen_weight, -grad_w, atol=1e-12, rtol=0)
    torch.testing.assert_close(out.rejected_weight, grad_l, atol=1e-12, rtol=0)


def test_batch_token_mean_nll_equals_mean_over_all_chosen_tokens():
    u_w = torch.tensor([-6.0, -2.0], dtype=DT)
    out = preference_loss(
        "cpo",
        u_w,
        torch.tensor([-7.0, -3.0], dtype=DT),
        chosen_lengths=torch.tensor([3, 1]),
        rejected_lengths=torch.tensor([2, 2]),
        nll_reduction="batch_token_mean",
    )
    # 4 chosen tokens with total log-prob -8: token-mean NLL 2.
    assert out.metrics["loss/nll"] == pytest.approx(2.0, abs=1e-12)


def test_loss_metrics_use_slash_names_and_floats():
    out = _run("dpo")
    assert out.metrics["logp/chosen"] == -10.0
    assert out.metrics["rewards/chosen"] == pytest.approx(0.1)
    assert out.metrics["rewards/accuracy"] == 1.0
    assert all(isinstance(v, float) for v in out.metrics.values())


def test_reduction_none_and_sum():
    u_w = torch.tensor([-1.0, -2.0], dtype=DT)
    u_l = torch.tensor([-3.0, -1.0], dtype=DT)
    per = preference_loss("cpo", u_w, u_l, nll_weight=0.0, reduction="none").loss
    expected = [_softplus(-0.2), _softplus(0.1)]
    assert per.tolist() == pytest.approx(expected, abs=1e-12)
    total = preference_loss("cpo", u_w, u_l, nll_weight=0.0, reduction="sum").loss
    assert total.item() == pytest.approx(sum(expected), abs=1e-12)


def test_mismatched_batch_sizes_raise_clear_error():
    with pytest.raises(ValueError, match="batch size 3"):
        preference_loss("cpo", torch.zeros(2) - 1, torch.zeros(3) - 1, nll_weight=0.0)


def test_nan_log_probs_raise_naming_the_pair():
    with pytest.raises(ValueError, match=r"NaN or infinite at pair\(s\) \[1\]"):
        preference_loss("cpo", torch.tensor([-1.0, float("nan")]), torch.tensor([-1.0, -2.0]))


def test_empty_response_length_raises():
    with pytest.raises(ValueError, match="empty response"):
        preference_loss(
            "simpo",
            torch.tensor([-1.0]),
            torch.tensor([-2.0]),
            chosen_lengths=torch.tensor([0]),
            rejected_lengths=torch.tensor([2]),
        )


def test_empty_batch_and_missing_reference_raise():
    with pytest.raises(ValueError, match="empty"):
        preference_loss("cpo", torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match="reference_chosen_logps"):
        preference_loss("dpo", torch.tensor([-1.0]), torch.tensor([-2.0]))


def test_unknown_loss_and_hyperparameter_raise():
    with pytest.raises(ValueError, match="unknown loss 'dpoo'"):
        preference_loss("dpoo", torch.tensor([-1.0]), torch.tensor([-2.0]))
    with pytest.raises(ValueError, match="no hyperparameter"):
        preference_loss("cpo", torch.tensor([-1.0]), torch.tensor([-2.0]), gama=1.0)


def test_orpo_probability_one_raises_naming_pair():
    with pytest.raises(ValueError, match=r"pair\(s\) \[0\]"):
        preference_loss(
            "orpo",
            torch.tensor([0.0]),
            torch.tensor([-2.0]),
            chosen_lengths=torch.tensor([2]),
            rejected_lengths=torch.tensor([2]),
        )


def test_importing_losses_does_not_import_transformers():
    import subprocess
    import sys

    code = "import sys, marginkit.gradent.losses; print('transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
