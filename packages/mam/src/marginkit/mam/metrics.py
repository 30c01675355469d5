"""Evaluation: AO-ARM likelihoods (single order and order ensembles), exact comparisons
with enumerable targets, self-consistency diagnostics and energy-based metrics.

All metrics are returned as flat dicts with ``/``-separated names, in nats unless the
name says ``bpd`` (bits per dimension, ``NLL / (D ln 2)``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from marginkit.mam.losses import random_orders, self_consistency_errors
from marginkit.mam.model import MarginalizationModel


def mixture_of_orders(per_order: torch.Tensor) -> torch.Tensor:
    """Order-ensemble log-likelihood ``logsumexp_m ell_m - log M`` over the last axis.

    The ensemble mixes likelihoods, not log-likelihoods: ``(-3, -5)`` gives ``-3.566219``,
    not the mean ``-4``.
    """
    return torch.logsumexp(per_order, dim=-1) - math.log(per_order.shape[-1])


@torch.no_grad()
def aoarm_log_likelihood(
    network: Callable,
    values: torch.Tensor,
    observed: torch.Tensor | None = None,
    num_orders: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """AO-ARM estimate of ``log p_phi(x_S)`` ``(batch,)``.

    For each of ``M = num_orders`` random orders ``pi`` of ``S``,
    ``sum_{j <= |S|} log p_phi(x_pi(j) | x_pi(<j))`` in ``|S|`` sequential passes, then
    :func:`mixture_of_orders`. ``observed=None`` means the full likelihood (``S`` = all).
    """
    if observed is None:
        observed = torch.ones_like(values, dtype=torch.bool)
    batch = values.shape[0]
    rows = torch.arange(batch, device=values.device)
    per_order = []
    for _ in range(num_orders):
        keys = torch.rand(values.shape, generator=generator).to(values.device)
        sequence = torch.where(observed, keys, 2.0).argsort(dim=-1)  # S first, random order
        revealed = torch.zeros_like(observed)
        total = torch.zeros(batch, device=values.device)
        for step in range(int(observed.sum(-1).max())):
            position = sequence[:, step]
            active = observed[rows, position]
            log_probs = network(values, revealed, output="logits")
            picked = log_probs[rows, position, values[rows, position]]
            total = total + torch.where(active, picked, 0.0)
            revealed[rows, position] = active
        per_order.append(total)
    return mixture_of_orders(torch.stack(per_order, dim=-1))


def bits_per_dim(nll_nats: float, num_variables: int) -> float:
    """``NLL / (D ln 2)``."""
    return nll_nats / (num_variables * math.log(2.0))


@torch.no_grad()
def likelihood_metrics(
    model: MarginalizationModel,
    x: torch.Tensor,
    num_orders: int = 5,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Test NLL of AO-ARM-S (M=1), AO-ARM-E (``num_orders``) and the marginal network."""
    num_variables = x.shape[1]
    full = torch.ones_like(x, dtype=torch.bool)
    results = {
        "nll/aoarm_s": -float(aoarm_log_likelihood(model, x, None, 1, generator).mean()),
        "nll/aoarm_e": -float(aoarm_log_likelihood(model, x, None, num_orders, generator).mean()),
        "nll/marginal_net": -float(model.log_marginal(x, full).mean()),
    }
    for name in list(results):
        results["bpd/" + name.split("/")[1]] = bits_per_dim(results[name], num_variables)
    return results


@torch.no_grad()
def exact_metrics(
    model: MarginalizationModel,
    states: torch.Tensor,
    target_log_probs: torch.Tensor,
    target_log_marginal: Callable,
    num_queries: int = 256,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Compare ``f_theta`` with an enumerable target ``p*``.

    * ``exact/kl_model_true`` = KL(p_hat || p*), ``exact/kl_true_model`` = KL(p* || p_hat),
      with ``p_hat = softmax_x f_theta(x)`` over all ``K^D`` states;
    * ``exact/norm_gap`` = ``logsumexp_x f_theta(x) - f_theta(empty)`` (0 when normalised);
    * ``exact/marg_mae`` = mean ``|log p_theta(x_S) - log p*(x_S)|`` for ``x ~ p*`` and
      ``|S| ~ U{1..D-1}``.
    """
    full = torch.ones_like(states, dtype=torch.bool)
    scores = torch.cat([model.score(chunk, full[: len(chunk)]) for chunk in states.split(4096)])
    empty = model.score(states[:1], torch.zeros_like(full[:1]))[0]
    log_hat = torch.log_softmax(scores.double(), 0)
    target = target_log_probs.double()
    results = {
        "exact/kl_model_true": float((log_hat.exp() * (log_hat - target)).sum()),
        "exact/kl_true_model": float((target.exp() * (target - log_hat)).sum()),
        "exact/norm_gap": float(torch.logsumexp(scores.double(), 0) - empty),
    }
    num_variables = states.shape[1]
    index = torch.multinomial(target.exp(), num_queries, True, generator=generator)
    values = states[index]
    sizes = torch.randint(1, num_variables, (num_queries,), generator=generator)
    rank = random_orders(num_queries, num_variables, generator).argsort(-1)
    observed = rank < sizes[:, None]
    error = model.log_marginal(values, observed).double() - target_log_marginal(values, observed)
    results["exact/marg_mae"] = float(error.abs().mean())
    return results


@torch.no_grad()
def marginal_error_by_size(
    model: MarginalizationModel,
    x: torch.Tensor,
    target_log_marginal: Callable,
    sizes: list[int],
    generator: torch.Generator | None = None,
    num_orders: int = 0,
) -> dict[str, float]:
    """``marg/abs_err@|S|`` of MaM (and of AO-ARM-E when ``num_orders > 0``) on data ``x``."""
    results = {}
    batch, num_variables = x.shape
    for size in sizes:
        rank = random_orders(batch, num_variables, generator).argsort(-1)
        observed = rank < size
        truth = target_log_marginal(x, observed)
        results[f"marg/abs_err_mam@{size}"] = float(
            (model.log_marginal(x, observed).double() - truth).abs().mean()
        )
        if num_orders:
            estimate = aoarm_log_likelihood(model, x, observed, num_orders, generator)
            results[f"marg/abs_err_aoarm_e@{size}"] = float(
                (estimate.double() - truth).abs().mean()
            )
    return results


@torch.no_grad()
def self_consistency_metrics(
    model: MarginalizationModel, x: torch.Tensor, generator: torch.Generator | None = None
) -> dict[str, float]:
    """``sc/step_mse`` (mean ``e^2`` on ``x``) and ``sc/ksum_gap``.

    ``ksum_gap`` = mean ``|logsumexp_k f_theta(x_S, x_i=k) - f_theta(x_S)|`` for random
    ``S`` and ``i`` not in ``S``: 0 for an exactly self-consistent marginal network.
    """
    errors, _ = self_consistency_errors(model, x, generator)
    batch, num_variables = x.shape
    categories = model.num_categories
    order = random_orders(batch, num_variables, generator)
    rank = order.argsort(-1)
    sizes = torch.randint(0, num_variables, (batch,), generator=generator)
    observed = rank < sizes[:, None]
    position = order.gather(1, sizes[:, None])[:, 0]
    extended = x.repeat_interleave(categories, 0)
    mask = observed.repeat_interleave(categories, 0)
    rows = torch.arange(len(extended))
    extended[rows, position.repeat_interleave(categories)] = torch.arange(categories).repeat(batch)
    mask[rows, position.repeat_interleave(categories)] = True
    summed = torch.logsumexp(model.score(extended, mask).view(batch, categories), -1)
    gap = (summed - model.score(x, observed)).abs().mean()
    return {"sc/step_mse": float(errors.pow(2).mean()), "sc/ksum_gap": float(gap)}


@torch.no_grad()
def energy_metrics(
    model: MarginalizationModel,
    log_f: Callable,
    num_samples: int = 512,
    log_z: float | None = None,
    reference: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Energy-based metrics from ``p_phi`` samples.

    * ``eb/kl_minus_log_z`` = mean ``log p_phi(x|sigma) - log f(x)`` (KL - log Z: the
      paper's "KL", negative), and ``eb/kl`` = that + ``log Z`` when ``log_z`` is known;
    * ``eb/log_z_marginal`` = ``f_theta(empty)`` and ``eb/log_z_is`` =
      ``logsumexp_b(log f - log p_phi) - log B`` (an importance estimate);
    * ``eb/theta_phi_gap`` = mean ``|f_theta(x) - f_theta(empty) - log p_phi(x|sigma)|``;
    * ``eb/nll_ref`` (nats) and ``bpd/nll_ref``: AO-ARM-S NLL of ``reference`` samples.
    """
    from marginkit.mam.sampling import ancestral_sample

    device = next(model.parameters()).device
    samples, log_q = ancestral_sample(
        model, num_samples, model.num_variables, generator, device=device
    )
    target = log_f(samples).to(log_q)
    gap = target - log_q
    results = {
        "eb/kl_minus_log_z": float((log_q - target).mean()),
        "eb/log_z_marginal": float(model.score(samples[:1], torch.zeros_like(samples[:1]).bool())),
        "eb/log_z_is": float(torch.logsumexp(gap, 0) - math.log(num_samples)),
    }
    full = torch.ones_like(samples, dtype=torch.bool)
    results["eb/theta_phi_gap"] = float((model.log_marginal(samples, full) - log_q).abs().mean())
    if log_z is not None:
        results["eb/kl"] = results["eb/kl_minus_log_z"] + log_z
    if reference is not None:
        nll = -float(aoarm_log_likelihood(model, reference.to(device), None, 1, generator).mean())
        results["eb/nll_ref"] = nll
        results["bpd/nll_ref"] = bits_per_dim(nll, model.num_variables)
    return results


# Limitation: the correlation metric's variant generation (erase n variables, regenerate)
# and the Spearman / Pearson averages are not implemented; only the filter is.
def correlation_filter(scores: torch.Tensor, tau: float = 5.0) -> torch.Tensor:
    """Indices of ``scores`` kept for the correlation metric, in descending score order.

    Sort descending; keep a score when it lies more than ``tau`` below the last kept one.
    ``(0, -0.5, -3, -6, -6.2, -20)`` with ``tau=5`` keeps ``0, -6, -20``.
    """
    order = scores.argsort(descending=True)
    kept = [int(order[0])]
    for index in order[1:].tolist():
        if scores[kept[-1]] - scores[index] > tau:
            kept.append(index)
    return torch.tensor(kept)


@torch.no_grad()
def time_marginals(
    model: MarginalizationModel,
    x: torch.Tensor,
    subset_size: int,
    num_orders: int = 1,
    repeats: int = 3,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Median seconds per batch for MaM (one pass) and AO-ARM (``|S|`` passes x M orders)."""
    batch, num_variables = x.shape
    rank = random_orders(batch, num_variables, generator).argsort(-1)
    observed = rank < subset_size

    def median_time(function: Callable) -> float:
        function()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    mam = median_time(lambda: model.log_marginal(x, observed))
    aoarm = median_time(lambda: aoarm_log_likelihood(model, x, observed, num_orders, generator))
    return {"time/mam": mam, "time/aoarm": aoarm, "time/speedup": aoarm / mam}
