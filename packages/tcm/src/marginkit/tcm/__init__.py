"""Threshold-consistent margin (TCM) loss, the OPIS threshold-consistency metric, retrieval.

TCM penalises hard positive pairs (cosine below ``m+``) and hard negative pairs (cosine
above ``m-``) on top of any base metric-learning loss, so one global cosine threshold
behaves alike for every class. OPIS measures how much per-class utilities of a threshold
vary over a false-accept-rate range. Heavy modules load on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import Any

from marginkit.tcm.config import DemoConfig, OPISConfig, ReportConfig, TCMConfig, TrainConfig

__version__ = "0.1.0"

_LAZY = {
    "TCMLoss": "losses",
    "TCMParts": "losses",
    "tcm_loss": "losses",
    "tcm_from_similarities": "losses",
    "TCMMemory": "memory",
    "OPISResult": "opis",
    "compute_opis": "opis",
    "opis_from_scores": "opis",
    "threshold_grid": "opis",
    "calibration_range": "utility",
    "f_beta_utility": "utility",
    "retrieval_metrics": "retrieval",
    "RetrievalResult": "retrieval",
    "evaluate_embeddings": "evaluate",
    "threshold_at_far": "evaluate",
    "load_embeddings": "data",
    "digits_open_world": "data",
    "make_sphere_clusters": "synthetic",
    "pareto_front": "pareto",
    "summarize_runs": "pareto",
    "plot_pareto": "pareto",
    "train": "train",
    "train_embedder": "train",
    "embed": "train",
}

__all__ = ["DemoConfig", "OPISConfig", "ReportConfig", "TCMConfig", "TrainConfig", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"marginkit.tcm.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'marginkit.tcm' has no attribute {name!r}")
