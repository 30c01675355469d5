"""Training loops under ``accelerate``: two-stage maximum likelihood and energy-based.

Both loops write atomic checkpoints through ``marginkit.shared`` (``model`` weights, the
optimizer, the stage and step) and resume from the latest one in ``output_dir``. The
stage-2 and EB buffers are not stored: a resumed run refills them by ancestral sampling.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from pathlib import Path

import torch

from marginkit.mam.config import EBMConfig, MLEConfig, ModelSettings
from marginkit.mam.losses import (
    aoarm_loss,
    clean_log_f,
    eb_kl_loss,
    eb_regression_loss,
    sc_penalty,
    self_consistency_errors,
)
from marginkit.mam.model import MarginalizationModel, NetworkConfig
from marginkit.mam.sampling import ancestral_sample, censor_and_resample
from marginkit.shared import (
    MetricsWriter,
    latest_checkpoint,
    load_checkpoint,
    make_accelerator,
    save_checkpoint,
    seed_everything,
    select_device,
)

logger = logging.getLogger(__name__)


def build_model(
    settings: ModelSettings,
    num_variables: int,
    num_categories: int,
    image_shape: tuple[int, int] | None = None,
) -> MarginalizationModel:
    """A :class:`MarginalizationModel` from CLI-level settings."""
    return MarginalizationModel(
        NetworkConfig(
            num_variables=num_variables,
            num_categories=num_categories,
            backbone=settings.backbone,
            width=settings.width,
            depth=settings.depth,
            layout=settings.layout,
            image_shape=image_shape,
            uniform_offset=settings.uniform_offset,
        )
    )


def load_model(path: str | Path, device: str = "cpu") -> MarginalizationModel:
    """Rebuild a trained model from a checkpoint folder (or a run folder: its latest)."""
    state = load_checkpoint(path, map_location=device)
    network = state.extra.get("network")
    if network is None:
        raise ValueError(f"{state.path} was not written by marginkit-mam (no network config)")
    if network.get("image_shape") is not None:
        network["image_shape"] = tuple(network["image_shape"])
    model = MarginalizationModel(NetworkConfig(**network))
    model.load_state_dict(state.tensors["model"])
    return model.to(device).eval()


# Limitation: tested on one process only; under `accelerate launch` each step calls the
# wrapped model several times before one backward pass, which DDP may need told about.
def _accelerator(device: str, mixed_precision: str = "no"):
    chosen = select_device(None if device == "auto" else device)
    return make_accelerator(mixed_precision=mixed_precision, cpu=chosen.type == "cpu")


def _batches(data: torch.Tensor, batch_size: int, seed: int, generator_offset: int):
    """Endless shuffled batches; each epoch's permutation is seeded by (seed, epoch)."""
    epoch = generator_offset
    while True:
        permutation = torch.randperm(
            len(data), generator=torch.Generator().manual_seed(seed + epoch)
        )
        for start in range(0, len(data) - batch_size + 1, batch_size):
            yield epoch, data[permutation[start : start + batch_size]]
        epoch += 1


def _save(root, step, model, optimizer, config, stage, extra=None):
    network = dataclasses.asdict(model.config)
    save_checkpoint(
        root,
        step,
        tensors={"model": model.state_dict()},
        config=config,
        extra={"stage": stage, "network": network, **(extra or {})},
        objects={"optimizer": optimizer.state_dict()},
        keep_last=2,
    )


def train_mle(
    train: torch.Tensor,
    config: MLEConfig,
    model: MarginalizationModel | None = None,
    image_shape: tuple[int, int] | None = None,
) -> tuple[MarginalizationModel, list[dict[str, float]]]:
    """Two-stage maximum likelihood on complete codes ``train`` ``(N, D)``.

    Stage 1 minimises the AO-ARM loss over ``p_phi``. Stage 2 freezes ``p_phi`` (eval
    mode) and minimises ``D * 1/2 (mean e^2 on data + mean e^2 on buffer) +
    f_theta(empty)^2`` over ``f_theta``; the buffer holds ``batch_size`` samples from
    ``p_phi``, refreshed by ancestral sampling every ``refresh_every`` steps (default: once
    per epoch) and by censor-and-resample (``gibbs_k`` variables) every step.

    Returns the trained model (unwrapped) and the logged metrics.
    """
    num_variables = train.shape[1]
    num_categories = config.num_categories or int(train.max()) + 1
    if len(train) < config.batch_size:
        raise ValueError(f"{len(train)} training rows < batch_size={config.batch_size}")
    generator = seed_everything(config.seed)
    model = model or build_model(config.model, num_variables, num_categories, image_shape)
    accelerator = _accelerator(config.device, config.mixed_precision)
    device = accelerator.device
    root = Path(config.output_dir)
    start_step = 0
    state = load_checkpoint(root) if config.resume and latest_checkpoint(root) else None
    if state is not None:
        model.load_state_dict(state.tensors["model"])
        start_step = state.step
        logger.info("resuming from %s (step %d)", state.path, start_step)
    model.to(device)
    history: list[dict[str, float]] = []
    writer = MetricsWriter(root / "metrics.jsonl") if accelerator.is_main_process else None
    batches_per_epoch = len(train) // config.batch_size
    total = config.stage1_steps + config.stage2_steps

    # Stage 1: AO-ARM.
    if start_step < config.stage1_steps:
        optimizer = torch.optim.Adam(model.conditional_parameters(), lr=config.lr_stage1)
        if state is not None and state.extra.get("stage") == 1:
            optimizer.load_state_dict(state.objects["optimizer"])
        wrapped, optimizer = accelerator.prepare(model, optimizer)
        wrapped.train()
        stream = _batches(train, config.batch_size, config.seed, start_step // batches_per_epoch)
        for _ in range(start_step % batches_per_epoch):
            next(stream)
        for step in range(start_step + 1, config.stage1_steps + 1):
            _, batch = next(stream)
            loss, ell = aoarm_loss(wrapped, batch.to(device), generator)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.conditional_parameters(), config.grad_clip)
            optimizer.step()
            _log(
                history,
                writer,
                step,
                {"loss/aoarm": loss.item(), "ll/aoarm_nats": ell.mean().item()},
            )
            if step % config.checkpoint_every == 0 or step == config.stage1_steps:
                if accelerator.is_main_process:
                    _save(root, step, model, optimizer, config, stage=1)
        start_step = config.stage1_steps
        state = None

    # Stage 2: self-consistency distillation of f_theta.
    if start_step < total:
        parameters = list(model.parameters()) if config.joint else model.marginal_parameters()
        trainable = {id(p) for p in parameters}
        for parameter in model.parameters():
            parameter.requires_grad_(id(parameter) in trainable)
        optimizer = torch.optim.Adam(parameters, lr=config.lr_stage2)
        if state is not None and state.extra.get("stage") == 2:
            optimizer.load_state_dict(state.objects["optimizer"])
        wrapped, optimizer = accelerator.prepare(model, optimizer)
        wrapped.eval()  # p_phi frozen; no layer here behaves differently in train mode
        refresh = config.refresh_every or batches_per_epoch
        buffer = None
        offset = start_step - config.stage1_steps
        stream = _batches(train, config.batch_size, config.seed + 7919, offset // batches_per_epoch)
        for _ in range(offset % batches_per_epoch):
            next(stream)
        for step in range(start_step + 1, total + 1):
            local = step - config.stage1_steps
            if buffer is None or (local - 1) % refresh == 0:
                buffer, _ = ancestral_sample(
                    model, config.batch_size, num_variables, generator, device=device
                )
            buffer = censor_and_resample(model, buffer, config.gibbs_k, generator)
            _, batch = next(stream)
            sources = {
                "both": [batch.to(device), buffer],
                "data": [batch.to(device)],
                "buffer": [buffer],
            }[config.sc_sources]
            error_sets, empty = [], None
            for states in sources:
                errors, empty = self_consistency_errors(
                    wrapped, states, generator, conditional_grad=config.joint
                )
                error_sets.append(errors)
            loss = sc_penalty(error_sets, empty, num_variables, 0.0)
            if config.joint:
                loss = loss + aoarm_loss(wrapped, batch.to(device), generator)[0]
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
            _log(history, writer, step, {"loss/sc": loss.item(), "sc/f_empty": empty.item()})
            if step % config.checkpoint_every == 0 or step == total:
                if accelerator.is_main_process:
                    _save(root, step, model, optimizer, config, stage=2)
        for parameter in model.parameters():
            parameter.requires_grad_(True)
    if writer is not None:
        writer.close()
    return accelerator.unwrap_model(model).eval(), history


def _log(history, writer, step, metrics):
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise FloatingPointError(f"{name} is {value} at step {step}")
    history.append({"step": step, **metrics})
    if writer is not None:
        writer.write(metrics, step)
    if step % 500 == 0:
        logger.info("step %d %s", step, {k: round(v, 4) for k, v in metrics.items()})


def train_ebm(
    log_f: Callable[[torch.Tensor], torch.Tensor],
    num_variables: int,
    num_categories: int,
    config: EBMConfig,
    model: MarginalizationModel | None = None,
    proposal_logits: torch.Tensor | None = None,
) -> tuple[MarginalizationModel, list[dict[str, float]]]:
    """Energy-based training from ``log f`` (int64 ``(B, D)`` -> float ``(B,)``, nats).

    ``objective="kl"``: the buffer (``batch_size`` samples of ``p_phi``) gets a
    censor-and-resample update every step (and a full ancestral refresh every
    ``refresh_every``), then :func:`marginkit.mam.losses.eb_kl_loss`.
    ``objective="regression"``: pseudo-data from independent categoricals with logits
    ``proposal_logits`` ``(D, K)`` (uniform when ``None``) and a learnable ``log Z``
    initialised at ``D log K``; :func:`marginkit.mam.losses.eb_regression_loss`.
    """
    if config.batch_size < 2:
        raise ValueError("energy-based training needs batch_size >= 2 (the advantage uses a std)")
    if config.objective not in ("kl", "regression"):
        raise ValueError(f"objective={config.objective!r} must be 'kl' or 'regression'")
    generator = seed_everything(config.seed)
    model = model or build_model(config.model, num_variables, num_categories)
    accelerator = _accelerator(config.device)
    device = accelerator.device
    root = Path(config.output_dir)
    uniform = num_variables * math.log(num_categories)
    begin = uniform if config.begin_target is None else config.begin_target
    log_z = torch.nn.Parameter(torch.tensor(uniform, device=device))
    groups = [{"params": list(model.parameters()), "lr": config.lr}]
    if config.objective == "regression":
        groups.append({"params": [log_z], "lr": config.log_z_lr})
    optimizer = torch.optim.Adam(groups)
    start_step = 0
    state = load_checkpoint(root) if config.resume and latest_checkpoint(root) else None
    if state is not None:
        model.load_state_dict(state.tensors["model"])
        optimizer.load_state_dict(state.objects["optimizer"])
        log_z.data.fill_(state.extra.get("log_z", uniform))
        start_step = state.step
    model.to(device)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    wrapped.train()
    writer = MetricsWriter(root / "metrics.jsonl") if accelerator.is_main_process else None
    if proposal_logits is None:
        proposal_logits = torch.zeros(num_variables, num_categories)
    proposal = torch.softmax(proposal_logits.float(), -1)
    history: list[dict[str, float]] = []
    buffer = None
    for step in range(start_step + 1, config.steps + 1):
        if buffer is None or (step - 1) % config.refresh_every == 0:
            buffer, _ = ancestral_sample(
                model, config.batch_size, num_variables, generator, device=device
            )
        buffer = censor_and_resample(model, buffer, config.gibbs_k, generator)
        if config.objective == "kl":
            target = clean_log_f(log_f(buffer).to(device).float(), config.log_f_floor, step)
            loss, stats = eb_kl_loss(
                wrapped, buffer, target, config.alpha, begin, config.advantage, generator
            )
            if stats["eb/adv_std"] < 1e-6:
                logger.warning(
                    "advantage std %.2e at step %d: the sampler may have collapsed",
                    stats["eb/adv_std"],
                    step,
                )
        else:
            draws = torch.multinomial(proposal, config.batch_size, True, generator=generator)
            pseudo = draws.T.contiguous().to(device)
            target = clean_log_f(log_f(pseudo).to(device).float(), config.log_f_floor, step)
            loss, stats = eb_regression_loss(
                wrapped, pseudo, target, buffer, log_z, config.alpha, generator
            )
            stats["eb/log_z_param"] = float(log_z.detach())
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        _log(history, writer, step, {"loss/total": loss.item(), **stats})
        if step % config.checkpoint_every == 0 or step == config.steps:
            if accelerator.is_main_process:
                _save(
                    root,
                    step,
                    model,
                    optimizer,
                    config,
                    stage=0,
                    extra={"log_z": float(log_z.detach())},
                )
    if writer is not None:
        writer.close()
    return accelerator.unwrap_model(model).eval(), history
