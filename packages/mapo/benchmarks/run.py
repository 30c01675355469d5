"""MaPO vs Diffusion-DPO cost on the same tiny SDXL-shaped model and batch, in one run.

Step time and peak memory come from a fresh child process per method (full fine-tune, the
DPO reference a frozen copy), reported as MaPO / DPO ratios beside the paper's GPU numbers
(-14.5% time, -17.5% memory). The largest batch under a fixed memory cap uses the
allocator-independent tally (weights, gradients, optimizer state, reference, saved
activations), which grows linearly with the batch: measured at two batch sizes, the cap
is solved for the batch.
"""

from __future__ import annotations

import argparse

from marginkit.mapo.cost import measure, measure_in_child, tally_mb


def _largest_batch(objective: str, cap_mb: float) -> tuple[int, float, float]:
    small, large = (measure(objective, batch_pairs=b, steps=1, warmup=0) for b in (2, 4))
    per_pair = (tally_mb(large) - tally_mb(small)) / 2
    fixed = tally_mb(small) - 2 * per_pair
    return int((cap_mb - fixed) // per_pair), fixed, per_pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-pairs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=13, help="3 warm-up steps are dropped")
    parser.add_argument("--cap-mb", type=float, default=64.0, help="tally memory cap (MB)")
    args = parser.parse_args()

    cost = {
        name: measure_in_child(objective=name, batch_pairs=args.batch_pairs, steps=args.steps)
        for name in ("mapo", "dpo")
    }
    print(f"\nFull fine-tune, tiny SDXL-shaped UNet, 32x32 images, B = {args.batch_pairs} pairs,")
    print(f"median of {args.steps - 3} steps after 3 warm-up steps, one child process each\n")
    print("| quantity | DPO | MaPO | MaPO / DPO | paper (SDXL, 4xA100) |")
    print("| --- | --- | --- | --- | --- |")
    rows = [
        ("step time (s)", cost["dpo"]["step_s"], cost["mapo"]["step_s"], "0.855 (-14.5%)"),
        ("peak memory (MB)", cost["dpo"]["peak_mb"], cost["mapo"]["peak_mb"], "0.825 (-17.5%)"),
        ("memory tally (MB)", tally_mb(cost["dpo"]), tally_mb(cost["mapo"]), ""),
        ("reference copy (MB)", cost["dpo"]["reference_mb"], cost["mapo"]["reference_mb"], ""),
    ]
    for label, dpo, mapo, paper in rows:
        ratio = f"{mapo / dpo:.3f}" if dpo else "-"
        print(f"| {label} | {dpo:.3f} | {mapo:.3f} | {ratio} | {paper} |")

    print(f"\nLargest batch (pairs) under a {args.cap_mb:.0f} MB tally cap\n")
    print("| objective | fixed MB | MB per pair | largest batch |")
    print("| --- | --- | --- | --- |")
    for name in ("dpo", "mapo"):
        largest, fixed, per_pair = _largest_batch(name, args.cap_mb)
        print(f"| {name} | {fixed:.2f} | {per_pair:.3f} | {largest} |")


if __name__ == "__main__":
    main()
