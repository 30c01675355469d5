"""Preference losses from sequence log-probs: one entry point for the whole family.

:func:`preference_loss` evaluates any loss of :data:`LOSS_NAMES` on ``(batch,)`` tensors
of summed response log-probs, adds the optional NLL term on the chosen response, and
returns the loss with its margin, its closed-form gradient weights ``w_w, w_l`` and a flat
metric dict. Importing this module needs only torch.

Examples
--------
>>> import torch
>>> out = preference_loss(
...     "dpo",
...     torch.tensor([-10.0]),
...     torch.tensor([-12.0]),
...     reference_chosen_logps=torch.tensor([-11.0]),
...     reference_rejected_logps=torch.tensor([-11.0]),
... )
>>> round(out.loss.item(), 6), round(out.chosen_weight.item(), 6)
(0.598139, 0.045017)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
from torch import Tensor

from marginkit.gradent.loss_family import (
    DEFAULT_NLL_WEIGHT,
    LOSS_CLASSES,
    OFFICIAL_PRESET,
    Decomposition,
    PairInputs,
)

LOSS_NAMES: tuple[str, ...] = (
    "dpo",
    "ipo",
    "hinge",
    "rdpo",
    "simpo",
    "dpop",
    "cpo",
    "orpo",
    "rrhf",
    "kto_pair",
)
NLL_REDUCTIONS = ("seq_mean", "seq_sum", "batch_token_mean")
Reduction = Literal["mean", "sum", "none"]


@dataclasses.dataclass
class PreferenceLossOutput:
    """What :func:`preference_loss` returns.

    Attributes
    ----------
    loss:
        The reduced loss (mean over pairs by default), a scalar with autograd history.
    per_pair_loss:
        ``l_i`` including the NLL term, ``(batch,)``.
    margin:
        ``z = h_w(u_w) - h_l(u_l)``, the argument of ``m``, ``(batch,)``, detached.
    chosen_weight, rejected_weight:
        ``w_w = -dl_i/du_w`` and ``w_l = +dl_i/du_l`` (closed forms, NLL included), ``(batch,)``.
    nll:
        The NLL term per pair before its weight, ``(batch,)`` (zeros when unused).
    decomposition:
        The loss's :class:`~marginkit.gradent.loss_family.Decomposition` (``h``, ``h'``,
        slopes ``-m'``) without the NLL term.
    metrics:
        Flat floats: ``loss/total``, ``loss/preference``, ``loss/nll``, ``loss/margin``,
        ``logp/chosen``, ``logp/rejected``, ``rewards/chosen``, ``rewards/rejected``,
        ``rewards/margin``, ``rewards/accuracy``, ``weight/chosen``, ``weight/rejected``,
        ``loss/active_fraction``.
    config:
        The loss name and every hyperparameter used (for logging next to the metrics).
    """

    loss: Tensor
    per_pair_loss: Tensor
    margin: Tensor
    chosen_weight: Tensor
    rejected_weight: Tensor
    nll: Tensor
    decomposition: Decomposition
    metrics: dict[str, float]
    config: dict[str, Any]


# The spec of the method calls the same object LossOutput.
LossOutput = PreferenceLossOutput


def _check_vector(value: Any, what: str, batch: int | None) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != 1:
        raise ValueError(f"{what} must have shape (batch,), got {tuple(value.shape)}")
    if value.numel() == 0:
        raise ValueError(f"{what} is empty: a preference loss needs at least one pair")
    if batch is not None and value.shape[0] != batch:
        raise ValueError(
            f"{what} has batch size {value.shape[0]} but chosen_logps has {batch}; "
            "every input must hold one entry per pair"
        )
    if value.is_floating_point():
        bad = torch.nonzero(~torch.isfinite(value.detach())).flatten()
        if len(bad):
            raise ValueError(f"{what} is NaN or infinite at pair(s) {bad.tolist()}")
    return value


def _check_lengths(value: Tensor | None, what: str, batch: int) -> Tensor | None:
    if value is None:
        return None
    value = _check_vector(value, what, batch)
    bad = torch.nonzero(value <= 0).flatten()
    if len(bad):
        raise ValueError(f"{what} must be positive (empty response) at pair(s) {bad.tolist()}")
    return value


def make_loss(name: str, preset: str = "paper", **hyperparameters: Any) -> Any:
    """Build the loss object of ``name`` with its defaults, the preset and overrides.

    Parameters
    ----------
    name:
        One of :data:`LOSS_NAMES`.
    preset:
        ``"paper"`` (each loss as its own paper writes it) or ``"official"`` (IPO on token
        means, R-DPO with the opposite length sign, as in the entanglement paper's code).
    **hyperparameters:
        Fields of the loss class, e.g. ``beta=0.1``, ``label_smoothing``, ``gamma``, ``lam``.
    """
    if name not in LOSS_CLASSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
    if preset not in ("paper", "official"):
        raise ValueError(f"unknown preset {preset!r}; choose 'paper' or 'official'")
    cls = LOSS_CLASSES[name]
    allowed = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(hyperparameters) - allowed)
    if unknown:
        raise ValueError(
            f"loss {name!r} has no hyperparameter(s) {unknown}; it takes {sorted(allowed)}"
        )
    settings = dict(OFFICIAL_PRESET.get(name, {})) if preset == "official" else {}
    settings.update(hyperparameters)
    return cls(**settings)


def nll_term(
    chosen_logps: Tensor, chosen_lengths: Tensor | None, reduction: str
) -> tuple[Tensor, Tensor]:
    """Per-pair NLL of the chosen response and its derivative scale ``-dN_i/du_w``.

    ``seq_mean``: ``N_i = -u_w/|y_w|``; ``seq_sum``: ``N_i = -u_w``; ``batch_token_mean``:
    ``N_i = -u_w B / sum_j |y_w^j|``, whose mean over pairs is the batch token mean.
    """
    if reduction not in NLL_REDUCTIONS:
        raise ValueError(
            f"unknown nll_reduction {reduction!r}; choose one of {', '.join(NLL_REDUCTIONS)}"
        )
    if reduction == "seq_sum":
        return -chosen_logps, torch.ones_like(chosen_logps)
    if chosen_lengths is None:
        raise ValueError(
            f"nll_reduction={reduction!r} needs chosen_lengths; pass them or use 'seq_sum'"
        )
    lengths = chosen_lengths.to(chosen_logps.dtype)
    if reduction == "seq_mean":
        scale = 1.0 / lengths
    else:
        scale = torch.full_like(chosen_logps, chosen_logps.shape[0] / lengths.sum().item())
    return -chosen_logps * scale, scale


def preference_loss(
    name: str,
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    *,
    reference_chosen_logps: Tensor | None = None,
    reference_rejected_logps: Tensor | None = None,
    chosen_lengths: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
    nll_weight: float | None = None,
    nll_reduction: str = "seq_mean",
    reduction: Reduction = "mean",
    preset: str = "paper",
    **hyperparameters: Any,
) -> PreferenceLossOutput:
    """Evaluate one margin-based preference loss on a batch of pairs.

    .. math::  \\ell_i = m(h_w(u_w^i) - h_l(u_l^i)) + \\lambda_{nll} N_i

    Parameters
    ----------
    name:
        One of :data:`LOSS_NAMES`: ``dpo``, ``ipo``, ``hinge``, ``rdpo``, ``simpo``,
        ``dpop``, ``cpo``, ``orpo``, ``rrhf``, ``kto_pair``.
    chosen_logps, rejected_logps:
        Summed response log-probs ``u = sum_t log pi(y_t | x, y_<t)``, ``(batch,)``.
    reference_chosen_logps, reference_rejected_logps:
        The frozen reference's summed log-probs ``r``, ``(batch,)``; required by dpo, ipo,
        hinge (unless ``slic=True``), rdpo, dpop and kto_pair.
    chosen_lengths, rejected_lengths:
        Response token counts ``|y|``, ``(batch,)``; required by the token-mean losses
        (simpo, orpo, rrhf; ipo with ``average``), by rdpo, and by the ``seq_mean`` NLL.
        ORPO's mean token log-prob is ``u/|y|``.
    nll_weight:
        Weight of the NLL term on the chosen response; ``None`` takes the loss's own default
        (1 for cpo, orpo and rrhf, whose definitions include it; 0 otherwise).
    nll_reduction:
        ``"seq_mean"`` (``-u_w/|y_w|``), ``"seq_sum"`` (``-u_w``) or ``"batch_token_mean"``.
    reduction:
        ``"mean"`` (default), ``"sum"`` or ``"none"`` (``loss`` is then ``per_pair_loss``).
    preset:
        ``"paper"`` or ``"official"``; see :func:`make_loss`.
    **hyperparameters:
        Loss hyperparameters: ``beta`` (all but orpo/rrhf; default 0.1),
        ``label_smoothing`` (dpo), ``average`` (ipo), ``delta``/``slic`` (hinge),
        ``alpha``/``length_sign`` (rdpo), ``gamma`` (simpo), ``lam`` (dpop 50, orpo 0.1),
        ``z0``/``desirable_weight``/``undesirable_weight`` (kto_pair).

    Returns
    -------
    PreferenceLossOutput
        ``loss``, ``per_pair_loss``, ``margin``, ``chosen_weight``, ``rejected_weight``,
        ``metrics`` and the decomposition.
    """
    loss_fn = make_loss(name, preset=preset, **hyperparameters)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"unknown reduction {reduction!r}; choose 'mean', 'sum' or 'none'")
    chosen_logps = _check_vector(chosen_logps, "chosen_logps", None)
    batch = chosen_logps.shape[0]
    inputs = PairInputs(
        chosen=chosen_logps,
        rejected=_check_vector(rejected_logps, "rejected_logps", batch),
        reference_chosen=None
        if reference_chosen_logps is None
        else _check_vector(reference_chosen_logps, "reference_chosen_logps", batch),
        reference_rejected=None
        if reference_rejected_logps is None
        else _check_vector(reference_rejected_logps, "reference_rejected_logps", batch),
        chosen_lengths=_check_lengths(chosen_lengths, "chosen_lengths", batch),
        rejected_lengths=_check_lengths(rejected_lengths, "rejected_lengths", batch),
    )
    decomposition = loss_fn.decompose(inputs)

    weight = DEFAULT_NLL_WEIGHT.get(name, 0.0) if nll_weight is None else float(nll_weight)
    if weight != 0.0:
        nll, nll_scale = nll_term(chosen_logps, inputs.chosen_lengths, nll_reduction)
    else:
        nll, nll_scale = torch.zeros_like(chosen_logps), torch.zeros_like(chosen_logps)
    per_pair = decomposition.per_pair_loss + weight * nll
    chosen_weight = decomposition.chosen_weight + weight * nll_scale.detach()
    rejected_weight = decomposition.rejected_weight

    if reduction == "mean":
        loss = per_pair.mean()
    elif reduction == "sum":
        loss = per_pair.sum()
    else:
        loss = per_pair
    config = {"loss": name, "preset": preset, "nll_weight": weight, "nll_reduction": nll_reduction}
    config.update(dataclasses.asdict(loss_fn))
    metrics = _metrics(inputs, decomposition, per_pair, nll, weight, chosen_weight, rejected_weight)
    metrics.update(_rewards(inputs, getattr(loss_fn, "beta", 1.0)))
    return PreferenceLossOutput(
        loss=loss,
        per_pair_loss=per_pair,
        margin=decomposition.margin.detach(),
        chosen_weight=chosen_weight.detach(),
        rejected_weight=rejected_weight.detach(),
        nll=nll.detach(),
        decomposition=decomposition,
        metrics=metrics,
        config=config,
    )


def _metrics(
    inputs: PairInputs,
    decomposition: Decomposition,
    per_pair: Tensor,
    nll: Tensor,
    nll_weight: float,
    chosen_weight: Tensor,
    rejected_weight: Tensor,
) -> dict[str, float]:
    active = (decomposition.slope_chosen != 0) | (decomposition.slope_rejected != 0)
    return {
        "loss/total": per_pair.detach().mean().item(),
        "loss/preference": decomposition.per_pair_loss.detach().mean().item(),
        "loss/nll": (nll_weight * nll).detach().mean().item(),
        "loss/margin": decomposition.margin.detach().mean().item(),
        "loss/active_fraction": active.to(torch.float64).mean().item(),
        "logp/chosen": inputs.chosen.detach().mean().item(),
        "logp/rejected": inputs.rejected.detach().mean().item(),
        "weight/chosen": chosen_weight.detach().mean().item(),
        "weight/rejected": rejected_weight.detach().mean().item(),
    }


def _rewards(inputs: PairInputs, beta: float) -> dict[str, float]:
    """Implicit rewards ``beta (u - r)`` when a reference is given, else ``beta u``."""
    chosen = inputs.chosen.detach()
    rejected = inputs.rejected.detach()
    if inputs.reference_chosen is not None and inputs.reference_rejected is not None:
        chosen = chosen - inputs.reference_chosen.detach()
        rejected = rejected - inputs.reference_rejected.detach()
    return {
        "rewards/chosen": (beta * chosen).mean().item(),
        "rewards/rejected": (beta * rejected).mean().item(),
        "rewards/margin": (beta * (chosen - rejected)).mean().item(),
        "rewards/accuracy": (chosen > rejected).to(torch.float64).mean().item(),
    }


__all__ = [
    "LOSS_NAMES",
    "LossOutput",
    "NLL_REDUCTIONS",
    "PreferenceLossOutput",
    "make_loss",
    "nll_term",
    "preference_loss",
]
