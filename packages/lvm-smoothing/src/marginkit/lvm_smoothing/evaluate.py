"""Certify a data set with several certificates on the same samples, and calibrate ``fixed``.

For each input, one n0 draw and one n draw of statistics of every candidate are taken (a
generator seeded per input index), and every requested certificate is computed from them, so
the certificates differ only in how they use the same noise.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from marginkit.lvm_smoothing.certificates import (
    Certificate,
    candidate_bounds,
    certify_from_statistics,
    check_can_certify,
    top_class,
)
from marginkit.lvm_smoothing.maps import HARDMAX, Candidate
from marginkit.lvm_smoothing.results import (
    save_statistics,
    write_certify_tsv,
    write_details_tsv,
    write_meta,
)
from marginkit.lvm_smoothing.sampling import SampleStatistics
from marginkit.lvm_smoothing.smooth import Smooth
from marginkit.shared import progress

logger = logging.getLogger(__name__)

SOFTMAX_ONE = Candidate("softmax", 1.0)
#: name -> (method, selection, fixed candidate or None)
CERTIFICATES = {
    "cohen": ("cohen", "n0", None),
    "cp_multi": ("cp_multi", "n0", None),
    "softmax_t1": ("lvm", "fixed", SOFTMAX_ONE),
    "lvm": ("lvm", "n0", None),
    "lvm_union": ("lvm", "union", None),
}


@dataclasses.dataclass
class Draws:
    """Both draws of statistics for a set of inputs, with their labels and sampling times."""

    indices: list[int]
    labels: list[int]
    selection: list[SampleStatistics]
    estimation: list[SampleStatistics]
    seconds: list[float]


def draw_dataset(
    smooth: Smooth,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    n0: int,
    n: int,
    seed: int = 0,
    indices: Sequence[int] | None = None,
) -> Draws:
    """Sample the n0 and n draws of every candidate for every input (seeded per index)."""
    indices = list(range(len(labels))) if indices is None else list(indices)
    draws = Draws(indices, [int(v) for v in labels], [], [], [])
    for position in progress(range(len(labels)), "sampling"):
        generator = smooth.generator(seed * 1_000_003 + indices[position])
        start = time.perf_counter()
        draws.selection.append(smooth.sample(inputs[position], n0, generator))
        draws.estimation.append(smooth.sample(inputs[position], n, generator))
        draws.seconds.append(time.perf_counter() - start)
    return draws


def calibrate(
    draws: Draws,
    sigma: float,
    alpha: float = 0.001,
    objective: str = "acr",
    radius: float = 0.0,
    logit_lipschitz: float | None = None,
) -> Candidate:
    """The candidate that one ``selection="fixed"`` certificate should use, from held-out data.

    Maximises the average certified radius (``objective="acr"``) or the certified accuracy at
    ``radius`` (``"ca"``) of the fixed certificate over the held-out inputs (ties: candidate
    order). Use inputs that are not certified afterwards.
    """
    if objective not in ("acr", "ca"):
        raise ValueError(f"objective must be 'acr' or 'ca', got {objective!r}")
    candidates = draws.selection[0].candidates
    scores = np.zeros(len(candidates))
    for selection, estimation, label in zip(draws.selection, draws.estimation, draws.labels):
        classes = top_class(selection.mean)
        num_classes = selection.mean.shape[1]
        bounds = candidate_bounds(estimation, classes, alpha / num_classes, sigma, logit_lipschitz)
        certified = (classes == label) & (bounds.p_lower > bounds.p_runner_up)
        radii = np.where(certified, bounds.radii.max(axis=0), 0.0)
        scores += radii if objective == "acr" else (certified & (radii >= radius) & (radii > 0))
    best = candidates[int(np.argmax(scores))]
    logger.debug(
        "calibrated candidate %s (%s = %.4f)", best, objective, scores.max() / len(draws.labels)
    )
    return best


def certify_draws(
    draws: Draws,
    sigma: float,
    alpha: float,
    name: str,
    candidate: Candidate | None = None,
    logit_lipschitz: float | None = None,
) -> list[Certificate]:
    """Certificate ``name`` (a key of :data:`CERTIFICATES`, or ``"lvm_fixed"``) per input."""
    if name == "lvm_fixed":
        method, selection, fixed = "lvm", "fixed", candidate
        if fixed is None:
            raise ValueError("'lvm_fixed' needs a calibrated candidate")
    elif name in CERTIFICATES:
        method, selection, fixed = CERTIFICATES[name]
    else:
        raise ValueError(
            f"unknown certificate {name!r}; choose from {[*CERTIFICATES, 'lvm_fixed']}"
        )
    num_classes = draws.selection[0].mean.shape[1]
    check_can_certify(
        draws.estimation[0].num_samples, alpha, num_classes, method,
        [fixed] if fixed is not None else [HARDMAX],
    )  # fmt: skip
    return [
        certify_from_statistics(
            chosen, estimated, sigma, alpha, method, selection, fixed, logit_lipschitz
        )
        for chosen, estimated in zip(draws.selection, draws.estimation)
    ]


def write_run(
    out_dir: str | Path,
    name: str,
    draws: Draws,
    certificates: Sequence[Certificate],
    meta: dict,
    radius_format: str = "full",
) -> Path:
    """``<name>.tsv`` (Cohen format), ``<name>.details.tsv`` and ``<name>.meta.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = write_certify_tsv(
        out / f"{name}.tsv", draws.labels, certificates, draws.seconds, draws.indices,
        radius_format,
    )  # fmt: skip
    write_details_tsv(out / f"{name}.details.tsv", certificates, draws.indices)
    versions = {}
    for distribution in ("marginkit-lvm-smoothing", "torch", "scipy"):
        try:
            versions[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[distribution] = "not installed"
    valid = all(c.valid for c in certificates)
    record = {
        **meta,
        "certificate": name,
        "valid": valid,
        "versions": versions,
        "time": "seconds spent sampling both draws of the input (shared by all certificates)",
    }
    write_meta(out / f"{name}.meta.json", record)
    return path


def save_draws(path: str | Path, draws: Draws) -> Path:
    """Both draws as ``.stats.npz`` (re-certify later without the network)."""
    return save_statistics(path, draws.indices, draws.labels, draws.selection, draws.estimation)
