"""Demo on scikit-learn's bundled 8x8 digits (nothing downloaded).

For each noise level: train a small CNN with Gaussian noise augmentation (and the orthogonal,
Lipschitz-by-design MLP), then certify the test points with every certificate on the same
samples: Cohen's (runner-up 1 - pA), hard votes with a separate runner-up bound (cp_multi),
softmax at T = 1 with empirical Bernstein, LVM with the candidate chosen per input on the n0
samples, LVM with one candidate calibrated on held-out training points, and the union bound.
It prints what it measured and asserts nothing about which certificate wins.

``python -m marginkit.lvm_smoothing.demo --sigmas 0.25 0.5 --n 10000`` runs the larger setting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import torch

from marginkit.lvm_smoothing.config import DemoConfig
from marginkit.lvm_smoothing.data import digits01
from marginkit.lvm_smoothing.evaluate import (
    SOFTMAX_ONE,
    calibrate,
    certify_draws,
    draw_dataset,
    save_draws,
    write_run,
)
from marginkit.lvm_smoothing.lipschitz import upper_bound
from marginkit.lvm_smoothing.maps import candidate_grid, temperature_grid
from marginkit.lvm_smoothing.metrics import plot_certified_accuracy
from marginkit.lvm_smoothing.models import digits_cnn, lipschitz_mlp
from marginkit.lvm_smoothing.smooth import Smooth
from marginkit.lvm_smoothing.train import fit_noise_augmented
from marginkit.shared import seed_everything

logger = logging.getLogger(__name__)

RUN_ORDER = ("cohen", "cp_multi", "softmax_t1", "lvm", "lvm_fixed", "lvm_union")


def _split(config: DemoConfig) -> dict[str, torch.Tensor]:
    data = digits01(config.seed)
    order = torch.randperm(len(data["y_train"]), generator=torch.Generator().manual_seed(0))
    held, kept = order[: config.calibration_points], order[config.calibration_points :]
    return {
        "x_fit": data["x_train"][kept], "y_fit": data["y_train"][kept],
        "x_cal": data["x_train"][held], "y_cal": data["y_train"][held],
        "x_test": data["x_test"][: config.max_test], "y_test": data["y_test"][: config.max_test],
    }  # fmt: skip


def _one_model(name: str, factory, sigma: float, split, config: DemoConfig):
    from marginkit.lvm_smoothing.cli import format_table

    seed_everything(config.seed)  # before building: the initial weights are seeded too
    model = factory()
    start = time.perf_counter()
    fit_noise_augmented(
        model, split["x_fit"], split["y_fit"], sigma, config.epochs, seed=config.seed
    )
    train_seconds = time.perf_counter() - start
    with torch.no_grad():
        clean = float((model(split["x_test"]).argmax(1) == split["y_test"]).float().mean())
    lipschitz = upper_bound(model)
    temperatures = sorted({*temperature_grid(config.num_temperatures), SOFTMAX_ONE.temperature})
    smooth = Smooth(model, 10, sigma, candidate_grid(temperatures=temperatures), lipschitz)

    start = time.perf_counter()
    held = draw_dataset(smooth, split["x_cal"], split["y_cal"], config.n0, config.n, config.seed)
    fixed = calibrate(held, sigma, config.alpha, logit_lipschitz=lipschitz)
    test = draw_dataset(
        smooth, split["x_test"], split["y_test"], config.n0, config.n, config.seed + 1
    )
    sample_seconds = time.perf_counter() - start

    out = config.out_dir / f"{name}_sigma{sigma:g}"
    meta = {
        "sigma": sigma, "sigma_train": sigma, "n0": config.n0, "n": config.n,
        "alpha": config.alpha, "model": name, "logit_lipschitz": lipschitz,
        "grid": [str(c) for c in smooth.candidates], "classes": list(range(10)),
        "skip": 1, "max": config.max_test, "seed": config.seed + 1, "calibrated": str(fixed),
    }  # fmt: skip
    runs = {}
    for run in RUN_ORDER:
        certificates = certify_draws(
            test, sigma, config.alpha, run, candidate=fixed, logit_lipschitz=lipschitz
        )
        write_run(out, run, test, certificates, {**meta, "selection": run})
        runs[run] = (
            [c.prediction for c in certificates], test.labels, [c.radius for c in certificates],
        )  # fmt: skip
        if run == "lvm":
            chosen = [c.candidate.split("@")[0] for c in certificates if not c.abstained]
            formulas = [c.formula for c in certificates if not c.abstained]
    save_draws(out / "test.stats.npz", test)
    plot = plot_certified_accuracy(runs, out / "curves.png", title=f"{name}, sigma = {sigma:g}")
    per_point = sample_seconds / (len(held.labels) + len(test.labels))
    print(
        f"\n== {name}  sigma={sigma:g}  clean base accuracy {clean:.3f}  L_g <= {lipschitz:.3g}  "
        f"train {train_seconds:.0f} s  sampling {per_point:.3f} s/point  fixed = {fixed}"
    )
    print(format_table(runs, config.radii))
    maps = {m: chosen.count(m) for m in sorted(set(chosen))}
    print(f"lvm per-input maps: {maps}; formulas: "
          f"{ {f: formulas.count(f) for f in sorted(set(formulas))} }; curves: {plot}")  # fmt: skip
    return runs


def run_demo(config: DemoConfig) -> dict:
    """Run the demo and return ``{(model, sigma): {certificate: (predict, label, radius)}}``."""
    split = _split(config)
    print(
        f"digits: {len(split['y_fit'])} train, {len(split['y_cal'])} calibration, "
        f"{len(split['y_test'])} test; n0={config.n0}, n={config.n}, alpha={config.alpha}"
    )
    results = {}
    for sigma in config.sigmas:
        models = [("cnn", digits_cnn)]
        if config.lipschitz_variant and sigma == config.sigmas[0]:
            models.append(("orthogonal_mlp", lipschitz_mlp))
        for name, factory in models:
            results[(name, sigma)] = _one_model(name, factory, sigma, split, config)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    from marginkit.shared.cli import parse_config
    from marginkit.shared.logging import setup_logging

    setup_logging("WARNING")
    import sys

    args = sys.argv[1:] if argv is None else list(argv)
    run_demo(parse_config(DemoConfig, args, prog="python -m marginkit.lvm_smoothing.demo"))


if __name__ == "__main__":
    main()
