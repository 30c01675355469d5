"""Step time and memory of one objective, measured in a fresh child process.

Peak memory: on CUDA ``max_memory_allocated`` after ``reset_peak_memory_stats``; on CPU
the child's peak resident set size minus its resident size after setup. Beside it, a
tally that does not depend on the allocator: parameter, gradient, optimizer-state and
reference-model bytes, and the bytes autograd saves for backward in one step (counted
with ``torch.autograd.graph.saved_tensors_hooks``).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

MB = 2**20


def peak_memory_mb(device: torch.device) -> float:
    """CUDA ``max_memory_allocated`` or, on CPU, the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _resident_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / MB


def _tensor_bytes(tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def measure(
    objective: str,
    preset: str = "official",
    batch_pairs: int = 8,
    steps: int = 13,
    warmup: int = 3,
    base: str | None = None,
    resolution: int = 32,
) -> dict[str, float]:
    """Time ``steps`` full-mode training steps (``warmup`` dropped) in this process.

    ``base`` is a saved pipeline folder; ``None`` builds the tiny SDXL-shaped pipeline.
    """
    from transformers.utils import logging as transformers_logging

    from marginkit.mapo.config import TrainConfig
    from marginkit.mapo.data import PairDataset
    from marginkit.mapo.demo_data import demo_pairs
    from marginkit.mapo.models import load_parts
    from marginkit.mapo.tiny import tiny_parts
    from marginkit.mapo.train import Trainer

    transformers_logging.disable_progress_bar()
    torch.set_num_threads(1)
    parts = load_parts(base) if base else tiny_parts(sdxl=True)
    pairs = demo_pairs()[0]
    config = TrainConfig(
        objective=objective,  # type: ignore[arg-type]
        preset=preset,  # type: ignore[arg-type]
        mode="full",
        resolution=resolution,
        train_batch_size=batch_pairs,
        gradient_accumulation_steps=1,
        max_train_steps=steps,
        learning_rate=1e-4,
        adam_weight_decay=0.0,
        checkpointing_steps=0,
        resume=False,
        output_dir=tempfile.mkdtemp(prefix="marginkit-mapo-cost-"),
    )
    trainer = Trainer(config, parts=parts, dataset=PairDataset(pairs, resolution, seed=0))
    device = trainer.accelerator.device
    batch = next(iter(trainer.loader))

    saved = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = trainer.compute_loss(batch, torch.Generator().manual_seed(0))
    out.loss.loss.backward()
    trainer.optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    setup_mb = _resident_mb()
    times = []
    batches = iter(trainer.loader)
    for index in range(steps):
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(trainer.loader)
            batch = next(batches)
        start = time.perf_counter()
        trainer._micro_step(batch, index)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    params = list(trainer.parts.unet.parameters())
    optimizer_bytes = sum(
        _tensor_bytes(state.values()) for state in trainer.optimizer.state_dict()["state"].values()
    )
    reference = trainer.reference_unet
    # Limitation: on CPU the peak resident size includes allocator slack and the data
    # pipeline, so the tally below is the cleaner comparison of the two objectives.
    peak = peak_memory_mb(device)
    return {
        "step_s": statistics.median(times[warmup:]),
        "peak_mb": peak if device.type == "cuda" else max(0.0, peak - setup_mb),
        "params_mb": _tensor_bytes(params) / MB,
        "grads_mb": _tensor_bytes(p for p in params if p.requires_grad) / MB,
        "optimizer_mb": optimizer_bytes / MB,
        "reference_mb": _tensor_bytes(reference.parameters()) / MB if reference else 0.0,
        "saved_activations_mb": saved / MB,
    }


def tally_mb(result: dict[str, float]) -> float:
    """Sum of the allocator-independent memory terms of :func:`measure`."""
    keys = ("params_mb", "grads_mb", "optimizer_mb", "reference_mb", "saved_activations_mb")
    return sum(result[key] for key in keys)


def measure_in_child(**kwargs: Any) -> dict[str, float]:
    """Run :func:`measure` in a fresh Python process so peaks do not mix across methods."""
    command = [sys.executable, "-m", "marginkit.mapo.cost", json.dumps(kwargs)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    arguments = json.loads(sys.argv[1])
    if arguments.get("base"):
        arguments["base"] = str(Path(arguments["base"]))
    print(json.dumps(measure(**arguments)))
