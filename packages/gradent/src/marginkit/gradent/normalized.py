"""Pairwise normalised updates: each pair moves along ``g_w/n_w - g_l/n_l``.

Per pair ``i`` the direction ``d_i = c_i (g_w^i / n_w^i - g_l^i / n_l^i)`` gives, for one
SGD step ``theta <- theta + eta d_i``,

.. math::  \\Delta u_w \\approx \\eta c\\, n_w (1 - \\cos) \\ge 0, \\qquad
           \\Delta u_l \\approx -\\eta c\\, n_l (1 - \\cos) \\le 0,

so to first order the chosen log-prob never falls and the rejected one never rises, at
every cosine. ``c_i`` is 1 (``"pure"``) or the loss's detached slope ``|m'(z_i)|``
(``"loss"``, which keeps the loss's stopping behaviour). Two equivalent forms:

- :func:`normalized_pair_loss`: ``-mean_i c_i (u_w^i / sg(n_w^i) - u_l^i / sg(n_l^i))``,
  whose ordinary gradient is ``-mean_i d_i`` (norms from a measurement pass);
- :class:`NormalizedPairwiseStep`: measures the norms, backpropagates that loss and calls
  the base optimiser; it checks that the norms span exactly the parameters it updates.

The guarantee is per pair and for SGD; averaging over a batch adds cross-pair terms.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from marginkit.gradent.logprobs import PairBatch, pair_logps
from marginkit.gradent.measure import measure_pairs, select_parameters
from marginkit.gradent.predict import PredictedChanges, predict_changes

logger = logging.getLogger(__name__)


def _inverse(norms: Tensor) -> Tensor:
    """``1/n`` with a zero-norm side dropping out (weight 0)."""
    norms = norms.detach()
    return torch.where(norms > 0, 1.0 / torch.clamp(norms, min=1e-300), torch.zeros_like(norms))


def normalized_pair_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    chosen_norms: Tensor,
    rejected_norms: Tensor,
    coefficients: Tensor | None = None,
) -> Tensor:
    """``-mean_i c_i (u_w^i / n_w^i - u_l^i / n_l^i)`` with the norms treated as constants.

    Parameters
    ----------
    chosen_logps, rejected_logps:
        ``u_w, u_l`` with autograd history, ``(batch,)``.
    chosen_norms, rejected_norms:
        ``||grad u_w||, ||grad u_l||`` over exactly the parameters that will be updated,
        ``(batch,)`` (detached here).
    coefficients:
        ``c_i``, ``(batch,)``; ones when None.
    """
    for name, value in (("chosen_norms", chosen_norms), ("rejected_norms", rejected_norms)):
        if value.shape != chosen_logps.shape:
            raise ValueError(f"{name} has shape {tuple(value.shape)}, expected (batch,)")
    coefficient = torch.ones_like(chosen_logps) if coefficients is None else coefficients.detach()
    inv_w = _inverse(chosen_norms).to(chosen_logps.dtype)
    inv_l = _inverse(rejected_norms).to(chosen_logps.dtype)
    return -(
        coefficient.to(chosen_logps.dtype) * (chosen_logps * inv_w - rejected_logps * inv_l)
    ).mean()


def predict_normalized(
    inner_product: Tensor,
    chosen_norm: Tensor,
    rejected_norm: Tensor,
    coefficients: Tensor | None = None,
    learning_rate: float = 1.0,
) -> PredictedChanges:
    """First-order changes of the normalised step on each pair alone (weights ``c/n``)."""
    coefficient = torch.ones_like(chosen_norm) if coefficients is None else coefficients
    return predict_changes(
        inner_product,
        chosen_norm**2,
        rejected_norm**2,
        coefficient * _inverse(chosen_norm),
        coefficient * _inverse(rejected_norm),
        learning_rate=learning_rate,
    )


class NormalizedPairwiseStep:
    """An update rule: write ``-mean_i d_i`` into ``.grad`` and step the base optimiser.

    Parameters
    ----------
    model:
        The causal LM.
    optimizer:
        The base optimiser (SGD keeps the first-order guarantee); its parameters must be
        exactly the selected set ``params``.
    params:
        The parameter set over which norms are taken (see
        :func:`~marginkit.gradent.measure.select_parameters`).
    coefficient:
        ``"pure"`` (``c = 1``) or ``"loss"`` (``c = |m'(z)|`` of ``loss``).
    loss, loss_kwargs:
        The loss whose slope gives ``c`` when ``coefficient="loss"``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        params: Any = "trainable",
        coefficient: str = "loss",
        loss: str = "dpo",
        loss_kwargs: dict[str, Any] | None = None,
        strategy: str = "auto",
    ) -> None:
        if coefficient not in ("pure", "loss"):
            raise ValueError(f"coefficient must be 'pure' or 'loss', got {coefficient!r}")
        self.model = model
        self.optimizer = optimizer
        self.params = params
        self.coefficient = coefficient
        self.loss = loss
        self.loss_kwargs = dict(loss_kwargs or {})
        self.strategy = strategy
        selected = {id(p) for p in select_parameters(model, params).values()}
        updated = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if selected != updated:
            raise ValueError(
                "the optimizer updates a different parameter set than the norms span; "
                "build it over select_parameters(model, params).values()"
            )

    def step(self, batch: PairBatch, reference: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """One update on ``batch``; returns the normalised loss value (detached)."""
        identical = [
            i
            for i in range(len(batch))
            if torch.equal(batch.chosen.input_ids[i], batch.rejected.input_ids[i])
        ]
        if identical:
            logger.warning("pairs %s have identical responses: their step is 0", identical)
        stats = measure_pairs(
            self.model, batch, loss=None, params=self.params, strategy=self.strategy
        )
        coefficients = None
        if self.coefficient == "loss":
            from marginkit.gradent.losses import preference_loss

            out = preference_loss(
                self.loss,
                stats.chosen_logps,
                stats.rejected_logps,
                reference_chosen_logps=None if reference is None else reference[0].double(),
                reference_rejected_logps=None if reference is None else reference[1].double(),
                chosen_lengths=stats.chosen_lengths,
                rejected_lengths=stats.rejected_lengths,
                nll_weight=0.0,
                **self.loss_kwargs,
            )
            coefficients = out.decomposition.slope_chosen.abs()
        chosen, rejected = pair_logps(self.model, batch)
        loss = normalized_pair_loss(
            chosen, rejected, stats.chosen_norm, stats.rejected_norm, coefficients
        )
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.detach()
