"""First-order changes of both log-probs after one SGD step, and the entanglement cases.

For a pair with gradients ``g_w = grad u_w`` and ``g_l = grad u_l`` on the updated
parameters, inner product ``ip = <g_w, g_l>`` and weights ``w_w, w_l`` from the loss
(:mod:`marginkit.gradent.losses`), one SGD step of size ``eta`` on that pair's loss moves
``theta`` by ``eta (w_w g_w - w_l g_l)``, so to first order

.. math::  \\Delta u_w \\approx \\eta (w_w n_w^2 - w_l\\, ip), \\qquad
           \\Delta u_l \\approx \\eta (w_w\\, ip - w_l n_l^2).

Cases: 1 chosen up and rejected down (the intended one), 2 both down, 3 both up,
4 chosen down and rejected up (impossible for positive weights by Cauchy-Schwarz),
0 inactive (both weights 0), and :data:`TIE` when a change is zero to rounding.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

TIE = -1
CASE_NAMES = {
    0: "inactive",
    1: "chosen_up_rejected_down",
    2: "both_down",
    3: "both_up",
    4: "chosen_down_rejected_up",
    TIE: "tie",
}


@dataclasses.dataclass
class PredictedChanges:
    """Predicted first-order changes per pair, all ``(batch,)`` float64 tensors.

    ``delta_margin`` is ``h_w' Delta u_w - h_l' Delta u_l`` when the ``h'`` factors are given,
    else ``Delta u_w - Delta u_l``; ``case`` holds the codes of :data:`CASE_NAMES`.
    """

    delta_chosen: Tensor
    delta_rejected: Tensor
    delta_margin: Tensor
    case: Tensor


def predict_changes(
    inner_product: Tensor,
    chosen_sq_norm: Tensor,
    rejected_sq_norm: Tensor,
    chosen_weight: Tensor,
    rejected_weight: Tensor,
    learning_rate: float = 1.0,
    h_chosen_prime: Tensor | None = None,
    h_rejected_prime: Tensor | None = None,
    tie_tolerance: float = 1e-9,
) -> PredictedChanges:
    """First-order changes of ``u_w`` and ``u_l`` after one SGD step on each pair alone.

    Parameters
    ----------
    inner_product, chosen_sq_norm, rejected_sq_norm:
        ``<g_w, g_l>``, ``||g_w||^2``, ``||g_l||^2`` per pair, ``(batch,)``.
    chosen_weight, rejected_weight:
        ``w_w = -dl/du_w`` and ``w_l = dl/du_l`` per pair, ``(batch,)``.
    learning_rate:
        The SGD step ``eta``.
    h_chosen_prime, h_rejected_prime:
        Optional ``h'`` factors to turn log-prob changes into the loss margin's change.
    tie_tolerance:
        A change with ``|Delta| <= tol * eta (|w_w| + |w_l|) max(n_w^2, n_l^2)`` is a tie.

    Examples
    --------
    >>> t = lambda v: torch.tensor([v], dtype=torch.float64)
    >>> out = predict_changes(t(2.0), t(1.0), t(5.0), t(1.0), t(1.0))
    >>> out.delta_chosen.item(), out.delta_rejected.item(), out.case.item()
    (-1.0, -3.0, 2)
    """
    ip, nw2, nl2, ww, wl = (
        torch.as_tensor(x, dtype=torch.float64)
        for x in (inner_product, chosen_sq_norm, rejected_sq_norm, chosen_weight, rejected_weight)
    )
    delta_chosen = learning_rate * (ww * nw2 - wl * ip)
    delta_rejected = learning_rate * (ww * ip - wl * nl2)
    if h_chosen_prime is not None and h_rejected_prime is not None:
        delta_margin = h_chosen_prime.double() * delta_chosen - h_rejected_prime.double() * (
            delta_rejected
        )
    else:
        delta_margin = delta_chosen - delta_rejected
    return PredictedChanges(
        delta_chosen=delta_chosen,
        delta_rejected=delta_rejected,
        delta_margin=delta_margin,
        case=classify_cases(
            delta_chosen,
            delta_rejected,
            scale=abs(learning_rate) * (ww.abs() + wl.abs()) * torch.maximum(nw2, nl2),
            tolerance=tie_tolerance,
        ),
    )


def classify_cases(
    delta_chosen: Tensor, delta_rejected: Tensor, scale: Tensor, tolerance: float = 1e-9
) -> Tensor:
    """Case code per pair from the signs of the predicted changes, ``(batch,)`` int64.

    ``scale`` (``(batch,)``) sets the tie threshold; a pair with ``scale == 0`` (inactive
    weights or zero gradients) is case 0.
    """
    threshold = tolerance * scale
    up_w, down_w = delta_chosen > threshold, delta_chosen < -threshold
    up_l, down_l = delta_rejected > threshold, delta_rejected < -threshold
    case = torch.full(delta_chosen.shape, TIE, dtype=torch.int64)
    case[up_w & down_l] = 1
    case[down_w & down_l] = 2
    case[up_w & up_l] = 3
    case[down_w & up_l] = 4
    case[scale == 0] = 0
    return case


def case_fractions(case: Tensor) -> dict[str, float]:
    """Share of pairs in each case, ``{"case/both_down": 0.5, ...}``."""
    total = max(int(case.numel()), 1)
    return {
        f"case/{name}": float((case == code).sum().item()) / total
        for code, name in CASE_NAMES.items()
    }


def grad_conditions(
    inner_product: Tensor, chosen_sq_norm: Tensor, rejected_sq_norm: Tensor
) -> dict[str, float]:
    """Mean condition ratios over pairs with non-zero norms.

    ``grad_condition`` = mean ``ip / min(n_w^2, n_l^2)`` (DPO's case 1 needs it < 1);
    ``grad_condition_official`` = mean ``ip / n_w^2``, the value the entanglement paper's
    public code computes (its ``min(n_w^2, n_w^2)`` reads as a typo for the former).
    """
    ip = inner_product.double()
    nw2, nl2 = chosen_sq_norm.double(), rejected_sq_norm.double()
    valid = (nw2 > 0) & (nl2 > 0)
    if not bool(valid.any()):
        return {"grad_condition": float("nan"), "grad_condition_official": float("nan")}
    ip, nw2, nl2 = ip[valid], nw2[valid], nl2[valid]
    return {
        "grad_condition": (ip / torch.minimum(nw2, nl2)).mean().item(),
        "grad_condition_official": (ip / nw2).mean().item(),
    }
