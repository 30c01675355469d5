"""Demo: gradient entanglement on sentiment pairs with a tiny GPT-2 (CPU, one thread).

1. SFT of a tiny GPT-2 on prompt + chosen (Adam); the SFT model is the reference.
2. Probe fresh pairs whose responses differ in one token (suffix length 0) or share a
   suffix of 2, 8 or 12 tokens: mean gradient cosine of the full responses and of the
   differing tokens only (from token heat-maps), norm ratio ``n_l/n_w``, the probability of
   the token after the label and DPO's predicted case fractions; a heat-map PNG of one pair.
3. On suffix length 8, full-batch training with DPO (SGD), the pairwise normalised update
   and diff-masked DPO, for several seeds (normalised: ``c = |m'(z)|`` of DPO): mean
   change of the chosen and rejected log-probs, the share of pairs whose chosen log-prob
   ends below its start, the final cosines (full and differing tokens), and the
   trajectories (a PNG).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from marginkit.gradent.data import EOS, SentimentPairs, tiny_gpt2
from marginkit.gradent.heatmap import masked_products, plot_token_heatmap, token_heatmap
from marginkit.gradent.logprobs import PairBatch, pair_logps, side_logps
from marginkit.gradent.losses import preference_loss
from marginkit.gradent.masks import batch_diff_masks, position_masks
from marginkit.gradent.measure import measure_pairs
from marginkit.gradent.normalized import NormalizedPairwiseStep
from marginkit.gradent.predict import case_fractions
from marginkit.shared import seed_everything

logger = logging.getLogger(__name__)
SUFFIX_LENGTHS = (0, 2, 8, 12)


def sft(model: torch.nn.Module, steps: int, lr: float, batch_size: int, seed: int) -> None:
    """Supervised fine-tuning on prompt + chosen, token-mean NLL of the response."""
    data = [SentimentPairs(length, 256, seed=seed + length) for length in SUFFIX_LENGTHS]
    batches = [d.batch().chosen for d in data]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        side = batches[step % len(batches)]
        rows = torch.randint(side.input_ids.shape[0], (batch_size,), generator=generator)
        logps, _ = side_logps(model, side.select(rows))
        loss = -(logps / side.select(rows).lengths).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def diff_token_cosines(model: torch.nn.Module, data: SentimentPairs, pairs: int) -> torch.Tensor:
    """Per pair (first ``pairs``), the cosine of the gradients of the diff-masked log-probs.

    Only the tokens where chosen and rejected differ (the label) count: ``mu_w^T IP mu_l``
    over the norms from the within-side Grams of :func:`token_heatmap`.
    """
    batch = data.batch()
    count = min(pairs, len(batch))
    masks_w, masks_l = batch_diff_masks(
        [c + [EOS] for c in data.chosen[:count]], [r + [EOS] for r in data.rejected[:count]]
    )
    values = []
    for row in range(count):
        heat = token_heatmap(model, batch.select(slice(row, row + 1)), params="all")
        inner, n_w, n_l = masked_products(heat, masks_w[row], masks_l[row])
        values.append((inner / (n_w * n_l)).item())
    return torch.tensor(values, dtype=torch.float64)


def probe_table(
    model: torch.nn.Module, pairs: int, seed: int, diff_pairs: int = 12
) -> list[dict[str, float]]:
    """Per suffix length: mean cosine of the full responses and of the differing tokens only,
    the norm ratio, the probability of the EOS right after the label, and DPO's cases."""
    rows = []
    for length in SUFFIX_LENGTHS:
        data = SentimentPairs(length, pairs, seed=10_000 + seed + length)
        batch = data.batch()
        with torch.no_grad():
            reference = pair_logps(model, batch)
            _, tokens = side_logps(model, batch.chosen)
        stats = measure_pairs(model, batch, loss="dpo", params="all", reference=reference)
        cases = case_fractions(stats.predicted.case)
        label_position = batch.chosen.response_mask[0, 1:].nonzero().flatten()[0]
        rows.append(
            {
                "suffix": length,
                "cos": stats.cosine.mean().item(),
                "diff_cos": diff_token_cosines(model, data, diff_pairs).mean().item(),
                "norm_ratio": (stats.rejected_norm / stats.chosen_norm).mean().item(),
                "p_after_label": tokens[:, label_position + 1].exp().mean().item(),
                "case1": cases["case/chosen_up_rejected_down"],
                "case2": cases["case/both_down"],
                "case3": cases["case/both_up"],
            }
        )
    return rows


def print_probe_table(rows: list[dict[str, float]]) -> None:
    """The probe table (the CLI's ``study`` prints the same)."""
    print(
        f"{'suffix':>6} {'mean cos':>9} {'diff cos':>9} {'n_l/n_w':>8} {'p(next|label)':>13} "
        f"{'case1':>6} {'case2':>6} {'case3':>6}"
    )
    for row in rows:
        print(
            f"{row['suffix']:>6} {row['cos']:>9.3f} {row['diff_cos']:>9.3f} "
            f"{row['norm_ratio']:>8.2f} {row['p_after_label']:>13.3f} "
            f"{row['case1']:>6.2f} {row['case2']:>6.2f} {row['case3']:>6.2f}"
        )


def _masked_logps(model: torch.nn.Module, batch: PairBatch, grids: tuple) -> tuple:
    _, tokens_w = side_logps(model, batch.chosen)
    _, tokens_l = side_logps(model, batch.rejected)
    return (tokens_w * grids[0]).sum(1), (tokens_l * grids[1]).sum(1)


def train_variant(
    reference_model: torch.nn.Module, data: SentimentPairs, method: str, steps: int
) -> dict[str, Any]:
    """Full-batch training of a copy of the SFT model; returns changes and trajectories."""
    model = copy.deepcopy(reference_model)
    batch = data.batch()
    grids = None
    if method == "masked":
        masks_w, masks_l = batch_diff_masks(
            [c + [EOS] for c in data.chosen], [r + [EOS] for r in data.rejected]
        )
        grids = (position_masks(batch.chosen, masks_w), position_masks(batch.rejected, masks_l))
        with torch.no_grad():
            masked_reference = _masked_logps(reference_model, batch, grids)
    with torch.no_grad():
        reference = pair_logps(reference_model, batch)
    lr = 2.0 if method == "normalized" else 0.02
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    stepper = None
    if method == "normalized":
        stepper = NormalizedPairwiseStep(model, optimizer, "all", coefficient="loss", loss="dpo")
    trajectory = []
    for _ in range(steps):
        with torch.no_grad():
            chosen, rejected = pair_logps(model, batch)
        trajectory.append((chosen.mean().item(), rejected.mean().item()))
        if stepper is not None:
            stepper.step(batch, reference)
            continue
        if method == "masked":
            u_w, u_l = _masked_logps(model, batch, grids)
            ref_w, ref_l = masked_reference
        else:
            u_w, u_l = pair_logps(model, batch)
            ref_w, ref_l = reference
        loss = preference_loss(
            "dpo", u_w, u_l, reference_chosen_logps=ref_w, reference_rejected_logps=ref_l
        ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        chosen, rejected = pair_logps(model, batch)
    trajectory.append((chosen.mean().item(), rejected.mean().item()))
    delta_w, delta_l = chosen - reference[0], rejected - reference[1]
    stats = measure_pairs(model, batch, params="all")
    diff_cos = diff_token_cosines(model, data, 12)
    return {
        "delta_chosen": delta_w.mean().item(),
        "delta_rejected": delta_l.mean().item(),
        "chosen_below_start": (delta_w < 0).double().mean().item(),
        "rejected_above_start": (delta_l > 0).double().mean().item(),
        "final_cos": stats.cosine.mean().item(),
        "final_diff_cos": diff_cos.mean().item(),
        "trajectory": trajectory,
    }


def _plot(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.2), sharey=True)
    for axis, (method, runs) in zip(axes, results.items(), strict=True):
        for run in runs:
            steps = range(len(run["trajectory"]))
            axis.plot(steps, [c for c, _ in run["trajectory"]], color="tab:green", alpha=0.7)
            axis.plot(steps, [r for _, r in run["trajectory"]], color="tab:red", alpha=0.7)
        axis.set_title(f"{method} (green chosen, red rejected)")
        axis.set_xlabel("step")
    axes[0].set_ylabel("mean log-prob")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run_demo(config: Any) -> dict[str, Any]:
    """Run the demo with a :class:`~marginkit.gradent.cli.DemoConfig`; prints two tables."""
    torch.set_num_threads(1)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    seed_everything(0)
    model = tiny_gpt2(seed=0)
    sft(model, steps=config.sft_steps, lr=3e-3, batch_size=16, seed=0)
    probe = probe_table(model, config.probe_pairs, seed=0)
    print(f"SFT {config.sft_steps} steps done in {time.perf_counter() - start:.0f}s")
    print("\nprobe (DPO at the SFT reference, all parameters; diff cos: differing tokens only;")
    print("p(next|label): the model's probability of the token after the label, EOS at suffix 0)")
    print_probe_table(probe)
    example = SentimentPairs(8, 1, seed=10_008)
    heat = token_heatmap(model, example.batch(), params="all")
    plot_token_heatmap(heat, output / "heatmap_suffix8.png", title="suffix 8, token cosines")
    results: dict[str, list[dict[str, Any]]] = {"dpo": [], "normalized": [], "masked": []}
    for seed in range(config.seeds):
        data = SentimentPairs(8, config.train_pairs, seed=20_000 + seed)
        for method in results:
            results[method].append(train_variant(model, data, method, config.train_steps))
    print(f"\ntraining on suffix 8, {config.train_steps} full-batch steps, {config.seeds} seeds")
    print(
        f"{'method':>10} {'seed':>4} {'d chosen':>9} {'d rejected':>10} "
        f"{'chosen<start':>12} {'rejected>start':>14} {'final cos':>9} {'diff cos':>9}"
    )
    for method, runs in results.items():
        for seed, run in enumerate(runs):
            print(
                f"{method:>10} {seed:>4} {run['delta_chosen']:>9.3f} "
                f"{run['delta_rejected']:>10.3f} "
                f"{run['chosen_below_start']:>12.2f} {run['rejected_above_start']:>14.2f} "
                f"{run['final_cos']:>9.3f} {run['final_diff_cos']:>9.3f}"
            )
    _plot(results, output / "trajectories.png")
    summary = {"probe": probe, "training": results}
    (output / "results.json").write_text(json.dumps(summary, indent=1))
    print(
        f"\nwrote {output / 'trajectories.png'}, heatmap_suffix8.png and results.json in "
        f"{time.perf_counter() - start:.0f}s"
    )
    return summary
