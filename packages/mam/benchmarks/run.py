"""marginkit-mam benchmarks: marginal speed vs AO-ARM, and accuracy on exact targets.

1. Speed. Equal-width MLP models at D = 64, 100 and 256, batch 16, |S| in {D/8, D/2, D}:
   median seconds per batch of MaM (one pass) and AO-ARM-S / -E (|S| sequential passes,
   M = 1 / 5 orders), as ratios measured in this same run.
2. Exact 4x4 Ising (D=16): energy-based KL training and two-stage MLE on exact samples;
   KL both ways, normalisation gap and marginal error against enumeration.
3. HMM (D=32, K=5): two-stage MLE; |log p(x_S) error| by |S| for MaM and AO-ARM-E against
   the forward algorithm.

    python benchmarks/run.py [--width 256] [--repeats 3] [--threads 1] [--skip-training]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from marginkit.mam.chains import EnumeratedTarget, HiddenMarkovChain
from marginkit.mam.config import EBMConfig, MLEConfig, ModelSettings
from marginkit.mam.ising import IsingLattice
from marginkit.mam.metrics import exact_metrics, marginal_error_by_size, time_marginals
from marginkit.mam.model import MarginalizationModel, NetworkConfig
from marginkit.mam.train import train_ebm, train_mle


def speed(width: int, repeats: int, generator: torch.Generator) -> None:
    print("\n[1] seconds per batch of 16 marginals (ratio = AO-ARM / MaM, same run)")
    print(
        f"{'D':>5} {'|S|':>5} {'MaM ms':>9} {'AO-S ms':>9} {'AO-E ms':>9} "
        f"{'speedup_s':>10} {'speedup_e':>10}"
    )
    for dim in (64, 100, 256):
        config = NetworkConfig(num_variables=dim, num_categories=2, width=width, depth=3)
        model = MarginalizationModel(config).eval()
        x = torch.randint(0, 2, (16, dim), generator=generator)
        for size in (dim // 8, dim // 2, dim):
            single = time_marginals(model, x, size, 1, repeats, generator)
            ensemble = time_marginals(model, x, size, 5, repeats, generator)
            print(
                f"{dim:>5} {size:>5} {1e3 * single['time/mam']:>9.3f} "
                f"{1e3 * single['time/aoarm']:>9.2f} {1e3 * ensemble['time/aoarm']:>9.2f} "
                f"{single['time/speedup']:>10.1f} "
                f"{ensemble['time/aoarm'] / single['time/mam']:>10.1f}"
            )


def _row(name: str, seconds: float, results: dict) -> None:
    print(
        f"{name:<22} {seconds:>6.0f} {results['exact/kl_model_true']:>10.4f} "
        f"{results['exact/kl_true_model']:>10.4f} {results['exact/norm_gap']:>9.4f} "
        f"{results['exact/marg_mae']:>9.4f}"
    )


def ising_exact(generator: torch.Generator) -> None:
    lattice = IsingLattice(4)
    states, log_p = lattice.enumerate()
    target = EnumeratedTarget(states, log_p, 2)
    settings = ModelSettings(width=128, depth=3)
    print("\n[2] exact 4x4 Ising (D=16, enumeration)")
    print(
        f"{'training':<22} {'sec':>6} {'KL(m||p)':>10} {'KL(p||m)':>10} {'norm_gap':>9} "
        f"{'marg_mae':>9}"
    )

    start = time.perf_counter()
    config = EBMConfig(
        ising_n=4,
        model=settings,
        steps=1000,
        batch_size=256,
        lr=1e-3,
        device="cpu",
        output_dir=tempfile.mkdtemp(),
        checkpoint_every=10**9,
        refresh_every=100,
        resume=False,
    )
    model, _ = train_ebm(lattice.log_f, 16, 2, config)
    results = exact_metrics(model, states, target.log_probs, target.log_marginal, 512, generator)
    _row("EB KL + SC, 1000 steps", time.perf_counter() - start, results)

    start = time.perf_counter()
    data = target.sample(20000, generator)
    config = MLEConfig(
        model=settings,
        stage1_steps=1000,
        stage2_steps=1000,
        batch_size=256,
        lr_stage1=1e-3,
        lr_stage2=1e-3,
        device="cpu",
        output_dir=tempfile.mkdtemp(),
        checkpoint_every=10**9,
        resume=False,
    )
    model, _ = train_mle(data, config)
    results = exact_metrics(model, states, target.log_probs, target.log_marginal, 512, generator)
    _row("MLE 2 stages, 20k data", time.perf_counter() - start, results)


def hmm_marginals(generator: torch.Generator) -> None:
    hmm = HiddenMarkovChain.random(num_variables=32, num_categories=5, num_hidden=4, seed=0)
    data = hmm.sample(20000, generator)
    test = hmm.sample(256, generator)
    config = MLEConfig(
        model=ModelSettings(width=256, depth=3),
        stage1_steps=1200,
        stage2_steps=1000,
        batch_size=256,
        lr_stage1=1e-3,
        lr_stage2=1e-3,
        device="cpu",
        output_dir=tempfile.mkdtemp(),
        checkpoint_every=10**9,
        resume=False,
    )
    start = time.perf_counter()
    model, _ = train_mle(data, config)
    seconds = time.perf_counter() - start
    sizes = [4, 8, 16, 24, 32]
    errors = marginal_error_by_size(model, test, hmm.log_marginal, sizes, generator, num_orders=5)
    print(f"\n[3] HMM D=32 K=5 H=4, two-stage MLE ({seconds:.0f} s): mean |log p(x_S) error|")
    print(f"{'|S|':>5} {'MaM':>9} {'AO-ARM-E':>9}")
    for size in sizes:
        print(
            f"{size:>5} {errors[f'marg/abs_err_mam@{size}']:>9.4f} "
            f"{errors[f'marg/abs_err_aoarm_e@{size}']:>9.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 keeps ratios stable on a shared machine",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    speed(args.width, args.repeats, generator)
    if not args.skip_training:
        ising_exact(generator)
        hmm_marginals(generator)


if __name__ == "__main__":
    main()
