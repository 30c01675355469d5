"""``marginkit-mam <command>``: train-mle, train-ebm, sample, marginal, demo."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from marginkit.mam.config import DemoConfig, EBMConfig, MarginalConfig, MLEConfig, SampleConfig

logger = logging.getLogger(__name__)


def _train_mle(config: MLEConfig) -> dict:
    from marginkit.mam.data import load_codes, load_digits_binary
    from marginkit.mam.metrics import likelihood_metrics
    from marginkit.mam.train import train_mle

    if config.data == "digits":
        data = load_digits_binary()
    else:
        data = load_codes(config.data, config.num_categories, seed=config.seed)
    config.num_categories = config.num_categories or data.num_categories
    model, _ = train_mle(data.train, config, image_shape=data.image_shape)
    metrics = likelihood_metrics(model, data.test)
    print(json.dumps(metrics, indent=2))
    return metrics


def _train_ebm(config: EBMConfig) -> dict:
    from marginkit.mam.ising import IsingLattice
    from marginkit.mam.metrics import energy_metrics
    from marginkit.mam.train import train_ebm

    lattice = IsingLattice(config.ising_n, config.sigma_j, config.bias)
    proposal = None
    if config.objective == "regression":
        proposal = _independent_bits_logits(lattice.num_variables, lattice.bias)
    model, _ = train_ebm(lattice.log_f, lattice.num_variables, 2, config, proposal_logits=proposal)
    log_z = lattice.log_partition() if config.ising_n <= 12 else None
    metrics = energy_metrics(model, lattice.log_f, 512, log_z)
    print(json.dumps(metrics, indent=2))
    return metrics


def _independent_bits_logits(num_variables: int, bias: float):
    """Logits ``(D, 2)`` of the pseudo-data proposal ``P(x_i = 1) = sigmoid(2 b)``."""
    import torch

    return torch.tensor([[-bias, bias]]).expand(num_variables, 2).clone()


def _sample(config: SampleConfig) -> None:
    import numpy as np
    import torch

    from marginkit.mam.sampling import ancestral_sample, ratio_sample
    from marginkit.mam.train import load_model

    model = load_model(config.checkpoint)
    generator = torch.Generator().manual_seed(config.seed)
    if config.sampler == "ancestral":
        x, log_q = ancestral_sample(model, config.num_samples, model.num_variables, generator)
    elif config.sampler == "ratio":
        x, log_q = ratio_sample(
            model, config.num_samples, model.num_variables, model.num_categories, generator
        )
    else:
        raise SystemExit(f"--sampler must be 'ancestral' or 'ratio', got {config.sampler!r}")
    Path(config.output).parent.mkdir(parents=True, exist_ok=True)
    np.save(config.output, x.numpy())
    print(f"wrote {len(x)} samples to {config.output}; mean log q = {log_q.mean().item():.3f}")


def _marginal(config: MarginalConfig) -> list[float]:
    import numpy as np
    import torch

    from marginkit.mam.encoding import split_partial
    from marginkit.mam.metrics import aoarm_log_likelihood
    from marginkit.mam.train import load_model

    model = load_model(config.checkpoint)
    if not config.queries:
        raise SystemExit("--queries is required: a .npy file or a comma list like 1,-1,0")
    if config.queries.endswith(".npy"):
        raw = np.load(config.queries)
    else:
        raw = [[int(token) for token in config.queries.split(",")]]
    values, observed = split_partial(raw, model.num_categories, model.num_variables)
    with torch.no_grad():
        log_p = model.log_marginal(values, observed)
    for row, value in enumerate(log_p.tolist()):
        line = f"row {row}: log p(x_S) = {value:.5f}"
        if config.num_orders:
            estimate = aoarm_log_likelihood(
                model, values[row : row + 1], observed[row : row + 1], config.num_orders
            )
            line += f"   AO-ARM ({config.num_orders} orders) = {estimate.item():.5f}"
        print(line)
    return log_p.tolist()


def _demo(config: DemoConfig):
    from marginkit.mam.demo import run_demo

    return run_demo(config)


COMMANDS = {
    "train-mle": (MLEConfig, _train_mle),
    "train-ebm": (EBMConfig, _train_ebm),
    "sample": (SampleConfig, _sample),
    "marginal": (MarginalConfig, _marginal),
    "demo": (DemoConfig, _demo),
}


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point; results are printed, never returned as an exit status."""
    from marginkit.shared.cli import run_commands
    from marginkit.shared.logging import setup_logging

    setup_logging()
    run_commands("marginkit-mam", COMMANDS, argv)
