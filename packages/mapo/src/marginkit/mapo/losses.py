"""MaPO, Diffusion-DPO and SFT-on-chosen as pure functions of per-row diffusion errors.

Every objective here takes the per-pair denoising errors

.. math:: L_k = \\operatorname{mean}_{C,H,W}\\,(y_k - f_\\theta(x_{k,t}, t, c))^2,
   \\qquad k \\in \\{w, l\\},

of shape ``(batch,)``, one row per preference pair (``w`` = chosen, ``l`` = rejected).
A smaller error means a higher likelihood: the DDPM evidence bound gives
``-log p(x | c) <= T * E_t[w(t) * ||eps - eps_theta||^2] + const``, so "log p ~ -L" up to
scale, and every margin below rises when the chosen error falls or the rejected one rises.

The functions need no model, so they can be used without :class:`~marginkit.mapo.Trainer`.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

#: Below this argument the link function uses its Taylor series ``1 - u/2 + u^2/12``.
LINK_SERIES_THRESHOLD = 1e-4

#: Margins with an absolute value above this count as saturated in the metrics.
SATURATION_THRESHOLD = 5.0


@dataclasses.dataclass
class LossOutput:
    """The scalar objective and per-pair quantities behind it.

    Attributes
    ----------
    loss:
        Scalar objective to minimise (fp32).
    margin:
        ``(batch,)`` per-pair margin: MaPO's ``m_i`` or DPO's ``a_i``; zeros for SFT.
    score_chosen, score_rejected:
        ``(batch,)`` MaPO scores ``phi(L_w)``, ``phi(L_l)``; ``None`` for other objectives.
    """

    loss: torch.Tensor
    margin: torch.Tensor
    score_chosen: torch.Tensor | None = None
    score_rejected: torch.Tensor | None = None


def _check_rows(**rows: torch.Tensor) -> int:
    shapes = {name: tuple(value.shape) for name, value in rows.items()}
    first_name, first = next(iter(rows.items()))
    if first.ndim != 1 or first.shape[0] == 0:
        raise ValueError(
            f"{first_name} must be a non-empty 1-D tensor of per-pair errors, got shape "
            f"{tuple(first.shape)}"
        )
    if len(set(shapes.values())) != 1:
        raise ValueError(f"per-pair errors must all have the same shape (batch,), got {shapes}")
    return int(first.shape[0])


def mapo_link(u: torch.Tensor) -> torch.Tensor:
    """The MaPO link ``g(u) = u / (e^u - 1)``, evaluated stably in fp32.

    ``g(0) = 1`` (the limit), ``g`` decreases strictly to 0, ``g'(0) = -1/2``. For
    ``u >= 1e-4`` it computes ``u * e^{-u} / (-expm1(-u))`` (no overflow for large ``u``),
    below that the series ``1 - u/2 + u^2/12``; each branch of the ``where`` receives a
    safe input so that no NaN gradient leaks from the branch that is not used.

    Parameters
    ----------
    u:
        Tensor of any shape with ``u >= 0`` (scaled diffusion errors).

    Returns
    -------
    torch.Tensor
        ``g(u)`` in fp32, same shape as ``u``.

    Examples
    --------
    >>> import torch
    >>> mapo_link(torch.tensor([0.0, 1.0, 1000.0]))
    tensor([1.0000, 0.5820, 0.0000])
    """
    u = u.float()
    small = u < LINK_SERIES_THRESHOLD
    u_large = torch.where(small, torch.ones_like(u), u)
    u_small = torch.where(small, u, torch.zeros_like(u))
    large_value = u_large * torch.exp(-u_large) / (-torch.expm1(-u_large))
    small_value = 1.0 - u_small / 2.0 + u_small * u_small / 12.0
    return torch.where(small, small_value, large_value)


def mapo_loss(
    mse_chosen: torch.Tensor,
    mse_rejected: torch.Tensor,
    score_scale: float = 0.5,
    margin_scale: float = 1000.0,
    margin_weight: float = 0.1,
) -> LossOutput:
    """Margin-aware preference optimization loss (reference-free).

    .. math::
        \\phi(L) = g(s L), \\quad m_i = \\beta_m (\\phi(L_{w,i}) - \\phi(L_{l,i})),

        \\mathcal{L} = \\frac{1}{B}\\sum_i L_{w,i}
            + \\lambda \\frac{1}{B}\\sum_i \\operatorname{softplus}(-m_i),

    with ``s = score_scale``, ``beta_m = margin_scale``, ``lambda = margin_weight``;
    ``softplus(-m) = -log sigmoid(m)``. The defaults are the official code's
    (``s = 0.5``, ``beta_m = T = 1000``, ``lambda = 0.1``); the paper-v2 form is
    ``s = 1``, ``beta_m = beta``, ``lambda = 1 / beta``.

    Parameters
    ----------
    mse_chosen, mse_rejected:
        ``(batch,)`` per-pair errors ``L_w``, ``L_l`` (non-negative).
    score_scale, margin_scale, margin_weight:
        ``s``, ``beta_m``, ``lambda`` above.

    Returns
    -------
    LossOutput
        ``loss`` (scalar), ``margin`` ``m`` of shape ``(batch,)`` with ``|m| < beta_m``,
        and the scores ``phi(L_w)``, ``phi(L_l)``.

    Examples
    --------
    >>> import torch
    >>> out = mapo_loss(torch.ones(2), torch.ones(2))
    >>> round(out.loss.item(), 7)  # 1 + 0.1 * ln 2
    1.0693147

    References
    ----------
    Hong et al., "Margin-aware Preference Optimization for Aligning Diffusion Models
    without Reference", arXiv:2406.06424.
    """
    _check_rows(mse_chosen=mse_chosen, mse_rejected=mse_rejected)
    mse_chosen = mse_chosen.float()
    mse_rejected = mse_rejected.float()
    score_chosen = mapo_link(score_scale * mse_chosen)
    score_rejected = mapo_link(score_scale * mse_rejected)
    margin = margin_scale * (score_chosen - score_rejected)
    loss = mse_chosen.mean() + margin_weight * F.softplus(-margin).mean()
    return LossOutput(loss, margin, score_chosen, score_rejected)


def dpo_loss(
    mse_chosen: torch.Tensor,
    mse_rejected: torch.Tensor,
    reference_mse_chosen: torch.Tensor,
    reference_mse_rejected: torch.Tensor,
    beta: float = 5000.0,
) -> LossOutput:
    """Diffusion-DPO loss against a frozen reference model's errors.

    .. math::
        \\Delta_i = (L_{w,i} - R_{w,i}) - (L_{l,i} - R_{l,i}), \\quad
        a_i = -\\frac{\\beta}{2} \\Delta_i, \\quad
        \\mathcal{L} = \\frac{1}{B} \\sum_i \\operatorname{softplus}(-a_i).

    The paper's ``T * w(lambda_t)`` factor is folded into ``beta`` (2000-5000 in the paper).

    Parameters
    ----------
    mse_chosen, mse_rejected:
        ``(batch,)`` errors of the trained model.
    reference_mse_chosen, reference_mse_rejected:
        ``(batch,)`` errors of the reference model on the same noisy inputs.
    beta:
        ``beta_d``; a float, fractions allowed.

    Returns
    -------
    LossOutput
        ``loss`` and the implicit reward margin ``a`` of shape ``(batch,)``.

    Examples
    --------
    >>> import torch
    >>> e = torch.tensor([0.3, 0.7])
    >>> round(dpo_loss(e, e, e, e).loss.item(), 6)  # ln 2 when the model equals the reference
    0.693147

    References
    ----------
    Wallace et al., "Diffusion Model Alignment Using Direct Preference Optimization",
    arXiv:2311.12908.
    """
    _check_rows(
        mse_chosen=mse_chosen,
        mse_rejected=mse_rejected,
        reference_mse_chosen=reference_mse_chosen,
        reference_mse_rejected=reference_mse_rejected,
    )
    delta = (mse_chosen.float() - reference_mse_chosen.float()) - (
        mse_rejected.float() - reference_mse_rejected.float()
    )
    margin = -0.5 * beta * delta
    return LossOutput(F.softplus(-margin).mean(), margin)


def sft_loss(mse_chosen: torch.Tensor) -> LossOutput:
    """Supervised fine-tuning on the chosen images only: ``(1/B) * sum_i L_w,i``.

    Parameters
    ----------
    mse_chosen:
        ``(batch,)`` errors on the chosen images.

    Examples
    --------
    >>> import torch
    >>> sft_loss(torch.tensor([1.0, 3.0])).loss
    tensor(2.)
    """
    _check_rows(mse_chosen=mse_chosen)
    mse_chosen = mse_chosen.float()
    return LossOutput(mse_chosen.mean(), torch.zeros_like(mse_chosen))


def implicit_accuracy(margin: torch.Tensor) -> torch.Tensor:
    """Fraction of pairs ranked correctly: ``mean(1[a > 0] + 0.5 * 1[a = 0])``."""
    margin = margin.detach().float()
    return ((margin > 0).float() + 0.5 * (margin == 0).float()).mean()


def per_row_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over every non-batch dimension of ``(target - prediction)^2``, in fp32.

    Parameters
    ----------
    prediction, target:
        ``(rows, channels, height, width)`` tensors of the same shape.

    Returns
    -------
    torch.Tensor
        ``(rows,)`` fp32 errors.
    """
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction shape {tuple(prediction.shape)} != target shape {tuple(target.shape)}"
        )
    difference = target.float() - prediction.float()
    return difference.pow(2).flatten(1).mean(dim=1)


def loss_metrics(output: LossOutput, objective: str) -> dict[str, float]:
    """Flat per-step metrics of one loss evaluation (margin mean/p5/p95, saturation...)."""
    margin = output.margin.detach().float()
    metrics = {
        "margin/mean": margin.mean().item(),
        "margin/p5": torch.quantile(margin, 0.05).item(),
        "margin/p95": torch.quantile(margin, 0.95).item(),
        "margin/saturated_fraction": (margin.abs() > SATURATION_THRESHOLD).float().mean().item(),
    }
    if objective == "dpo":
        metrics["accuracy/implicit"] = implicit_accuracy(margin).item()
    if output.score_chosen is not None and output.score_rejected is not None:
        metrics["score/chosen"] = output.score_chosen.detach().mean().item()
        metrics["score/rejected"] = output.score_rejected.detach().mean().item()
    return metrics


def mapo_preset(name: str, task: str = "preference", timesteps: int = 1000) -> dict[str, float]:
    """MaPO hyper-parameters ``score_scale``, ``margin_scale``, ``margin_weight`` of a preset.

    ``"official"``: the public training code (``s = 0.5``, ``beta_m = T``, ``lambda = 0.1``).
    ``"paper_v2"``: the paper's second version (``s = 1``, ``beta_m = beta``,
    ``lambda = 1/beta``) with ``beta`` of its best-per-task table: preference 8, culture 32,
    safety 64, style 64, personalization 1024. The paper-v2 form was reconstructed from
    the paper's text and is less certain than the official one.

    Examples
    --------
    >>> mapo_preset("paper_v2", task="style")
    {'score_scale': 1.0, 'margin_scale': 64.0, 'margin_weight': 0.015625}
    """
    if name == "official":
        return {"score_scale": 0.5, "margin_scale": float(timesteps), "margin_weight": 0.1}
    if name == "paper_v2":
        if task not in PAPER_V2_BETA:
            raise ValueError(f"unknown paper_v2 task {task!r}; choose one of {list(PAPER_V2_BETA)}")
        beta = PAPER_V2_BETA[task]
        return {"score_scale": 1.0, "margin_scale": beta, "margin_weight": 1.0 / beta}
    raise ValueError(f"unknown MaPO preset {name!r}; choose 'official' or 'paper_v2'")


#: Best ``beta`` per task of the paper's second version (searched over 8 ... 1024).
PAPER_V2_BETA: dict[str, float] = {
    "preference": 8.0,
    "culture": 32.0,
    "safety": 64.0,
    "style": 64.0,
    "personalization": 1024.0,
}
