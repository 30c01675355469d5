"""First-order changes of every pair after one full-batch SGD step (the Gram predictor).

A step on the batch-mean loss ``L = (1/B) sum_j l_j`` moves ``theta`` by
``(eta/B) sum_j (w_w^j g_w^j - w_l^j g_l^j)``, so pair ``i``'s log-probs change by

.. math:: \\Delta u_w^i \\approx \\frac{\\eta}{B}\\sum_j \\big(w_w^j \\langle g_w^i, g_w^j\\rangle
          - w_l^j \\langle g_w^i, g_l^j\\rangle\\big),

and likewise for ``u_l^i`` with ``g_l^i``. Unlike the per-pair predictor of
:mod:`marginkit.gradent.predict`, this includes the cross-pair terms ``j != i``; with one
pair both agree. Everything needed is the ``2B x 2B`` Gram matrix of the sequence gradients
``[g_w^1..g_w^B, g_l^1..g_l^B]``, built from the flattened gradients (one backward per
response), which a memory budget guards.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from marginkit.gradent.logprobs import PairBatch, SideBatch, token_logps_from_logits
from marginkit.gradent.measure import ParamSpec, probing, select_parameters
from marginkit.gradent.predict import classify_cases


@dataclasses.dataclass
class BatchPrediction:
    """Full-batch first-order changes, ``(batch,)`` float64, and the Gram ``(2B, 2B)``.

    ``gram`` is ordered chosen responses first, then rejected; ``case`` uses the codes of
    :data:`~marginkit.gradent.predict.CASE_NAMES`.
    """

    delta_chosen: Tensor
    delta_rejected: Tensor
    case: Tensor
    gram: Tensor
    chosen_logps: Tensor
    rejected_logps: Tensor


def _flat_side_grads(
    model: torch.nn.Module, side: SideBatch, tensors: list[Tensor], kwargs: dict[str, Any]
) -> tuple[Tensor, Tensor]:
    rows, values = [], []
    for row in range(side.input_ids.shape[0]):
        one = side.select(slice(row, row + 1))
        extra = {k: v[row : row + 1] if isinstance(v, Tensor) else v for k, v in kwargs.items()}
        logits = model(input_ids=one.input_ids, attention_mask=one.attention_mask, **extra).logits
        u = token_logps_from_logits(logits, one.input_ids, one.response_mask).sum()
        grads = torch.autograd.grad(u, tensors, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    torch.zeros(t.numel(), dtype=torch.float64, device=t.device)
                    if g is None
                    else g.flatten().double()
                    for g, t in zip(grads, tensors, strict=True)
                ]
            )
        )
        values.append(u.detach().double())
    return torch.stack(rows), torch.stack(values)


def gradient_gram(
    model: torch.nn.Module,
    batch: PairBatch,
    params: ParamSpec = "trainable",
    last_k_layers: int | None = None,
    memory_budget_mb: float = 2048.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gram ``(2B, 2B)`` of the sequence gradients and the log-probs ``u_w``, ``u_l`` ``(B,)``.

    The model's mode, ``.grad`` fields and ``requires_grad`` flags are restored.
    """
    if len(batch) == 0:
        raise ValueError("the batch holds no pairs")
    selected = select_parameters(model, params, last_k_layers)
    size = sum(p.numel() for p in selected.values())
    # Limitation: exact Gram only; no random projection when the gradients do not fit.
    needed_mb = 2 * len(batch) * size * 8 / 2**20
    if needed_mb > memory_budget_mb:
        raise ValueError(
            f"the Gram needs {2 * len(batch)} gradients of {size} parameters "
            f"({needed_mb:.0f} MB in float64), over memory_budget_mb={memory_budget_mb:.0f}; "
            "use fewer pairs or a smaller params set"
        )
    tensors = list(selected.values())
    with probing(model, tensors):
        grads_w, u_w = _flat_side_grads(model, batch.chosen, tensors, batch.model_kwargs)
        grads_l, u_l = _flat_side_grads(model, batch.rejected, tensors, batch.model_kwargs)
    stacked = torch.cat([grads_w, grads_l])
    return stacked @ stacked.T, u_w, u_l


def batch_predict(
    model: torch.nn.Module,
    batch: PairBatch,
    loss: str = "dpo",
    params: ParamSpec = "trainable",
    reference: tuple[Tensor, Tensor] | None = None,
    learning_rate: float = 1.0,
    reduction: str = "mean",
    memory_budget_mb: float = 2048.0,
    **loss_kwargs: Any,
) -> BatchPrediction:
    """Predicted ``Delta u_w``, ``Delta u_l`` of every pair after one SGD step on the batch loss.

    Parameters
    ----------
    loss, loss_kwargs:
        A name of :data:`~marginkit.gradent.losses.LOSS_NAMES` and its hyperparameters; its
        per-pair weights ``w_w``, ``w_l`` enter the sum over ``j``.
    reference:
        Reference log-probs ``(r_w, r_l)`` ``(B,)`` for losses that need them.
    reduction:
        ``"mean"`` (the step is on ``(1/B) sum_j l_j``) or ``"sum"``.
    """
    from marginkit.gradent.losses import preference_loss

    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    gram, u_w, u_l = gradient_gram(model, batch, params, memory_budget_mb=memory_budget_mb)
    ref_w, ref_l = (None, None) if reference is None else reference
    out = preference_loss(
        loss,
        u_w,
        u_l,
        reference_chosen_logps=None if ref_w is None else ref_w.double().cpu(),
        reference_rejected_logps=None if ref_l is None else ref_l.double().cpu(),
        chosen_lengths=batch.chosen.lengths.double(),
        rejected_lengths=batch.rejected.lengths.double(),
        **loss_kwargs,
    )
    size = len(batch)
    scale = learning_rate / size if reduction == "mean" else learning_rate
    coefficients = torch.cat([out.chosen_weight.double(), -out.rejected_weight.double()])
    change = scale * (gram @ coefficients.to(gram.device))
    delta_w, delta_l = change[:size].cpu(), change[size:].cpu()
    magnitude = scale * coefficients.abs().sum() * gram.diagonal().max()
    return BatchPrediction(
        delta_chosen=delta_w,
        delta_rejected=delta_l,
        case=classify_cases(delta_w, delta_l, scale=magnitude.cpu().expand(size)),
        gram=gram.cpu(),
        chosen_logps=u_w.cpu(),
        rejected_logps=u_l.cpu(),
    )
