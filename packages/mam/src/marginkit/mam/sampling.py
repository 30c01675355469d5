"""Samplers: ancestral with ``p_phi`` (one variable per network pass), inpainting,
censor-and-resample refreshes, and the marginal-ratio sampler built from ``f_theta`` alone.

Only one variable is drawn per pass, so samples follow the model's joint
``p_phi(x | sigma) = prod_d p_phi(x_sigma(d) | x_sigma(<d))`` exactly; the default order is
uniformly random per row (greedy confidence orders are biased and not offered).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from marginkit.mam.losses import random_orders, ranks_from_orders


def _revealing_order(
    observed: torch.Tensor, order: str, generator: torch.Generator | None
) -> torch.Tensor:
    """Observed positions first, then the unobserved in random (or index) order."""
    batch, num_variables = observed.shape
    if order == "random":
        keys = torch.rand(batch, num_variables, generator=generator).to(observed.device)
    elif order == "fixed":
        keys = torch.arange(num_variables, device=observed.device).float().expand(batch, -1) + 1
        keys = keys / (num_variables + 1)
    else:
        raise ValueError(f"order={order!r} must be 'random' or 'fixed'")
    return torch.where(observed, -1.0, keys).argsort(dim=-1)


@torch.no_grad()
def complete(
    network: Callable,
    values: torch.Tensor,
    observed: torch.Tensor,
    generator: torch.Generator | None = None,
    order: str = "random",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill every unobserved position with ``p_phi``, one variable per pass.

    Parameters
    ----------
    values, observed:
        ``(batch, D)`` evidence; observed values are never changed.
    order:
        ``"random"`` (uniform per row) or ``"fixed"`` (index order ``0..D-1``).

    Returns
    -------
    samples:
        ``(batch, D)`` complete configurations.
    log_prob:
        ``(batch,)`` ``log p_phi(x_U | x_S, sigma)`` of the drawn values.
    """
    values, observed = values.clone(), observed.clone()
    batch = values.shape[0]
    rows = torch.arange(batch, device=values.device)
    sequence = _revealing_order(observed, order, generator)
    log_prob = torch.zeros(batch, device=values.device)
    start = int(observed.sum(-1).min())
    for step in range(start, values.shape[1]):
        position = sequence[:, step]
        active = ~observed[rows, position]
        if not bool(active.any()):
            continue
        log_probs = network(values, observed, output="logits")[rows, position]
        draw = torch.multinomial(log_probs.exp().cpu(), 1, generator=generator)[:, 0]
        draw = draw.to(values.device)
        values[rows, position] = torch.where(active, draw, values[rows, position])
        log_prob = log_prob + torch.where(active, log_probs[rows, draw], 0.0)
        observed[rows, position] = True
    return values, log_prob


def ancestral_sample(
    network: Callable,
    num_samples: int,
    num_variables: int,
    generator: torch.Generator | None = None,
    order: str = "random",
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_samples`` draws from ``p_phi`` in ``D`` passes; returns ``(x, log p_phi(x|sigma))``."""
    values = torch.zeros(num_samples, num_variables, dtype=torch.long, device=device)
    return complete(network, values, torch.zeros_like(values, dtype=torch.bool), generator, order)


def inpaint(
    network: Callable,
    values: torch.Tensor,
    observed: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Conditional samples ``(batch, D)``: "?" positions filled, evidence kept."""
    return complete(network, values, observed, generator)[0]


def censor_and_resample(
    network: Callable, x: torch.Tensor, num_resampled: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Erase the last ``k`` variables of a fresh random order and regenerate them (``k`` passes).

    With a self-consistent ``p_phi`` this leaves ``p_phi`` invariant (a block Gibbs step).
    """
    batch, num_variables = x.shape
    if not 1 <= num_resampled <= num_variables:
        raise ValueError(f"num_resampled must be in [1, {num_variables}], got {num_resampled}")
    rank = ranks_from_orders(random_orders(batch, num_variables, generator, x.device))
    keep = rank < num_variables - num_resampled
    return complete(network, x, keep, generator)[0]


gibbs_refresh = censor_and_resample


@torch.no_grad()
def ratio_sample(
    network: Callable,
    num_samples: int,
    num_variables: int,
    num_categories: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample from the marginal network alone (marginal ratios).

    At step ``d`` score all ``K`` completions ``l_k = f_theta(x_sigma(<d), x_sigma(d)=k)``
    in one batched pass and draw from ``softmax(l)``;
    ``log q_theta(x | sigma) = sum_d [l_{x_sigma(d)} - logsumexp_k l_k]``.

    Returns ``(x, log q_theta(x | sigma))``.
    """
    order = random_orders(num_samples, num_variables, generator, device)
    values = torch.zeros(num_samples, num_variables, dtype=torch.long, device=device)
    observed = torch.zeros_like(values, dtype=torch.bool)
    rows = torch.arange(num_samples, device=device)
    log_q = torch.zeros(num_samples, device=device)
    categories = torch.arange(num_categories, device=device)
    for step in range(num_variables):
        position = order[:, step]
        candidates = values.repeat_interleave(num_categories, dim=0)
        candidate_rows = torch.arange(len(candidates), device=device)
        candidate_positions = position.repeat_interleave(num_categories)
        candidates[candidate_rows, candidate_positions] = categories.repeat(num_samples)
        mask = observed.repeat_interleave(num_categories, dim=0)
        mask[candidate_rows, candidate_positions] = True
        scores = network(candidates, mask, output="score").view(num_samples, num_categories)
        log_step = torch.log_softmax(scores, dim=-1)
        draw = torch.multinomial(log_step.exp().cpu(), 1, generator=generator)[:, 0].to(device)
        values[rows, position] = draw
        observed[rows, position] = True
        log_q = log_q + log_step[rows, draw]
    return values, log_q
