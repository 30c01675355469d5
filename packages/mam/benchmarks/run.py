"""Marginal-evaluation time of MaM (one pass) vs AO-ARM (|S| passes; M=1 and M=5 orders).

Equal-width MLP models at D = 64 (binarized digits) and D = 100, 256 (lattices), batch 16,
|S| in {D/8, D/2, D}. Times are medians of a few repeats after a warm-up, on whatever
device this runs; the table reports the ratio AO-ARM / MaM, measured in this same run.

    python benchmarks/run.py [--width 256] [--repeats 3]
"""

from __future__ import annotations

import argparse

import torch

from marginkit.mam.metrics import time_marginals
from marginkit.mam.model import MarginalizationModel, NetworkConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 100, 256])
    args = parser.parse_args()
    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)

    print(
        f"{'D':>5} {'|S|':>5} {'MaM ms':>9} {'AO-S ms':>9} {'AO-E ms':>9} "
        f"{'speedup_s':>10} {'speedup_e':>10}"
    )
    for dim in args.dims:
        model = MarginalizationModel(
            NetworkConfig(num_variables=dim, num_categories=2, width=args.width, depth=3)
        ).eval()
        x = torch.randint(0, 2, (16, dim), generator=generator)
        for size in (dim // 8, dim // 2, dim):
            single = time_marginals(model, x, size, 1, args.repeats, generator)
            ensemble = time_marginals(model, x, size, 5, max(1, args.repeats // 2), generator)
            print(
                f"{dim:>5} {size:>5} {1e3 * single['time/mam']:>9.3f} "
                f"{1e3 * single['time/aoarm']:>9.2f} {1e3 * ensemble['time/aoarm']:>9.2f} "
                f"{single['time/speedup']:>10.1f} "
                f"{ensemble['time/aoarm'] / single['time/mam']:>10.1f}"
            )


if __name__ == "__main__":
    main()
