"""Token-level gradient inner products and cosines of one preference pair (a heat-map).

For a pair with chosen tokens ``t = 1..T_w`` and rejected tokens ``s = 1..T_l``, and a
parameter set ``S``: ``g^w_t = grad_S l^w_t`` (``l_t`` the log-prob of response token ``t``),

    IP[t, s] = <g^w_t, g^l_s>,      COS[t, s] = IP[t, s] / (||g^w_t|| ||g^l_s||),

and the within-side Grams ``G^w[t, t'] = <g^w_t, g^w_t'>``, ``G^l`` likewise. As ``u = sum_t l_t``
the sequence quantities are sums of the maps: ``ip = sum IP``, ``n_w^2 = sum G^w``,
``n_l^2 = sum G^l``. Per-token gradients come from one forward per side and batched
cotangents (``torch.autograd.grad(..., is_grads_batched=True)``) in chunks of tokens; the
flattened gradients ``(T_w + T_l) x |S|`` are kept in float64 for the products, so a
memory budget guards them (an error names the size; pick a smaller ``params`` set).

Output layer only, one context, hidden state ``h``: ``g_t = (e_{y_t} - p) h^T``, so two
different tokens ``a != b`` give ``<g_a, g_b> = ||h||^2 (||p||^2 - p_a - p_b)``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from marginkit.gradent.logprobs import PairBatch, SideBatch, token_logps_from_logits
from marginkit.gradent.measure import ParamSpec, probing, select_parameters

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TokenHeatmap:
    """Token-level gradient products of one pair (float64).

    Attributes
    ----------
    inner_product:
        ``IP`` ``(T_w, T_l)``.
    chosen_gram, rejected_gram:
        Within-side Grams ``(T_w, T_w)`` and ``(T_l, T_l)``.
    chosen_tokens, rejected_tokens:
        Response token ids ``(T_w,)``, ``(T_l,)``.
    chosen_token_logps, rejected_token_logps:
        Per-token log-probs ``l_t`` ``(T_w,)``, ``(T_l,)``.
    """

    inner_product: Tensor
    chosen_gram: Tensor
    rejected_gram: Tensor
    chosen_tokens: Tensor
    rejected_tokens: Tensor
    chosen_token_logps: Tensor
    rejected_token_logps: Tensor

    @property
    def chosen_token_norms(self) -> Tensor:
        """``||g^w_t||`` ``(T_w,)``."""
        return self.chosen_gram.diagonal().clamp_min(0).sqrt()

    @property
    def rejected_token_norms(self) -> Tensor:
        """``||g^l_s||`` ``(T_l,)``."""
        return self.rejected_gram.diagonal().clamp_min(0).sqrt()

    @property
    def cosine(self) -> Tensor:
        """``COS`` ``(T_w, T_l)``; NaN where a token gradient is zero."""
        denominator = torch.outer(self.chosen_token_norms, self.rejected_token_norms)
        return torch.where(denominator > 0, self.inner_product / denominator, torch.nan)

    @property
    def sequence_inner_product(self) -> Tensor:
        """``ip = <g_w, g_l> = sum IP``."""
        return self.inner_product.sum()

    @property
    def sequence_norms(self) -> tuple[Tensor, Tensor]:
        """``(n_w, n_l)`` from the Gram sums."""
        return self.chosen_gram.sum().clamp_min(0).sqrt(), self.rejected_gram.sum().clamp_min(
            0
        ).sqrt()


def masked_products(
    heatmap: TokenHeatmap, chosen_mask: Tensor, rejected_mask: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Inner product and norms of the gradients of masked log-probs ``u~ = sum_t mu_t l_t``.

    ``<grad u~_w, grad u~_l> = mu_w^T IP mu_l``, ``||grad u~_w||^2 = mu_w^T G^w mu_w`` and
    likewise for the rejected side; with all-ones masks these are ``ip``, ``n_w``, ``n_l``.

    Parameters
    ----------
    chosen_mask, rejected_mask:
        Weights ``(T_w,)`` and ``(T_l,)`` over the response tokens (e.g. from
        :func:`~marginkit.gradent.masks.diff_mask`).

    Returns
    -------
    tuple of Tensor
        ``(ip, n_w, n_l)``, float64 scalars; the cosine is ``ip / (n_w n_l)``.
    """
    mu_w = torch.as_tensor(chosen_mask, dtype=torch.float64)
    mu_l = torch.as_tensor(rejected_mask, dtype=torch.float64)
    if mu_w.shape != heatmap.chosen_tokens.shape or mu_l.shape != heatmap.rejected_tokens.shape:
        raise ValueError(
            f"masks of shapes {tuple(mu_w.shape)}, {tuple(mu_l.shape)} for responses of "
            f"{heatmap.chosen_tokens.numel()} and {heatmap.rejected_tokens.numel()} tokens"
        )
    inner = mu_w @ heatmap.inner_product @ mu_l
    n_w = (mu_w @ heatmap.chosen_gram @ mu_w).clamp_min(0).sqrt()
    n_l = (mu_l @ heatmap.rejected_gram @ mu_l).clamp_min(0).sqrt()
    return inner, n_w, n_l


def _token_grads(
    model: torch.nn.Module,
    side: SideBatch,
    tensors: list[Tensor],
    token_chunk: int,
    model_kwargs: dict[str, Any],
) -> tuple[Tensor, Tensor, Tensor]:
    """Flattened per-token gradients ``(T, |S|)`` float64, token ids and log-probs ``(T,)``."""
    logits = model(
        input_ids=side.input_ids, attention_mask=side.attention_mask, **model_kwargs
    ).logits
    per_position = token_logps_from_logits(logits, side.input_ids, side.response_mask)[0]
    positions = torch.nonzero(side.response_mask[0, 1:]).flatten()
    token_logps = per_position[positions]
    count = token_logps.shape[0]
    rows = []
    for start in range(0, count, token_chunk):
        stop = min(count, start + token_chunk)
        cotangent = torch.zeros(stop - start, count, dtype=token_logps.dtype)
        cotangent[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
        grads = torch.autograd.grad(
            token_logps,
            tensors,
            grad_outputs=cotangent.to(token_logps.device),
            is_grads_batched=True,
            retain_graph=True,
            allow_unused=True,
        )
        flat = [
            torch.zeros(stop - start, t.numel(), dtype=torch.float64, device=t.device)
            if g is None
            else g.reshape(stop - start, -1).double()
            for g, t in zip(grads, tensors, strict=True)
        ]
        rows.append(torch.cat(flat, dim=1))
    tokens = side.input_ids[0, 1:][positions]
    return torch.cat(rows, dim=0), tokens, token_logps.detach().double()


def token_heatmap(
    model: torch.nn.Module,
    pair: PairBatch,
    params: ParamSpec = "trainable",
    last_k_layers: int | None = None,
    token_chunk: int = 16,
    memory_budget_mb: float = 2048.0,
) -> TokenHeatmap:
    """Token-level gradient inner products and cosines of one pair.

    Parameters
    ----------
    model:
        A causal LM (``model(input_ids=..., attention_mask=...).logits``).
    pair:
        A :class:`~marginkit.gradent.logprobs.PairBatch` holding exactly one pair.
    params, last_k_layers:
        The parameter set ``S``; see :func:`~marginkit.gradent.measure.select_parameters`.
    token_chunk:
        Tokens per batched backward (memory of ``token_chunk`` gradients at once).
    memory_budget_mb:
        Limit on the stored flattened gradients, ``(T_w + T_l) * |S| * 8`` bytes; above it a
        ``ValueError`` names the size.

    Returns
    -------
    TokenHeatmap
        ``IP`` ``(T_w, T_l)``, the within-side Grams, token ids and log-probs. The model's
        mode, ``.grad`` fields and ``requires_grad`` flags are left as they were.
    """
    if len(pair) != 1:
        raise ValueError(f"token_heatmap takes one pair, got a batch of {len(pair)}")
    if token_chunk < 1:
        raise ValueError(f"token_chunk must be at least 1, got {token_chunk}")
    for name, side in (("chosen", pair.chosen), ("rejected", pair.rejected)):
        if int(side.lengths[0]) == 0:
            raise ValueError(f"the {name} response is empty")
        if bool(side.response_mask[0, 0] != 0):
            raise ValueError(f"the {name} response starts at position 0: it needs a prompt")
    selected = select_parameters(model, params, last_k_layers)
    size = sum(p.numel() for p in selected.values())
    tokens = int(pair.chosen.lengths[0]) + int(pair.rejected.lengths[0])
    # Limitation: all token gradients are stored (no streaming of the products).
    needed_mb = tokens * size * 8 / 2**20
    if needed_mb > memory_budget_mb:
        raise ValueError(
            f"the heat-map needs {tokens} token gradients of {size} parameters "
            f"({needed_mb:.0f} MB in float64), over memory_budget_mb={memory_budget_mb:.0f}; "
            "choose a smaller params set (e.g. 'lm_head', last_k_layers, 'lora')"
        )
    tensors = list(selected.values())
    with probing(model, tensors):
        grads_w, ids_w, logps_w = _token_grads(
            model, pair.chosen, tensors, token_chunk, pair.model_kwargs
        )
        grads_l, ids_l, logps_l = _token_grads(
            model, pair.rejected, tensors, token_chunk, pair.model_kwargs
        )
    return TokenHeatmap(
        inner_product=grads_w @ grads_l.T,
        chosen_gram=grads_w @ grads_w.T,
        rejected_gram=grads_l @ grads_l.T,
        chosen_tokens=ids_w.cpu(),
        rejected_tokens=ids_l.cpu(),
        chosen_token_logps=logps_w.cpu(),
        rejected_token_logps=logps_l.cpu(),
    )


def plot_token_heatmap(
    heatmap: TokenHeatmap,
    path: str | Path,
    chosen_labels: list[str] | None = None,
    rejected_labels: list[str] | None = None,
    title: str | None = None,
) -> Path:
    """Write ``COS`` as a PNG (rows chosen tokens, columns rejected tokens, scale -1..1).

    Labels default to the token ids; each cell shows its cosine to two decimals.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cosine = heatmap.cosine.cpu().numpy()
    rows = chosen_labels or [str(int(t)) for t in heatmap.chosen_tokens]
    cols = rejected_labels or [str(int(t)) for t in heatmap.rejected_tokens]
    if len(rows) != cosine.shape[0] or len(cols) != cosine.shape[1]:
        raise ValueError(
            f"labels ({len(rows)}, {len(cols)}) do not match the map {tuple(cosine.shape)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    side = 0.45
    figure, axis = plt.subplots(
        figsize=(2.0 + side * len(cols), 1.5 + side * len(rows)), layout="constrained"
    )
    image = axis.imshow(cosine, cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    for i in range(cosine.shape[0]):
        for j in range(cosine.shape[1]):
            axis.text(j, i, f"{cosine[i, j]:.2f}", ha="center", va="center", fontsize=6)
    axis.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
    axis.set_yticks(range(len(rows)), rows, fontsize=7)
    axis.set_xlabel("rejected token")
    axis.set_ylabel("chosen token")
    axis.set_title(title or "cos(grad l_w_t, grad l_l_s)", fontsize=8)
    figure.colorbar(image, ax=axis, shrink=0.8)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
