"""Per-pair gradients of log pi(y_w) and log pi(y_l): inner products, cosines, norms, cases.

For each pair ``i``: ``g_w = grad_S u_w``, ``g_l = grad_S u_l`` over a parameter set ``S``,
``ip = <g_w, g_l>``, ``n = ||g||``, ``cos = ip / (n_w n_l)``, ``ratio_w = ip / n_w^2`` and
``ratio_l = ip / n_l^2`` (DPO's chosen side rises iff ``ratio_w < 1``, its rejected side falls
iff ``ratio_l < 1``). Two strategies give the same numbers:

- ``"loop"``: one forward per pair and side, ``torch.autograd.grad``; memory of one gradient.
- ``"vmap"``: ``torch.func.functional_call`` + ``vmap(grad)`` over chunks of pairs; about
  ``chunk * 2 * |S|`` gradient entries plus activations at once.

The model is put in eval mode (restored after), ``.grad`` fields, optimiser state and the
global RNG are untouched, and sums of products are taken in float64.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from marginkit.gradent.logprobs import PairBatch, SideBatch, token_logps_from_logits
from marginkit.gradent.predict import PredictedChanges, predict_changes

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def probing(model: torch.nn.Module, tensors: Iterable[Tensor]) -> Iterator[None]:
    """Eval mode with gradients on ``tensors``; mode and ``requires_grad`` flags restored after."""
    tensors = list(tensors)
    was_training = model.training
    flags = [p.requires_grad for p in tensors]
    model.eval()
    try:
        for p in tensors:
            p.requires_grad_(True)
        yield
    finally:
        for p, flag in zip(tensors, flags, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)


ParamSpec = str | Sequence[str] | Callable[[str, torch.nn.Parameter], bool]


def select_parameters(
    model: torch.nn.Module, params: ParamSpec = "trainable", last_k_layers: int | None = None
) -> dict[str, torch.nn.Parameter]:
    """The named parameters of a measurement set ``S`` (tied weights appear once).

    Parameters
    ----------
    params:
        ``"trainable"`` (``requires_grad``; only the adapters under peft), ``"all"``,
        ``"lora"`` (names containing ``lora_``; error if none), ``"lm_head"`` (the output
        embedding), a regular expression (matched with ``re.search``), a list of exact
        names, or a predicate ``(name, parameter) -> bool``.
    last_k_layers:
        Keep only parameters of the last ``k`` numbered blocks (``...h.<i>.`` /
        ``...layers.<i>.``), intersected with ``params``.
    """
    named = dict(model.named_parameters())  # deduplicates tied parameters
    if callable(params):
        chosen = {n: p for n, p in named.items() if params(n, p)}
    elif isinstance(params, str):
        if params == "trainable":
            chosen = {n: p for n, p in named.items() if p.requires_grad}
        elif params == "all":
            chosen = dict(named)
        elif params == "lora":
            chosen = {n: p for n, p in named.items() if "lora_" in n}
            if not chosen:
                raise ValueError("params='lora' but the model has no parameter named 'lora_*'")
        elif params == "lm_head":
            head = (
                model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
            )
            if head is None:
                raise ValueError("params='lm_head' but the model has no output embedding")
            chosen = {n: p for n, p in named.items() if p is head.weight}
        else:
            pattern = re.compile(params)
            chosen = {n: p for n, p in named.items() if pattern.search(n)}
    else:
        missing = [n for n in params if n not in named]
        if missing:
            raise ValueError(f"unknown parameter name(s) {missing[:5]}")
        chosen = {n: named[n] for n in params}
    if last_k_layers is not None:
        layer_ids = {int(m.group(1)) for n in named if (m := re.search(r"\.(\d+)\.", n))}
        if not layer_ids:
            raise ValueError("last_k_layers given but no numbered layers found in the names")
        keep = set(sorted(layer_ids)[-last_k_layers:])
        chosen = {
            n: p
            for n, p in chosen.items()
            if (m := re.search(r"\.(\d+)\.", n)) and int(m.group(1)) in keep
        }
    if not chosen:
        raise ValueError(f"params={params!r} selects no parameter of the model")
    return chosen


@dataclasses.dataclass
class PairStats:
    """Per-pair measurement, every field ``(batch,)`` (float64 where real).

    ``strategy_used`` is ``"loop"`` or ``"vmap"`` (after any fallback of ``"auto"``).
    ``chosen_logps``/``rejected_logps`` are ``u``; ``*_mean_logps`` are ``u/|y|``; ratios and
    cosines are NaN where a norm is 0. ``predicted`` is filled when a loss was given
    (changes per unit learning rate).
    """

    chosen_logps: Tensor
    rejected_logps: Tensor
    chosen_lengths: Tensor
    rejected_lengths: Tensor
    inner_product: Tensor
    chosen_norm: Tensor
    rejected_norm: Tensor
    chosen_weight: Tensor | None = None
    rejected_weight: Tensor | None = None
    predicted: PredictedChanges | None = None
    strategy_used: str = ""

    @property
    def chosen_mean_logps(self) -> Tensor:
        return self.chosen_logps / self.chosen_lengths

    @property
    def rejected_mean_logps(self) -> Tensor:
        return self.rejected_logps / self.rejected_lengths

    @property
    def cosine(self) -> Tensor:
        denominator = self.chosen_norm * self.rejected_norm
        return torch.where(denominator > 0, self.inner_product / denominator, torch.nan)

    @property
    def ratio_chosen(self) -> Tensor:
        sq = self.chosen_norm**2
        return torch.where(sq > 0, self.inner_product / sq, torch.nan)

    @property
    def ratio_rejected(self) -> Tensor:
        sq = self.rejected_norm**2
        return torch.where(sq > 0, self.inner_product / sq, torch.nan)


def _loop_grad(
    model: torch.nn.Module, side: SideBatch, row: int, tensors: list[Tensor], kwargs: dict
) -> tuple[Tensor, list[Tensor]]:
    one = side.select(slice(row, row + 1))
    extra = {k: v[row : row + 1] if isinstance(v, Tensor) else v for k, v in kwargs.items()}
    logits = model(input_ids=one.input_ids, attention_mask=one.attention_mask, **extra).logits
    u = token_logps_from_logits(logits, one.input_ids, one.response_mask).sum()
    grad = torch.autograd.grad(u, tensors, allow_unused=True)
    return u.detach(), [torch.zeros_like(t) if g is None else g for g, t in zip(grad, tensors)]


def _dot(a: list[Tensor], b: list[Tensor]) -> Tensor:
    return sum(
        (torch.sum(x.double() * y.double()) for x, y in zip(a, b, strict=True)),
        start=torch.zeros((), dtype=torch.float64),
    )


def _measure_loop(model, batch, params):
    """One pair at a time: only two gradients are held at once."""
    tensors = list(params.values())
    rows = []
    for row in range(len(batch)):
        u_w, g_w = _loop_grad(model, batch.chosen, row, tensors, batch.model_kwargs)
        u_l, g_l = _loop_grad(model, batch.rejected, row, tensors, batch.model_kwargs)
        rows.append((u_w, u_l, _dot(g_w, g_l), _dot(g_w, g_w).sqrt(), _dot(g_l, g_l).sqrt()))
    return tuple(torch.stack(column) for column in zip(*rows))


def _vmap_side_grads(model, side, params, kwargs, chunk_size):
    from torch.func import functional_call, grad, vmap

    names = list(params)
    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in params}
    frozen.update(dict(model.named_buffers()))

    def u_of(selected, ids, attention, response):
        state = {**frozen, **dict(zip(names, selected, strict=True))}
        out = functional_call(
            model, state, (), {"input_ids": ids[None], "attention_mask": attention[None], **kwargs}
        )
        token = token_logps_from_logits(out.logits, ids[None], response[None])
        total = token.sum()
        return total, total

    per_pair = vmap(grad(u_of, has_aux=True), in_dims=(None, 0, 0, 0))
    detached = tuple(p.detach() for p in params.values())
    values, grads = [], []
    size = side.input_ids.shape[0]
    step = size if chunk_size is None else max(1, int(chunk_size))
    for start in range(0, size, step):
        part = side.select(slice(start, start + step))
        chunk_grads, chunk_values = per_pair(
            detached, part.input_ids, part.attention_mask, part.response_mask
        )
        grads.append(chunk_grads)
        values.append(chunk_values.detach())
    return torch.cat(values), grads


def _measure_vmap(model, batch, params, chunk_size):
    if any(isinstance(v, Tensor) for v in batch.model_kwargs.values()):
        raise ValueError("strategy='vmap' does not pass per-pair model_kwargs; use 'loop'")
    u_w, g_w = _vmap_side_grads(model, batch.chosen, params, batch.model_kwargs, chunk_size)
    u_l, g_l = _vmap_side_grads(model, batch.rejected, params, batch.model_kwargs, chunk_size)
    ips, nws, nls = [], [], []
    for chunk_w, chunk_l in zip(g_w, g_l, strict=True):
        ip = n_w = n_l = 0.0
        for a, b in zip(chunk_w, chunk_l, strict=True):
            a, b = a.double().flatten(1), b.double().flatten(1)
            ip = ip + (a * b).sum(1)
            n_w = n_w + (a * a).sum(1)
            n_l = n_l + (b * b).sum(1)
        ips.append(ip)
        nws.append(n_w)
        nls.append(n_l)
    return u_w, u_l, torch.cat(ips), torch.cat(nws).sqrt(), torch.cat(nls).sqrt()


def measure_pairs(
    model: torch.nn.Module,
    batch: PairBatch,
    loss: Any = None,
    params: ParamSpec = "trainable",
    strategy: str = "auto",
    chunk_size: int | None = None,
    last_k_layers: int | None = None,
    reference: tuple[Tensor, Tensor] | None = None,
    learning_rate: float = 1.0,
) -> PairStats:
    """Measure gradient entanglement of every pair in ``batch``.

    Parameters
    ----------
    model:
        A causal LM (``model(input_ids=..., attention_mask=...).logits``).
    batch:
        Pairs from :func:`~marginkit.gradent.logprobs.build_pair_batch`.
    loss:
        Optional ``callable(u_w, u_l, r_w, r_l, len_w, len_l) -> PreferenceLossOutput``
        (e.g. ``functools.partial(preference_loss_from_stats, "dpo")``) or a loss name; with
        it the weights, predicted changes (per ``learning_rate``) and cases are filled.
    params, last_k_layers:
        The parameter set ``S``; see :func:`select_parameters`.
    strategy:
        ``"loop"``, ``"vmap"`` or ``"auto"`` (vmap, falling back to loop with one warning).
    chunk_size:
        Pairs per vmap call (all at once when None).
    reference:
        Reference ``(r_w, r_l)``, ``(batch,)`` each, for losses that need it.
    """
    if strategy not in ("auto", "loop", "vmap"):
        raise ValueError(f"unknown strategy {strategy!r}; choose 'auto', 'loop' or 'vmap'")
    if len(batch) == 0:
        raise ValueError("the batch holds no pairs")
    selected = select_parameters(model, params, last_k_layers)
    with probing(model, selected.values()):
        used = strategy
        if strategy == "loop":
            u_w, u_l, ip, n_w, n_l = _measure_loop(model, batch, selected)
        else:
            used = "vmap"
            try:
                u_w, u_l, ip, n_w, n_l = _measure_vmap(model, batch, selected, chunk_size)
            except Exception as error:  # noqa: BLE001 - fall back on any functorch failure
                if strategy == "vmap":
                    raise
                logger.warning("vmap measurement failed (%s); using the loop strategy", error)
                u_w, u_l, ip, n_w, n_l = _measure_loop(model, batch, selected)
                used = "loop"
    stats = PairStats(
        chosen_logps=u_w.double(),
        rejected_logps=u_l.double(),
        chosen_lengths=batch.chosen.lengths.double(),
        rejected_lengths=batch.rejected.lengths.double(),
        inner_product=ip,
        chosen_norm=n_w,
        rejected_norm=n_l,
        strategy_used=used,
    )
    if loss is not None:
        attach_prediction(stats, loss, reference, learning_rate)
    return stats


def attach_prediction(
    stats: PairStats,
    loss: Any,
    reference: tuple[Tensor, Tensor] | None = None,
    learning_rate: float = 1.0,
    **loss_kwargs: Any,
) -> PairStats:
    """Fill weights, predicted changes and cases of ``stats`` for a loss (name or callable)."""
    from marginkit.gradent.losses import preference_loss

    ref_w, ref_l = (None, None) if reference is None else reference
    arguments = dict(
        reference_chosen_logps=None if ref_w is None else ref_w.double(),
        reference_rejected_logps=None if ref_l is None else ref_l.double(),
        chosen_lengths=stats.chosen_lengths,
        rejected_lengths=stats.rejected_lengths,
    )
    if isinstance(loss, str):
        out = preference_loss(
            loss, stats.chosen_logps, stats.rejected_logps, **arguments, **loss_kwargs
        )
    else:
        out = loss(stats.chosen_logps, stats.rejected_logps, **arguments)
    stats.chosen_weight = out.chosen_weight.double()
    stats.rejected_weight = out.rejected_weight.double()
    stats.predicted = predict_changes(
        stats.inner_product,
        stats.chosen_norm**2,
        stats.rejected_norm**2,
        stats.chosen_weight,
        stats.rejected_weight,
        learning_rate=learning_rate,
        h_chosen_prime=out.decomposition.h_chosen_prime.double(),
        h_rejected_prime=out.decomposition.h_rejected_prime.double(),
    )
    return stats


def summarize(stats: PairStats, prefix: str = "gradent/") -> dict[str, float]:
    """Mean and median of the per-pair quantities as a flat metric dict."""
    from marginkit.gradent.predict import case_fractions, grad_conditions

    metrics: dict[str, float] = {}
    fields = {
        "logp/chosen": stats.chosen_logps,
        "logp/rejected": stats.rejected_logps,
        "logp/chosen_mean": stats.chosen_mean_logps,
        "logp/rejected_mean": stats.rejected_mean_logps,
        "grad/cosine": stats.cosine,
        "grad/inner_product": stats.inner_product,
        "grad/chosen_norm": stats.chosen_norm,
        "grad/rejected_norm": stats.rejected_norm,
        "grad/ratio_chosen": stats.ratio_chosen,
        "grad/ratio_rejected": stats.ratio_rejected,
    }
    for name, value in fields.items():
        finite = value[torch.isfinite(value)]
        metrics[f"{prefix}{name}"] = finite.mean().item() if finite.numel() else float("nan")
        metrics[f"{prefix}{name}_median"] = (
            finite.median().item() if finite.numel() else float("nan")
        )
    conditions = grad_conditions(stats.inner_product, stats.chosen_norm**2, stats.rejected_norm**2)
    metrics.update({f"{prefix}grad/{k}": v for k, v in conditions.items()})
    if stats.predicted is not None:
        metrics.update({f"{prefix}{k}": v for k, v in case_fractions(stats.predicted.case).items()})
        metrics[f"{prefix}predicted/delta_chosen"] = stats.predicted.delta_chosen.mean().item()
        metrics[f"{prefix}predicted/delta_rejected"] = stats.predicted.delta_rejected.mean().item()
    return metrics
