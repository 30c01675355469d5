"""Training an L2-normalised embedder with a base metric loss, with or without TCM."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marginkit.tcm.config import TrainConfig
from marginkit.tcm.losses import TCMLoss, tcm_loss
from marginkit.tcm.sampler import MPerClassBatchSampler

logger = logging.getLogger(__name__)


def build_embedder(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> torch.nn.Module:
    """An MLP ``in -> hidden... -> out`` with ReLU, followed by L2 normalisation."""
    layers: list[torch.nn.Module] = []
    width = in_dim
    for size in hidden:
        layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
        width = size
    layers.append(torch.nn.Linear(width, out_dim))
    return Normalized(torch.nn.Sequential(*layers))


class Normalized(torch.nn.Module):
    """Wrap any backbone so its output rows have unit L2 norm."""

    def __init__(self, backbone: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.backbone(inputs).float(), dim=1)


def make_base_loss(name: str, num_classes: int, embedding_dim: int) -> torch.nn.Module | None:
    """A pytorch-metric-learning loss with its library defaults, by name."""
    if name == "none":
        return None
    from pytorch_metric_learning import distances, losses

    if name == "contrastive":
        return losses.ContrastiveLoss(pos_margin=0, neg_margin=1, distance=distances.LpDistance())
    if name == "multi_similarity":
        return losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5)
    if name == "proxy_anchor":
        return losses.ProxyAnchorLoss(num_classes, embedding_dim, margin=0.1, alpha=32)
    if name == "normalized_softmax":
        return losses.NormalizedSoftmaxLoss(num_classes, embedding_dim, temperature=0.05)
    raise ValueError(
        f"unknown base_loss {name!r}; use contrastive, multi_similarity, proxy_anchor, "
        "normalized_softmax or none"
    )


@dataclasses.dataclass
class TrainResult:
    model: torch.nn.Module
    steps: int
    metrics_path: Path
    history: list[dict[str, Any]]


def train_embedder(
    config: TrainConfig,
    features: np.ndarray,
    labels: np.ndarray,
    model: torch.nn.Module | None = None,
    base_loss: Callable[..., torch.Tensor] | None = None,
) -> TrainResult:
    """Train on ``(N, F)`` features with ``(N,)`` labels under accelerate.

    ``model`` (any module, its output is L2-normalised) replaces the MLP; ``base_loss`` (a
    pytorch-metric-learning loss or ``(embeddings, labels) -> loss``) replaces the named one.
    Per step, ``metrics.jsonl`` gets ``loss/total``, ``loss/base``, ``loss/tcm`` and the
    batch's ``tcm/n_hard_pos``, ``tcm/n_hard_neg`` and shares (also with TCM off).
    """
    from marginkit.shared import (
        MetricsWriter,
        latest_checkpoint,
        load_checkpoint,
        make_accelerator,
        save_checkpoint,
        seed_everything,
    )
    from marginkit.shared.checkpoint import resume_position, skip_seen_batches

    seed_everything(config.seed)
    _, codes = np.unique(labels, return_inverse=True)
    num_classes = int(codes.max()) + 1
    model = (
        Normalized(model)
        if model is not None
        else build_embedder(features.shape[1], tuple(config.hidden), config.embedding_dim)
    )
    if base_loss is None:
        base_loss = make_base_loss(config.base_loss, num_classes, config.embedding_dim)
    loss_fn = TCMLoss(base_loss, config.tcm, enabled=config.use_tcm)
    groups = [{"params": model.parameters(), "lr": config.lr}]
    loss_params = list(loss_fn.parameters())
    if loss_params:
        groups.append({"params": loss_params, "lr": config.loss_lr})
    optimizer = torch.optim.Adam(groups)
    sampler = MPerClassBatchSampler(codes, config.m_per_class, config.batch_size, config.seed)
    dataset = torch.utils.data.TensorDataset(
        torch.as_tensor(features, dtype=torch.float32), torch.as_tensor(codes)
    )
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler)
    accelerator = make_accelerator(mixed_precision=config.mixed_precision, cpu=config.cpu)
    model, loss_fn, optimizer = accelerator.prepare(model, loss_fn, optimizer)

    out_dir = Path(config.out_dir)
    step = 0
    if config.resume and latest_checkpoint(out_dir) is not None:
        state = load_checkpoint(out_dir)
        accelerator.unwrap_model(model).load_state_dict(state.tensors["model"])
        accelerator.unwrap_model(loss_fn).load_state_dict(state.tensors.get("loss", {}))
        optimizer.load_state_dict(state.objects["optimizer"])
        step = state.step
        logger.info("resumed from %s at step %d", state.path, step)
    total_steps = config.epochs * len(sampler)
    history: list[dict[str, Any]] = []
    with MetricsWriter(out_dir / "metrics.jsonl") as writer:
        first_epoch, seen = resume_position(step, len(sampler))
        for epoch in range(first_epoch, config.epochs):
            sampler.set_epoch(epoch)
            batches = skip_seen_batches(loader, seen if epoch == first_epoch else 0)
            for inputs, batch_labels in batches:
                inputs, batch_labels = (
                    inputs.to(accelerator.device),
                    batch_labels.to(accelerator.device),
                )
                embeddings = model(inputs)
                output = loss_fn(embeddings, batch_labels)
                if not torch.isfinite(output.loss):
                    raise FloatingPointError(f"loss is {float(output.loss)} at step {step}")
                optimizer.zero_grad()
                accelerator.backward(output.loss)
                optimizer.step()
                step += 1
                record = output.metrics()
                if output.tcm is None:
                    with torch.no_grad():
                        record.update(
                            tcm_loss(embeddings, batch_labels, config=config.tcm).metrics()
                        )
                record["epoch"] = epoch
                writer.write(record, step=step)
                history.append({**record, "step": step})
                if config.checkpoint_every and step % config.checkpoint_every == 0:
                    _save(
                        accelerator,
                        model,
                        loss_fn,
                        optimizer,
                        out_dir,
                        step,
                        config,
                        save_checkpoint,
                    )
    if accelerator.is_main_process and step >= total_steps:
        _save(accelerator, model, loss_fn, optimizer, out_dir, step, config, save_checkpoint)
    return TrainResult(accelerator.unwrap_model(model), step, out_dir / "metrics.jsonl", history)


def _save(accelerator, model, loss_fn, optimizer, out_dir, step, config, save_checkpoint) -> None:
    if not accelerator.is_main_process:
        return
    save_checkpoint(
        out_dir,
        step,
        tensors={
            "model": accelerator.unwrap_model(model).state_dict(),
            "loss": accelerator.unwrap_model(loss_fn).state_dict(),
        },
        config=config,
        objects={"optimizer": optimizer.state_dict()},
        keep_last=2,
    )


@torch.no_grad()
def embed(model: torch.nn.Module, features: np.ndarray, batch_size: int = 1024) -> torch.Tensor:
    """``(N, D)`` embeddings of ``(N, F)`` features, in evaluation mode, on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    parts = []
    for start in range(0, len(features), batch_size):
        chunk = torch.as_tensor(features[start : start + batch_size], dtype=torch.float32)
        parts.append(model(chunk.to(device)).float().cpu())
    model.train()
    return torch.cat(parts)


def run_name(config: TrainConfig) -> str:
    """Every setting that tells runs apart except the seed, e.g. ``proxy_anchor + TCM(0.9/0.5)``."""
    name: str = config.base_loss
    if config.use_tcm:
        name += f" + TCM({config.tcm.margin_pos:g}/{config.tcm.margin_neg:g})"
    if tuple(config.hidden) != (256, 256):
        name += f" [hidden={'-'.join(map(str, config.hidden)) or 'linear'}]"
    return name


def open_world_data(source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` with disjoint train and test classes.

    ``"digits"``: classes 0-4 / 5-9 of scikit-learn's digits. A feature file: the first
    half of the sorted classes train, the rest test (or its ``split``/``is_query`` column
    is ignored; classes decide).
    """
    from marginkit.tcm.data import digits_open_world, load_embeddings

    if source == "digits":
        return digits_open_world()
    loaded = load_embeddings(source)
    classes = np.unique(loaded.labels)
    if len(classes) < 4:
        raise ValueError(f"{source} has {len(classes)} classes; an open-world split needs >= 4")
    train = np.isin(loaded.labels, classes[: len(classes) // 2])
    x, y = loaded.embeddings, loaded.labels
    return x[train], y[train], x[~train], y[~train]


def train(config: TrainConfig, evaluate: bool = True) -> dict[str, Any]:
    """Train on the train classes, then evaluate on the unseen test classes.

    Returns the test metrics (R@k, MAP@R, OPIS, ...) with the run's settings; they are
    also written to ``<out_dir>/results.json``.
    """
    import json

    from marginkit.tcm.evaluate import evaluate_embeddings

    x_train, y_train, x_test, y_test = open_world_data(config.data)
    result = train_embedder(config, x_train, y_train)
    summary: dict[str, Any] = {
        "config": run_name(config),
        "seed": config.seed,
        "steps": result.steps,
    }
    if result.history:
        per_epoch = [r["tcm/share_hard_neg"] for r in result.history if r["epoch"] == 0]
        last = [r["tcm/share_hard_neg"] for r in result.history if r["epoch"] == config.epochs - 1]
        summary["train_share_hard_neg/first_epoch"] = (
            float(np.mean(per_epoch)) if per_epoch else None
        )
        summary["train_share_hard_neg/last_epoch"] = float(np.mean(last)) if last else None
    if evaluate:
        margins = (config.tcm.margin_pos, config.tcm.margin_neg)
        summary.update(evaluate_embeddings(embed(result.model, x_test), y_test, margins=margins))
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
