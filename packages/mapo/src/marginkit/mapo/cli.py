"""``marginkit-mapo train | sample | demo``: settings come from the config dataclasses.

Heavy libraries (diffusers, transformers) are imported inside the handlers only, so
``marginkit-mapo --help`` stays fast.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from marginkit.mapo.config import DemoConfig, SampleConfig, TrainConfig

logger = logging.getLogger(__name__)


def train(config: TrainConfig) -> Any:
    """Run the trainer and log where the weights went."""
    from marginkit.mapo.train import Trainer

    result = Trainer(config).train()
    if result.history:
        last = result.history[-1]
        logger.info("step %d: loss %.4f", result.global_step, last["loss"])
    print(f"trained {result.global_step} steps; weights in {result.output_dir}")
    return result


def sample(config: SampleConfig) -> list[Path]:
    """Write ``images_per_prompt`` PNG files per prompt and return their paths."""
    import torch

    from marginkit.mapo.models import load_parts
    from marginkit.mapo.weights import trained_pipeline
    from marginkit.shared import select_device

    parts = load_parts(config.pretrained_model)
    pipeline = trained_pipeline(parts, config.weights) if config.weights else parts.pipeline()
    pipeline = pipeline.to(select_device(config.device))
    size = config.resolution
    if size is None:
        size = parts.unet.config.sample_size * 2 ** (len(parts.vae.config.block_out_channels) - 1)
    out_dir = Path(config.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for prompt_index, prompt in enumerate(config.prompts):
        generator = torch.Generator().manual_seed(config.seed + prompt_index)
        images = pipeline(
            prompt=prompt,
            num_images_per_prompt=config.images_per_prompt,
            num_inference_steps=config.steps,
            guidance_scale=config.guidance_scale,
            height=size,
            width=size,
            generator=generator,
        ).images
        for image_index, image in enumerate(images):
            path = out_dir / f"prompt{prompt_index:03d}-{image_index:02d}.png"
            image.save(path)
            paths.append(path)
    print(f"wrote {len(paths)} images to {out_dir}")
    return paths


def demo(config: DemoConfig) -> Any:
    from marginkit.mapo.demo import run_demo

    return run_demo(config)


def run(argv: Sequence[str] | None = None) -> Any:
    """Parse ``<command> [flags]`` and return what the command's handler returns."""
    from marginkit.shared import setup_logging
    from marginkit.shared.cli import run_commands

    setup_logging()
    commands = {
        "train": (TrainConfig, train),
        "sample": (SampleConfig, sample),
        "demo": (DemoConfig, demo),
    }
    return run_commands("marginkit-mapo", commands, argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: returns ``None``, so ``sys.exit(main())`` exits with status 0.

    A returned object (a result, a list of paths) would be printed by ``sys.exit`` and
    turned into exit status 1; use :func:`run` for the value.
    """
    run(argv)


if __name__ == "__main__":
    main()
