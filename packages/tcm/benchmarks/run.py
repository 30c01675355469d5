"""Benchmarks of marginkit-tcm: ratios against a baseline measured in the same run."""

from __future__ import annotations

import time

import numpy as np

from marginkit.tcm.utility import f_beta_utility


def main() -> None:
    rng = np.random.default_rng(0)
    tpr, tnr = rng.random(1_000_000), rng.random(1_000_000)
    start = time.perf_counter()
    f_beta_utility(tpr, tnr)
    vectorised = time.perf_counter() - start
    start = time.perf_counter()
    [float(f_beta_utility(t, n)) for t, n in zip(tpr[:10_000], tnr[:10_000])]
    looped = (time.perf_counter() - start) * 100
    print("| computation | seconds | ratio to vectorised |")
    print("|---|---|---|")
    print(f"| vectorised utility, 1e6 | {vectorised:.4f} | 1.0 |")
    print(f"| per-element loop (extrapolated) | {looped:.4f} | {looped / vectorised:.1f} |")


if __name__ == "__main__":
    main()
