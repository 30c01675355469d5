"""One settings dataclass per mode; the CLI is generated from them.

Defaults follow the reference implementation's MNIST settings for maximum likelihood and
its Ising settings for energy-based training, except where a field says otherwise.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class ModelSettings:
    """Architecture fields shared by every mode (see ``NetworkConfig``)."""

    backbone: str = "mlp"
    """``mlp``, ``transformer`` or ``unet``."""
    width: int = 256
    """Hidden width (the reference EB MLP uses 2048)."""
    depth: int = 3
    """Residual blocks or encoder layers."""
    layout: str = "separate"
    """``separate`` (two networks) or ``head`` (f_theta on g_phi's trunk)."""
    uniform_offset: bool = False
    """Add -|S| log K to f_theta (not in the paper)."""


@dataclasses.dataclass
class MLEConfig:
    """Train by maximum likelihood: AO-ARM for p_phi, then self-consistency for f_theta."""

    data: str = "digits"
    """``digits`` (scikit-learn's 8x8 digits, binarized) or a .npy/.npz file (key ``x``)."""
    num_categories: int = 0
    """K; 0 infers max + 1 from the data."""
    model: ModelSettings = dataclasses.field(default_factory=ModelSettings)
    stage1_steps: int = 2000
    """Optimizer steps of the AO-ARM objective."""
    stage2_steps: int = 2000
    """Optimizer steps of self-consistency distillation."""
    batch_size: int = 128
    lr_stage1: float = 1e-4
    lr_stage2: float = 1e-4
    grad_clip: float = 100.0
    refresh_every: int = 0
    """Refill the stage-2 buffer by ancestral sampling every this many steps (0: per epoch)."""
    gibbs_k: int = 4
    """Variables censored and regenerated per buffer update."""
    sc_sources: str = "both"
    """States for the SC penalty: ``both`` (half data, half buffer), ``data`` or ``buffer``."""
    joint: bool = False
    """Stage 2 also trains p_phi (the paper found it slow and unstable)."""
    seed: int = 0
    device: str = "auto"
    mixed_precision: str = "no"
    output_dir: str = "outputs/mam/mle"
    checkpoint_every: int = 1000
    resume: bool = True
    """Continue from the latest checkpoint in ``output_dir`` when there is one."""


@dataclasses.dataclass
class EBMConfig:
    """Train from an unnormalised log-density (energy-based), here the periodic Ising model."""

    ising_n: int = 10
    """Lattice side (D = n * n)."""
    sigma_j: float = 0.1
    bias: float = 0.2
    objective: str = "kl"
    """``kl`` (REINFORCE with standardised advantage + SC) or ``regression`` (learnable log Z)."""
    model: ModelSettings = dataclasses.field(default_factory=ModelSettings)
    steps: int = 2000
    batch_size: int = 512
    lr: float = 5e-4
    log_z_lr: float = 5e-2
    alpha: float = 4.0
    """Weight of the self-consistency penalty."""
    begin_target: float | None = None
    """c in (f_theta(empty) - c)^2; None: D log K for ``kl`` (ignored by ``regression``)."""
    advantage: str = "standardize"
    """``standardize`` (centred / std) or ``center``."""
    gibbs_k: int = 4
    refresh_every: int = 200
    """Full ancestral refresh of the buffer every this many steps."""
    log_f_floor: float | None = None
    """Clip log f from below (invalid samples); None raises on -inf."""
    seed: int = 0
    device: str = "auto"
    output_dir: str = "outputs/mam/ebm"
    checkpoint_every: int = 1000
    resume: bool = True


@dataclasses.dataclass
class SampleConfig:
    """Draw samples from a trained checkpoint (p_phi ancestral or the f_theta ratio sampler)."""

    checkpoint: str = "outputs/mam/mle"
    num_samples: int = 16
    sampler: str = "ancestral"
    """``ancestral`` (p_phi) or ``ratio`` (f_theta alone)."""
    output: str = "outputs/mam/samples.npy"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.sampler not in ("ancestral", "ratio"):
            raise ValueError(f"sampler must be 'ancestral' or 'ratio', got {self.sampler!r}")


@dataclasses.dataclass
class MarginalConfig:
    """log p(x_S) in one pass for partial assignments (``-1`` = "?") from a checkpoint."""

    checkpoint: str = "outputs/mam/mle"
    queries: str = ""
    """A .npy file of (N, D) codes with -1 for unobserved, or a comma list for one row."""
    num_orders: int = 0
    """Also print the AO-ARM estimate with this many orders (0: skip)."""


@dataclasses.dataclass
class DemoConfig:
    """Digits by maximum likelihood and the 10x10 Ising model by energy-based training."""

    output_dir: str = "outputs/mam"
    """Where the PNGs and the two runs' checkpoints go."""
    stage1_steps: int = 2500
    """Digits: AO-ARM steps (batch 100, Adam 1e-3)."""
    stage2_steps: int = 1200
    """Digits: self-consistency steps (Adam 5e-4)."""
    ebm_steps: int = 1200
    """Ising 10x10: energy-based KL steps (batch 256; the reference runs ~39k at 512)."""
    width: int = 256
    """MLP width of both models (the reference EB model uses 2048)."""
    seed: int = 0
