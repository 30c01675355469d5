"""Cost of the MaPO and Diffusion-DPO objectives on per-row errors, as ratios in one run."""

from __future__ import annotations

import statistics
import time

import torch

from marginkit.mapo.losses import dpo_loss, mapo_loss


def _median_seconds(function, repeats: int = 20) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(1)
    rows = 1_000_000
    chosen, rejected = torch.rand(rows), torch.rand(rows)
    mapo = _median_seconds(lambda: mapo_loss(chosen, rejected))
    dpo = _median_seconds(lambda: dpo_loss(chosen, rejected, chosen, rejected))
    print(f"| objective | median s ({rows} rows) | ratio to DPO |")
    print("| --- | --- | --- |")
    print(f"| dpo loss | {dpo:.4f} | 1.00 |")
    print(f"| mapo loss | {mapo:.4f} | {mapo / dpo:.2f} |")


if __name__ == "__main__":
    main()
