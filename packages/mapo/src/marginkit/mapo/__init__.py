"""MaPO, Diffusion-DPO and SFT-on-chosen for text-to-image diffusion models."""

__version__ = "0.1.0"
