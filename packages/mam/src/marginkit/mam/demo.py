"""The demo: binarized digits by maximum likelihood, then the 10x10 Ising model from its
energy. Prints what it measured and writes PNGs of samples and inpainted half-digits."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import torch

from marginkit.mam.chains import fit_independent, independent_log_marginal
from marginkit.mam.config import DemoConfig, EBMConfig, MLEConfig, ModelSettings
from marginkit.mam.data import load_digits_binary
from marginkit.mam.ising import IsingLattice
from marginkit.mam.metrics import (
    bits_per_dim,
    energy_metrics,
    likelihood_metrics,
    self_consistency_metrics,
    time_marginals,
)
from marginkit.mam.sampling import ancestral_sample, inpaint
from marginkit.mam.train import train_ebm, train_mle


def _save_grid(path: Path, rows: list[torch.Tensor], titles: list[str]) -> None:
    """Rows of 8x8 images (values in [0, 1], NaN drawn grey) as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(len(row) for row in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(columns * 0.9, len(rows) * 1.0))
    for r, (row, title) in enumerate(zip(rows, titles)):
        for c in range(columns):
            axis = axes[r][c]
            axis.axis("off")
            if c < len(row):
                image = row[c].reshape(8, 8).float()
                axis.imshow(image.nan_to_num(0.5), cmap="gray_r", vmin=0, vmax=1)
        axes[r][0].set_title(title, fontsize=7, loc="left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _digits(config: DemoConfig, out: Path, generator: torch.Generator) -> list[tuple]:
    data = load_digits_binary()
    settings = ModelSettings(width=config.width, depth=3)
    mle = MLEConfig(
        model=settings,
        stage1_steps=config.stage1_steps,
        stage2_steps=config.stage2_steps,
        batch_size=100,
        lr_stage1=1e-3,
        lr_stage2=5e-4,
        device="cpu",
        output_dir=str(out / "digits_run"),
        checkpoint_every=10**9,
        resume=False,
        seed=config.seed,
    )
    start = time.perf_counter()
    model, _ = train_mle(data.train, mle)
    train_seconds = time.perf_counter() - start
    metrics = likelihood_metrics(model, data.test, num_orders=5, generator=generator)
    table = fit_independent(data.train, 2)
    full = torch.ones_like(data.test, dtype=torch.bool)
    independent = -independent_log_marginal(table, data.test, full).mean().item()
    sc = self_consistency_metrics(model, data.test, generator)
    speed = time_marginals(model, data.test[:16], 32, 1, 3, generator)
    speed_e = time_marginals(model, data.test[:16], 32, 5, 1, generator)

    samples, _ = ancestral_sample(model, 16, 64, generator)
    originals = data.test[:8]
    top_half = torch.zeros_like(originals, dtype=torch.bool)
    top_half[:, :32] = True
    filled = inpaint(model, originals, top_half, generator)
    masked = torch.where(top_half, originals.float(), float("nan"))
    _save_grid(out / "digits_samples.png", [samples[:8], samples[8:]], ["samples", ""])
    _save_grid(
        out / "digits_inpainting.png",
        [originals, masked, filled],
        ["test digits", "top half given", "inpainted"],
    )
    D = 64
    return [
        ("digits", "train seconds (both stages)", f"{train_seconds:.0f}"),
        ("digits", "test bpd, independent Bernoulli", f"{bits_per_dim(independent, D):.4f}"),
        ("digits", "test bpd, AO-ARM-S (p_phi, 1 order)", f"{metrics['bpd/aoarm_s']:.4f}"),
        ("digits", "test bpd, AO-ARM-E (p_phi, 5 orders)", f"{metrics['bpd/aoarm_e']:.4f}"),
        ("digits", "test bpd, MaM marginal net f_theta", f"{metrics['bpd/marginal_net']:.4f}"),
        ("digits", "sc/step_mse (test)", f"{sc['sc/step_mse']:.4f}"),
        ("digits", "sc/ksum_gap (test)", f"{sc['sc/ksum_gap']:.4f}"),
        ("digits", "ms / 16 marginals, MaM (|S|=32)", f"{1e3 * speed['time/mam']:.2f}"),
        ("digits", "ms / 16 marginals, AO-ARM-S", f"{1e3 * speed['time/aoarm']:.2f}"),
        ("digits", "ms / 16 marginals, AO-ARM-E", f"{1e3 * speed_e['time/aoarm']:.2f}"),
        (
            "digits",
            "speedup over AO-ARM-S / -E",
            f"{speed['time/speedup']:.0f}x / {speed_e['time/aoarm'] / speed['time/mam']:.0f}x",
        ),
    ]


def _ising(config: DemoConfig, out: Path, generator: torch.Generator) -> list[tuple]:
    lattice = IsingLattice(10)
    log_z = lattice.log_partition()
    ebm = EBMConfig(
        ising_n=10,
        model=ModelSettings(width=config.width, depth=3),
        steps=config.ebm_steps,
        batch_size=256,
        lr=5e-4,
        device="cpu",
        output_dir=str(out / "ising_run"),
        checkpoint_every=10**9,
        resume=False,
        seed=config.seed,
    )
    start = time.perf_counter()
    model, _ = train_ebm(lattice.log_f, 100, 2, ebm)
    train_seconds = time.perf_counter() - start
    reference = lattice.gibbs_samples(500, 400, generator)
    metrics = energy_metrics(model, lattice.log_f, 1024, log_z, reference, generator)
    speed = time_marginals(model, reference[:16], 50, 1, 3, generator)
    entropy_bpd = lattice.entropy() / (100 * math.log(2))
    return [
        ("ising", "train seconds", f"{train_seconds:.0f}"),
        ("ising", "NLL of Gibbs reference, bpd (AO-ARM-S)", f"{metrics['bpd/nll_ref']:.4f}"),
        ("ising", "exact entropy, bpd (floor)", f"{entropy_bpd:.4f}"),
        ("ising", "KL - log Z (paper's 'KL'), nats", f"{metrics['eb/kl_minus_log_z']:.3f}"),
        ("ising", "KL(p_phi || p*), nats", f"{metrics['eb/kl']:.3f}"),
        ("ising", "log Z exact (transfer matrix)", f"{log_z:.3f}"),
        ("ising", "log Z, importance estimate from p_phi", f"{metrics['eb/log_z_is']:.3f}"),
        ("ising", "f_theta(empty), pinned near c = D log 2", f"{metrics['eb/log_z_marginal']:.3f}"),
        ("ising", "theta-phi gap, nats", f"{metrics['eb/theta_phi_gap']:.3f}"),
        ("ising", "speedup over AO-ARM-S (|S|=50)", f"{speed['time/speedup']:.0f}x"),
    ]


def run_demo(config: DemoConfig) -> list[tuple[str, str, str]]:
    """Run both parts and print one table; returns its rows."""
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    generator = torch.Generator().manual_seed(config.seed)
    rows = _digits(config, out, generator) + _ising(config, out, generator)
    width = max(len(name) for _, name, _ in rows)
    print(f"\nmarginkit-mam demo ({dataclasses.asdict(config)})")
    for part, name, value in rows:
        print(f"  {part:<7} {name:<{width}}  {value}")
    print(f"  PNGs: {out / 'digits_samples.png'}, {out / 'digits_inpainting.png'}")
    return rows
