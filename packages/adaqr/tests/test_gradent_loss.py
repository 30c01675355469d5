import math

import pytest
import torch

from marginkit.gradent.losses import preference_loss


def test_dpo_loss_from_gradent_matches_hand_values():
    # log pi(y_w) -10, ref -12; log pi(y_l) -11, ref -10: bracket 3, h = 0.3
    chosen, rejected = torch.tensor([-10.0], requires_grad=True), torch.tensor([-11.0])
    out = preference_loss(
        "dpo",
        chosen,
        rejected,
        reference_chosen_logps=torch.tensor([-12.0]),
        reference_rejected_logps=torch.tensor([-10.0]),
        beta=0.1,
    )
    assert float(out.loss) == pytest.approx(math.log1p(math.exp(-0.3)), abs=1e-6)
    assert float(out.loss) == pytest.approx(0.554355, abs=1e-6)
    out.loss.backward()
    # dL/dh = -sigmoid(-h) = -0.425557; dh/d log pi(y_w) = beta
    assert float(chosen.grad) == pytest.approx(-0.425557 * 0.1, abs=1e-6)


def test_dpo_loss_is_ln2_when_policy_equals_reference():
    logps = torch.tensor([-5.0, -7.0])
    out = preference_loss(
        "dpo", logps, logps + 1, reference_chosen_logps=logps, reference_rejected_logps=logps + 1
    )
    assert float(out.loss) == pytest.approx(math.log(2), abs=1e-6)
