"""Settings of every mode, as plain dataclasses (no torch import, so the CLI starts fast).

Each field carries the default this package uses and a docstring that the command line
shows; ``marginkit.shared.cli.run_commands`` turns them into ``--field value`` flags.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal


@dataclasses.dataclass
class TCMConfig:
    """Settings of the TCM regulariser (defaults: the paper's margins and weights)."""

    margin_pos: float = 0.9
    """m+: positive pairs with cosine <= m+ are hard."""
    margin_neg: float = 0.5
    """m-: negative pairs with cosine >= m- are hard."""
    lambda_pos: float = 1.0
    """Weight of the hard-positive term."""
    lambda_neg: float = 1.0
    """Weight of the hard-negative term."""
    min_denominator: float = 0.0
    """Floor on |H+| and |H-| (0 = off); damps the 1/|H| push when hard pairs are rare."""

    def __post_init__(self) -> None:
        for name in ("margin_pos", "margin_neg"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a cosine in [-1, 1], got {value}")
        for name in ("lambda_pos", "lambda_neg", "min_denominator"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclasses.dataclass
class OPISConfig:
    """How OPIS is computed; the defaults are this package's choices (see the guide)."""

    far_range: tuple[float, float] = (1e-2, 1e-1)
    """(f_lo, f_hi): the pooled false-accept rates at the top and bottom of the grid."""
    num_thresholds: int = 100
    """K, thresholds in the grid."""
    grid: Literal["cosine", "l2"] = "cosine"
    """Even spacing in cosine similarity, or in L2 distance sqrt(2 - 2s) of unit vectors."""
    thresholds: tuple[float, ...] | None = None
    """Explicit increasing cosine thresholds; override far_range, num_thresholds and grid."""
    beta: float = 1.0
    """F-beta weight; beta > 1 up-weights the true-negative rate."""
    overall: Literal["pooled", "mean"] = "pooled"
    """Ubar: utility of the pooled rates, or the mean of the class utilities."""
    eps: float = 0.05
    """Share of classes in the worst and best groups of eps-OPIS."""
    eps_rank: Literal["per_threshold", "global"] = "per_threshold"
    """Rank classes at each threshold, or once by their mean utility over the grid."""
    min_class_size: int = 2
    """Smaller classes leave the class set; their samples stay in as negatives."""
    range_estimate: Literal["exact", "sampled"] = "exact"
    """Exact quantiles (two extra sweeps) or quantiles of sampled negative pairs."""
    num_sampled_negatives: int = 5_000_000
    """Negative pairs drawn when range_estimate="sampled"."""
    seed: int = 0
    """Seed of the sampled range estimate."""
    memory_budget_mb: float = 512.0
    """Memory for one tile of pair work; sets the tile size."""

    def __post_init__(self) -> None:
        f_lo, f_hi = (float(value) for value in self.far_range)
        if not 0.0 <= f_lo < f_hi <= 1.0:
            raise ValueError(
                f"far_range must satisfy 0 <= f_lo < f_hi <= 1, got {self.far_range!r}"
            )
        if self.num_thresholds < 2 and self.thresholds is None:
            raise ValueError(f"num_thresholds must be >= 2, got {self.num_thresholds}")
        if self.grid not in ("cosine", "l2"):
            raise ValueError(f"grid must be 'cosine' or 'l2', got {self.grid!r}")
        if self.overall not in ("pooled", "mean"):
            raise ValueError(f"overall must be 'pooled' or 'mean', got {self.overall!r}")
        if self.eps_rank not in ("per_threshold", "global"):
            raise ValueError(f"eps_rank must be 'per_threshold' or 'global', got {self.eps_rank!r}")
        if self.range_estimate not in ("exact", "sampled"):
            raise ValueError(
                f"range_estimate must be 'exact' or 'sampled', got {self.range_estimate!r}"
            )
        if not 0.0 < self.eps <= 1.0:
            raise ValueError(f"eps must be in (0, 1], got {self.eps}")
        if self.min_class_size < 2:
            raise ValueError(f"min_class_size must be >= 2, got {self.min_class_size}")
        if self.thresholds is not None:
            grid = [float(value) for value in self.thresholds]
            if not grid or any(b <= a for a, b in zip(grid, grid[1:])):
                raise ValueError(f"thresholds must be strictly increasing, got {self.thresholds}")

    @classmethod
    def reimpl101(cls, **overrides: Any) -> OPISConfig:
        """Preset of one independent re-implementation: FAR [0.01, 0.1], K = 101, sampled range."""
        values: dict[str, Any] = dict(
            far_range=(0.01, 0.10), num_thresholds=101, range_estimate="sampled"
        )
        values.update(overrides)
        return cls(**values)


BaseLossName = Literal[
    "contrastive", "multi_similarity", "proxy_anchor", "normalized_softmax", "none"
]


@dataclasses.dataclass
class TrainConfig:
    """Train an embedder on the train classes and evaluate on unseen test classes."""

    data: str = "digits"
    """'digits' (scikit-learn's bundled 8x8 digits, classes 0-4 / 5-9) or a feature file
    (.npz/.npy/.pt/.csv/.parquet) whose classes are split in half by sorted label."""
    base_loss: BaseLossName = "multi_similarity"
    """Base loss (pytorch-metric-learning classes with their defaults), or 'none'."""
    use_tcm: bool = True
    """Add the TCM regulariser to the base loss."""
    tcm: TCMConfig = dataclasses.field(default_factory=TCMConfig)
    """TCM margins and weights."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the MLP embedder; () for a linear head."""
    embedding_dim: int = 32
    """Output dimension (L2-normalised)."""
    epochs: int = 40
    """Passes over the train set."""
    batch_size: int = 80
    """Samples per batch (a multiple of m_per_class)."""
    m_per_class: int = 16
    """Samples of each class in a batch."""
    lr: float = 1e-3
    """Adam learning rate of the embedder."""
    loss_lr: float = 1e-2
    """Adam learning rate of loss parameters (proxies, class weights)."""
    seed: int = 0
    """Seed of initialisation and batches."""
    mixed_precision: str = "no"
    """accelerate mixed precision: no, bf16, fp16."""
    cpu: bool = False
    """Stay on the CPU even when a GPU is present."""
    out_dir: str = "outputs/tcm/run"
    """Checkpoints and metrics.jsonl go here."""
    checkpoint_every: int = 0
    """Steps between checkpoints (0: only at the end)."""
    resume: bool = True
    """Continue from the latest checkpoint in out_dir when there is one."""


@dataclasses.dataclass
class DemoConfig:
    """Digits (train 0-4, test 5-9): each base loss with and without TCM, several seeds."""

    base_losses: tuple[str, ...] = ("multi_similarity", "proxy_anchor")
    """Base losses to compare."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """One run per seed and configuration."""
    epochs: int = 40
    """Epochs per run (about 11 steps each)."""
    hidden: tuple[int, ...] = (256, 256)
    """MLP hidden widths; () for a linear 64 -> 32 head."""
    out_dir: str = "outputs/tcm/demo"
    """Where runs, the report (md/csv/json) and pareto.png go."""


@dataclasses.dataclass
class ReportConfig:
    """Accuracy-vs-OPIS table (Markdown, CSV, JSON) and Pareto plot over finished runs."""

    runs: str = "outputs/tcm"
    """Folder searched recursively for the results.json files that `train` writes."""
    out_dir: str = "outputs/tcm/report"
    """Where report.md, report.csv, report.json and pareto.png go."""
