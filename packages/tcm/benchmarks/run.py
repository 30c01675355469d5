"""Benchmarks of marginkit-tcm; every number is a ratio to a baseline measured in this run.

1. OPIS: the blocked computation (tiles sized from ``--memory-budget-mb``) against the direct
   one that holds the full ``N x N`` similarity matrix and its per-pair work at once (at
   a size the direct one still fits), time and peak memory, and
   the blocked one alone at larger sizes. Each case runs in its own process so that peak
   resident memory (ru_maxrss, minus a process that only builds the data) is its own.
2. TCM loss forward + backward: marginkit's masked-matrix form against
   pytorch-metric-learning's ThresholdConsistentMarginLoss (which gathers pair rows).

On a 2-core CPU the defaults finish in a few minutes; on a GPU machine pass e.g.
``--opis-sizes 100000 500000 --device cuda --loss-batches 256 1024 4096``.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import subprocess
import sys
import time

import numpy as np


@dataclasses.dataclass
class BenchConfig:
    """Sizes and devices of the benchmark."""

    direct_size: int = 4000
    """N for the blocked-vs-direct OPIS comparison (the direct one holds N x N floats)."""
    opis_sizes: tuple[int, ...] = (8000,)
    """Larger N for the blocked OPIS alone (time per pair against the direct-size run)."""
    dim: int = 64
    classes: int = 500
    loss_batches: tuple[int, ...] = (256, 1024)
    """Batch sizes of the TCM loss timing (4096 needs ~2x8 GB for PML's pair gathers)."""
    loss_dim: int = 128
    memory_budget_mb: float = 64.0
    """Tile budget of the blocked OPIS (the library default is 512 MB)."""
    device: str = "cpu"
    case: str = ""
    """Internal: run one measurement in this process and print it as JSON."""


def _data(size: int, config: BenchConfig):
    from marginkit.tcm.synthetic import make_sphere_clusters

    per_class = np.full(config.classes, size // config.classes)
    per_class[: size - per_class.sum()] += 1
    return make_sphere_clusters(config.classes, per_class, config.dim, (0.3, 1.0), seed=0)


def _run_case(config: BenchConfig) -> dict:
    import torch

    torch.set_num_threads(1)
    kind, size = config.case.split(":")
    points, labels = _data(int(size), config)
    start = time.perf_counter()
    value = None
    if kind == "blocked":
        from marginkit.tcm.opis import OPISConfig, compute_opis

        opis_config = OPISConfig(memory_budget_mb=config.memory_budget_mb)
        value = compute_opis(points, labels, opis_config, device=config.device).opis
    elif kind == "direct":
        from marginkit.tcm.opis import compute_opis

        # All pairs at once: one tile holding the full N x N similarity matrix.
        value = compute_opis(points, labels, device=config.device, tile_size=len(labels)).opis
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": config.case, "seconds": seconds, "peak_mb": peak_mb, "opis": value}


def _spawn(config: BenchConfig, case: str) -> dict:
    args = [sys.executable, __file__, "--case", case, "--dim", str(config.dim)]
    args += ["--classes", str(config.classes), "--device", config.device]
    args += ["--memory-budget-mb", str(config.memory_budget_mb)]
    output = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _opis_table(config: BenchConfig) -> None:
    n = config.direct_size
    base = _spawn(config, f"data:{n}")
    direct = _spawn(config, f"direct:{n}")
    blocked = _spawn(config, f"blocked:{n}")
    print(
        f"\n### OPIS, N = {n} ({n * (n - 1) // 2:,} pairs), dim {config.dim}, "
        f"{config.classes} classes, one thread, {config.device}"
    )
    print("| method | seconds | peak MB above data | OPIS | time / direct | memory / direct |")
    print("|---|---|---|---|---|---|")
    direct_mem = direct["peak_mb"] - base["peak_mb"]
    for name, row in (("direct (N x N matrix)", direct), ("blocked (tiles)", blocked)):
        memory = row["peak_mb"] - base["peak_mb"]
        print(
            f"| {name} | {row['seconds']:.2f} | {memory:.0f} | {row['opis']:.6g} | "
            f"{row['seconds'] / direct['seconds']:.2f} | {memory / max(direct_mem, 1):.2f} |"
        )
    per_pair = blocked["seconds"] / (n * (n - 1) / 2)
    print(f"\n| blocked N | pairs | seconds | peak MB above data | s/pair vs N={n} |")
    print("|---|---|---|---|---|")
    for size in config.opis_sizes:
        base_big = _spawn(config, f"data:{size}")
        row = _spawn(config, f"blocked:{size}")
        pairs = size * (size - 1) / 2
        memory = row["peak_mb"] - base_big["peak_mb"]
        ratio = row["seconds"] / pairs / per_pair
        print(f"| {size} | {pairs:.3g} | {row['seconds']:.1f} | {memory:.0f} | {ratio:.2f} |")


def _loss_table(config: BenchConfig) -> None:
    import torch
    from pytorch_metric_learning.losses import ThresholdConsistentMarginLoss

    from marginkit.tcm.losses import tcm_loss

    torch.set_num_threads(1)
    reference = ThresholdConsistentMarginLoss()
    print(f"\n### TCM loss forward + backward, dim {config.loss_dim}, 16 samples per class")
    print("| batch | pytorch-metric-learning s | marginkit s | speed-up | same value |")
    print("|---|---|---|---|---|")
    for batch in config.loss_batches:
        generator = torch.Generator().manual_seed(batch)
        emb = torch.randn(batch, config.loss_dim, generator=generator, device=config.device)
        labels = torch.arange(batch, device=config.device) // 16
        timings, values = [], []
        candidates = (
            lambda e, y=labels: reference(e, y),
            lambda e, y=labels: tcm_loss(e, y).tcm,
        )
        for fn in candidates:
            leaf = emb.clone().requires_grad_(True)
            start = time.perf_counter()
            value = fn(leaf)
            value.backward()
            timings.append(time.perf_counter() - start)
            values.append(float(value.detach()))
        same = abs(values[0] - values[1]) < 1e-4
        print(
            f"| {batch} | {timings[0]:.3f} | {timings[1]:.3f} | "
            f"{timings[0] / timings[1]:.1f} | {same} |"
        )


def main() -> None:
    from marginkit.shared.cli import parse_config

    config = parse_config(BenchConfig, sys.argv[1:], prog="benchmarks/run.py")
    if config.case:
        print(json.dumps(_run_case(config)))
        return
    _opis_table(config)
    _loss_table(config)


if __name__ == "__main__":
    main()
