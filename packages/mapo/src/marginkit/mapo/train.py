"""The trainer: MaPO, Diffusion-DPO or SFT on an SDXL- or SD1.5-shaped pipeline.

One process on a CPU and ``accelerate launch`` over many GPUs run the same loop. Per
micro-batch: fp32 VAE encode (posterior sample), shared noise and timestep per pair, text
conditioning without gradients, one UNet forward over both halves, the objective, one
backward; clipping, optimizer and LR-scheduler steps happen when gradients synchronise.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import torch

from marginkit.mapo.config import TrainConfig
from marginkit.mapo.cost import peak_memory_mb
from marginkit.mapo.data import PairDataset, build_dataset, collate_pairs
from marginkit.mapo.losses import loss_metrics
from marginkit.mapo.models import (
    DiffusionParts,
    encode_images,
    encode_text,
    load_parts_from,
    time_ids,
    tokenize,
)
from marginkit.mapo.step import StepOutput, compute_objective, frozen_reference, lora_reference
from marginkit.mapo.step import unwrap as unwrap_model
from marginkit.mapo.weights import save_lora
from marginkit.shared import (
    MetricsWriter,
    latest_checkpoint,
    load_checkpoint,
    make_accelerator,
    resolve_dtype,
    save_checkpoint,
    seed_everything,
    skip_seen_batches,
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    """What :meth:`Trainer.train` returns."""

    global_step: int
    history: list[dict[str, float]]
    output_dir: Path


class Trainer:
    """Preference alignment of a diffusion UNet with one of three objectives.

    Parameters
    ----------
    config:
        The run's settings.
    parts:
        Pipeline parts; loaded from ``config.pretrained_model`` when ``None``.
    dataset:
        Preference pairs; built from ``config.data_format``/``data_path`` when ``None``.
    accelerator:
        An ``accelerate.Accelerator``; one is made from the config when ``None``.

    Examples
    --------
    >>> config = TrainConfig(data_format="jsonl", data_path="pairs.jsonl")
    >>> Trainer(config).train()  # doctest: +SKIP
    """

    def __init__(
        self,
        config: TrainConfig,
        parts: DiffusionParts | None = None,
        dataset: PairDataset | None = None,
        accelerator: Any = None,
    ) -> None:
        from accelerate import DataLoaderConfiguration

        config.validate()
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.accelerator = accelerator or make_accelerator(
            mixed_precision=config.mixed_precision,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            project_dir=self.output_dir,
            cpu=config.cpu,
            seed=config.seed,
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        )
        seed_everything(config.seed)
        self.parts = parts if parts is not None else load_parts_from(config)
        self.dataset = dataset if dataset is not None else build_dataset(config)
        self.weight_dtype = resolve_dtype(config.mixed_precision)
        self.global_step = 0
        self.epoch = 0
        self.batches_seen = 0
        self._setup_models()
        self._setup_optimization()

    # ------------------------------------------------------------------ setup
    def _setup_models(self) -> None:
        config, parts, device = self.config, self.parts, self.accelerator.device
        _move(parts.vae.requires_grad_(False).eval(), device, torch.float32)
        for encoder in parts.text_encoders:
            _move(encoder.requires_grad_(False).eval(), device, self.weight_dtype)
        unet = parts.unet
        self.reference_unet = None
        if config.mode == "lora":
            from peft import LoraConfig

            _move(unet.requires_grad_(False), device, self.weight_dtype)
            unet.add_adapter(
                LoraConfig(
                    r=config.lora_rank,
                    lora_alpha=config.lora_rank,
                    init_lora_weights="gaussian",
                    target_modules=list(config.lora_targets),
                )
            )
            # Trainable adapter weights stay fp32 under fp16 and bf16 alike.
            for parameter in unet.parameters():
                if parameter.requires_grad:
                    parameter.data = parameter.data.float()
        else:
            _move(unet.requires_grad_(True), device, torch.float32)
            if config.objective == "dpo":
                # Copied before the optimizer exists, so it can never be stepped.
                self.reference_unet = copy.deepcopy(unet).requires_grad_(False).eval()
        if config.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        unet.train()

    def _setup_optimization(self) -> None:
        from diffusers.optimization import get_scheduler

        config, accelerator = self.config, self.accelerator
        params = [p for p in self.parts.unet.parameters() if p.requires_grad]
        # Limitation: only the UNet is trained (no text-encoder LoRA), with torch's AdamW
        # (no 8-bit optimizer, no EMA).
        optimizer = torch.optim.AdamW(
            params,
            lr=config.learning_rate,
            betas=(config.adam_beta1, config.adam_beta2),
            weight_decay=config.adam_weight_decay,
            eps=config.adam_epsilon,
        )
        # The prepared scheduler advances num_processes times per optimizer step, so the
        # schedule is given in optimizer steps times processes: lr(k) is per optimizer step.
        processes = accelerator.num_processes
        scheduler = get_scheduler(
            config.lr_scheduler,
            optimizer=optimizer,
            num_warmup_steps=config.lr_warmup_steps * processes,
            num_training_steps=config.max_train_steps * processes,
        )
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=config.train_batch_size,
            shuffle=True,
            collate_fn=collate_pairs,
            num_workers=config.dataloader_num_workers,
            drop_last=True,
        )
        if len(loader) == 0:
            raise ValueError(
                f"{len(self.dataset)} pairs make no full batch of train_batch_size="
                f"{config.train_batch_size}"
            )
        self.unet, self.optimizer, self.loader, self.lr_scheduler = accelerator.prepare(
            self.parts.unet, optimizer, loader, scheduler
        )
        self.trainable = params

    # ------------------------------------------------------------------ state
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Names and values of the trained weights (adapters in LoRA mode)."""
        inner = unwrap_model(self.unet)
        return {n: p.detach() for n, p in inner.named_parameters() if p.requires_grad}

    def save_checkpoint(self) -> Path | None:
        """Write a resumable checkpoint under ``output_dir/checkpoints`` (main process)."""
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return None
        return save_checkpoint(
            self.output_dir / "checkpoints",
            step=self.global_step,
            tensors={"trainable": self.trainable_state()},
            config=self.config,
            extra={"epoch": self.epoch, "batches_seen_in_epoch": self.batches_seen},
            objects={
                "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": self.lr_scheduler.state_dict(),
            },
            keep_last=self.config.checkpoints_total_limit,
        )

    def resume(self, path: str | Path | None = None) -> bool:
        """Load the newest checkpoint (or ``path``): weights, optimizer, step, data position."""
        path = path or latest_checkpoint(self.output_dir / "checkpoints")
        if path is None:
            return False
        state = load_checkpoint(path)
        inner = unwrap_model(self.unet)
        named = dict(inner.named_parameters())
        saved = state.tensors["trainable"]
        if set(saved) != {n for n, p in named.items() if p.requires_grad}:
            raise ValueError(f"checkpoint {state.path} does not match this model's trained weights")
        with torch.no_grad():
            for name, value in saved.items():
                named[name].copy_(value)
        self.optimizer.load_state_dict(state.objects["optimizer"])
        self.lr_scheduler.load_state_dict(state.objects["lr_scheduler"])
        self.global_step = state.step
        self.epoch = int(state.extra["epoch"])
        self.batches_seen = int(state.extra["batches_seen_in_epoch"])
        logger.info("resumed from %s at step %d", state.path, self.global_step)
        return True

    def save_final(self) -> Path:
        """Diffusers-format weights: LoRA for ``load_lora_weights``, or ``unet/`` folder."""
        self.accelerator.wait_for_everyone()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        inner = unwrap_model(self.unet)
        if self.accelerator.is_main_process:
            if self.config.mode == "lora":
                save_lora(inner, self.output_dir, self.parts.is_sdxl)
            else:
                inner.save_pretrained(str(self.output_dir / "unet"))
        return self.output_dir

    # ------------------------------------------------------------------ step
    def _noise_generator(self, micro_step: int) -> torch.Generator:
        index = self.accelerator.process_index
        return torch.Generator().manual_seed(
            self.config.seed * 1_000_003 + micro_step * 977 + index
        )

    def compute_loss(self, batch: dict[str, Any], generator: torch.Generator) -> StepOutput:
        """Objective of one collated batch (see :func:`marginkit.mapo.data.collate_pairs`)."""
        parts, device = self.parts, self.accelerator.device
        pixels = batch["pixels"]
        latents = encode_images(parts.vae, pixels, self.config.vae_encode_batch_size, generator)
        hidden, pooled = encode_text(parts, tokenize(parts, batch["captions"]))
        micro = None
        if parts.is_sdxl:
            size = (pixels.shape[-2], pixels.shape[-1])
            micro = time_ids(batch["original_size"], batch["crop_top_left"], size).to(device)
            pooled = pooled.to(dtype=self.weight_dtype)
        reference = None
        if self.config.objective == "dpo":
            if self.reference_unet is not None:
                reference = frozen_reference(self.reference_unet)
            else:
                reference = lora_reference(self.unet)
        with self.accelerator.autocast():
            return compute_objective(
                self.config.objective,
                self.unet,
                parts.noise_scheduler,
                latents,
                hidden,
                generator,
                pooled=pooled,
                micro_conditioning=micro,
                reference=reference,
                loss_kwargs=self.config.loss_kwargs(
                    parts.noise_scheduler.config.num_train_timesteps
                ),
            )

    def _metrics(self, out: StepOutput, grad_norm: float, seconds: float) -> dict[str, float]:
        gather = self.accelerator.gather
        metrics = {"loss": gather(out.loss.loss.detach().reshape(1)).mean().item()}
        metrics["mse/chosen"] = gather(out.mse_chosen.detach()).mean().item()
        for name, value in (
            ("mse/rejected", out.mse_rejected),
            ("mse/reference_chosen", out.reference_mse_chosen),
            ("mse/reference_rejected", out.reference_mse_rejected),
        ):
            if value is not None:
                metrics[name] = gather(value.detach()).mean().item()
        if self.config.objective != "sft":
            gathered = dataclasses.replace(out.loss, margin=gather(out.loss.margin.detach()))
            metrics.update(loss_metrics(gathered, self.config.objective))
        metrics["lr"] = self.lr_scheduler.get_last_lr()[0]
        metrics["grad_norm"] = grad_norm
        metrics["time/step_s"] = seconds
        metrics["memory/peak_mb"] = peak_memory_mb(self.accelerator.device)
        return metrics

    # ------------------------------------------------------------------ loop
    def _micro_step(self, batch: dict[str, Any], micro_step: int) -> tuple[StepOutput, float]:
        """Forward and backward of one micro-batch; optimizer step when gradients sync."""
        config, accelerator = self.config, self.accelerator
        grad_norm = float("nan")
        with accelerator.accumulate(self.unet):
            out = self.compute_loss(batch, self._noise_generator(micro_step))
            loss = out.loss.loss
            if torch.isfinite(loss):
                accelerator.backward(loss)
            elif config.on_nonfinite == "raise":
                raise FloatingPointError(
                    f"non-finite loss {loss.item()} at step {self.global_step}; lower the "
                    f"learning rate, check the data, or set on_nonfinite='skip'"
                )
            else:
                logger.warning("skipping a non-finite loss at step %d", self.global_step)
            if accelerator.sync_gradients:
                norm = accelerator.clip_grad_norm_(self.trainable, config.max_grad_norm)
                grad_norm = float(norm) if norm is not None else float("nan")
            self.optimizer.step()
            self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        return out, grad_norm

    def train(self) -> TrainResult:
        """Run until ``max_train_steps`` optimizer steps, then write the final weights."""
        config, accelerator = self.config, self.accelerator
        if config.resume:
            self.resume()
        writer = None
        if accelerator.is_main_process:
            writer = MetricsWriter(self.output_dir / "metrics.jsonl")
        history: list[dict[str, float]] = []
        start = time.perf_counter()
        try:
            while self.global_step < config.max_train_steps:
                self.loader.set_epoch(self.epoch)
                self.dataset.set_epoch(self.epoch)
                for batch in skip_seen_batches(self.loader, self.batches_seen):
                    micro_step = self.epoch * len(self.loader) + self.batches_seen
                    out, grad_norm = self._micro_step(batch, micro_step)
                    self.batches_seen += 1
                    if not accelerator.sync_gradients:
                        continue
                    self.global_step += 1
                    metrics = self._metrics(out, grad_norm, time.perf_counter() - start)
                    start = time.perf_counter()
                    history.append(metrics)
                    if writer is not None:
                        writer.write(metrics, step=self.global_step)
                    every = config.checkpointing_steps
                    if every and self.global_step % every == 0:
                        self.save_checkpoint()
                    if self.global_step >= config.max_train_steps:
                        break
                else:
                    self.epoch += 1
                    self.batches_seen = 0
        finally:
            if writer is not None:
                writer.close()
        self.save_final()
        return TrainResult(self.global_step, history, self.output_dir)


def _move(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    # Casting only when needed avoids diffusers' warning about dtype casts with ``to()``.
    module.to(device)
    if any(parameter.dtype != dtype for parameter in module.parameters()):
        module.to(dtype=dtype)
