"""Training objectives: any-order autoregressive (AO-ARM), self-consistency (SC), and the
energy-based KL (REINFORCE with a standardised advantage) and regression objectives.

Every function takes ``network``, a callable ``network(values, observed, output)`` such as
:class:`marginkit.mam.model.MarginalizationModel` (possibly wrapped by ``accelerate``),
returning log-probabilities ``(B, D, K)`` for ``output="logits"`` and ``f_theta``
``(B,)`` for ``output="score"``. Orders: ``order[b, t]`` is the variable revealed at step
``t`` and ``rank[b, j]`` the step of variable ``j`` (``rank = argsort(order)``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

logger = logging.getLogger(__name__)
EPSILON = 1.1920929e-07  # float32 machine epsilon, as in the reference advantage


def random_orders(
    batch: int, num_variables: int, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """An independent uniform permutation per row, ``order`` ``(batch, D)``."""
    keys = torch.rand(batch, num_variables, generator=generator)
    return keys.argsort(dim=-1).to(device)


def ranks_from_orders(order: torch.Tensor) -> torch.Tensor:
    """``rank[b, order[b, t]] = t``."""
    return order.argsort(dim=-1)


def check_finite(tensor: torch.Tensor, what: str, step: int | None = None) -> None:
    """Raise ``FloatingPointError`` naming the quantity (and step) when non-finite."""
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = tensor[~finite].flatten()[0].item()
        where = f" at step {step}" if step is not None else ""
        raise FloatingPointError(f"{what} is not finite{where} (found {bad})")


def aoarm_loss(
    network: Callable, x: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage-1 AO-ARM objective in one pass.

    Draw an order ``sigma`` and ``t ~ U{0..D-1}``; observe ``O = order[:t]``, predict the
    other ``D - t``:

    .. math:: \\hat\\ell(x) = \\frac{D}{D-t} \\sum_{i \\notin O} \\log p_\\phi(x_i | x_O),

    an unbiased estimate of ``E_sigma log p_phi(x | sigma)``.

    Returns
    -------
    loss:
        ``-mean_b ell_b / D`` (per-dimension nats), a scalar.
    ell:
        ``(batch,)`` the estimates in nats.
    """
    batch, num_variables = x.shape
    rank = ranks_from_orders(random_orders(batch, num_variables, generator, x.device))
    steps = torch.randint(0, num_variables, (batch,), generator=generator).to(x.device)
    observed = rank < steps[:, None]
    log_probs = network(x, observed, output="logits")
    check_finite(log_probs, "conditional log-probabilities")
    picked = log_probs.gather(-1, x[..., None])[..., 0]
    total = torch.where(observed, 0.0, picked).sum(-1)
    ell = total * num_variables / (num_variables - steps).float()
    return -ell.mean() / num_variables, ell


def self_consistency_errors(
    network: Callable,
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    conditional_grad: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One self-consistency error per row and ``f_theta(empty)``.

    Each row draws ``(sigma, d)`` with ``d ~ U{1..D}``; ``P = order[:d-1]``,
    ``j = order[d-1]``, ``C = P u {j}``:

    .. math:: e_b = f_\\theta(x_C) - f_\\theta(x_P) - \\log p_\\phi(x_j | x_P).

    Rows ``P``, ``C`` and one all-"?" row go through ``f_theta`` in one batch.

    Parameters
    ----------
    conditional_grad:
        ``False`` freezes ``p_phi`` (stage 2 of maximum likelihood).

    Returns
    -------
    errors:
        ``(batch,)``.
    empty_score:
        scalar ``f_theta(empty)``.
    """
    batch, num_variables = x.shape
    order = random_orders(batch, num_variables, generator, x.device)
    rank = ranks_from_orders(order)
    step = torch.randint(1, num_variables + 1, (batch,), generator=generator).to(x.device)
    previous = rank < (step - 1)[:, None]
    current = rank < step[:, None]
    revealed = order.gather(1, (step - 1)[:, None])[:, 0]

    empty = torch.zeros_like(previous[:1])
    scores = network(
        torch.cat([x, x, x[:1]]), torch.cat([previous, current, empty]), output="score"
    )
    check_finite(scores, "f_theta")
    with torch.set_grad_enabled(conditional_grad and torch.is_grad_enabled()):
        log_probs = network(x, previous, output="logits")
    check_finite(log_probs, "conditional log-probabilities")
    rows = torch.arange(batch, device=x.device)
    log_step = log_probs[rows, revealed, x[rows, revealed]]
    errors = scores[batch : 2 * batch] - scores[:batch] - log_step
    return errors, scores[-1]


def sc_penalty(
    error_sets: list[torch.Tensor],
    empty_score: torch.Tensor,
    num_variables: int,
    begin_target: float = 0.0,
) -> torch.Tensor:
    """Self-consistency penalty over one or more sources ``q`` of states.

    .. math:: L = D \\cdot \\frac{1}{|Q|}\\sum_{q} \\mathrm{mean}_b\\, e_{q,b}^2
              + (f_\\theta(\\emptyset) - c)^2

    (the begin term is not multiplied by ``D``).
    """
    step_term = torch.stack([errors.pow(2).mean() for errors in error_sets]).mean()
    return num_variables * step_term + (empty_score - begin_target) ** 2


def standardized_advantage(
    reward: torch.Tensor, mode: str = "standardize", epsilon: float = EPSILON
) -> torch.Tensor:
    """``A_b = (r_b - mean r) / (std_{B-1} r + eps)`` (``mode="center"``: no division).

    Examples
    --------
    >>> standardized_advantage(torch.tensor([1.0, 2.0, 3.0, 6.0])).round(decimals=6).tolist()
    [-0.92582, -0.46291, 0.0, 1.38873]
    """
    if reward.numel() < 2:
        raise ValueError("the advantage needs a batch of at least 2 samples")
    centred = reward - reward.mean()
    if mode == "center":
        return centred
    if mode != "standardize":
        raise ValueError(f"advantage mode {mode!r} must be 'standardize' or 'center'")
    return centred / (reward.std(unbiased=True) + epsilon)


def clean_log_f(log_f: torch.Tensor, floor: float | None, step: int | None = None) -> torch.Tensor:
    """Check user log-densities; with ``floor`` replace ``-inf`` / values below it by it.

    An invalid sample (``log f = -inf``) would otherwise turn the batch statistics of the
    advantage into NaN; a finite floor keeps it as a strongly penalised sample.
    """
    if torch.isnan(log_f).any() or torch.isposinf(log_f).any():
        raise FloatingPointError(f"log f returned NaN or +inf at step {step}")
    if floor is not None:
        return log_f.clamp(min=floor)
    check_finite(log_f, "log f (pass log_f_floor to clip invalid samples)", step)
    return log_f


def eb_kl_loss(
    network: Callable,
    samples: torch.Tensor,
    log_f: torch.Tensor,
    alpha: float = 4.0,
    begin_target: float = 0.0,
    advantage: str = "standardize",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Energy-based KL objective on buffer samples ``(B, D)`` with ``log f`` ``(B,)``.

    .. math:: r_b = \\mathrm{sg}\\, f_\\theta(x_b) - \\log f(x_b), \\quad
              L = \\mathrm{mean}_b A_b f_\\theta(x_b)
                  + \\alpha (D\\, \\mathrm{mean}_b e_b^2 + (f_\\theta(\\emptyset) - c)^2)

    Because ``sum_b A_b = 0`` the gradient of ``f_theta(empty)`` cancels in the first term,
    so ``f_theta`` may stay unnormalised and ``c`` does not enter the KL gradient.
    """
    # Limitation: samples come from p_phi, not p_theta, and are not importance-weighted
    # (no self-normalised weights exp(log p_theta - log p_phi(x|sigma))).
    num_variables = samples.shape[1]
    scores = network(samples, torch.ones_like(samples, dtype=torch.bool), output="score")
    check_finite(scores, "f_theta on samples")
    reward = scores.detach() - log_f
    weights = standardized_advantage(reward, advantage)
    errors, empty_score = self_consistency_errors(network, samples, generator)
    penalty = sc_penalty([errors], empty_score, num_variables, begin_target)
    loss = (weights * scores).mean() + alpha * penalty
    stats = {
        "loss/kl_surrogate": (weights * scores).mean().item(),
        "loss/sc": penalty.item(),
        "eb/adv_std": float(reward.std()),
    }
    return loss, stats


def eb_regression_loss(
    network: Callable,
    pseudo: torch.Tensor,
    log_f_pseudo: torch.Tensor,
    buffer: torch.Tensor,
    log_z: torch.Tensor,
    alpha: float = 4.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Squared regression onto ``log f`` with a learnable ``log Z``.

    .. math:: L = \\alpha\\big(D\\,\\tfrac12(\\mathrm{mean}\\,e^2(x')
              + \\mathrm{mean}\\,e^2(\\mathrm{buf})) + (f_\\theta(\\emptyset) - \\ell_Z)^2\\big)
              + \\tfrac12 \\mathrm{mean}_b (f_\\theta(x'_b) - \\log f(x'_b))^2
    """
    num_variables = pseudo.shape[1]
    scores = network(pseudo, torch.ones_like(pseudo, dtype=torch.bool), output="score")
    check_finite(scores, "f_theta on pseudo-data")
    errors_pseudo, empty_score = self_consistency_errors(network, pseudo, generator)
    errors_buffer, _ = self_consistency_errors(network, buffer, generator)
    step_term = 0.5 * (errors_pseudo.pow(2).mean() + errors_buffer.pow(2).mean())
    penalty = num_variables * step_term + (empty_score - log_z) ** 2
    regression = 0.5 * (scores - log_f_pseudo).pow(2).mean()
    loss = alpha * penalty + regression
    return loss, {"loss/regression": regression.item(), "loss/sc": penalty.item()}
