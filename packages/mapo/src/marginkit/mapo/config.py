"""Settings of a training run: one dataclass, the command line is generated from it.

Defaults follow the official MaPO training code's README recipe (batch 8 x accumulation 2,
2000 steps, learning rate 1e-5 constant, AdamW, LoRA rank 8 on the attention
projections, clip 1.0). ``preset="paper_v2"`` switches the MaPO hyper-parameters to the
paper's second version (``beta`` from its best-per-task table).
"""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass
class TrainConfig:
    """Align a diffusion model on preference pairs with MaPO, Diffusion-DPO or SFT."""

    pretrained_model: str = "stabilityai/stable-diffusion-xl-base-1.0"
    """Hub id or local folder of an SDXL- or SD1.5-shaped diffusers pipeline."""
    vae: str | None = None
    """Optional other VAE (hub id or folder), e.g. an fp16-safe SDXL VAE."""
    revision: str | None = None
    """Hub revision of the pipeline."""

    data_format: Literal["pickapic", "folder", "jsonl"] = "pickapic"
    """Layout of ``data_path``: Pick-a-Pic table, chosen/rejected folders or JSONL."""
    data_path: str = ""
    """Parquet file/folder or hub id (pickapic), folder (folder), or .jsonl file (jsonl)."""
    caption_column: str = "caption"
    """Pick-a-Pic: prompt column."""
    image_column_0: str = "jpg_0"
    """Pick-a-Pic: first image column (encoded bytes or {"bytes", "path"})."""
    image_column_1: str = "jpg_1"
    """Pick-a-Pic: second image column."""
    label_column: str = "label_0"
    """Pick-a-Pic: 1 if the first image is preferred, 0 if the second, 0.5 for a tie."""
    keep_ties: bool = False
    """Keep tied pairs (label 0.5) instead of dropping them."""
    label_noise_prob: float = 0.0
    """Probability of swapping chosen and rejected (seeded), for robustness studies."""

    resolution: int = 1024
    """Square training size in pixels (1024 for SDXL, 512 for SD1.5)."""
    random_flip: bool = True
    """Flip both images of a pair horizontally together with probability 1/2."""
    center_crop: bool = True
    """Center crop (True) or random crop (False) after resizing the shorter side."""

    objective: Literal["mapo", "dpo", "sft"] = "mapo"
    """Training objective."""
    preset: Literal["official", "paper_v2", "custom"] = "official"
    """MaPO hyper-parameters: official code, paper v2, or the three fields below."""
    task: Literal["preference", "culture", "safety", "style", "personalization"] = "preference"
    """paper_v2 only: picks beta from the paper's table (8, 32, 64, 64, 1024)."""
    score_scale: float = 0.5
    """custom preset: s in phi(L) = g(s L)."""
    margin_scale: float = 1000.0
    """custom preset: beta_m multiplying the score difference."""
    margin_weight: float = 0.1
    """custom preset: lambda weighting the margin term against SFT."""
    beta_dpo: float = 5000.0
    """Diffusion-DPO beta (paper range 2000-5000)."""

    mode: Literal["lora", "full"] = "lora"
    """Train LoRA adapters on the UNet or the whole UNet."""
    lora_rank: int = 8
    """LoRA rank (alpha = rank)."""
    lora_targets: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
    """UNet modules that receive LoRA adapters."""

    learning_rate: float = 1e-5
    """Peak learning rate per optimizer step (no scaling by batch size)."""
    lr_scheduler: Literal["constant", "constant_with_warmup", "cosine", "linear"] = "constant"
    """Learning-rate schedule over ``max_train_steps`` optimizer steps."""
    lr_warmup_steps: int = 0
    """Warm-up optimizer steps."""
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    """Gradient clipping norm, applied when gradients are synchronised."""
    train_batch_size: int = 8
    """Pairs per micro-batch per process (the UNet sees twice as many rows)."""
    gradient_accumulation_steps: int = 2
    max_train_steps: int = 2000
    """Optimizer steps."""
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    """Autocast precision; the VAE and trainable LoRA weights stay fp32."""
    gradient_checkpointing: bool = False
    vae_encode_batch_size: int = 8
    """Images per VAE encoder call."""
    on_nonfinite: Literal["raise", "skip"] = "raise"
    """What a NaN/inf loss does: stop with an error, or skip that micro-batch."""

    output_dir: str = "outputs/mapo/run"
    """Final weights (diffusers format), checkpoints/ and metrics.jsonl go here."""
    checkpointing_steps: int = 500
    """Save a resumable checkpoint every this many optimizer steps (0: never)."""
    checkpoints_total_limit: int = 3
    """Keep this many newest checkpoints."""
    resume: bool = True
    """Continue from the newest checkpoint in ``output_dir/checkpoints`` if there is one."""
    seed: int = 0
    dataloader_num_workers: int = 0
    cpu: bool = False
    """Train on the CPU even when a GPU is present."""

    def loss_kwargs(self, num_train_timesteps: int = 1000) -> dict[str, float]:
        """Keyword arguments of the chosen objective's loss function."""
        if self.objective == "dpo":
            return {"beta": float(self.beta_dpo)}
        if self.objective == "sft":
            return {}
        if self.preset == "custom":
            return {
                "score_scale": self.score_scale,
                "margin_scale": self.margin_scale,
                "margin_weight": self.margin_weight,
            }
        from marginkit.mapo.losses import mapo_preset

        return mapo_preset(self.preset, task=self.task, timesteps=num_train_timesteps)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent setting."""
        positive = {
            "train_batch_size": self.train_batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "max_train_steps": self.max_train_steps,
            "lora_rank": self.lora_rank,
            "vae_encode_batch_size": self.vae_encode_batch_size,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.beta_dpo <= 0:
            raise ValueError(f"beta_dpo must be > 0, got {self.beta_dpo}")
        if not 0.0 <= self.label_noise_prob <= 1.0:
            raise ValueError(f"label_noise_prob must be in [0, 1], got {self.label_noise_prob}")


@dataclasses.dataclass
class SampleConfig:
    """Generate images from a base pipeline, optionally with a run's trained weights."""

    pretrained_model: str = "stabilityai/stable-diffusion-xl-base-1.0"
    """Hub id or local folder of the base pipeline the run started from."""
    weights: str | None = None
    """A training run's output_dir (LoRA file or unet/ folder); None samples the base."""
    prompts: tuple[str, ...] = ("a photograph of a lighthouse at dusk",)
    """Prompts to sample."""
    images_per_prompt: int = 1
    steps: int = 30
    """Euler sampling steps."""
    guidance_scale: float = 5.0
    resolution: int | None = None
    """Square output size; the UNet's native size when None."""
    seed: int = 0
    output_dir: str = "outputs/mapo/samples"
    """Where the PNG files go."""
    device: str | None = None
    """cuda, mps or cpu; automatic when None."""


@dataclasses.dataclass
class DemoConfig:
    """Align a tiny SDXL-shaped model to pixel art with MaPO, DPO and SFT; print a table."""

    output_dir: str = "outputs/mapo"
    """Where the cache, runs, grid PNG and results.json go."""
    vae_steps: int = 300
    """VAE fitting steps (L1 + 1e-6 KL, Adam 2e-3, batch 8)."""
    pretrain_steps: int = 600
    """UNet pretraining steps on realistic crops (AdamW 1e-3, batch 16)."""
    align_steps: int = 60
    """Alignment steps per method and seed."""
    learning_rate: float = 1e-4
    """Alignment learning rate (constant, AdamW without weight decay, clip 1.0)."""
    batch_pairs: int = 8
    """Pairs per alignment step."""
    seeds: tuple[int, ...] = (1, 2, 3)
    """Alignment seeds (data order, flips, noise)."""
    methods: tuple[str, ...] = ("sft", "dpo", "mapo", "mapo_paper_v2")
    """Methods to run: sft, dpo, mapo (official preset), mapo_paper_v2 (task style)."""
    samples_per_caption: int = 24
    """Samples per caption ("china", "flower") and model, from fixed seeds."""
    sampling_steps: int = 10
    """Euler steps per sample (guidance 1.0)."""
    cost_steps: int = 8
    """Steps per method in the cost measurement (3 warm-up steps dropped); 0 skips it."""
