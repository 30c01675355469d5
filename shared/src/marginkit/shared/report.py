"""A short table of the compute environment, used by ``nox -s demo-shared``."""

from __future__ import annotations

import importlib.metadata
import time

import torch

from marginkit.shared.device import autocast, select_device
from marginkit.shared.seeding import seed_everything


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment_report() -> list[tuple[str, str]]:
    """``(name, value)`` rows: versions, the selected device and a bf16 autocast check."""
    device = select_device()
    generator = seed_everything(0, device="cpu")
    layer = torch.nn.Linear(64, 64).to(device)
    inputs = torch.randn(256, 64, generator=generator).to(device)
    start = time.perf_counter()
    with autocast(device, "bf16"):
        outputs = layer(inputs)
    elapsed = time.perf_counter() - start
    faiss_backend = "not installed"
    try:
        from marginkit.shared.faiss_index import faiss_gpu_available

        faiss_backend = "gpu" if faiss_gpu_available() else "cpu"
    except ImportError:
        pass
    return [
        ("torch", torch.__version__),
        ("accelerate", _version("accelerate")),
        ("faiss backend", faiss_backend),
        ("device", str(device)),
        ("autocast bf16 output dtype", str(outputs.dtype)),
        ("autocast linear (256x64) ms", f"{elapsed * 1e3:.2f}"),
    ]


def main() -> None:
    rows = environment_report()
    width = max(len(name) for name, _ in rows)
    print("marginkit-shared environment")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
