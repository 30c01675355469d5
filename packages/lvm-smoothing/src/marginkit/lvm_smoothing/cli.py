"""``marginkit-lvm-smoothing certify | predict | curve | train | demo``."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from marginkit.lvm_smoothing.config import (
    CertifyConfig,
    CurveConfig,
    DemoConfig,
    PredictConfig,
    SmoothingConfig,
    TrainConfig,
)

logger = logging.getLogger(__name__)


def _load_model(config: CertifyConfig):
    import torch

    from marginkit.lvm_smoothing.models import build_model
    from marginkit.shared import load_checkpoint

    if config.checkpoint is not None:
        state = load_checkpoint(config.checkpoint)
        model = build_model(state.config["arch"], **state.config.get("arch_settings", {}))
        model.load_state_dict(state.tensors["model"])
        sigma_train = state.config.get("sigma_train")
        if sigma_train is not None and abs(float(sigma_train) - config.sigma) > 1e-12:
            logger.warning(
                "certifying at sigma=%s a model trained at sigma=%s", config.sigma, sigma_train
            )
        return model, sigma_train
    if config.model:
        module_name, _, factory = config.model.partition(":")
        if not factory:
            raise ValueError(f"--model must be 'package.module:factory', got {config.model!r}")
        model = getattr(importlib.import_module(module_name), factory)()
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"{config.model} returned {type(model).__name__}, not an nn.Module")
        return model, None
    raise ValueError("give --checkpoint (from `train`) or --model 'package.module:factory'")


def _load_data(config: CertifyConfig):
    from marginkit.lvm_smoothing.data import digits01, load_examples

    maximum = None if config.max < 0 else config.max
    if config.data == "digits":
        split = digits01(config.seed)
        return load_examples(
            split["x_test"], split["y_test"], skip=config.skip, max_examples=maximum
        )
    scale = None if config.scale == 1.0 else config.scale
    return load_examples(config.data, scale=scale, skip=config.skip, max_examples=maximum)


def _count_classes(model, inputs, labels, requested: int = 0) -> int:
    """K from the width of the model's logits on the first input; labels must be below K."""
    import torch

    model.eval()
    try:
        with torch.no_grad():
            logits = model(inputs[:1])
    except RuntimeError as error:
        raise ValueError(
            f"the model failed on the data's inputs of shape {tuple(inputs.shape[1:])} "
            f"(a batch {tuple(inputs[:1].shape)}); check --data against the model: {error}"
        ) from error
    if logits.dim() != 2:
        raise ValueError(
            f"the model must return (batch, K) logits, got shape {tuple(logits.shape)}"
        )
    num_classes = requested or int(logits.shape[1])
    if int(labels.max()) >= num_classes:
        raise ValueError(
            f"the data has label {int(labels.max())} but the model has {num_classes} classes "
            f"(labels must be 0..{num_classes - 1})"
        )
    return num_classes


def build_smooth(config: SmoothingConfig, model, num_classes: int):
    """A :class:`Smooth` from the shared settings (device, candidates, Lipschitz constant)."""
    from marginkit.lvm_smoothing.lipschitz import upper_bound
    from marginkit.lvm_smoothing.maps import candidate_grid, temperature_grid
    from marginkit.lvm_smoothing.smooth import Smooth
    from marginkit.shared import select_device

    device = select_device(None if config.device == "auto" else config.device)
    model = model.to(device)
    if config.lipschitz == "none":
        lipschitz = None
    elif config.lipschitz == "bound":
        lipschitz = upper_bound(model)
    else:
        try:
            lipschitz = float(config.lipschitz)
        except ValueError:
            raise ValueError(
                f"--lipschitz must be 'none', 'bound' or a number, got {config.lipschitz!r}"
            ) from None
    grid = temperature_grid(config.num_temperatures, config.temperature_min, config.temperature_max)
    return Smooth(
        model, num_classes, config.sigma, candidate_grid(config.maps, grid), lipschitz,
        batch_size=config.batch_size,
    )  # fmt: skip


def _fixed_candidate(config: SmoothingConfig):
    from marginkit.lvm_smoothing.maps import HARDMAX, Candidate

    if config.fixed_map == "hardmax":
        return HARDMAX
    return Candidate(config.fixed_map, config.fixed_temperature)


def _run_settings(config: CertifyConfig, smooth, sigma_train, num_classes: int) -> dict:
    settings = dataclasses.asdict(config)
    settings.update(
        sigma_train=sigma_train,
        num_classes=num_classes,
        classes=list(range(num_classes)),
        grid=[str(c) for c in smooth.candidates],
        logit_lipschitz=smooth.logit_lipschitz,
        lipschitz_source=config.lipschitz,
    )
    return settings


def certify_command(config: CertifyConfig) -> Path:
    """Certify every example and write the TSV, details, metadata and statistics."""
    from marginkit.lvm_smoothing.evaluate import draw_dataset, save_draws, write_run
    from marginkit.lvm_smoothing.maps import HARDMAX
    from marginkit.lvm_smoothing.metrics import summary_row

    model, sigma_train = _load_model(config)
    inputs, labels = _load_data(config)
    num_classes = _count_classes(model, inputs, labels, config.num_classes)
    smooth = build_smooth(config, model, num_classes)
    candidate = _fixed_candidate(config)
    if config.method != "lvm":
        smooth.candidates = [HARDMAX]
    elif config.selection == "fixed":
        smooth.candidates = [candidate]
    indices = list(range(0, len(labels) * config.skip, config.skip))
    draws = draw_dataset(smooth, inputs, labels, config.n0, config.n, config.seed, indices)

    from marginkit.lvm_smoothing.certificates import certify_from_statistics

    certificates = [
        certify_from_statistics(
            chosen, estimated, config.sigma, config.alpha, config.method, config.selection,
            candidate, smooth.logit_lipschitz,
        )
        for chosen, estimated in zip(draws.selection, draws.estimation)
    ]  # fmt: skip
    out = Path(config.out)
    settings = _run_settings(config, smooth, sigma_train, num_classes)
    path = write_run(out.parent, out.stem, draws, certificates, settings, config.radius_format)
    save_draws(out.with_suffix(".stats.npz"), draws)
    row = summary_row([c.prediction for c in certificates], draws.labels,
                      [c.radius for c in certificates], [0.0, 0.25, 0.5, 0.75, 1.0])  # fmt: skip
    print("  ".join(f"{k}={v:.3f}" for k, v in row.items()))
    print(f"wrote {path}")
    return path


def predict_command(config: PredictConfig) -> Path:
    """Predict (class or -1) for every example and write the predict TSV."""
    from marginkit.lvm_smoothing.maps import HARDMAX
    from marginkit.lvm_smoothing.results import PREDICT_COLUMNS, format_time

    model, _ = _load_model(config)
    inputs, labels = _load_data(config)
    smooth = build_smooth(config, model, _count_classes(model, inputs, labels, config.num_classes))
    # Cohen's PREDICT on hard votes unless one soft candidate is fixed.
    candidate = _fixed_candidate(config) if config.selection == "fixed" else HARDMAX
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    correct = 0
    with open(out, "w") as handle:
        handle.write("\t".join(PREDICT_COLUMNS) + "\n")
        for position, (x, label) in enumerate(zip(inputs, labels.tolist())):
            index = position * config.skip
            start = time.perf_counter()
            generator = smooth.generator(config.seed * 1_000_003 + index)
            prediction = smooth.predict(x, config.n, config.alpha, candidate, generator)
            elapsed = format_time(time.perf_counter() - start)
            correct += int(prediction == label)
            handle.write(f"{index}\t{label}\t{prediction}\t{int(prediction == label)}\t{elapsed}\n")
    print(f"accuracy {correct / len(labels):.3f} over {len(labels)} inputs; wrote {out}")
    return out


def curve_command(config: CurveConfig) -> Path:
    """Print certified accuracy at ``radii`` for each TSV and plot all curves on one PNG."""
    from marginkit.lvm_smoothing.metrics import plot_certified_accuracy
    from marginkit.lvm_smoothing.results import read_certify_tsv

    if not config.tsv:
        raise ValueError("give at least one --tsv file")
    names = list(config.names) or [Path(p).stem for p in config.tsv]
    if len(names) != len(config.tsv):
        raise ValueError(f"{len(names)} names for {len(config.tsv)} files")
    runs = {}
    for name, path in zip(names, config.tsv):
        table = read_certify_tsv(path)
        if "radius" not in table:
            raise ValueError(f"{path} has no radius column (a predict TSV?)")
        runs[name] = (table["predict"], table["label"], table["radius"])
    print(format_table(runs, config.radii))
    path = plot_certified_accuracy(runs, config.out)
    print(f"wrote {path}")
    return path


def format_table(runs: dict, radii: Sequence[float]) -> str:
    """A fixed-width text table: CA at each radius, ACR and abstention rate per run."""
    from marginkit.lvm_smoothing.metrics import summary_row

    rows = {
        name: summary_row(predict, label, radius, radii)
        for name, (predict, label, radius) in runs.items()
    }
    header = ["certificate", *[f"CA@{r:g}" for r in radii], "ACR", "abstain"]
    width = max(len(header[0]), *(len(name) for name in rows))
    lines = [f"{header[0]:<{width}}  " + "  ".join(f"{h:>7}" for h in header[1:])]
    for name, row in rows.items():
        values = [row[f"ca/{r:g}"] for r in radii] + [row["acr"], row["abstain"]]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{v:7.3f}" for v in values))
    return "\n".join(lines)


def train_command(config: TrainConfig) -> Path:
    """Train a digits model with noise augmentation; the checkpoint records sigma_train."""
    from marginkit.lvm_smoothing.data import digits01
    from marginkit.lvm_smoothing.models import build_model
    from marginkit.lvm_smoothing.train import fit_noise_augmented
    from marginkit.shared import seed_everything

    seed_everything(config.seed)
    split = digits01(config.seed)
    model = build_model(config.arch)
    fit_noise_augmented(
        model, split["x_train"], split["y_train"], config.sigma, config.epochs,
        config.batch_size, config.lr, config.seed, checkpoint_dir=config.out,
        config={"arch": config.arch, "arch_settings": {}},
    )  # fmt: skip
    print(f"wrote {config.out}")
    return Path(config.out)


def demo_command(config: DemoConfig) -> dict:
    from marginkit.lvm_smoothing.demo import run_demo

    return run_demo(config)


COMMANDS: dict[str, tuple[type, Callable[[Any], Any]]] = {
    "certify": (CertifyConfig, certify_command),
    "predict": (PredictConfig, predict_command),
    "curve": (CurveConfig, curve_command),
    "train": (TrainConfig, train_command),
    "demo": (DemoConfig, demo_command),
}


def main(argv: Sequence[str] | None = None) -> None:
    from marginkit.shared.cli import run_commands
    from marginkit.shared.logging import setup_logging

    setup_logging()
    run_commands("marginkit-lvm-smoothing", COMMANDS, argv)
