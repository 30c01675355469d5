"""Speed of the batched certifier against a per-sample loop of Cohen's CERTIFY, same n.

Prints three tables: points per second of both at several n (and their ratio), the batched
LVM certifier's time per point as n grows, and as the number of temperatures per map grows.
Ratios are measured in this run, on this machine; nothing here is asserted.
"""

from __future__ import annotations

import time

import torch

from marginkit.lvm_smoothing import HARDMAX, Smooth, candidate_grid, temperature_grid
from marginkit.lvm_smoothing.bounds import clopper_pearson_lower
from marginkit.lvm_smoothing.models import digits_mlp
from marginkit.lvm_smoothing.radii import radius_mono

torch.set_num_threads(1)
SIGMA, ALPHA, N0 = 0.25, 0.001, 100


def loop_certify(model, x, n0, n, generator):
    """Cohen's CERTIFY with one forward pass per noise sample (the baseline)."""
    counts = [torch.zeros(10, dtype=torch.int64), torch.zeros(10, dtype=torch.int64)]
    with torch.no_grad():
        for draw, size in enumerate((n0, n)):
            for _ in range(size):
                noisy = x + SIGMA * torch.randn(x.shape, generator=generator)
                counts[draw][int(model(noisy[None]).argmax())] += 1
    guess = int(counts[0].argmax())
    p_lower = float(clopper_pearson_lower(int(counts[1][guess]), n, ALPHA))
    return guess, float(radius_mono(p_lower, SIGMA)) if p_lower > 0.5 else 0.0


def points_per_second(function, points) -> float:
    start = time.perf_counter()
    for x in points:
        function(x)
    return len(points) / (time.perf_counter() - start)


def main() -> None:
    torch.manual_seed(0)
    model = digits_mlp().eval()
    points = [torch.rand(64) for _ in range(3)]
    hard = Smooth(model, 10, SIGMA, candidates=[HARDMAX])
    generator = torch.Generator().manual_seed(0)

    print("Cohen CERTIFY on a 64-256-256-10 MLP, 1 CPU thread, points per second")
    print(f"{'n':>7}  {'loop':>9}  {'batched':>9}  {'ratio':>7}")
    for n in (1_000, 4_000):
        loop = points_per_second(lambda x, n=n: loop_certify(model, x, N0, n, generator), points)
        batched = points_per_second(lambda x, n=n: hard.certify(x, N0, n, ALPHA, "cohen"), points)
        print(f"{n:>7}  {loop:9.2f}  {batched:9.2f}  {batched / loop:6.1f}x")

    print("\nBatched certifiers, seconds per point as n grows (LVM: 3 maps x 50 T)")
    lvm = Smooth(model, 10, SIGMA)
    print(f"{'n':>7}  {'cohen':>8}  {'lvm':>8}  {'lvm/cohen':>9}")
    for n in (1_000, 10_000, 100_000):
        subset = points[:1] if n >= 100_000 else points
        cohen = 1 / points_per_second(lambda x, n=n: hard.certify(x, N0, n, ALPHA, "cohen"), subset)
        soft = 1 / points_per_second(lambda x, n=n: lvm.certify(x, N0, n, ALPHA, "lvm"), subset)
        print(f"{n:>7}  {cohen:8.3f}  {soft:8.3f}  {soft / cohen:8.1f}x")

    print("\nLVM at n = 10000, seconds per point against temperatures per soft map")
    print(f"{'|T|':>5}  {'candidates':>10}  {'s/point':>8}")
    for count in (1, 5, 20, 50):
        grid = candidate_grid(temperatures=temperature_grid(count))
        smooth = Smooth(model, 10, SIGMA, candidates=grid)
        seconds = 1 / points_per_second(lambda x, s=smooth: s.certify(x, N0, 10_000, ALPHA), points)
        print(f"{count:>5}  {len(grid):>10}  {seconds:8.3f}")


if __name__ == "__main__":
    main()
