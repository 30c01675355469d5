"""Seconds per outer iteration: the Sinkhorn bridge engine vs the GP-IPF engine.

Same data for both (one interval of the default linear SDE, particles per snapshot 200, 1000,
5000), same reference (``Linear``) and one outer iteration: a bridge step, a theta-step and
the bridge step under the refined drift. GP-IPF runs ``--ipf-iter`` IPF iterations (the
official code uses 10; fewer here to keep the run short) with at most ``--gp-points``
regression points. A size whose estimated time exceeds ``--budget`` seconds is skipped and
its estimate printed instead.

    python packages/mmsb/benchmarks/run.py [--sizes 200 1000 5000] [--budget 60]
"""

from __future__ import annotations

import argparse
import time

import torch

from marginkit.mmsb import SBIRR, Linear, SBIRRConfig, simulate
from marginkit.mmsb.metrics import w2


def one_outer_iteration(snaps, config) -> tuple[float, float]:
    """Wall seconds of a fit with one outer iteration, and its end-marginal W2 at t = 1."""
    started = time.perf_counter()
    model = SBIRR(Linear(2), config).fit(snaps)
    seconds = time.perf_counter() - started
    predicted = model.predict_marginal(0.999, 200, seed=0)
    return seconds, w2(predicted, snaps.particles[1][:200])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 5000])
    parser.add_argument("--ipf-iter", type=int, default=3)
    parser.add_argument("--gp-points", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=90.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = SBIRRConfig(n_outer=1, tol=0.0, dt_max=0.05)
    engines = {
        "sinkhorn": (base, 2.0),  # Sinkhorn on n x n costs: about quadratic in n
        "sinkhorn_pot": (base.replace(backend="pot"), 2.0),
        "gp_ipf": (
            base.replace(bridge="gp_ipf", ipf_iter=args.ipf_iter, gp_max_points=args.gp_points),
            1.0,
        ),
    }
    warm = simulate.linear(n=30, times=[0.0, 1.0], seed=0)
    for config, _ in engines.values():  # imports and first-call costs stay out of the timings
        one_outer_iteration(warm, config.replace(ipf_iter=1))
    rows, last = [], {}
    for n in args.sizes:
        snaps = simulate.linear(n=n, times=[0.0, 1.0], seed=0)
        row = {"n": n}
        for name, (config, power) in engines.items():
            if name in last:
                previous_n, previous_s = last[name]
                estimate = previous_s * (n / previous_n) ** power
                if estimate > args.budget:
                    row[name] = f"skip (~{estimate:.0f} s)"
                    continue
            seconds, end_w2 = one_outer_iteration(snaps, config)
            last[name] = (n, seconds)
            row[name] = seconds
            row[f"{name}/w2"] = end_w2
        rows.append(row)
    print("\nseconds per outer iteration, one interval of the linear SDE (d = 2)")
    print(
        f"{'n':>6} {'sinkhorn/torch':>15} {'sinkhorn/pot':>15} {'gp_ipf':>15} "
        f"{'gp/sinkhorn':>12} {'pot/torch':>10} {'W2 sk':>7} {'W2 gp':>7}"
    )

    def cell(value):
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    def ratio(top, bottom):
        both = isinstance(top, float) and isinstance(bottom, float)
        return f"{top / bottom:.2f}" if both else "-"

    for row in rows:
        sk, pot, gp = row["sinkhorn"], row["sinkhorn_pot"], row["gp_ipf"]
        print(
            f"{row['n']:>6} {cell(sk):>15} {cell(pot):>15} {cell(gp):>15} "
            f"{ratio(gp, sk):>12} {ratio(pot, sk):>10} "
            f"{row.get('sinkhorn/w2', float('nan')):>7.3f} "
            f"{row.get('gp_ipf/w2', float('nan')):>7.3f}"
        )
    cloud = simulate.linear(n=200, times=[0.0, 1.0], seed=0).particles
    print(
        f"W2 sk / W2 gp: 200 draws just before t = 1 vs the t = 1 snapshot; the two snapshots are "
        f"W2 {w2(*cloud):.3f} apart. Timings include ot import only in the warm-up."
    )


if __name__ == "__main__":
    main()
